//! The cockpit's state in one short line: the terminal's title (tmux shows
//! it as `#{pane_title}`) and the text `k3s-cockpit status` prints for
//! tmux's status line. A pure function of the [`App`], so every state is
//! tested without a terminal:
//!
//! - `k3s-cockpit watch 3 nodes ok`
//! - `k3s-cockpit watch EXPIRED node-b, LATE node-c`
//! - `k3s-cockpit HALTED fun-bedbug: heartbeat is late`
//! - `k3s-cockpit 2/3 still-fawn soak 23s/50s`
//!
//! Worst first: a halted rollout or a canary waiting for `A`; while a
//! rollout moves, its progress (a node it restarts is NotReady on purpose,
//! and the engine halts on a real problem); else the fleet's problems
//! (API down, EXPIRED, LATE, NotReady, probes DOWN); else all is well.

use super::app::App;
use crate::durations::format_duration;
use crate::model::fleet::{ApiFailureKind, ApiStatus, Tri};
use crate::model::health::Heartbeat;
use crate::upgrade::engine::Phase;
use crate::upgrade::{RolloutState, RolloutView};

/// The cockpit's state: a word for machines, a line for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// `ok`, `connecting`, `api-down`, `expired`, `late`, `not-ready`,
    /// `probe-down`, `halted`, `canary`, `running`, `verifying`, `paused`,
    /// `idle`, `rolling-back`, `done`, `aborted`, `rolled-back`.
    pub state: &'static str,
    pub text: String,
}

const PREFIX: &str = "k3s-cockpit";
/// Titles are for a pane's border and a status line: keep them short.
const MAX_CHARS: usize = 100;
/// Names listed per problem before `+N`.
const NAMES: usize = 2;

/// The cockpit's state as of the app's last update.
pub fn status(app: &App) -> Status {
    let (state, body) = match app.rollout.as_ref() {
        Some(view) => rollout(app, view),
        None => fleet(app, "watch ").unwrap_or_else(|| ("ok", format!("watch {}", healthy(app)))),
    };
    Status {
        state,
        text: clean(&format!("{PREFIX} {body}")),
    }
}

fn rollout(app: &App, view: &RolloutView) -> (&'static str, String) {
    match &view.state {
        RolloutState::Halted(h) => {
            let text = match &h.node {
                Some(node) => {
                    let why = h
                        .reason
                        .strip_prefix(&format!("node {node} "))
                        .unwrap_or(&h.reason);
                    format!("HALTED {node}: {why}")
                }
                None => format!("HALTED: {}", h.reason),
            };
            ("halted", text)
        }
        RolloutState::CanaryAwaitingConfirm => {
            let node = view
                .current
                .clone()
                .or_else(|| {
                    view.nodes
                        .iter()
                        .find(|n| n.phase == Phase::Done || n.progress > 0.0)
                        .map(|n| n.name.clone())
                })
                .map(|n| format!(" {n}"))
                .unwrap_or_default();
            (
                "canary",
                format!("canary{node} soaked: A accepts, B rolls back"),
            )
        }
        RolloutState::Running | RolloutState::Pausing | RolloutState::RollingBack => {
            let (state, word) = match view.state {
                RolloutState::RollingBack => ("rolling-back", "rollback "),
                _ => ("running", ""),
            };
            (state, format!("{word}{}", progress(view)))
        }
        RolloutState::Verifying => {
            let watch = view.final_watch.as_ref().map_or(String::new(), |w| {
                format!(
                    " {}/{}",
                    crate::durations::format_signed(w.elapsed),
                    crate::durations::format_signed(w.window)
                )
            });
            ("verifying", format!("final watch{watch}"))
        }
        RolloutState::Paused => fleet(app, "paused ")
            .unwrap_or_else(|| ("paused", format!("paused {}", progress(view)))),
        other => {
            let state = match other {
                RolloutState::Idle => "idle",
                RolloutState::Done => "done",
                RolloutState::Aborted => "aborted",
                _ => "rolled-back",
            };
            fleet(app, "").unwrap_or_else(|| {
                (
                    state,
                    format!("upgrade {}, {}", other.label(), healthy(app)),
                )
            })
        }
    }
}

/// `2/3 still-fawn soak 23s/50s`, or `1/3 done` between nodes.
fn progress(view: &RolloutView) -> String {
    let total = view.nodes.len();
    let at = view
        .current
        .as_ref()
        .and_then(|c| view.nodes.iter().position(|n| &n.name == c));
    match at.map(|i| &view.nodes[i]) {
        Some(node) => {
            let phase = match (&node.soak, node.phase) {
                (Some(s), Phase::Soak) => format!(
                    "soak {}/{}",
                    secs(s.elapsed.as_secs()),
                    secs(s.window.as_secs())
                ),
                (_, phase) => phase.to_string(),
            };
            format!("{}/{total} {} {phase}", at.unwrap_or(0) + 1, node.name)
        }
        None => {
            let done = view.nodes.iter().filter(|n| n.phase == Phase::Done).count();
            format!("{done}/{total} done")
        }
    }
}

fn secs(s: i64) -> String {
    format_duration(std::time::Duration::from_secs(s.max(0) as u64))
}

/// `3 nodes ok`.
fn healthy(app: &App) -> String {
    let n = app
        .fleet
        .nodes
        .values()
        .filter(|s| s.info.is_some())
        .count();
    format!("{n} node{} ok", if n == 1 { "" } else { "s" })
}

/// The fleet's problems, worst first, or None when there are none.
fn fleet(app: &App, word: &str) -> Option<(&'static str, String)> {
    match &app.fleet.api {
        ApiStatus::Down { kind, .. } => {
            let how = if *kind == ApiFailureKind::Silent {
                "silent"
            } else {
                "down"
            };
            return Some(("api-down", format!("{word}API {how}")));
        }
        ApiStatus::Connecting => return Some(("connecting", format!("{word}connecting"))),
        ApiStatus::Up => {}
    }
    let (mut expired, mut late, mut not_ready) = (Vec::new(), Vec::new(), Vec::new());
    for (name, node) in &app.fleet.nodes {
        let Some(info) = &node.info else { continue };
        match node.heartbeat {
            Some(Heartbeat::Expired) => expired.push(name.as_str()),
            Some(Heartbeat::Late) => late.push(name.as_str()),
            _ if info.ready().is_some_and(|c| c.status != Tri::True) => {
                not_ready.push(name.as_str())
            }
            _ => {}
        }
    }
    let down: Vec<String> = app
        .fleet
        .services
        .values()
        .filter(|s| s.probe_ok() == Some(false))
        .map(|s| format!("{}/{}", s.info.namespace, s.info.name))
        .collect();
    let down: Vec<&str> = down.iter().map(String::as_str).collect();
    let mut parts = Vec::new();
    let mut worst = None;
    for (state, label, names) in [
        ("expired", "EXPIRED", &expired),
        ("late", "LATE", &late),
        ("not-ready", "NotReady", &not_ready),
        ("probe-down", "DOWN", &down),
    ] {
        if names.is_empty() {
            continue;
        }
        worst.get_or_insert(state);
        parts.push(format!("{label} {}", list(names)));
    }
    worst.map(|state| (state, format!("{word}{}", parts.join(", "))))
}

/// `a`, `a b`, `a b +3`.
fn list(names: &[&str]) -> String {
    let mut text = names[..names.len().min(NAMES)].join(" ");
    if names.len() > NAMES {
        text.push_str(&format!(" +{}", names.len() - NAMES));
    }
    text
}

/// One line of printable text, at most [`MAX_CHARS`]: a title must not
/// carry escape sequences (a reason may quote a remote error).
fn clean(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_CHARS + 1)
        .collect();
    if out.chars().count() > MAX_CHARS {
        out = out.chars().take(MAX_CHARS - 1).collect();
        out.push('…');
    }
    out
}

/// `ESC ] 2 ; TEXT BEL`: sets the window (pane) title.
pub fn osc_title(text: &str) -> String {
    format!("\x1b]2;{}\x07", clean(text))
}

/// Saves the terminal's title on its stack (xterm's XTPUSHTITLE; tmux too).
pub const PUSH_TITLE: &str = "\x1b[22;0t";
/// Restores the title saved by [`PUSH_TITLE`].
pub const POP_TITLE: &str = "\x1b[23;0t";

/// The last title set, so the terminal hears only changes.
#[derive(Debug, Default)]
pub struct Title {
    last: Option<String>,
}

impl Title {
    /// The escape sequence to write for `text`, or None if it is the title
    /// already set.
    pub fn update(&mut self, text: &str) -> Option<String> {
        if self.last.as_deref() == Some(text) {
            return None;
        }
        self.last = Some(text.to_string());
        Some(osc_title(text))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::ClusterEvent;
    use crate::model::fleet::{Condition, LeaseInfo, NodeInfo, ResourceKind};
    use crate::upgrade::engine::{Direction, Halt, NodeProgress, SoakView};
    use crate::upgrade::plan::Role;
    use jiff::{SignedDuration, Timestamp};

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn lease(node: &str, renewed: Timestamp) -> ClusterEvent {
        ClusterEvent::Lease(LeaseInfo::renewed_at(node, renewed))
    }

    /// Three nodes, renewed at 0 s, API up.
    fn app() -> App {
        let mut app = App::new("lab", "http://127.0.0.1:1", true, t(0));
        app.on_cluster(ClusterEvent::ResyncStart(ResourceKind::Nodes));
        for n in ["node-a", "node-b", "node-c"] {
            app.on_cluster(ClusterEvent::Node(NodeInfo::bare(n, "v1.33.6+k3s1")));
            app.on_cluster(lease(n, t(0)));
        }
        app.fleet.api = ApiStatus::Up;
        app.on_tick(t(1));
        app
    }

    fn view(state: RolloutState, current: Option<&str>) -> RolloutView {
        let node = |name: &str, phase: Phase, soak: Option<SoakView>| NodeProgress {
            name: name.into(),
            role: Role::Server,
            version: "v1.33.6+k3s1".parse().unwrap(),
            target: Some("v1.34.3+k3s1".parse().unwrap()),
            phase,
            phase_started: None,
            progress: 0.5,
            soak,
            last_error: None,
            skipped: false,
            labelled: false,
        };
        RolloutView {
            state,
            final_watch: None,
            direction: Direction::Forward,
            current: current.map(String::from),
            path: vec!["v1.34.3+k3s1".parse().unwrap()],
            nodes: vec![
                node("fun-bedbug", Phase::Done, None),
                node(
                    "still-fawn",
                    Phase::Soak,
                    Some(SoakView {
                        elapsed: SignedDuration::from_secs(23),
                        window: SignedDuration::from_secs(50),
                    }),
                ),
                node("pumped-piglet", Phase::Pending, None),
            ],
            note: None,
            snapshot: None,
            needs_datastore_restore: false,
            restore_command: None,
            restore_plan: Vec::new(),
            restore_progress: None,
            events: Vec::new(),
        }
    }

    #[test]
    fn the_final_watch_shows_its_progress() {
        let mut app = app();
        let mut v = view(RolloutState::Verifying, None);
        v.final_watch = Some(SoakView {
            elapsed: SignedDuration::from_secs(180),
            window: SignedDuration::from_mins(10),
        });
        app.rollout = Some(v);
        let s = status(&app);
        assert_eq!(
            (s.state, s.text.as_str()),
            ("verifying", "k3s-cockpit final watch 3m00s/10m00s")
        );
    }

    #[test]
    fn watch_says_how_many_nodes_are_well() {
        let s = status(&app());
        assert_eq!(s.text, "k3s-cockpit watch 3 nodes ok");
        assert_eq!(s.state, "ok");
        let mut connecting = app();
        connecting.fleet.api = ApiStatus::Connecting;
        assert_eq!(status(&connecting).text, "k3s-cockpit watch connecting");
    }

    #[test]
    fn watch_names_late_and_expired_nodes_worst_first() {
        let mut app = app();
        for n in ["node-a", "node-c"] {
            app.now = t(30);
            app.on_cluster(lease(n, t(30)));
        }
        // node-b last renewed at 0: LATE after ~11.4 s, EXPIRED after 40 s.
        app.on_tick(t(20));
        assert_eq!(status(&app).text, "k3s-cockpit watch LATE node-b");
        assert_eq!(status(&app).state, "late");
        app.on_cluster(lease("node-c", t(30)));
        app.on_tick(t(45));
        let s = status(&app);
        assert_eq!(
            s.text,
            "k3s-cockpit watch EXPIRED node-b, LATE node-a node-c"
        );
        assert_eq!(s.state, "expired");
    }

    #[test]
    fn watch_names_not_ready_nodes_and_a_down_api() {
        let mut app = app();
        let mut info = NodeInfo::bare("node-c", "v1.33.6+k3s1");
        info.conditions.push(Condition {
            kind: "Ready".into(),
            status: Tri::Unknown,
            reason: "NodeStatusUnknown".into(),
            message: String::new(),
            last_transition: None,
            last_heartbeat: None,
        });
        app.on_cluster(ClusterEvent::Node(info));
        assert_eq!(status(&app).text, "k3s-cockpit watch NotReady node-c");
        app.fleet.api = ApiStatus::Down {
            since: t(2),
            error: "refused".into(),
            failures: 3,
            kind: ApiFailureKind::Unreachable,
        };
        assert_eq!(status(&app).text, "k3s-cockpit watch API down");
        assert_eq!(status(&app).state, "api-down");
    }

    #[test]
    fn a_halt_names_the_node_and_the_cause() {
        let mut app = app();
        app.rollout = Some(view(
            RolloutState::Halted(Halt {
                reason: "node fun-bedbug heartbeat is late".into(),
                node: Some("fun-bedbug".into()),
                phase: Some(Phase::Soak),
            }),
            None,
        ));
        let s = status(&app);
        assert_eq!(s.text, "k3s-cockpit HALTED fun-bedbug: heartbeat is late");
        assert_eq!(s.state, "halted");
    }

    #[test]
    fn a_running_rollout_shows_the_node_and_its_soak() {
        let mut app = app();
        app.rollout = Some(view(RolloutState::Running, Some("still-fawn")));
        assert_eq!(status(&app).text, "k3s-cockpit 2/3 still-fawn soak 23s/50s");
        app.rollout = Some(view(RolloutState::Running, None));
        assert_eq!(status(&app).text, "k3s-cockpit 1/3 done");
        app.rollout = Some(view(RolloutState::CanaryAwaitingConfirm, None));
        let s = status(&app);
        assert_eq!(
            s.text,
            "k3s-cockpit canary fun-bedbug soaked: A accepts, B rolls back"
        );
        assert_eq!(s.state, "canary");
        app.rollout = Some(view(RolloutState::Idle, None));
        assert_eq!(status(&app).text, "k3s-cockpit upgrade idle, 3 nodes ok");
    }

    #[test]
    fn the_title_is_one_clean_line() {
        let mut app = app();
        app.rollout = Some(view(
            RolloutState::Halted(Halt {
                reason: format!("ssh said \x1b]2;pwned\x07\n{}", "x".repeat(300)),
                node: None,
                phase: None,
            }),
            None,
        ));
        let text = status(&app).text;
        assert!(!text.chars().any(char::is_control), "{text:?}");
        assert_eq!(text.chars().count(), MAX_CHARS);
        assert!(text.ends_with('…'));
    }

    #[test]
    fn the_title_is_sent_only_when_it_changes() {
        let mut title = Title::default();
        assert_eq!(
            title.update("k3s-cockpit watch 3 nodes ok").as_deref(),
            Some("\x1b]2;k3s-cockpit watch 3 nodes ok\x07")
        );
        assert_eq!(title.update("k3s-cockpit watch 3 nodes ok"), None);
        assert!(title.update("k3s-cockpit watch LATE node-b").is_some());
        assert_eq!(title.update("k3s-cockpit watch LATE node-b"), None);
        assert!(title.update("k3s-cockpit watch 3 nodes ok").is_some());
    }
}
