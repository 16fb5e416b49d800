//! The LoadBalancer services table, with probe state and history.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Row, Table};

use super::Theme;
use super::cells::{IPS_WIDTH, fit_list};
use crate::durations::format_duration;
use crate::model::fleet::ServiceState;
use crate::model::health;
use crate::tui::app::App;

pub(super) fn render_services(app: &App, theme: &Theme, frame: &mut Frame, area: Rect) {
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
            ServiceColumn::Announcer => match (&s.announcer, &s.unknown) {
                (Some(n), _) => Cell::from(n.clone()).style(theme.good()),
                (None, Some(why)) => Cell::from(format!("unknown ({why})")).style(theme.warn()),
                (None, None) => {
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
