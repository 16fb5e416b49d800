//! The log's line format, shared by the dashboard's panel and the full log
//! view (tui-logger): `HH:MM:SS:LEVEL:message`, long lines wrapped under a
//! 9-column indent, as tui-logger's standard formatter prints them.
//!
//! The standard formatter allocates a `String` per character and parses
//! the timestamp format on every call; it was a third of every frame's
//! cost, and a frame is on the path of every change to the screen.

use ratatui::style::Style;
use ratatui::text::{Line, Span};
use tui_logger::{ExtLogRecord, LogFormatter};

use crate::model::timeline::Severity;

/// Continuation lines start under the level, as tui-logger's do.
pub(super) const INDENT: usize = 9;

pub struct PanelFormatter {
    pub info: Style,
    pub warn: Style,
    pub error: Style,
}

/// tui-logger's long level word and our style for it (by name: the record
/// carries the `log` crate's level).
pub(super) fn level_word(level: &str) -> (&'static str, Severity) {
    match level {
        "ERROR" => ("ERROR", Severity::Error),
        "WARN" => ("WARN ", Severity::Warn),
        "INFO" => ("INFO ", Severity::Info),
        "DEBUG" => ("DEBUG", Severity::Info),
        _ => ("TRACE", Severity::Info),
    }
}

/// Splits `text` into pieces of at most `first` characters, then `rest`.
pub(super) fn wrap(text: &str, first: usize, rest: usize) -> Vec<&str> {
    Pieces::new(text, first, rest).collect()
}

/// The pieces of [`wrap`], without a list: an ASCII text is cut by
/// arithmetic, any other by counting characters.
pub(super) struct Pieces<'a> {
    left: &'a str,
    width: usize,
    rest: usize,
}

impl<'a> Pieces<'a> {
    pub(super) fn new(text: &'a str, first: usize, rest: usize) -> Self {
        Pieces {
            left: text,
            width: first.max(1),
            rest: rest.max(1),
        }
    }
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.left.is_empty() {
            return None;
        }
        let cut = if self.left.is_ascii() {
            self.width.min(self.left.len())
        } else {
            self.left
                .char_indices()
                .nth(self.width)
                .map_or(self.left.len(), |(i, _)| i)
        };
        let (piece, left) = self.left.split_at(cut);
        self.left = left;
        self.width = self.rest;
        Some(piece)
    }
}

impl PanelFormatter {
    fn push_wrapped(
        &self,
        lines: &mut Vec<Line<'static>>,
        text: &str,
        width: usize,
        indented: bool,
        style: Style,
    ) {
        let rest = width.saturating_sub(INDENT);
        let first = if indented { rest } else { width };
        for (i, piece) in wrap(text, first, rest).into_iter().enumerate() {
            if indented || i > 0 {
                lines.push(Line::from(vec![
                    Span::styled(" ".repeat(INDENT), style),
                    Span::styled(piece.to_string(), style),
                ]));
            } else {
                lines.push(Line::from(Span::styled(piece.to_string(), style)));
            }
        }
    }
}

impl LogFormatter for PanelFormatter {
    fn min_width(&self) -> u16 {
        (INDENT + 4) as u16
    }

    fn format(&self, width: usize, evt: &ExtLogRecord) -> Vec<Line<'_>> {
        let (word, severity) = level_word(evt.level.as_str());
        let style = match severity {
            Severity::Error => self.error,
            Severity::Warn => self.warn,
            Severity::Info => self.info,
        };
        let t = &evt.timestamp;
        let mut message = evt.msg().lines();
        let head = format!(
            "{:02}:{:02}:{:02}:{word}:{}",
            t.hour(),
            t.minute(),
            t.second(),
            message.next().unwrap_or_default()
        );
        let mut lines = Vec::new();
        self.push_wrapped(&mut lines, &head, width, false, style);
        for more in message {
            self.push_wrapped(&mut lines, more, width, true, style);
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_by_characters_with_an_indent() {
        assert_eq!(wrap("abcdefg", 3, 2), vec!["abc", "de", "fg"]);
        assert_eq!(wrap("ab", 3, 2), vec!["ab"]);
        assert_eq!(wrap("", 3, 2), Vec::<&str>::new());
        assert_eq!(wrap("→→→→", 2, 2), vec!["→→", "→→"]);
        let f = PanelFormatter {
            info: Style::default(),
            warn: Style::default(),
            error: Style::default(),
        };
        let mut lines = Vec::new();
        f.push_wrapped(
            &mut lines,
            "0123456789abcdefghij",
            12,
            false,
            Style::default(),
        );
        let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        assert_eq!(
            text,
            vec![
                "0123456789ab",
                "         cde",
                "         fgh",
                "         ij"
            ]
        );
    }
}
