//! Drawing: pure functions of the [`App`]. Layout works from 80x24 up;
//! columns that do not fit a narrow pane are dropped, never wrapped.

use std::ops::Range;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, Wrap};

use super::app::{App, LogPanel, Page};
use super::keymap::KEYMAP;
use super::log_panel::PanelStyles;
use super::rollout_view;
use crate::durations::format_duration;
use crate::model::fleet::{ApiStatus, NodeInfo, NodeState, ServiceState, Tri};
use crate::model::health::{self, Heartbeat};
use crate::model::timeline::Severity;

/// Colours, or none at all under `NO_COLOR`.
pub struct Theme {
    color: bool,
}

impl Theme {
    pub fn fg(&self, c: Color) -> Style {
        if self.color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    }
    pub fn good(&self) -> Style {
        self.fg(Color::Green)
    }
    pub fn warn(&self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }
    pub fn bad(&self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }
    pub fn dim(&self) -> Style {
        self.fg(Color::DarkGray)
    }
    pub fn badge(&self) -> Style {
        if self.color {
            Style::default()
                .fg(Color::Black)
                .bg(Color::Yellow)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        }
    }
}

/// The panels top to bottom: status bar, API banner, hint, rollout
/// (control mode), nodes, LoadBalancer services, timeline, footer.
fn panels(app: &App, area: Rect) -> [Rect; 8] {
    let banner_rows = u16::from(matches!(app.fleet.api, ApiStatus::Down { .. }));
    let hint_rows = u16::from(app.hint.is_some());
    let services = app.fleet.services.len() as u16;
    let services_rows = if services == 0 {
        0
    } else {
        (services + 3).min(area.height / 4).max(4)
    };
    let rollout_rows = rollout_view::panel_rows(app);
    let nodes_rows = (app.visible_count() as u16 + 3)
        .min(area.height.saturating_sub(8 + services_rows + rollout_rows))
        .max(4);
    Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(banner_rows),
        Constraint::Length(hint_rows),
        Constraint::Length(rollout_rows),
        Constraint::Length(nodes_rows),
        Constraint::Length(services_rows),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(area)
}

/// Which of `count` visible nodes the node table in `area` shows: as many
/// as fit under its header, scrolled so the selected row is on screen. Only
/// these rows are built, so a frame costs the same at 5 or 5,000 nodes.
fn node_window(app: &App, count: usize, area: Rect) -> Range<usize> {
    // Two borders and the header row.
    let fit = usize::from(area.height.saturating_sub(3));
    let start = (app.selected + 1)
        .saturating_sub(fit)
        .min(count.saturating_sub(fit));
    start..(start + fit).min(count)
}

/// The nodes whose rows a frame laid out as `layout` shows (the loop
/// redraws for a change to one of these, and not for the others).
pub fn shown_nodes(app: &App, layout: &FrameLayout) -> Vec<String> {
    let names = app.visible_nodes();
    let window = node_window(app, names.len(), layout.panels[4]);
    names
        .get(window)
        .unwrap_or_default()
        .iter()
        .map(|n| n.to_string())
        .collect()
}

/// The screen's bands, top to bottom, each drawn by a terminal of its own
/// (see `tui::terminal`): the live state (status, rollout, nodes), the
/// LoadBalancer services, the log panel with the footer.
pub const BANDS: usize = 3;

/// A frame's layout: the screen and its panels, worked out once per frame
/// (the node panel's height counts the visible nodes, O(nodes)).
pub struct FrameLayout {
    full: Rect,
    panels: [Rect; 8],
}

impl FrameLayout {
    pub fn new(app: &App, full: Rect) -> FrameLayout {
        FrameLayout {
            full,
            panels: panels(app, full),
        }
    }
}

/// The whole screen: every band in turn.
pub fn render(app: &App, frame: &mut Frame) {
    let layout = FrameLayout::new(app, frame.area());
    let rows = band_rows(app, &layout);
    for band in 0..BANDS {
        if rows[band] < rows[band + 1] {
            render_band(app, frame, &layout, band);
        }
    }
}

/// Where each band starts (the last entry: where the last one ends). An
/// overlay covers every band: then the first band is the screen.
pub fn band_rows(app: &App, layout: &FrameLayout) -> [u16; BANDS + 1] {
    let full = layout.full;
    let bottom = full.bottom();
    if app.page != Page::Nodes {
        return [full.y, bottom, bottom, bottom];
    }
    let [.., svc, log, _] = layout.panels;
    [full.y, svc.y, log.y, bottom]
}

/// One band of a frame laid out as `layout`.
pub fn render_band(app: &App, frame: &mut Frame, layout: &FrameLayout, band: usize) {
    let theme = Theme { color: app.color };
    let [.., svc, log, footer] = layout.panels;
    match band {
        0 => render_live(app, &theme, frame, layout),
        1 if svc.height > 0 => render_services(app, &theme, frame, svc),
        1 => {}
        _ => {
            render_log(app, &theme, frame, log);
            frame.render_widget(footer_line(app, &theme), footer);
        }
    }
}

/// The first band: status, banner, hint, rollout and nodes; with an
/// overlay, the whole screen.
fn render_live(app: &App, theme: &Theme, frame: &mut Frame, layout: &FrameLayout) {
    if app.page == Page::Log {
        render_full_log(app, theme, frame, layout.full);
        return;
    }
    let [status, banner_area, hint_area, rollout, nodes, ..] = layout.panels;
    frame.render_widget(status_bar(app, theme), status);
    if let Some(b) = banner_line(app, theme) {
        frame.render_widget(b, banner_area);
    }
    if let Some(hint) = &app.hint {
        frame.render_widget(
            Paragraph::new(Line::styled(hint.clone(), theme.dim())),
            hint_area,
        );
    }
    if rollout.height > 0 {
        rollout_view::render_panel(app, theme, frame, rollout);
    }
    render_nodes(app, theme, frame, nodes);
    // An overlay: this band is the screen, drawn under the overlay.
    let overlay = |frame: &mut Frame| {
        for band in 1..BANDS {
            render_band(app, frame, layout, band);
        }
    };
    match &app.page {
        Page::Nodes | Page::Log => {}
        Page::Detail(node) => {
            overlay(frame);
            render_detail(app, theme, frame, node);
        }
        Page::Help => {
            overlay(frame);
            render_help(app, theme, frame);
        }
    }
}

fn status_bar<'a>(app: &'a App, theme: &Theme) -> Line<'a> {
    let (conn, style) = match &app.fleet.api {
        ApiStatus::Connecting => ("● connecting".to_string(), theme.warn()),
        ApiStatus::Up => ("● connected".to_string(), theme.good()),
        ApiStatus::Down { silent: true, .. } => ("● API SILENT".to_string(), theme.bad()),
        ApiStatus::Down { .. } => ("● API DOWN".to_string(), theme.bad()),
    };
    let clock = app
        .now
        .to_zoned(app.tz.clone())
        .strftime("%H:%M:%S %Z")
        .to_string();
    let mut spans = vec![
        Span::styled(
            " k3s-cockpit ",
            Style::default().add_modifier(Modifier::BOLD),
        ),
        Span::raw(format!("{clock} │ ")),
        Span::styled(conn, style),
        Span::raw(" │ "),
    ];
    if app.read_only {
        spans.push(Span::styled(" READ-ONLY ", theme.badge()));
        spans.push(Span::raw(" │ "));
    }
    // The URL goes last: a narrow pane cuts it, not the state.
    spans.push(Span::raw(format!("{} │ {}", app.context, app.server)));
    Line::from(spans)
}

fn banner_line<'a>(app: &App, theme: &Theme) -> Option<Paragraph<'a>> {
    let ApiStatus::Down {
        since,
        error,
        failures,
        silent,
        .. // k3s-cockpit#13: `kind`; ApiStatus::describe() replaces this fn
    } = &app.fleet.api
    else {
        return None;
    };
    let down = format_duration(health::age(*since, app.now));
    let text = if *silent {
        format!(
            " API server silent for {down}: {error} — heartbeats are not judged until it answers "
        )
    } else {
        format!(
            " API server unreachable for {down} ({failures} failed attempts, retrying with backoff): {error} — ages keep counting "
        )
    };
    Some(Paragraph::new(Line::styled(
        text,
        theme.bad().add_modifier(Modifier::REVERSED),
    )))
}

/// Display width of `s` in terminal columns.
fn width_of(s: &str) -> usize {
    Span::raw(s).width()
}

/// `value` in at most `width` columns: whole, or cut with a trailing `…` so
/// the cut shows (a version or an address cut silently reads as another one).
fn ellipsize(value: &str, width: usize) -> String {
    if width_of(value) <= width {
        return value.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in value.chars() {
        let w = width_of(c.encode_utf8(&mut [0; 4]));
        if used + w + 1 > width {
            break;
        }
        out.push(c);
        used += w;
    }
    if width > 0 {
        out.push('…');
    }
    out
}

/// `values` joined by `sep` in at most `width` columns, by whole values: as
/// many as fit in order, then ` +N` for the rest (`192.168.4.80 +1`); else
/// the first value that fits alone beside its ` +N`. Only when none does is
/// a value cut, with [`ellipsize`]'s `…`.
fn fit_list<S: AsRef<str>>(values: &[S], sep: &str, width: usize) -> String {
    let values: Vec<&str> = values.iter().map(AsRef::as_ref).collect();
    let more = |shown: usize| match values.len() - shown {
        0 => String::new(),
        n => format!(" +{n}"),
    };
    let fits = |text: &String| width_of(text) <= width;
    let prefix = (1..=values.len())
        .rev()
        .map(|shown| values[..shown].join(sep) + &more(shown))
        .find(fits);
    let single = || values.iter().map(|v| format!("{v}{}", more(1))).find(fits);
    prefix
        .or_else(single)
        .unwrap_or_else(|| match values.first() {
            None => String::new(),
            Some(first) => {
                let more = more(1);
                ellipsize(first, width.saturating_sub(width_of(&more))) + &more
            }
        })
}

fn ready_cell(state: &NodeState, app: &App, theme: &Theme, width: usize) -> Cell<'static> {
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

fn heartbeat_cell(state: &NodeState, app: &App, theme: &Theme, width: usize) -> Cell<'static> {
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

/// Columns for a list of LoadBalancer IPs: the longest IPv4 address, or a
/// 12-character one and `+1`.
const IPS_WIDTH: u16 = 15;

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

fn render_nodes(app: &App, theme: &Theme, frame: &mut Frame, area: Rect) {
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

fn render_services(app: &App, theme: &Theme, frame: &mut Frame, area: Rect) {
    let probed = app.fleet.services.values().any(|s| !s.probes.is_empty());
    let columns = ServiceColumn::shown(area.width >= 110, probed);
    let rows: Vec<Row> = app
        .fleet
        .services
        .values()
        .map(|s| Row::new(columns.iter().map(|c| c.cell(app, theme, s))))
        .collect();
    let widths: Vec<Constraint> = columns.iter().map(|c| c.width()).collect();
    let header: Vec<&str> = columns.iter().map(|c| c.header()).collect();
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(Style::default().add_modifier(Modifier::BOLD)))
        .block(Block::default().borders(Borders::ALL).title(format!(
            " LoadBalancer services · announcer from {} ",
            app.fleet.announce_source.label()
        )));
    frame.render_widget(table, area);
}

/// Services table columns; the probe columns appear once something is
/// probed, and a narrow pane then drops IP, MOVES and LAST MOVE.
#[derive(Clone, Copy)]
enum ServiceColumn {
    Service,
    Ip,
    Announcer,
    Moves,
    LastMove,
    Probe,
    History,
}

/// Bars of the probe history sparkline, one per probe, by latency.
const HISTORY_WIDTH: u16 = 20;

impl ServiceColumn {
    fn shown(wide: bool, probed: bool) -> Vec<ServiceColumn> {
        use ServiceColumn::*;
        match (probed, wide) {
            (false, _) => vec![Service, Ip, Announcer, Moves, LastMove],
            (true, true) => vec![Service, Ip, Announcer, Moves, LastMove, Probe, History],
            (true, false) => vec![Service, Announcer, Probe, History],
        }
    }

    fn header(self) -> &'static str {
        match self {
            ServiceColumn::Service => "SERVICE",
            ServiceColumn::Ip => "IP",
            ServiceColumn::Announcer => "ANNOUNCED FROM",
            ServiceColumn::Moves => "MOVES",
            ServiceColumn::LastMove => "LAST MOVE",
            ServiceColumn::Probe => "PROBE",
            ServiceColumn::History => "LAST 20 PROBES",
        }
    }

    fn width(self) -> Constraint {
        match self {
            ServiceColumn::Service => Constraint::Min(16),
            ServiceColumn::Ip => Constraint::Length(IPS_WIDTH),
            ServiceColumn::Announcer => Constraint::Length(26),
            ServiceColumn::Moves => Constraint::Length(5),
            ServiceColumn::LastMove => Constraint::Length(12),
            ServiceColumn::Probe => Constraint::Length(11),
            ServiceColumn::History => Constraint::Length(HISTORY_WIDTH),
        }
    }

    fn cell(self, app: &App, theme: &Theme, s: &ServiceState) -> Cell<'static> {
        match self {
            ServiceColumn::Service => Cell::from(format!("{}/{}", s.info.namespace, s.info.name)),
            ServiceColumn::Ip => Cell::from(fit_list(&s.info.ips, ",", usize::from(IPS_WIDTH))),
            ServiceColumn::Announcer => match &s.announcer {
                Some(n) => Cell::from(n.clone()).style(theme.good()),
                None => {
                    let gap = s
                        .unannounced_since
                        .map(|t| format!(" {}", format_duration(health::age(t, app.now))));
                    Cell::from(format!("NONE{}", gap.unwrap_or_default())).style(theme.bad())
                }
            },
            ServiceColumn::Moves => Cell::from(s.moves.to_string()).style(if s.moves > 0 {
                theme.warn()
            } else {
                Style::default()
            }),
            ServiceColumn::LastMove => Cell::from(
                s.last_change
                    .map(|t| format!("{} ago", format_duration(health::age(t, app.now))))
                    .unwrap_or_else(|| "-".into()),
            ),
            ServiceColumn::Probe => probe_cell(app, theme, s),
            ServiceColumn::History => history_cell(theme, s),
        }
    }
}

/// `UP 3ms`, `DOWN 12s` (since the first failure), or `-` when unprobed.
fn probe_cell(app: &App, theme: &Theme, s: &ServiceState) -> Cell<'static> {
    if s.probes.is_empty() {
        return Cell::from("-").style(theme.dim());
    }
    let down_since = s.probes.values().filter_map(|p| p.down_since).min();
    if let Some(since) = down_since {
        let text = format!("DOWN {}", format_duration(health::age(since, app.now)));
        return Cell::from(text).style(theme.bad());
    }
    let latency = s.probes.values().filter_map(|p| p.last_latency).max();
    match latency {
        Some(l) if l < std::time::Duration::from_millis(1) => {
            Cell::from("UP <1ms").style(theme.good())
        }
        Some(l) => Cell::from(format!("UP {}ms", l.as_millis())).style(theme.good()),
        None => Cell::from("…").style(theme.dim()),
    }
}

/// The last probes as bars: height by latency on a fixed scale (▁ under
/// 1 ms … █ 100 ms and more), `×` for a failure; the worst endpoint wins.
fn history_cell(theme: &Theme, s: &ServiceState) -> Cell<'static> {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    const STEPS_MS: [u128; 7] = [1, 2, 5, 10, 25, 50, 100];
    let width = usize::from(HISTORY_WIDTH);
    // Per slot from the newest backwards: None failed, Some(level).
    let mut slots: Vec<Option<Option<usize>>> = vec![None; width];
    for p in s.probes.values() {
        for (i, r) in p.history.iter().rev().take(width).enumerate() {
            let this = r.map(|l| {
                STEPS_MS
                    .iter()
                    .position(|&step| l.as_millis() < step)
                    .unwrap_or(BARS.len() - 1)
            });
            slots[i] = Some(match slots[i] {
                None => this,
                Some(None) => None,
                Some(Some(level)) => this.map(|t| t.max(level)),
            });
        }
    }
    let spans: Vec<Span<'static>> = slots
        .into_iter()
        .rev()
        .filter_map(|slot| {
            Some(match slot? {
                Some(level) => Span::styled(BARS[level].to_string(), theme.good()),
                None => Span::styled("×", theme.bad()),
            })
        })
        .collect();
    Cell::from(Line::from(spans))
}

fn render_log(app: &App, theme: &Theme, frame: &mut Frame, area: Rect) {
    let block = Block::default().borders(Borders::ALL).title(" Timeline ");
    match &app.log_panel {
        LogPanel::Records(log) => {
            let inner = block.inner(area);
            frame.render_widget(block, area);
            let styles = PanelStyles {
                info: Style::default(),
                warn: theme.warn(),
                error: theme.bad(),
            };
            log.render(inner, frame.buffer_mut(), &styles);
        }
        LogPanel::Timeline => {
            let inner_rows = area.height.saturating_sub(2) as usize;
            let entries: Vec<Line> = app
                .fleet
                .timeline
                .entries()
                .rev()
                .take(inner_rows)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .map(|e| {
                    let style = match e.severity {
                        Severity::Info => Style::default(),
                        Severity::Warn => theme.warn(),
                        Severity::Error => theme.bad(),
                    };
                    let at =
                        e.at.to_zoned(jiff::tz::TimeZone::UTC)
                            .strftime("%H:%M:%S")
                            .to_string();
                    Line::styled(format!("{at} {}: {}", e.subject, e.text), style)
                })
                .collect();
            frame.render_widget(Paragraph::new(entries).block(block), area);
        }
    }
}

/// The `L` view: every record tui-logger holds (the log file's lines since
/// the start), scrolled by pages.
fn render_full_log(app: &App, theme: &Theme, frame: &mut Frame, area: Rect) {
    let [log, footer] = Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(area);
    let widget = tui_logger::TuiLoggerWidget::default()
        .block(
            Block::default()
                .borders(Borders::ALL)
                .title(" Log · every target, info and up "),
        )
        .formatter(Box::new(super::log_format::PanelFormatter {
            info: Style::default(),
            warn: theme.warn(),
            error: theme.bad(),
        }))
        .state(&app.log_view);
    frame.render_widget(widget, log);
    frame.render_widget(
        Paragraph::new(Line::styled(
            " k/↑ older page · j/↓ newer page · Esc or L back to the cockpit",
            theme.dim(),
        )),
        footer,
    );
}

fn footer_line<'a>(app: &App, theme: &Theme) -> Paragraph<'a> {
    if app.editing_filter {
        return Paragraph::new(format!("/{}▏  (Enter keep, Esc clear)", app.filter));
    }
    if let Some(confirm) = &app.confirm {
        return Paragraph::new(Line::styled(format!(" {}", confirm.question), theme.bad()));
    }
    if let Some((text, _)) = &app.flash {
        return Paragraph::new(Line::styled(format!(" {text}"), theme.warn()));
    }
    Paragraph::new(Line::styled(
        " j/k move · Enter detail · / filter · ? help · q quit",
        theme.dim(),
    ))
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

/// Rollout keys mean something only in control mode.
fn help_applies(app: &App, action: super::keymap::KeyAction) -> bool {
    use super::keymap::KeyAction::*;
    app.rollout.is_some()
        || !matches!(
            action,
            Start | Canary | AcceptCanary | PauseResume | Step | Abort | Retry | Skip | Rollback
        )
}

fn render_help(app: &App, theme: &Theme, frame: &mut Frame) {
    let keys: Vec<Line> = KEYMAP
        .iter()
        .filter(|b| help_applies(app, b.action))
        .map(|b| {
            let mut spans = vec![
                Span::styled(
                    format!("{:>7}  ", b.keys),
                    Style::default().add_modifier(Modifier::BOLD),
                ),
                Span::raw(b.help),
            ];
            if b.mutating && app.read_only {
                spans.push(Span::styled("  (refused: read-only)", theme.dim()));
            }
            Line::from(spans)
        })
        .collect();
    let notes = [
        "HEARTBEAT = age of the node Lease renewal; LATE after one missed renewal, EXPIRED past the lease duration.",
        "PROBE = --probe results every second from this machine; bars by latency (▁ <1ms … █ ≥100ms), × failed.",
    ];
    let room = frame.area().height.saturating_sub(2) as usize;
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" Keys (? to close) ");
    if keys.len() + 1 + notes.len() <= room {
        let mut lines = keys;
        lines.push(Line::raw(""));
        lines.extend(notes.iter().map(|n| Line::styled(*n, theme.dim())));
        let area = centered(frame.area(), 76, lines.len() as u16 + 2);
        frame.render_widget(Clear, area);
        frame.render_widget(
            Paragraph::new(lines).wrap(Wrap { trim: true }).block(block),
            area,
        );
        return;
    }
    // A short pane: every key still listed, in two columns, unwrapped.
    let half = keys.len().div_ceil(2);
    let area = centered(frame.area(), frame.area().width, half as u16 + 2);
    frame.render_widget(Clear, area);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [left, right] =
        Layout::horizontal([Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)]).areas(inner);
    let mut keys = keys;
    let second = keys.split_off(half);
    frame.render_widget(Paragraph::new(keys), left);
    frame.render_widget(Paragraph::new(second), right);
}

fn render_detail(app: &App, theme: &Theme, frame: &mut Frame, node: &str) {
    let area = centered(
        frame.area(),
        frame.area().width.saturating_sub(4),
        frame.area().height.saturating_sub(2),
    );
    let mut lines: Vec<Line> = Vec::new();
    let Some(state) = app.fleet.nodes.get(node) else {
        return;
    };
    let bold = Style::default().add_modifier(Modifier::BOLD);
    if let Some(info) = &state.info {
        lines.push(Line::styled(
            format!(
                "{} · {} · roles {}",
                info.name,
                info.version,
                info.roles.join(",")
            ),
            bold,
        ));
        lines.push(Line::styled("Conditions", bold));
        for c in &info.conditions {
            let since = c
                .last_transition
                .map(|t| format_duration(health::age(t, app.now)))
                .unwrap_or_default();
            let style = match (c.kind.as_str(), c.status) {
                ("Ready", Tri::True) => theme.good(),
                ("Ready", _) | (_, Tri::True) | (_, Tri::Unknown) => theme.bad(),
                _ => Style::default(),
            };
            lines.push(Line::styled(
                format!(
                    "  {:<15} {:<8} {:>8}  {} {}",
                    c.kind,
                    format!("{:?}", c.status),
                    since,
                    c.reason,
                    c.message
                ),
                style,
            ));
        }
        let taints: Vec<String> = info
            .taints
            .iter()
            .map(|t| format!("{}:{}", t.key, t.effect))
            .collect();
        lines.push(Line::from(vec![
            Span::styled("Taints ", bold),
            Span::raw(if taints.is_empty() {
                "none".into()
            } else {
                taints.join(", ")
            }),
        ]));
        lines.push(Line::from(vec![
            Span::styled("Cordoned ", bold),
            Span::raw(if info.unschedulable { "yes" } else { "no" }),
        ]));
    }
    match &state.lease {
        Some(l) => {
            let renewed = l
                .renewed
                .map(|t| t.to_string())
                .unwrap_or_else(|| "never".into());
            let age = l
                .renewed
                .map(|t| format!("{}s ago", health::age(t, app.now).as_secs()))
                .unwrap_or_default();
            lines.push(Line::from(vec![
                Span::styled("Lease ", bold),
                Span::raw(format!(
                    "holder {} · renewed {renewed} ({age}) · duration {}s",
                    l.holder,
                    l.duration.as_secs()
                )),
            ]));
        }
        None => lines.push(Line::from(vec![
            Span::styled("Lease ", bold),
            Span::raw("not readable; heartbeat from Ready condition"),
        ])),
    }
    lines.push(Line::from(vec![
        Span::styled("LB IPs announced here ", bold),
        Span::raw(app.fleet.announced_from(node).join(", ")),
    ]));
    lines.push(Line::styled("Events", bold));
    for e in state.events.iter().rev() {
        let age =
            e.at.map(|t| format_duration(health::age(t, app.now)))
                .unwrap_or_default();
        lines.push(Line::raw(format!(
            "  {age:>7} {:<8} {:<14} {} ({})",
            e.event_type, e.reason, e.message, e.component
        )));
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ClusterEvent;
    use crate::model::fleet::{Condition, L2Info, LeaseInfo, NodeInfo, ServiceInfo, Taint};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use std::time::Duration;

    fn t(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_769_378_700 + secs).unwrap()
    }

    fn node(name: &str, ready: Tri, since: i64, taints: &[&str]) -> ClusterEvent {
        ClusterEvent::Node(NodeInfo {
            name: name.into(),
            roles: vec!["control-plane".into(), "etcd".into(), "master".into()],
            version: "v1.35.0+k3s1".into(),
            unschedulable: false,
            taints: taints
                .iter()
                .map(|k| Taint {
                    key: format!("node.kubernetes.io/{k}"),
                    effect: "NoExecute".into(),
                })
                .collect(),
            conditions: vec![Condition {
                kind: "Ready".into(),
                status: ready,
                reason: "NodeStatusUnknown".into(),
                message: String::new(),
                last_transition: Some(t(since)),
                last_heartbeat: Some(t(since)),
            }],
            boot_id: "b".into(),
        })
    }

    fn incident_app(width: u16, height: u16) -> Terminal<TestBackend> {
        draw(&incident_model(), width, height)
    }

    fn draw(app: &App, width: u16, height: u16) -> Terminal<TestBackend> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|f| render(app, f)).unwrap();
        terminal
    }

    fn incident_model() -> App {
        let mut app = App::new("k3s-lab", "http://127.0.0.1:6443/", true, t(0));
        app.tz = jiff::tz::TimeZone::UTC;
        app.color = false;
        app.log_panel = LogPanel::Timeline;
        app.on_cluster(ClusterEvent::ApiOk);
        app.on_cluster(node("k3s-vm-fun-bedbug", Tri::Unknown, 0, &["unreachable"]));
        app.on_cluster(node("k3s-vm-pumped-piglet-gpu", Tri::True, -300, &[]));
        app.on_cluster(node("k3s-vm-still-fawn", Tri::True, -300, &[]));
        for (n, renewed) in [
            ("k3s-vm-fun-bedbug", -55),
            ("k3s-vm-pumped-piglet-gpu", -3),
            ("k3s-vm-still-fawn", -14),
        ] {
            app.on_cluster(ClusterEvent::Lease(LeaseInfo {
                node: n.into(),
                holder: n.into(),
                renewed: Some(t(renewed)),
                duration: Duration::from_secs(40),
            }));
        }
        app.on_cluster(ClusterEvent::Service(ServiceInfo {
            namespace: "frigate".into(),
            name: "frigate".into(),
            ips: vec!["127.77.0.10".into()],
            ports: vec![5000],
            selector: Default::default(),
        }));
        app.now = t(-100);
        app.on_cluster(ClusterEvent::L2(L2Info {
            object: "m/l2-a".into(),
            node: "k3s-vm-still-fawn".into(),
            service: ("frigate".into(), "frigate".into()),
        }));
        app.now = t(-40);
        app.on_cluster(ClusterEvent::L2Deleted("m/l2-a".into()));
        app.on_cluster(ClusterEvent::L2(L2Info {
            object: "m/l2-b".into(),
            node: "k3s-vm-fun-bedbug".into(),
            service: ("frigate".into(), "frigate".into()),
        }));
        app.on_tick(t(0));
        app
    }

    /// The incident with Frigate probed: fine for a while, dark for 12 s
    /// (still dark now).
    fn probed_model() -> App {
        let mut app = incident_model();
        for i in -30i64..=0 {
            let ok = i < -12;
            app.on_cluster(ClusterEvent::Probe(crate::model::probe::ProbeResult {
                service: ("frigate".into(), "frigate".into()),
                endpoint: "127.77.0.10:5000".into(),
                check: "http GET /".into(),
                ok,
                latency: Duration::from_micros(400 + 700 * (i.unsigned_abs() % 5)),
                error: (!ok).then(|| "connection refused".into()),
                at: t(i),
            }));
        }
        app
    }

    #[test]
    fn watch_view_80x24_shows_the_incident() {
        insta::assert_snapshot!(incident_app(80, 24).backend());
    }

    #[test]
    fn probes_show_state_duration_and_history_in_80_columns() {
        let terminal = draw(&probed_model(), 80, 24);
        let text = format!("{}", terminal.backend());
        assert!(text.contains("DOWN 12s"), "{text}");
        assert!(
            text.contains("probe DOWN (http GET / 127.77.0.10:5000)"),
            "{text}"
        );
        insta::assert_snapshot!(terminal.backend());
    }

    #[test]
    fn probes_keep_ip_and_moves_in_a_wide_pane() {
        let terminal = draw(&probed_model(), 132, 30);
        let text = format!("{}", terminal.backend());
        for column in ["IP", "MOVES", "PROBE", "LAST 20 PROBES"] {
            assert!(text.contains(column), "{column}: {text}");
        }
    }

    #[test]
    fn long_node_lists_scroll_to_the_selection_and_build_only_shown_rows() {
        let mut app = App::new("k3s-lab", "http://127.0.0.1:6443/", true, t(0));
        app.color = false;
        app.log_panel = LogPanel::Timeline;
        for i in 0..500 {
            app.on_cluster(node(&format!("n-{i:03}"), Tri::True, -60, &[]));
        }
        let area = Rect::new(0, 0, 80, 24);
        let shown = shown_nodes(&app, &FrameLayout::new(&app, area));
        assert_eq!(shown.first().map(String::as_str), Some("n-000"));
        // The table gets all but 8 rows; borders and header take 3 of its own.
        assert_eq!(shown.len(), 24 - 8 - 3);
        app.selected = 499;
        let shown = shown_nodes(&app, &FrameLayout::new(&app, area));
        assert_eq!(shown.last().map(String::as_str), Some("n-499"));
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
        terminal.draw(|f| render(&app, f)).unwrap();
        let text = format!("{}", terminal.backend());
        assert!(text.contains("n-499") && !text.contains("n-000"), "{text}");
        assert!(text.contains("Nodes 500"), "{text}");
    }

    #[test]
    fn watch_view_wide_shows_taints() {
        let terminal = incident_app(132, 30);
        let text = format!("{}", terminal.backend());
        assert!(text.contains("unreachable:NoExecute"), "{text}");
        insta::assert_snapshot!(terminal.backend());
    }

    #[test]
    fn lists_fit_by_whole_values() {
        let ips = ["192.168.4.80", "192.168.4.81"];
        assert_eq!(fit_list(&ips, ",", 25), "192.168.4.80,192.168.4.81");
        assert_eq!(fit_list(&ips, ",", 24), "192.168.4.80 +1");
        assert_eq!(fit_list(&ips, ",", 15), "192.168.4.80 +1");
        assert_eq!(fit_list(&ips, ",", 14), "192.168.4.… +1");
        assert_eq!(fit_list(&["192.168.4.80"], ",", 11), "192.168.4.…");
        assert_eq!(fit_list(&["a", "b", "c"], " ", 5), "a b c");
        assert_eq!(fit_list(&["a", "b", "c"], " ", 4), "a +2");
        // A value that fits beside its `+N` rather than a cut one.
        assert_eq!(
            fit_list(&["192.168.100.201", "10.0.0.9"], ",", 15),
            "10.0.0.9 +1"
        );
        assert_eq!(fit_list::<&str>(&[], ",", 5), "");
        assert_eq!(ellipsize("v1.29.1-rc2+k3s1", 12), "v1.29.1-rc2…");
        assert_eq!(ellipsize("anything", 0), "");
    }

    /// The incident's nodes announcing several real-length addresses each.
    fn many_ips_model() -> App {
        let mut app = incident_model();
        let services = [
            ("frigate", "k3s-vm-fun-bedbug", "192.168.4.80"),
            ("home-assistant", "k3s-vm-fun-bedbug", "192.168.4.81"),
            ("mqtt", "k3s-vm-fun-bedbug", "192.168.4.82"),
            ("jellyfin", "k3s-vm-still-fawn", "192.168.100.201"),
            ("paperless", "k3s-vm-still-fawn", "10.0.0.9"),
            ("adguard", "k3s-vm-pumped-piglet-gpu", "192.168.4.90"),
        ];
        for (name, node, ip) in services {
            app.on_cluster(ClusterEvent::Service(ServiceInfo {
                namespace: name.into(),
                name: name.into(),
                ips: vec![ip.into()],
                ports: vec![80],
                selector: Default::default(),
            }));
            app.on_cluster(ClusterEvent::L2(L2Info {
                object: format!("m/{name}"),
                node: node.into(),
                service: (name.into(), name.into()),
            }));
        }
        app.on_cluster(ClusterEvent::L2Deleted("m/l2-b".into()));
        app.on_cluster(ClusterEvent::Service(ServiceInfo {
            namespace: "frigate".into(),
            name: "frigate".into(),
            ips: vec!["192.168.4.80".into(), "192.168.4.180".into()],
            ports: vec![5000],
            selector: Default::default(),
        }));
        app.on_tick(t(0));
        app
    }

    /// No address is cut into another one: each shows whole, or is counted
    /// in a `+N`.
    fn assert_no_cut_address(text: &str) {
        for cut in [
            "192.168.4.8 ",
            "192.168.4.8│",
            "192.168.100.20 ",
            "192.168.4.18 ",
        ] {
            assert!(!text.contains(cut), "{cut:?} cut in:\n{text}");
        }
    }

    #[test]
    fn node_table_keeps_addresses_whole_in_80_columns() {
        let terminal = draw(&many_ips_model(), 80, 24);
        let text = format!("{}", terminal.backend());
        assert!(text.contains("192.168.4.80 +3"), "{text}");
        assert!(text.contains("10.0.0.9 +1"), "{text}");
        assert!(text.contains("192.168.4.80 +1"), "{text}");
        assert_no_cut_address(&text);
        insta::assert_snapshot!(terminal.backend());
    }

    #[test]
    fn node_table_keeps_addresses_whole_in_120_columns() {
        let terminal = draw(&many_ips_model(), 120, 30);
        let text = format!("{}", terminal.backend());
        assert!(text.contains("192.168.4.80 +3"), "{text}");
        assert!(text.contains("192.168.100.201"), "{text}");
        assert_no_cut_address(&text);
        insta::assert_snapshot!(terminal.backend());
    }

    #[test]
    fn bands_stack_without_gaps_and_an_overlay_takes_the_screen() {
        let mut app = incident_model();
        let full = Rect::new(0, 0, 120, 40);
        let rows = band_rows(&app, &FrameLayout::new(&app, full));
        assert_eq!((rows[0], rows[BANDS]), (0, 40));
        assert!(rows.windows(2).all(|w| w[0] <= w[1]), "{rows:?}");
        // The node table ends where the services begin; the log panel below.
        let [.., nodes, svc, log, _] = panels(&app, full);
        assert_eq!((rows[1], rows[2]), (svc.y, log.y));
        assert_eq!(nodes.bottom(), svc.y);
        app.page = Page::Help;
        assert_eq!(
            band_rows(&app, &FrameLayout::new(&app, full)),
            [0, 40, 40, 40]
        );
    }

    #[test]
    fn help_lists_every_control_key_even_in_80x24() {
        let mut app = App::new("lab", "http://127.0.0.1:1/", false, t(0));
        app.color = false;
        app.log_panel = LogPanel::Timeline;
        let engine = crate::upgrade::Engine::new(crate::upgrade::testkit::abc());
        app.rollout = Some(engine.view(t(0)));
        app.page = Page::Help;
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
        terminal.draw(|f| render(&app, f)).unwrap();
        let text = format!("{}", terminal.backend());
        for b in KEYMAP {
            let shown = format!("{:>7}  ", b.keys);
            assert!(text.contains(&shown), "{:?} missing:\n{text}", b.keys);
        }
    }
}
