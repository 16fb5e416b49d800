//! The timeline: every transition the cockpit noticed, with its instant.
//! It feeds the log panel (through tracing and tui-logger) and, through an
//! optional [`EntrySink`], the session journal that `k3s-cockpit report`
//! turns into an incident timeline.
//!
//! Each entry carries a typed [`EntryKind`] so the report computes windows
//! (outages, NotReady spans, phase durations) without parsing text; the
//! text is for people.

use std::collections::VecDeque;
use std::path::Path;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warn,
    Error,
}

/// What an entry is about, for machines (the report). Serialized as an
/// object with a `type` tag and the variant's fields, e.g.
/// `{"type":"announcer_move","from":"a","to":"b"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EntryKind {
    /// First line of a session journal.
    SessionStart {
        /// `watch`, `demo`, `upgrade`, ...
        mode: String,
        context: String,
        server: String,
    },
    /// Last line of a session journal (absent after a crash).
    SessionEnd,
    /// The node's Ready condition became True.
    NodeReady,
    /// The node's Ready condition became False or Unknown.
    NodeNotReady {
        reason: String,
    },
    HeartbeatLate,
    HeartbeatExpired,
    HeartbeatFresh,
    TaintAdded {
        taint: String,
    },
    TaintRemoved {
        taint: String,
    },
    Cordon,
    Uncordon,
    /// The kubelet reports another version (an upgrade, seen from outside).
    Version {
        from: String,
        to: String,
    },
    KubeletRestart,
    NodeDeleted,
    /// A service got its first announcer in this session.
    Announced {
        node: String,
    },
    /// MetalLB moved the service IP to another node.
    AnnouncerMove {
        from: String,
        to: String,
    },
    /// The same node announces again after a gap with no announcer.
    AnnouncedAgain {
        node: String,
        after_ms: u64,
    },
    /// A probe of `endpoint` failed, short of the failures in a row that
    /// make it DOWN: the `streak`-th of `of`. A success before `of` makes
    /// these flaps, not an outage.
    ProbeFailed {
        endpoint: String,
        error: String,
        streak: u32,
        of: u32,
    },
    /// A probe of `endpoint` (`ip:port`) failed enough times in a row to
    /// count as an outage. `since` is the first failure of that run (the
    /// outage's start; absent in journals written before flap tolerance,
    /// where the entry's own instant is the start).
    ProbeDown {
        endpoint: String,
        error: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<Timestamp>,
    },
    /// The probe of `endpoint` succeeds again after `down_for_ms`.
    ProbeUp {
        endpoint: String,
        down_for_ms: u64,
    },
    /// A phase of the upgrade runner began: `node` is None for the rollout
    /// as a whole. Free-form `phase` names (e.g. `drain`, `install`, `soak`,
    /// `done`); a phase lasts until the next `UpgradePhase` entry with the
    /// same `node`, which is how the report computes durations.
    UpgradePhase {
        node: Option<String>,
        phase: String,
    },
    /// Something the operator did (pause, resume, skip, restart K3s on a
    /// node, ...). Listed under "operator interventions" in the report.
    Operator {
        action: String,
    },
    /// The API server went away or came back. `failure` names how it
    /// failed (`unreachable`, `silent`, `unauthorized`, `forbidden`,
    /// `server_error`, `error`); absent on the entry of its return, and in
    /// journals written before failures were told apart.
    Api {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure: Option<String>,
    },
    /// The cockpit moved to another API server's endpoint.
    ApiEndpoint {
        url: String,
    },
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub at: Timestamp,
    pub severity: Severity,
    /// Node name, `namespace/service`, `api`, `upgrade`, ...
    pub subject: String,
    pub kind: EntryKind,
    pub text: String,
}

/// Where entries go besides memory: the session journal.
pub trait EntrySink: Send {
    fn write(&mut self, entry: &Entry);
    /// The file written, if any (the cockpit's report key reads it).
    fn path(&self) -> Option<&Path>;
}

/// Bounded so a week-long watch does not grow without limit.
const KEPT: usize = 5_000;

#[derive(Default)]
pub struct Timeline {
    entries: VecDeque<Entry>,
    sink: Option<Box<dyn EntrySink>>,
    /// Entries ever pushed (the bounded queue's length stops growing).
    pushed: u64,
    /// Every entry ever pushed is measured here (the queue forgets).
    outage: super::outage::OutageMeter,
}

impl std::fmt::Debug for Timeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timeline")
            .field("entries", &self.entries.len())
            .field("sink", &self.sink.as_ref().and_then(|s| s.path()))
            .finish()
    }
}

impl Timeline {
    /// An entry of kind [`EntryKind::Other`].
    pub fn push(&mut self, at: Timestamp, severity: Severity, subject: &str, text: String) {
        self.push_kind(at, severity, subject, EntryKind::Other, text);
    }

    pub fn push_kind(
        &mut self,
        at: Timestamp,
        severity: Severity,
        subject: &str,
        kind: EntryKind,
        text: String,
    ) {
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
        let entry = Entry {
            at,
            severity,
            subject: subject.to_string(),
            kind,
            text,
        };
        if let Some(sink) = &mut self.sink {
            sink.write(&entry);
        }
        self.outage.feed(&entry);
        self.entries.push_back(entry);
    }

    /// Sends every later entry to `sink` too (the session journal).
    pub fn set_sink(&mut self, sink: Box<dyn EntrySink>) {
        self.sink = Some(sink);
    }

    /// The session journal's path, when there is one.
    pub fn sink_path(&self) -> Option<&Path> {
        self.sink.as_ref().and_then(|s| s.path())
    }

    /// User-visible outage per upgraded node in this session so far.
    pub fn outage(&self) -> &super::outage::OutageMeter {
        &self.outage
    }

    /// How many entries were ever pushed: a change means a new entry.
    pub fn pushed(&self) -> u64 {
        self.pushed
    }

    pub fn entries(&self) -> impl DoubleEndedIterator<Item = &Entry> {
        self.entries.iter()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    struct Collect(Arc<Mutex<Vec<Entry>>>);

    impl EntrySink for Collect {
        fn write(&mut self, entry: &Entry) {
            self.0.lock().unwrap().push(entry.clone());
        }
        fn path(&self) -> Option<&Path> {
            None
        }
    }

    #[test]
    fn entries_reach_the_sink_and_kinds_serialize_with_a_type_tag() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut t = Timeline::default();
        t.push(Timestamp::UNIX_EPOCH, Severity::Info, "x", "before".into());
        t.set_sink(Box::new(Collect(seen.clone())));
        t.push_kind(
            Timestamp::UNIX_EPOCH,
            Severity::Warn,
            "frigate/frigate",
            EntryKind::AnnouncerMove {
                from: "a".into(),
                to: "b".into(),
            },
            "announcer moved a → b".into(),
        );
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        let json = serde_json::to_string(&seen[0]).unwrap();
        assert!(
            json.contains(r#""kind":{"type":"announcer_move","from":"a","to":"b"}"#),
            "{json}"
        );
        assert!(json.contains(r#""severity":"warn""#), "{json}");
        let back: Entry = serde_json::from_str(&json).unwrap();
        assert_eq!(back, seen[0]);
        assert_eq!(t.entries().count(), 2);
    }
}
