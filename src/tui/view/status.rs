//! The one-line bars: status at the top, API-down banner, footer.

use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::Theme;
use crate::model::fleet::ApiStatus;
use crate::tui::app::App;

pub(super) fn status_bar<'a>(app: &'a App, theme: &Theme) -> Line<'a> {
    let style = match &app.fleet.api {
        ApiStatus::Connecting => theme.warn(),
        ApiStatus::Up => theme.good(),
        ApiStatus::Down { .. } => theme.bad(),
    };
    let conn = app.fleet.api.label();
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
    // After a move to another API server it names that one.
    let server = match &app.fleet.api_endpoint {
        Some(url) => format!("via {url} (switched)"),
        None => app.server.clone(),
    };
    spans.push(Span::raw(format!("{} │ {server}", app.context)));
    Line::from(spans)
}

pub(super) fn banner_line<'a>(app: &App, theme: &Theme) -> Option<Paragraph<'a>> {
    let text = app.fleet.api.describe(app.now)?;
    Some(Paragraph::new(Line::styled(
        format!(" {text} "),
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
