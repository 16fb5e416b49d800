//! The dashboard's log panel: what the timeline and the upgrade engine log,
//! newest at the bottom.
//!
//! A tracing layer formats each record once, when it is logged, into a
//! bounded ring; a frame copies the last screenful of text straight into
//! the frame's cells. tui-logger's widget (kept for the full log view) lays
//! out and re-styles every visible record on every frame: a fifth of the
//! cockpit's CPU while the cluster churns, and on the path of every change
//! to the screen, since each change adds a line.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use super::log_format::{INDENT, Pieces, level_word};
use crate::model::timeline::Severity;

/// Records kept: more than any terminal shows.
const KEPT: usize = 1_000;

/// One logged record as a timeline line: `HH:MM:SS`, a severity mark
/// (`!` a warning, `!!` an error, blank otherwise), then the message
/// (`subject: event`); `×N` when it came N times in a row.
struct Record {
    text: String,
    severity: Severity,
    /// The line without its time and count, to fold repeats.
    body: String,
    repeats: u32,
    /// One line of printable ASCII (nearly every record): its screen lines
    /// are counted by arithmetic and its cells written one byte each.
    plain: bool,
}

impl Record {
    /// The record's screen lines at `width`: its first line wrapped at the
    /// full width, later lines (and continuations) under a 9-column indent.
    fn rows(&self, width: usize) -> impl Iterator<Item = (bool, &str)> {
        let rest = width.saturating_sub(INDENT);
        self.text.lines().enumerate().flat_map(move |(i, line)| {
            let first = if i == 0 { width } else { rest };
            Pieces::new(line, first, rest)
                .enumerate()
                .map(move |(j, piece)| (i > 0 || j > 0, piece))
        })
    }

    fn row_count(&self, width: usize) -> usize {
        let len = self.text.len();
        match (self.plain, width) {
            (true, w) if len <= w => 1,
            (true, w) => 1 + (len - w).div_ceil(w - INDENT),
            (false, _) => self.rows(width).count(),
        }
    }
}

#[derive(Default)]
struct Ring {
    records: VecDeque<Record>,
}

/// The panel's records; cloned handles share them.
#[derive(Clone, Default)]
pub struct PanelLog {
    ring: Arc<Mutex<Ring>>,
}

/// How the panel colours each level.
pub struct PanelStyles {
    pub info: Style,
    pub warn: Style,
    pub error: Style,
}

impl PanelLog {
    /// Appends one record logged at `at` (a clock's hours, minutes, seconds).
    pub fn push(&self, (h, m, s): (i8, i8, i8), level: &Level, message: &str) {
        let (_, severity) = level_word(level.as_str());
        let mark = match severity {
            Severity::Error => "!!",
            Severity::Warn => "! ",
            Severity::Info => "  ",
        };
        let body = format!("{mark} {message}");
        let time = format!("{h:02}:{m:02}:{s:02}");
        let mut ring = self.lock();
        // The same line again: one line with the latest time and a count.
        if let Some(last) = ring.records.back_mut()
            && last.body == body
        {
            last.repeats += 1;
            last.text = format!("{time} {body} ×{}", last.repeats);
            last.plain = false;
            return;
        }
        if ring.records.len() >= KEPT {
            ring.records.pop_front();
        }
        let text = format!("{time} {body}");
        let plain = text.bytes().all(|b| (b' '..=b'~').contains(&b));
        ring.records.push_back(Record {
            text,
            severity,
            body,
            repeats: 1,
            plain,
        });
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        // A panic elsewhere while holding the lock leaves whole records.
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Draws the newest records that fit into `area` (inside the block):
    /// from the top while they fit, then scrolling, as tui-logger does.
    pub fn render(&self, area: Rect, buf: &mut Buffer, styles: &PanelStyles) {
        let area = area.intersection(buf.area);
        let (width, height) = (usize::from(area.width), usize::from(area.height));
        if width <= INDENT || height == 0 {
            return;
        }
        let ring = self.lock();
        // Walk back from the newest record until the panel is full.
        let mut rows = 0;
        let mut first = ring.records.len();
        for record in ring.records.iter().rev() {
            if rows >= height {
                break;
            }
            rows += record.row_count(width);
            first -= 1;
        }
        // Lines of the oldest shown record that scrolled off the top.
        let mut skip = rows.saturating_sub(height);
        let mut y = area.y;
        for record in ring.records.range(first..) {
            let style = match record.severity {
                Severity::Info => styles.info,
                Severity::Warn => styles.warn,
                Severity::Error => styles.error,
            };
            for (indented, piece) in record.rows(width) {
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                let x = if indented { INDENT as u16 } else { 0 };
                put(
                    buf,
                    (area.x + x, y),
                    area.width - x,
                    piece,
                    record.plain,
                    style,
                );
                y += 1;
            }
        }
    }
}

/// Writes `text` at `(x, y)`, at most `max` columns. Printable ASCII (every
/// timeline line but arrows) goes byte by byte; the rest through ratatui,
/// which knows wide and zero-width characters.
fn put(buf: &mut Buffer, (x, y): (u16, u16), max: u16, text: &str, plain: bool, style: Style) {
    let max = usize::from(max);
    if plain {
        let start = buf.index_of(x, y);
        let end = start + text.len().min(max);
        for (cell, byte) in buf.content[start..end].iter_mut().zip(text.bytes()) {
            cell.set_char(char::from(byte)).set_style(style);
        }
    } else {
        buf.set_stringn(x, y, text, max, style);
    }
}

/// The tracing layer that feeds a [`PanelLog`]; filter it to the targets
/// the panel shows.
pub struct PanelLayer {
    log: PanelLog,
    tz: jiff::tz::TimeZone,
}

impl PanelLayer {
    pub fn new(log: PanelLog, tz: jiff::tz::TimeZone) -> Self {
        PanelLayer { log, tz }
    }
}

impl<S: Subscriber> Layer<S> for PanelLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut message = MessageOf(String::new());
        event.record(&mut message);
        let now = jiff::Timestamp::now().to_zoned(self.tz.clone());
        self.log.push(
            (now.hour(), now.minute(), now.second()),
            event.metadata().level(),
            &message.0,
        );
    }
}

/// The event's `message` field (what the format string produced).
struct MessageOf(String);

impl Visit for MessageOf {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            use std::fmt::Write;
            let _ = write!(self.0, "{value:?}");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn styles() -> PanelStyles {
        PanelStyles {
            info: Style::default(),
            warn: Style::default(),
            error: Style::default(),
        }
    }

    fn screen(log: &PanelLog, width: u16, height: u16) -> Vec<String> {
        let mut buf = Buffer::empty(Rect::new(0, 0, width, height));
        log.render(buf.area, &mut buf, &styles());
        (0..height)
            .map(|y| {
                (0..width)
                    .map(|x| buf[(x, y)].symbol().to_string())
                    .collect::<String>()
                    .trim_end()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn fills_from_the_top_then_keeps_the_newest_lines() {
        let log = PanelLog::default();
        log.push((22, 4, 5), &Level::INFO, "node-a: Ready");
        assert_eq!(
            screen(&log, 30, 3),
            vec!["22:04:05    node-a: Ready", "", ""]
        );
        log.push(
            (22, 4, 6),
            &Level::ERROR,
            "node-b: NotReady (KubeletNotReady)",
        );
        log.push((22, 4, 7), &Level::WARN, "web/web: announcer moved a → b");
        // Too long for 30 columns: wrapped under a 9-column indent; the
        // oldest line scrolls off the top.
        assert_eq!(
            screen(&log, 30, 3),
            vec![
                "         KubeletNotReady)",
                "22:04:07 !  web/web: announcer",
                "          moved a → b",
            ]
        );
    }

    #[test]
    fn errors_and_warnings_are_marked_and_repeats_fold() {
        let log = PanelLog::default();
        log.push((22, 4, 5), &Level::WARN, "node-a: heartbeat LATE");
        log.push((22, 4, 6), &Level::ERROR, "upgrade: HALTED: soak failed");
        for s in 7..10 {
            log.push((22, 4, s), &Level::INFO, "frigate/frigate: probe failed");
        }
        assert_eq!(
            screen(&log, 50, 3),
            vec![
                "22:04:05 !  node-a: heartbeat LATE",
                "22:04:06 !! upgrade: HALTED: soak failed",
                "22:04:09    frigate/frigate: probe failed ×3",
            ]
        );
    }
}
