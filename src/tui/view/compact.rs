//! Small panes (a tmux split beside a shell on the node): below the full
//! layout's size, one status line, one row per node with its Ready state
//! and heartbeat, and what size the full view needs; below even that, one
//! line that says what size is needed.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::Line;
use ratatui::widgets::{Cell, Paragraph, Row, Table, Wrap};

use super::Theme;
use super::cells::ellipsize;
use super::nodes::{heartbeat_cell, ready_cell};
use crate::tui::app::App;

/// The full layout's smallest pane.
pub const FULL: (u16, u16) = (60, 16);
/// The compact layout's smallest pane.
pub const COMPACT: (u16, u16) = (30, 5);
const READY_WIDTH: u16 = 12;
const HEARTBEAT_WIDTH: u16 = 11;

/// Whether `area` is too small for the full layout.
pub fn applies(area: Rect) -> bool {
    area.width < FULL.0 || area.height < FULL.1
}

/// The nodes the compact layout shows in a pane of `area`: every row but
/// the status line, the table's header and the footer.
pub fn shown(app: &App, area: Rect) -> std::ops::Range<usize> {
    window(app, usize::from(area.height.saturating_sub(3)))
}

/// `fit` rows of visible nodes, the selection kept in view.
fn window(app: &App, fit: usize) -> std::ops::Range<usize> {
    let count = app.visible_count();
    let start = (app.selected + 1)
        .saturating_sub(fit)
        .min(count.saturating_sub(fit));
    start..(start + fit).min(count)
}

pub fn render(app: &App, theme: &Theme, frame: &mut Frame, area: Rect) {
    if area.width < COMPACT.0 || area.height < COMPACT.1 {
        let text = format!(
            "pane too small: need {}×{} (now {}×{})",
            COMPACT.0, COMPACT.1, area.width, area.height
        );
        let wrapped = Paragraph::new(Line::styled(text, theme.warn())).wrap(Wrap { trim: true });
        frame.render_widget(wrapped, area);
        return;
    }
    let [status, table, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(area);
    let line = crate::tui::title::status(app);
    // The pane's own title names the program already.
    let text = line.text.strip_prefix("k3s-cockpit ").unwrap_or(&line.text);
    let text = ellipsize(text, usize::from(area.width));
    let style = match line.state {
        "ok" | "done" | "idle" | "running" | "verifying" | "paused" => theme.good(),
        "connecting" | "late" | "canary" | "rolling-back" => theme.warn(),
        _ => theme.bad(),
    };
    frame.render_widget(
        Paragraph::new(Line::styled(text, style.add_modifier(Modifier::BOLD))),
        status,
    );
    render_nodes(app, theme, frame, table);
    let footer_text = format!("full view needs {}×{} · ? help · q quit", FULL.0, FULL.1);
    frame.render_widget(
        Paragraph::new(Line::styled(footer_text, theme.dim())),
        footer,
    );
}

fn render_nodes(app: &App, theme: &Theme, frame: &mut Frame, area: Rect) {
    let names = app.visible_nodes();
    // The table's own header takes one row.
    let window = window(app, usize::from(area.height.saturating_sub(1)));
    // Two one-column gaps between the three columns.
    let name_width = usize::from(area.width.saturating_sub(READY_WIDTH + HEARTBEAT_WIDTH + 2));
    let rows = names.get(window).unwrap_or_default().iter().map(|name| {
        let state = &app.fleet.nodes[*name];
        Row::new(vec![
            Cell::from(ellipsize(name, name_width)),
            ready_cell(state, app, theme, usize::from(READY_WIDTH)),
            heartbeat_cell(state, app, theme, usize::from(HEARTBEAT_WIDTH)),
        ])
    });
    let header = Row::new(vec!["NODE", "READY", "HEARTBEAT"]).style(theme.dim());
    let table = Table::new(
        rows,
        [
            Constraint::Fill(1),
            Constraint::Length(READY_WIDTH),
            Constraint::Length(HEARTBEAT_WIDTH),
        ],
    )
    .header(header);
    frame.render_widget(table, area);
}
