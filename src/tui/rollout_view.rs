//! The rollout in the cockpit (control mode): a panel with the state, the
//! version path, the current node's phase and what to press next, and the
//! node table's PHASE column with a progress bar.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Wrap};

use super::app::App;
use super::view::Theme;
use crate::durations::format_duration;
use crate::upgrade::engine::{NodeProgress, Phase};
use crate::upgrade::{RestoreProgress, RolloutState, RolloutView};

/// Rows the panel takes (borders included); 0 in watch mode.
pub fn panel_rows(app: &App) -> u16 {
    if app.rollout.is_some() { 5 } else { 0 }
}

fn secs(d: jiff::SignedDuration) -> String {
    format_duration(std::time::Duration::from_secs(d.as_secs().max(0) as u64))
}

fn bar(fraction: f64, width: usize) -> String {
    let filled = ((fraction.clamp(0.0, 1.0) * width as f64).round() as usize).min(width);
    format!("{}{}", "▰".repeat(filled), "▱".repeat(width - filled))
}

/// `soak 12s/45s ▰▰▱▱▱▱`, `restart 1m20s ▰▰▱▱▱▱`, `done`: one node's
/// phase, with how long a running phase has taken (a restart may take
/// minutes; the operator must see that it is still going).
pub fn phase_text(node: &NodeProgress, now: jiff::Timestamp) -> String {
    match (&node.soak, node.phase) {
        (Some(s), Phase::Soak) => format!(
            "soak {}/{} {}",
            secs(s.elapsed),
            secs(s.window),
            bar(s.fraction(), 6)
        ),
        (_, Phase::Pending) if node.progress > 0.0 => format!("next hop {}", bar(node.progress, 6)),
        (_, phase) => match node.phase_started {
            Some(at) if !matches!(phase, Phase::Pending | Phase::Done | Phase::Skipped) => {
                format!(
                    "{phase} {} {}",
                    secs(now.duration_since(at)),
                    bar(node.progress, 6)
                )
            }
            _ => format!("{phase} {}", bar(node.progress, 6)),
        },
    }
}

pub fn phase_cell(app: &App, theme: &Theme, node: &str) -> Cell<'static> {
    let Some(view) = app.rollout.as_ref() else {
        return Cell::from("");
    };
    let Some(n) = view.nodes.iter().find(|n| n.name == node) else {
        return Cell::from("not in plan").style(theme.dim());
    };
    let halted_here =
        matches!(&view.state, RolloutState::Halted(h) if h.node.as_deref() == Some(node));
    let style = if halted_here {
        theme.bad()
    } else if n.phase == Phase::Done {
        theme.good()
    } else if view.current.as_deref() == Some(node) {
        theme.warn()
    } else {
        Style::default()
    };
    Cell::from(phase_text(n, app.now)).style(style)
}

fn state_style(theme: &Theme, state: &RolloutState) -> Style {
    match state {
        RolloutState::Halted(_) | RolloutState::Aborted => theme.bad(),
        RolloutState::Done | RolloutState::RolledBack => theme.good(),
        _ => theme.warn(),
    }
}

/// What the operator can do now, in words.
fn next_step(view: &RolloutView) -> String {
    let step = keys_now(view);
    if view.needs_datastore_restore {
        // B offers the cluster-wide restore: the rolling path is refused.
        return step.replace(
            "B roll back",
            "B rollback = cluster-wide etcd restore (B lists its steps, then asks)",
        );
    }
    step
}

fn keys_now(view: &RolloutView) -> String {
    match &view.state {
        RolloutState::Idle => "s start · C canary (first node, longer soak) · ? help".into(),
        RolloutState::Running | RolloutState::Pausing => {
            "p pause · n step (one node, then pause) · X abort · B roll back".into()
        }
        RolloutState::Paused => "p resume · n step · B roll back · X abort".into(),
        RolloutState::CanaryAwaitingConfirm => {
            "canary soaked cleanly: A accept and continue · B roll back".into()
        }
        RolloutState::Halted(_) => {
            "fix the cause (R restarts K3s on the selected node), then p resume · r retry · S skip node · B roll back"
                .into()
        }
        RolloutState::RollingBack => "rolling back, newest change first · p pause".into(),
        RolloutState::Verifying => {
            "every node done; the whole cluster is watched before calling it done · F end now · B roll back"
                .into()
        }
        RolloutState::Done => "rollout complete · q quit".into(),
        RolloutState::Aborted => "aborted · B roll back · q quit".into(),
        RolloutState::RolledBack => "rolled back · q quit".into(),
    }
}

/// `restore 7/18 (40s): NODE: k3s server --cluster-reset ...`: the step a
/// running cluster restore is at, and how long it has taken.
fn restore_line(app: &App, theme: &Theme, r: &RestoreProgress) -> Line<'static> {
    let took = r
        .begun
        .map(|at| format!(" ({})", secs(app.now.duration_since(at))))
        .unwrap_or_default();
    Line::styled(
        format!(" restore {}/{}{took}: {}", r.step, r.total, r.text),
        theme.warn(),
    )
}

/// The node whose drain comes now or next: the current one until its
/// drain is over, else the first still pending.
fn drain_subject(view: &RolloutView) -> Option<&NodeProgress> {
    if matches!(
        view.state,
        RolloutState::Done | RolloutState::RolledBack | RolloutState::Verifying
    ) {
        return None;
    }
    let draining = |n: &&NodeProgress| {
        matches!(
            n.phase,
            Phase::Pending | Phase::Snapshot | Phase::Handoff | Phase::Cordon | Phase::Drain
        )
    };
    let current = view
        .current
        .as_ref()
        .and_then(|c| view.nodes.iter().find(|n| &n.name == c));
    // Past its drain, the current node's report is history: the next
    // node's is what the operator can still act on.
    current
        .filter(draining)
        .or_else(|| view.nodes.iter().find(|n| n.phase == Phase::Pending))
}

/// `drain B: evicts 4 · 1 warn: frigate/frigate-0: volume ... (listed 2m00s ago)`:
/// what the drain of the node at hand will do, before it does it.
fn drain_line(app: &App, theme: &Theme, view: &RolloutView) -> Option<Line<'static>> {
    let node = drain_subject(view)?;
    let outlook = app.fleet.nodes.get(&node.name)?.drain.as_ref()?;
    let mut text = format!(" drain {}: {}", node.name, outlook.summary());
    let extra = outlook.notes.len().saturating_sub(1);
    if extra > 0 {
        text.push_str(&format!(" (+{extra} more: Enter on the node)"));
    }
    text.push_str(&format!(
        " · listed {} ago",
        format_duration(crate::model::health::age(outlook.at, app.now))
    ));
    let style = if outlook.blocks() > 0 {
        theme.bad()
    } else if outlook.notes.is_empty() {
        theme.dim()
    } else {
        theme.warn()
    };
    Some(Line::styled(text, style))
}

pub fn render_panel(app: &App, theme: &Theme, frame: &mut Frame, area: Rect) {
    let Some(view) = &app.rollout else { return };
    let path: Vec<String> = view.path.iter().map(|v| v.to_string()).collect();
    let mut first = vec![
        Span::styled(
            format!(" {} ", view.state.label().to_uppercase()),
            state_style(theme, &view.state).add_modifier(Modifier::REVERSED),
        ),
        Span::raw(format!(" path {}", path.join(" → "))),
    ];
    if let Some(node) = view
        .current
        .as_ref()
        .and_then(|c| view.nodes.iter().find(|n| &n.name == c))
    {
        let target = node
            .target
            .as_ref()
            .map(|t| t.to_string())
            .unwrap_or_default();
        first.push(Span::raw(format!(
            " · {} → {target}: {}",
            node.name,
            phase_text(node, app.now)
        )));
    }
    if let Some(watch) = &view.final_watch {
        first.push(Span::raw(format!(
            " · final stability watch {} of {}",
            crate::durations::format_signed(watch.elapsed),
            crate::durations::format_signed(watch.window)
        )));
    }
    let lost = app.fleet.timeline.outage().total(app.now);
    first.push(Span::styled(
        format!(" · users lost {}", crate::durations::format_duration(lost)),
        if lost.is_zero() {
            theme.dim()
        } else {
            theme.bad()
        },
    ));
    if let Some(note) = &view.note {
        first.push(Span::styled(format!(" · {note}"), theme.dim()));
    }
    let second = match &view.state {
        RolloutState::Halted(h) => Line::from(vec![
            Span::styled(format!(" HALTED: {} ", h.reason), theme.bad()),
            Span::styled(format!(" {}", next_step(view)), theme.dim()),
        ]),
        RolloutState::Paused | RolloutState::Aborted | RolloutState::CanaryAwaitingConfirm
            if view.needs_datastore_restore =>
        {
            Line::styled(
                format!(
                    " rollback needs the cluster-wide etcd restore: {}",
                    view.restore_command.clone().unwrap_or_default()
                ),
                theme.bad(),
            )
        }
        _ => Line::styled(format!(" {}", next_step(view)), theme.dim()),
    };
    let mut lines = vec![Line::from(first), second];
    match &view.restore_progress {
        Some(r) => lines.push(restore_line(app, theme, r)),
        None => lines.extend(drain_line(app, theme, view)),
    }
    let widget = Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .block(Block::default().borders(Borders::ALL).title(" Rollout "));
    frame.render_widget(widget, area);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::upgrade::engine::Halt;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn screen(state: RolloutState, restore: bool) -> String {
        let now = jiff::Timestamp::from_second(1_769_378_700).unwrap();
        let mut app = App::new("lab", "http://127.0.0.1:1/", false, now);
        app.color = false;
        let mut view = crate::upgrade::Engine::new(crate::upgrade::testkit::abc()).view(now);
        view.state = state;
        view.needs_datastore_restore = restore;
        view.restore_command = restore.then(|| "1. stop K3s on every server (A)".to_string());
        app.rollout = Some(view);
        let mut terminal = Terminal::new(TestBackend::new(220, 30)).unwrap();
        terminal
            .draw(|f| crate::tui::view::render(&app, f))
            .unwrap();
        format!("{}", terminal.backend())
    }

    fn panel_with_outlooks(state: RolloutState, current: Option<(&str, Phase)>) -> String {
        use crate::model::ClusterEvent;
        use crate::model::fleet::{DrainNote, DrainOutlook, NodeInfo};
        let now = jiff::Timestamp::from_second(1_769_378_700).unwrap();
        let mut app = App::new("lab", "http://127.0.0.1:1/", false, now);
        app.color = false;
        for (node, evicts, notes) in [
            ("A", 0, vec![]),
            (
                "B",
                3,
                vec![
                    DrainNote {
                        blocks: false,
                        text: "web/api-1: the only replica of ReplicaSet web/api".into(),
                    },
                    DrainNote {
                        blocks: true,
                        text: "ops/debug: no controller (fix: set drain.force)".into(),
                    },
                ],
            ),
        ] {
            app.fleet.apply(
                ClusterEvent::Node(NodeInfo::bare(node, "v1.33.6+k3s1")),
                now,
            );
            let at = now - jiff::SignedDuration::from_secs(120);
            app.fleet
                .set_drain_outlook(node, DrainOutlook { at, evicts, notes });
        }
        let mut view = crate::upgrade::Engine::new(crate::upgrade::testkit::abc()).view(now);
        view.state = state;
        if let Some((node, phase)) = current {
            view.current = Some(node.to_string());
            for n in &mut view.nodes {
                n.phase = match n.name.as_str() {
                    "A" if node != "A" => Phase::Done,
                    name if name == node => phase,
                    _ => Phase::Pending,
                };
            }
        }
        app.rollout = Some(view);
        let mut terminal = Terminal::new(TestBackend::new(200, 30)).unwrap();
        terminal
            .draw(|f| crate::tui::view::render(&app, f))
            .unwrap();
        format!("{}", terminal.backend())
    }

    /// The panel says what the drain of the node at hand will do: the
    /// first pending node before the start, the current one while running,
    /// the block first; nothing once every node is done.
    #[test]
    fn the_panel_shows_the_drain_report_of_the_node_at_hand() {
        let idle = panel_with_outlooks(RolloutState::Idle, None);
        assert!(
            idle.contains(" drain A: evicts 0 · listed 2m00s ago"),
            "{idle}"
        );
        let running = panel_with_outlooks(RolloutState::Running, Some(("B", Phase::Drain)));
        assert!(
            running.contains(
                " drain B: evicts 3 · 1 block · 1 warn: ops/debug: no controller (fix: set drain.force) (+1 more: Enter on the node) · listed 2m00s ago"
            ),
            "{running}"
        );
        let soaking = panel_with_outlooks(RolloutState::Running, Some(("A", Phase::Soak)));
        assert!(soaking.contains(" drain B: evicts 3"), "{soaking}");
        let done = panel_with_outlooks(RolloutState::Done, None);
        assert!(!done.contains(" drain "), "{done}");
    }

    /// During a cluster restore the panel says which step runs and for how
    /// long, instead of a drain that is not coming.
    #[test]
    fn the_panel_shows_the_restore_step_while_a_restore_runs() {
        let now = jiff::Timestamp::from_second(1_769_378_700).unwrap();
        let mut app = App::new("lab", "http://127.0.0.1:1/", false, now);
        app.color = false;
        let mut view = crate::upgrade::Engine::new(crate::upgrade::testkit::abc()).view(now);
        view.state = RolloutState::RollingBack;
        view.restore_progress = Some(RestoreProgress {
            step: 7,
            total: 18,
            text: "A: k3s server --cluster-reset --cluster-reset-restore-path=/snap".into(),
            begun: Some(now - jiff::SignedDuration::from_secs(40)),
        });
        app.rollout = Some(view);
        let mut terminal = Terminal::new(TestBackend::new(200, 30)).unwrap();
        terminal
            .draw(|f| crate::tui::view::render(&app, f))
            .unwrap();
        let screen = format!("{}", terminal.backend());
        assert!(
            screen.contains(
                " restore 7/18 (40s): A: k3s server --cluster-reset --cluster-reset-restore-path=/snap"
            ),
            "{screen}"
        );
        assert!(!screen.contains(" drain "), "{screen}");
    }

    /// Across a minor on etcd servers, the panel never offers the rolling
    /// rollback: it points at the cluster-wide restore instead.
    #[test]
    fn the_panel_offers_the_cluster_wide_restore_not_a_rolling_rollback() {
        let halt = RolloutState::Halted(Halt {
            reason: "node A is NotReady".into(),
            node: Some("A".into()),
            phase: None,
        });
        let halted = screen(halt.clone(), true);
        assert!(
            halted.contains("B rollback = cluster-wide etcd restore"),
            "{halted}"
        );
        assert!(!halted.contains("B roll back"), "{halted}");
        let paused = screen(RolloutState::Paused, true);
        assert!(
            paused.contains(
                "rollback needs the cluster-wide etcd restore: 1. stop K3s on every server (A)"
            ),
            "{paused}"
        );
        let patch = screen(halt, false);
        assert!(patch.contains("B roll back"), "{patch}");
    }
}
