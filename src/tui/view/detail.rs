//! The node detail overlay (Enter on a node).

use ratatui::Frame;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::{Theme, centered};
use crate::durations::format_duration;
use crate::model::fleet::{Condition, EventInfo, NodeInfo, NodeState, Tri};
use crate::model::{health, heartbeat_seen};
use crate::tui::app::App;

pub(super) fn render_detail(app: &App, theme: &Theme, frame: &mut Frame, node: &str) {
    let area = centered(
        frame.area(),
        frame.area().width.saturating_sub(4),
        frame.area().height.saturating_sub(2),
    );
    let Some(state) = app.fleet.nodes.get(node) else {
        return;
    };
    let mut lines: Vec<Line> = Vec::new();
    if let Some(info) = &state.info {
        lines.extend(info_lines(app, theme, info));
    }
    lines.push(lease_line(app, theme, state));
    lines.push(Line::from(vec![
        Span::styled("LB IPs announced here ", bold()),
        Span::raw(app.fleet.announced_from(node).join(", ")),
    ]));
    if let Some((at, output)) = &state.failed_output {
        lines.push(Line::styled(
            format!(
                "Output of the last failed step ({} ago)",
                format_duration(health::age(*at, app.now))
            ),
            theme.bad().add_modifier(Modifier::BOLD),
        ));
        lines.extend(output.iter().map(|l| Line::raw(format!("  │ {l}"))));
    }
    if let Some(outlook) = &state.drain {
        lines.push(Line::styled(
            format!(
                "Drain report ({}, listed {} ago)",
                outlook.counts(),
                format_duration(health::age(outlook.at, app.now))
            ),
            bold(),
        ));
        lines.extend(outlook.notes.iter().map(|n| {
            let (tag, style) = if n.blocks {
                ("block", theme.bad())
            } else {
                ("warn ", theme.warn())
            };
            Line::styled(format!("  {tag} {}", n.text), style)
        }));
    }
    lines.push(Line::styled("Events", bold()));
    // Newest first: the event that explains the state is usually the last.
    lines.extend(state.events.iter().rev().map(|e| event_line(app, e)));
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::default()
                .borders(Borders::ALL)
                .title(format!(" Node {node} (Esc to close) ")),
        ),
        area,
    );
}

fn bold() -> Style {
    Style::default().add_modifier(Modifier::BOLD)
}

/// What the node object says: name, version and roles, its conditions,
/// taints and whether it is cordoned.
fn info_lines(app: &App, theme: &Theme, info: &NodeInfo) -> Vec<Line<'static>> {
    let mut lines = vec![
        Line::styled(
            format!(
                "{} · {} · roles {}",
                info.name,
                info.version,
                info.roles.join(",")
            ),
            bold(),
        ),
        Line::styled("Conditions", bold()),
    ];
    lines.extend(
        info.conditions
            .iter()
            .map(|c| condition_line(app, theme, c)),
    );
    let taints: Vec<String> = info
        .taints
        .iter()
        .map(|t| format!("{}:{}", t.key, t.effect))
        .collect();
    lines.push(Line::from(vec![
        Span::styled("Taints ", bold()),
        Span::raw(if taints.is_empty() {
            "none".into()
        } else {
            taints.join(", ")
        }),
    ]));
    lines.push(Line::from(vec![
        Span::styled("Cordoned ", bold()),
        Span::raw(if info.unschedulable { "yes" } else { "no" }),
    ]));
    let excluded = if info.lb_excluded {
        Span::styled(
            "yes: MetalLB announces no IP from this node (handoff; the rollout removes it after uncordon)",
            theme.warn(),
        )
    } else {
        Span::raw("no")
    };
    lines.push(Line::from(vec![
        Span::styled("Excluded from load balancers ", bold()),
        excluded,
    ]));
    lines
}

/// One condition, red when it reads as trouble: Ready not True, or any
/// pressure condition True or Unknown.
fn condition_line(app: &App, theme: &Theme, c: &Condition) -> Line<'static> {
    let since = c
        .last_transition
        .map(|t| format_duration(health::age(t, app.now)))
        .unwrap_or_default();
    let style = match (c.kind.as_str(), c.status) {
        ("Ready", Tri::True) => theme.good(),
        ("Ready", _) | (_, Tri::True) | (_, Tri::Unknown) => theme.bad(),
        _ => Style::default(),
    };
    Line::styled(
        format!(
            "  {:<15} {:<8} {:>8}  {} {}",
            c.kind,
            format!("{:?}", c.status),
            since,
            c.reason,
            c.message
        ),
        style,
    )
}

/// The node's Lease, or why the heartbeat comes from elsewhere. The age
/// counts from when the cockpit saw the renewal; the renewTime is the
/// node's own clock, so the skew between the two is shown beside it.
fn lease_line(app: &App, theme: &Theme, state: &NodeState) -> Line<'static> {
    let Some(l) = state.lease.as_ref() else {
        return Line::from(vec![
            Span::styled("Lease ", bold()),
            Span::raw("not readable; heartbeat from Ready condition"),
        ]);
    };
    let renewed = l
        .renewed
        .map(|t| t.to_string())
        .unwrap_or_else(|| "never".into());
    let age = state
        .heartbeat_at()
        .map(|t| format!("seen {}s ago", health::age(t, app.now).as_secs()))
        .unwrap_or_default();
    let mut spans = vec![
        Span::styled("Lease ", bold()),
        Span::raw(format!(
            "holder {} · renewed {renewed} ({age}) · duration {}s",
            l.holder,
            l.duration.as_secs()
        )),
    ];
    if let Some(skew) = state.seen.skew() {
        let text = format!(" · {}", heartbeat_seen::describe_skew(skew));
        if heartbeat_seen::skew_is_notable(skew) {
            spans.push(Span::styled(format!("{text} (clock skew)"), theme.warn()));
        } else {
            spans.push(Span::raw(text));
        }
    }
    Line::from(spans)
}

fn event_line(app: &App, e: &EventInfo) -> Line<'static> {
    let age =
        e.at.map(|t| format_duration(health::age(t, app.now)))
            .unwrap_or_default();
    Line::raw(format!(
        "  {age:>7} {:<8} {:<14} {} ({})",
        e.event_type, e.reason, e.message, e.component
    ))
}
