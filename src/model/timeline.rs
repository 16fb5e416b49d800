//! The timeline: every transition the cockpit noticed, with its instant.
//! It feeds the log panel (through tracing and tui-logger) and, later, the
//! session journal and the incident report.

use std::collections::VecDeque;

use jiff::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub at: Timestamp,
    pub severity: Severity,
    /// Node name, `namespace/service`, `api`, `upgrade`, ...
    pub subject: String,
    pub text: String,
}

/// Bounded so a week-long watch does not grow without limit.
const KEPT: usize = 5_000;

#[derive(Debug, Default)]
pub struct Timeline {
    entries: VecDeque<Entry>,
    /// Entries ever pushed (the bounded queue's length stops growing).
    pushed: u64,
}

impl Timeline {
    pub fn push(&mut self, at: Timestamp, severity: Severity, subject: &str, text: String) {
        let line = format!("{subject}: {text}");
        match severity {
            Severity::Info => tracing::info!(target: "timeline", "{line}"),
            Severity::Warn => tracing::warn!(target: "timeline", "{line}"),
            Severity::Error => tracing::error!(target: "timeline", "{line}"),
        }
        self.pushed += 1;
        if self.entries.len() >= KEPT {
            self.entries.pop_front();
        }
        self.entries.push_back(Entry {
            at,
            severity,
            subject: subject.to_string(),
            text,
        });
    }

    /// How many entries were ever pushed: a change means a new entry.
    pub fn pushed(&self) -> u64 {
        self.pushed
    }

    pub fn entries(&self) -> impl DoubleEndedIterator<Item = &Entry> {
        self.entries.iter()
    }
}
