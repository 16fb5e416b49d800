//! User-visible outage per upgraded node: probe downtime (any probed
//! endpoint DOWN, from its first failure) overlapping the node's working
//! phases (every phase but pending, done and skipped). Fed the same
//! timeline entries live and from a session journal, so the cockpit's
//! running total and the report agree.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use super::timeline::{Entry, EntryKind};

/// Phases in which a node is not being worked on.
const IDLE_PHASES: [&str; 3] = ["pending", "done", "skipped"];

type Span = (Timestamp, Option<Timestamp>);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutageMeter {
    /// Per node, in the order first worked on: its working spans.
    nodes: Vec<(String, Vec<Span>)>,
    /// Probe DOWN windows of every endpoint.
    down: Vec<Span>,
    /// Open DOWN windows by (service, endpoint): index into `down`.
    open: BTreeMap<(String, String), usize>,
}

/// One node's figure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeOutage {
    pub node: String,
    pub outage: Duration,
    /// The node's work is over (its last span closed).
    pub finished: bool,
}

impl OutageMeter {
    pub fn feed(&mut self, e: &Entry) {
        match &e.kind {
            EntryKind::UpgradePhase {
                node: Some(node),
                phase,
            } => self.phase(node, phase, e.at),
            EntryKind::ProbeDown {
                endpoint, since, ..
            } => {
                let key = (e.subject.clone(), endpoint.clone());
                if !self.open.contains_key(&key) {
                    self.open.insert(key, self.down.len());
                    self.down.push((since.unwrap_or(e.at), None));
                }
            }
            EntryKind::ProbeUp { endpoint, .. } => {
                if let Some(i) = self.open.remove(&(e.subject.clone(), endpoint.clone())) {
                    self.down[i].1 = Some(e.at);
                }
            }
            _ => {}
        }
    }

    fn phase(&mut self, node: &str, phase: &str, at: Timestamp) {
        let working = !IDLE_PHASES.contains(&phase);
        let i = match self.nodes.iter().position(|(n, _)| n == node) {
            Some(i) => i,
            None if working => {
                self.nodes.push((node.to_string(), Vec::new()));
                self.nodes.len() - 1
            }
            None => return,
        };
        let spans = &mut self.nodes[i].1;
        let open = spans.last().is_some_and(|s| s.1.is_none());
        match (working, open) {
            (true, false) => spans.push((at, None)),
            (false, true) => {
                if let Some(last) = spans.last_mut() {
                    last.1 = Some(at);
                }
            }
            _ => {}
        }
    }

    /// Each node's outage so far (open windows run to `now`).
    pub fn per_node(&self, now: Timestamp) -> Vec<NodeOutage> {
        let down = merged(&self.down, now);
        self.nodes
            .iter()
            .map(|(node, spans)| NodeOutage {
                node: node.clone(),
                outage: overlap(&down, &merged(spans, now)),
                finished: spans.last().is_some_and(|s| s.1.is_some()),
            })
            .collect()
    }

    /// The rollout's total: downtime while any node was being worked on.
    pub fn total(&self, now: Timestamp) -> Duration {
        let all: Vec<Span> = self
            .nodes
            .iter()
            .flat_map(|(_, s)| s.iter().copied())
            .collect();
        overlap(&merged(&self.down, now), &merged(&all, now))
    }
}

/// Sorted, non-overlapping closed intervals.
fn merged(spans: &[Span], now: Timestamp) -> Vec<(Timestamp, Timestamp)> {
    let mut v: Vec<(Timestamp, Timestamp)> = spans
        .iter()
        .map(|&(s, e)| (s, e.unwrap_or(now).max(s)))
        .collect();
    v.sort();
    let mut out: Vec<(Timestamp, Timestamp)> = Vec::with_capacity(v.len());
    for (s, e) in v {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// Total length of the intersection of two merged interval lists.
fn overlap(a: &[(Timestamp, Timestamp)], b: &[(Timestamp, Timestamp)]) -> Duration {
    let (mut i, mut j, mut total) = (0, 0, Duration::ZERO);
    while i < a.len() && j < b.len() {
        let start = a[i].0.max(b[j].0);
        let end = a[i].1.min(b[j].1);
        if end > start {
            total += Duration::try_from(end.duration_since(start)).unwrap_or_default();
        }
        if a[i].1 < b[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    total
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::timeline::Severity;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_769_378_700 + s).unwrap()
    }

    fn entry(s: i64, subject: &str, kind: EntryKind) -> Entry {
        Entry {
            at: at(s),
            severity: Severity::Info,
            subject: subject.into(),
            kind,
            text: String::new(),
        }
    }

    fn phase(s: i64, node: &str, phase: &str) -> Entry {
        let kind = EntryKind::UpgradePhase {
            node: Some(node.into()),
            phase: phase.into(),
        };
        entry(s, node, kind)
    }

    fn down(s: i64, since: i64, svc: &str) -> Entry {
        let kind = EntryKind::ProbeDown {
            endpoint: "127.77.0.12:5000".into(),
            error: "connection refused".into(),
            since: Some(at(since)),
        };
        entry(s, svc, kind)
    }

    fn up(s: i64, svc: &str) -> Entry {
        let kind = EntryKind::ProbeUp {
            endpoint: "127.77.0.12:5000".into(),
            down_for_ms: 0,
        };
        entry(s, svc, kind)
    }

    /// Downtime counts for the node being worked on, from the first failed
    /// probe; downtime outside every node's work counts for nobody.
    #[test]
    fn downtime_is_charged_to_the_node_being_worked_on() {
        let mut m = OutageMeter::default();
        for e in [
            down(2, 1, "x/before"),
            up(4, "x/before"),
            phase(10, "a", "handoff"),
            phase(12, "a", "restart"),
            down(15, 13, "f/frigate"),
            down(16, 14, "h/home"),
            up(18, "f/frigate"),
            up(19, "h/home"),
            phase(30, "a", "done"),
            phase(31, "b", "handoff"),
            down(40, 39, "f/frigate"),
        ] {
            m.feed(&e);
        }
        let per = m.per_node(at(45));
        assert_eq!(per[0].node, "a");
        assert_eq!(
            per[0].outage,
            Duration::from_secs(6),
            "13..19, overlaps once"
        );
        assert!(per[0].finished);
        assert_eq!(per[1].outage, Duration::from_secs(6), "39..now");
        assert!(!per[1].finished);
        assert_eq!(m.total(at(45)), Duration::from_secs(12));
    }
}
