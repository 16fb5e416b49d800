//! The node table: its columns, which of them fit, and its cells.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::widgets::{Block, Borders, Cell, Row, Table};

use super::cells::{IPS_WIDTH, ellipsize, fit_list};
use super::{Theme, node_window};
use crate::durations::format_duration;
use crate::model::fleet::{ApiStatus, NodeInfo, NodeState, Tri};
use crate::model::health::{self, Heartbeat};
use crate::tui::app::App;
use crate::tui::rollout_view;

pub(super) fn ready_cell(
    state: &NodeState,
    app: &App,
    theme: &Theme,
    width: usize,
) -> Cell<'static> {
    let Some(ready) = state.info.as_ref().and_then(|i| i.ready()) else {
        return Cell::from("?");
    };
    let since = ready
        .last_transition
        .map(|t| format_duration(health::age(t, app.now)))
        .unwrap_or_default();
    let (word, style) = match ready.status {
        Tri::True => ("Ready", theme.good()),
        Tri::False => ("NotReady", theme.bad()),
        Tri::Unknown => ("Unknown", theme.bad()),
    };
    Cell::from(ellipsize(&format!("{word} {since}"), width)).style(style)
}

pub(super) fn heartbeat_cell(
    state: &NodeState,
    app: &App,
    theme: &Theme,
    width: usize,
) -> Cell<'static> {
    let at = state.heartbeat_at();
    let hb = health::classify(at, state.lease_duration(), app.now);
    let age = at
        .map(|t| format!("{}s", health::age(t, app.now).as_secs()))
        .unwrap_or_else(|| "-".into());
    // Without the API an old renewal says nothing about the kubelet.
    let blind = matches!(app.fleet.api, ApiStatus::Down { .. });
    let (text, style) = match hb {
        _ if blind && hb != Heartbeat::Unknown => (format!("{age} ?"), theme.dim()),
        Heartbeat::Fresh => (age, theme.good()),
        Heartbeat::Late => (format!("{age} LATE"), theme.warn()),
        Heartbeat::Expired => (format!("{age} EXPIRED"), theme.bad()),
        Heartbeat::Unknown => ("-".into(), theme.dim()),
    };
    Cell::from(ellipsize(&text, width)).style(style)
}

/// Node table columns; the less important ones only where they fit.
#[derive(Clone, Copy, PartialEq, Eq)]
enum NodeColumn {
    Name,
    Role,
    Version,
    Ready,
    Heartbeat,
    Sched,
    LbIps,
    Taints,
    Pods,
    /// Control mode only: the node's rollout phase and progress.
    Phase,
}

impl NodeColumn {
    /// Display order.
    const ORDER: [NodeColumn; 10] = [
        NodeColumn::Name,
        NodeColumn::Role,
        NodeColumn::Version,
        NodeColumn::Ready,
        NodeColumn::Heartbeat,
        NodeColumn::Sched,
        NodeColumn::LbIps,
        NodeColumn::Phase,
        NodeColumn::Taints,
        NodeColumn::Pods,
    ];
    /// Which columns survive a narrow pane, most important first. The name
    /// is never cut: columns are dropped instead.
    const PRIORITY: [NodeColumn; 10] = [
        NodeColumn::Name,
        NodeColumn::Version,
        NodeColumn::Ready,
        NodeColumn::Heartbeat,
        NodeColumn::LbIps,
        NodeColumn::Phase,
        NodeColumn::Sched,
        NodeColumn::Role,
        NodeColumn::Taints,
        NodeColumn::Pods,
    ];

    fn shown(inner_width: u16, name_width: u16, control: bool) -> Vec<NodeColumn> {
        let mut used = 0u16;
        let mut keep = Vec::new();
        for c in Self::PRIORITY {
            if c == NodeColumn::Phase && !control {
                continue;
            }
            // Each column is followed by ratatui's one-cell gap.
            let need = c.columns(name_width) + 1;
            if c != NodeColumn::Name && used + need > inner_width + 1 {
                continue;
            }
            used += need;
            keep.push(c);
        }
        Self::ORDER
            .into_iter()
            .filter(|c| keep.contains(c))
            .collect()
    }

    fn header(self) -> &'static str {
        match self {
            NodeColumn::Name => "NODE",
            NodeColumn::Role => "ROLE",
            NodeColumn::Version => "VERSION",
            NodeColumn::Ready => "READY",
            NodeColumn::Heartbeat => "HEARTBEAT",
            NodeColumn::Sched => "SCHED",
            NodeColumn::LbIps => "LB IPS",
            NodeColumn::Taints => "TAINTS",
            NodeColumn::Pods => "PODS",
            NodeColumn::Phase => "PHASE",
        }
    }

    fn width(self, name_width: u16) -> Constraint {
        Constraint::Length(self.columns(name_width))
    }

    fn columns(self, name_width: u16) -> u16 {
        match self {
            NodeColumn::Name => name_width,
            NodeColumn::Role | NodeColumn::Sched => 6,
            NodeColumn::Version | NodeColumn::Ready => 12,
            NodeColumn::Heartbeat => 11,
            NodeColumn::LbIps => IPS_WIDTH,
            NodeColumn::Taints => 26,
            NodeColumn::Pods => 16,
            NodeColumn::Phase => 24,
        }
    }

    /// The cell of `info` in this column, fitted to the column's width by
    /// whole values (see [`fit_list`]): ratatui would cut it anywhere.
    fn cell(
        self,
        app: &App,
        theme: &Theme,
        (state, info): (&NodeState, &NodeInfo),
        name_width: u16,
    ) -> Cell<'static> {
        let width = usize::from(self.columns(name_width));
        match self {
            NodeColumn::Name => Cell::from(ellipsize(&info.name, width)),
            NodeColumn::Role => Cell::from(if info.is_server() { "server" } else { "agent" }),
            NodeColumn::Version => Cell::from(ellipsize(&info.version, width)),
            NodeColumn::Ready => ready_cell(state, app, theme, width),
            NodeColumn::Heartbeat => heartbeat_cell(state, app, theme, width),
            NodeColumn::Sched if info.unschedulable => Cell::from("cordon").style(theme.warn()),
            NodeColumn::Sched => Cell::from(""),
            NodeColumn::LbIps if info.lb_excluded => {
                // MetalLB's exclude label: a handoff in progress (or left over).
                let mut parts = vec!["no-lb".to_string()];
                parts.extend(
                    app.fleet
                        .announced_from(&info.name)
                        .into_iter()
                        .map(str::to_string),
                );
                Cell::from(fit_list(&parts, ",", width)).style(theme.warn())
            }
            NodeColumn::LbIps => {
                Cell::from(fit_list(&app.fleet.announced_from(&info.name), ",", width))
            }
            NodeColumn::Taints => {
                let taints: Vec<String> = info.taints.iter().map(|t| t.short()).collect();
                Cell::from(fit_list(&taints, " ", width)).style(theme.warn())
            }
            NodeColumn::Pods => Cell::from(fit_list(app.fleet.services_on(&info.name), ",", width)),
            NodeColumn::Phase => rollout_view::phase_cell(app, theme, &info.name),
        }
    }
}

pub(super) fn render_nodes(app: &App, theme: &Theme, frame: &mut Frame, area: Rect) {
    let names = app.visible_nodes();
    let name_width = names
        .iter()
        .map(|n| n.len())
        .max()
        .unwrap_or(4)
        .clamp(4, 40) as u16;
    let columns = NodeColumn::shown(
        area.width.saturating_sub(2),
        name_width,
        app.rollout.is_some(),
    );
    let window = node_window(app, names.len(), area);
    let first = window.start;
    let rows: Vec<Row> = names
        .get(window)
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, name)| (first + i, name))
        .filter_map(|(i, name)| {
            let state = app.fleet.nodes.get(*name)?;
            let info = state.info.as_ref()?;
            let cells: Vec<Cell> = columns
                .iter()
                .map(|c| c.cell(app, theme, (state, info), name_width))
                .collect();
            let mut row = Row::new(cells);
            if i == app.selected {
                row = row.style(Style::default().add_modifier(Modifier::REVERSED));
            }
            Some(row)
        })
        .collect();
    let widths: Vec<Constraint> = columns.iter().map(|c| c.width(name_width)).collect();
    let header: Vec<&str> = columns.iter().map(|c| c.header()).collect();
    let hb_source = if app.fleet.leases_readable {
        "lease"
    } else {
        "Ready condition (no lease access)"
    };
    let title = format!(
        " Nodes {}{} · heartbeat from {hb_source} ",
        names.len(),
        if app.filter.is_empty() {
            String::new()
        } else {
            format!(" (filter: {})", app.filter)
        },
    );
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(Style::default().add_modifier(Modifier::BOLD)))
        .block(Block::default().borders(Borders::ALL).title(title));
    frame.render_widget(table, area);
}
