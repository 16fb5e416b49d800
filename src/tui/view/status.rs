//! The one-line bars: status at the top, API-down banner, footer.

use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::Theme;
use crate::durations::format_duration;
use crate::model::fleet::ApiStatus;
use crate::model::health;
use crate::tui::app::App;

pub(super) fn status_bar<'a>(app: &'a App, theme: &Theme) -> Line<'a> {
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

pub(super) fn banner_line<'a>(app: &App, theme: &Theme) -> Option<Paragraph<'a>> {
    let ApiStatus::Down {
        since,
        error,
        failures,
        silent,
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

pub(super) fn footer_line<'a>(app: &App, theme: &Theme) -> Paragraph<'a> {
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
