//! The log panel under the tables, and the full-screen `L` log.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph};

use super::Theme;
use crate::model::timeline::Severity;
use crate::tui::app::{App, LogPanel};
use crate::tui::log_panel::PanelStyles;

pub(super) fn render_log(app: &App, theme: &Theme, frame: &mut Frame, area: Rect) {
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
pub(super) fn render_full_log(app: &App, theme: &Theme, frame: &mut Frame, area: Rect) {
    let [log, footer] = Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(area);
    let widget = tui_logger::TuiLoggerWidget::default()
        .block(
            Block::default()
                .borders(Borders::ALL)
                .title(" Log · every target, info and up "),
        )
        .formatter(Box::new(crate::tui::log_format::PanelFormatter {
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
