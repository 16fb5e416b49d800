//! The cluster restore's confirmation: every step the cockpit is about to
//! run, on screen before the operator answers. A one-line question in the
//! status bar is not enough for a step that takes the whole cluster down.

use ratatui::Frame;
use ratatui::style::Modifier;
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::{Theme, centered};
use crate::tui::app::{App, Request};
use crate::upgrade::Command;

/// True while the question on screen is the cluster restore's.
pub(super) fn asking(app: &App) -> bool {
    app.confirm
        .as_ref()
        .is_some_and(|c| c.request == Request::Engine(Command::ClusterRestore))
}

pub(super) fn render(app: &App, theme: &Theme, frame: &mut Frame) {
    let steps = app
        .rollout
        .as_ref()
        .map(|v| v.restore_plan.clone())
        .unwrap_or_default();
    let mut lines = vec![
        Line::styled(
            "Every server stops in step 1: the cluster and its services are down until the first server is back.",
            theme.bad().add_modifier(Modifier::BOLD),
        ),
        Line::raw(
            "Once begun, the restore runs to its end; each step goes to the timeline and the journal,",
        ),
        Line::raw("so a cockpit restarted with --resume continues at the step that was running."),
        Line::raw(""),
    ];
    lines.extend(steps.iter().map(|s| Line::raw(format!("  {s}"))));
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        "y runs the whole restore · any other key cancels",
        theme.warn().add_modifier(Modifier::BOLD),
    ));
    let area = frame.area();
    let width = area.width.saturating_sub(4);
    // Rows once wrapped (a snapshot path makes its step two or three
    // lines); a wrap at a word boundary can take one row more than the
    // characters need.
    let inner = usize::from(width.saturating_sub(2)).max(1);
    let rows: usize = lines
        .iter()
        .map(|l| match l.width() {
            w if w <= inner => 1,
            w => w.div_ceil(inner) + 1,
        })
        .sum();
    let height = u16::try_from(rows + 2).unwrap_or(u16::MAX).min(area.height);
    let area = centered(area, width, height);
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" Roll back by restoring the etcd snapshot? "),
        ),
        area,
    );
}
