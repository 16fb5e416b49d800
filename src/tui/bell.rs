//! The bell (BEL, 0x07) when something needs the operator: a heartbeat
//! turning LATE or EXPIRED, a probe going DOWN, the rollout halting, a
//! canary waiting for `A`. tmux turns it into the window's bell flag (with
//! `monitor-bell on`), so a cockpit in a background window is noticed.
//!
//! Transitions, not levels: the timeline records each transition once, so
//! a new entry of those kinds since the last frame is an event; the
//! rollout's state is compared with the last frame's. One frame rings at
//! most once, however many nodes turned LATE in it.

use std::sync::atomic::{AtomicBool, Ordering};

use super::app::App;
use crate::model::timeline::EntryKind;
use crate::upgrade::RolloutState;

static DISABLED: AtomicBool = AtomicBool::new(false);

/// `--no-bell` (or `K3S_COCKPIT_NO_BELL`): the cockpit never rings.
pub fn disable() {
    DISABLED.store(true, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    !DISABLED.load(Ordering::Relaxed)
}

/// What the last frame showed, as far as the bell cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Timeline entries ever pushed.
    pushed: u64,
    halted: bool,
    canary: bool,
}

impl Seen {
    pub fn of(app: &App) -> Seen {
        let state = app.rollout.as_ref().map(|r| &r.state);
        Seen {
            pushed: app.fleet.timeline.pushed(),
            halted: matches!(state, Some(RolloutState::Halted(_))),
            canary: matches!(state, Some(RolloutState::CanaryAwaitingConfirm)),
        }
    }
}

/// Whether an entry of this kind calls the operator.
fn calls(kind: &EntryKind) -> bool {
    matches!(
        kind,
        EntryKind::HeartbeatLate | EntryKind::HeartbeatExpired | EntryKind::ProbeDown { .. }
    )
}

/// Whether the app, last seen as `before`, now has news for the operator.
pub fn rings(before: &Seen, app: &App) -> bool {
    let now = Seen::of(app);
    if (now.halted && !before.halted) || (now.canary && !before.canary) {
        return true;
    }
    // The timeline keeps its newest entries; more new ones than it keeps
    // are all looked at that it has.
    let new = now.pushed.saturating_sub(before.pushed);
    let new = usize::try_from(new).unwrap_or(usize::MAX);
    app.fleet
        .timeline
        .entries()
        .rev()
        .take(new)
        .any(|e| calls(&e.kind))
}

/// The bell between frames: [`rings`] against the last frame.
#[derive(Debug)]
pub struct Bell {
    seen: Seen,
    on: bool,
}

impl Bell {
    /// Starts from what the app holds now: what happened before the first
    /// frame (a journal replayed, a halt resumed) is not news.
    pub fn new(app: &App, on: bool) -> Bell {
        Bell {
            seen: Seen::of(app),
            on,
        }
    }

    /// True if this frame should ring; the frame is then seen.
    pub fn frame(&mut self, app: &App) -> bool {
        let ring = rings(&self.seen, app);
        self.seen = Seen::of(app);
        ring && self.on
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::ClusterEvent;
    use crate::model::fleet::{LeaseInfo, NodeInfo, ResourceKind};
    use crate::model::timeline::Severity;
    use crate::upgrade::engine::{Direction, Halt};
    use jiff::Timestamp;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn lease(node: &str, renewed: Timestamp) -> ClusterEvent {
        ClusterEvent::Lease(LeaseInfo::renewed_at(node, renewed))
    }

    fn app() -> App {
        let mut app = App::new("lab", "http://127.0.0.1:1", true, t(0));
        app.on_cluster(ClusterEvent::ResyncStart(ResourceKind::Nodes));
        for n in ["a", "b"] {
            app.on_cluster(ClusterEvent::Node(NodeInfo::bare(n, "v1.33.6+k3s1")));
            app.on_cluster(lease(n, t(0)));
        }
        app.on_tick(t(1));
        app
    }

    fn rollout(state: RolloutState) -> Option<crate::upgrade::RolloutView> {
        Some(crate::upgrade::RolloutView {
            state,
            final_watch: None,
            direction: Direction::Forward,
            current: None,
            path: Vec::new(),
            nodes: Vec::new(),
            note: None,
            snapshot: None,
            needs_datastore_restore: false,
            restore_command: None,
            restore_plan: Vec::new(),
            restore_progress: None,
            events: Vec::new(),
        })
    }

    #[test]
    fn a_heartbeat_turning_late_then_expired_rings_once_each() {
        let mut app = app();
        let mut bell = Bell::new(&app, true);
        assert!(!bell.frame(&app), "nothing happened");
        app.on_cluster(lease("a", t(15)));
        app.on_tick(t(15));
        assert!(bell.frame(&app), "b turned LATE");
        // Still late a second later: a level, not an event.
        app.on_tick(t(16));
        assert!(!bell.frame(&app));
        app.on_cluster(lease("a", t(40)));
        app.on_tick(t(41));
        assert!(bell.frame(&app), "b turned EXPIRED");
        app.on_tick(t(42));
        assert!(!bell.frame(&app));
        // Fresh again is good news: silence.
        app.on_cluster(lease("a", t(42)));
        app.on_cluster(lease("b", t(42)));
        app.on_tick(t(42));
        assert!(!bell.frame(&app));
    }

    #[test]
    fn other_entries_do_not_ring_a_probe_going_down_does() {
        let mut app = app();
        let before = Seen::of(&app);
        app.fleet
            .timeline
            .push(t(2), Severity::Info, "a", "cordoned".into());
        assert!(!rings(&before, &app));
        app.fleet.timeline.push_kind(
            t(3),
            Severity::Error,
            "frigate/frigate",
            EntryKind::ProbeDown {
                endpoint: "127.77.0.10:5000".into(),
                error: "refused".into(),
                since: None,
            },
            "probe DOWN".into(),
        );
        // Another entry after it: the bell looks at every new one.
        app.fleet
            .timeline
            .push(t(3), Severity::Info, "a", "later".into());
        assert!(rings(&before, &app));
        assert!(!rings(&Seen::of(&app), &app));
    }

    #[test]
    fn a_halt_and_a_waiting_canary_ring_when_they_begin() {
        let mut app = app();
        app.rollout = rollout(RolloutState::Running);
        let mut bell = Bell::new(&app, true);
        app.rollout = rollout(RolloutState::Halted(Halt {
            reason: "node a heartbeat is late".into(),
            node: Some("a".into()),
            phase: None,
        }));
        assert!(bell.frame(&app));
        assert!(!bell.frame(&app), "still halted: no new event");
        app.rollout = rollout(RolloutState::Running);
        assert!(!bell.frame(&app));
        app.rollout = rollout(RolloutState::CanaryAwaitingConfirm);
        assert!(bell.frame(&app));
        assert!(!bell.frame(&app));
    }

    #[test]
    fn no_bell_means_silence_but_events_are_still_seen() {
        let mut app = app();
        let mut bell = Bell::new(&app, false);
        app.on_tick(t(15));
        assert!(!bell.frame(&app));
        // Switched on later, the old event does not ring.
        bell.on = true;
        assert!(!bell.frame(&app));
    }

    #[test]
    fn what_happened_before_the_first_frame_is_not_news() {
        let mut app = app();
        app.on_tick(t(15));
        app.rollout = rollout(RolloutState::Halted(Halt {
            reason: "resumed halted".into(),
            node: None,
            phase: None,
        }));
        let mut bell = Bell::new(&app, true);
        assert!(!bell.frame(&app));
    }
}
