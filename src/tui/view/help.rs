//! The `?` overlay: every key that applies, and how to read the columns.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::{Theme, centered};
use crate::tui::app::App;
use crate::tui::keymap::{KEYMAP, KeyAction};

/// Rollout keys mean something only in control mode.
fn help_applies(app: &App, action: KeyAction) -> bool {
    use KeyAction::*;
    app.rollout.is_some()
        || !matches!(
            action,
            Start
                | Canary
                | AcceptCanary
                | PauseResume
                | Step
                | Abort
                | Retry
                | Skip
                | Rollback
                | EndFinalWatch
        )
}

pub(super) fn render_help(app: &App, theme: &Theme, frame: &mut Frame) {
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
