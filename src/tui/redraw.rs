//! When the loop must draw, beyond "a key was pressed":
//!
//! - [`Shown`]: a cluster change is drawn only if it shows. At 5,000 nodes
//!   with 10 s renewals 500 leases change every second, but the screen
//!   shows forty rows: redrawing for the other 4,960 would cost a frame each
//!   and change no cell.
//! - [`Deadlines`]: the instant a heartbeat turns LATE or EXPIRED is known
//!   when its lease is renewed, so the loop wakes exactly then instead of
//!   at the next 1 s tick (which added up to a second to detection).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use super::app::{App, Page};
use crate::model::ClusterEvent;
use crate::model::health::{self, Heartbeat};

/// The node rows of the last frame drawn.
#[derive(Debug, Default)]
pub struct Shown {
    nodes: HashSet<String>,
}

impl Shown {
    pub fn new(nodes: Vec<String>) -> Shown {
        Shown {
            nodes: nodes.into_iter().collect(),
        }
    }

    fn shows(&self, app: &App, node: &str) -> bool {
        self.nodes.contains(node) || matches!(&app.page, Page::Detail(n) if n == node)
    }
}

/// Applies a cluster event; true when the screen must be redrawn. A change
/// to a node or its lease is drawn when the node's row is on screen, when it
/// added a timeline entry, or when it changed the node count; anything else
/// that changed is drawn. A renewal of a fresh heartbeat only resets an age
/// shown in whole seconds: the next 1 s tick draws it (at 5,000 nodes forty
/// on-screen rows renew four times a second).
pub fn apply(app: &mut App, event: ClusterEvent, shown: &Shown) -> bool {
    let (node, renewal) = match &event {
        ClusterEvent::Lease(l) => (l.node.as_str(), true),
        ClusterEvent::Node(n) => (n.name.as_str(), false),
        _ => return app.on_cluster(event),
    };
    let on_screen = shown.shows(app, node);
    let fresh_renewal = renewal
        && on_screen
        && app
            .fleet
            .nodes
            .get(node)
            .is_some_and(|n| n.heartbeat == Some(Heartbeat::Fresh));
    let (entries, nodes) = (app.fleet.timeline.pushed(), app.fleet.nodes.len());
    let changed = app.on_cluster(event);
    changed
        && ((on_screen && !fresh_renewal)
            || app.fleet.timeline.pushed() != entries
            || app.fleet.nodes.len() != nodes)
}

/// One future heartbeat transition: `node`'s lease renewed at `renewed`
/// (the kubelet's clock), seen at `seen` (ours), turns LATE (or EXPIRED) at
/// `due`, unless it is renewed again before.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Due {
    due: Timestamp,
    renewed: Timestamp,
    seen: Timestamp,
    expiry: bool,
    lease: std::time::Duration,
    node: Arc<str>,
}

/// Heartbeat deadlines, earliest first. A renewal makes the node's older
/// entries stale; they are dropped when they reach the top, so each costs
/// one push and one pop, and checking one is a hash lookup (at 5,000 nodes
/// this runs 500 times a second).
#[derive(Debug, Default)]
pub struct Deadlines {
    heap: BinaryHeap<Reverse<Due>>,
    /// The latest renewal seen per node.
    latest: HashMap<Arc<str>, Timestamp>,
}

/// Past the threshold: `classify` compares with `>`.
const EPSILON: SignedDuration = SignedDuration::from_millis(1);

impl Deadlines {
    /// Notes the LATE deadline of a lease renewal seen at `now`. Like the
    /// fleet, it counts from when the renewal was seen, not from its
    /// renewTime; the same renewTime again (a relist) is no renewal.
    pub fn note(&mut self, event: &ClusterEvent, now: Timestamp) {
        if let ClusterEvent::Lease(l) = event
            && let Some(renewed) = l.renewed
        {
            let node = match self.latest.get_key_value(l.node.as_str()) {
                Some((_, latest)) if *latest == renewed => return,
                Some((node, _)) => node.clone(),
                None => Arc::from(l.node.as_str()),
            };
            self.latest.insert(node.clone(), renewed);
            self.push(node, (renewed, now), l.duration, false);
        }
    }

    fn push(
        &mut self,
        node: Arc<str>,
        (renewed, seen): (Timestamp, Timestamp),
        lease: std::time::Duration,
        expiry: bool,
    ) {
        let after = if expiry {
            lease
        } else {
            health::late_after(lease)
        };
        let Ok(after) = SignedDuration::try_from(after) else {
            return;
        };
        let Ok(due) = seen.checked_add(after + EPSILON) else {
            return;
        };
        self.heap.push(Reverse(Due {
            due,
            renewed,
            seen,
            expiry,
            lease,
            node,
        }));
    }

    fn holds(&self, d: &Due) -> bool {
        self.latest.get(&d.node) == Some(&d.renewed)
    }

    /// The next deadline that still holds (the node has not renewed since).
    pub fn next_due(&mut self) -> Option<Timestamp> {
        while let Some(Reverse(top)) = self.heap.peek() {
            if self.holds(top) {
                return Some(top.due);
            }
            self.heap.pop();
        }
        None
    }

    /// Pops the deadlines due at `now`; true when one still held (a
    /// heartbeat just changed class). A LATE deadline queues its EXPIRED one.
    pub fn fire(&mut self, now: Timestamp) -> bool {
        let mut fired = false;
        while self.heap.peek().is_some_and(|Reverse(d)| d.due <= now) {
            let Some(Reverse(d)) = self.heap.pop() else {
                break;
            };
            if !self.holds(&d) {
                continue;
            }
            fired = true;
            if !d.expiry {
                self.push(d.node, (d.renewed, d.seen), d.lease, true);
            }
        }
        fired
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fleet::{LeaseInfo, NodeInfo, ResourceKind};

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(1_800_000_000_000 + ms).unwrap()
    }

    fn lease(node: &str, renewed: Timestamp) -> ClusterEvent {
        ClusterEvent::Lease(LeaseInfo::renewed_at(node, renewed))
    }

    /// The app as a renewal renewed at `at` reaches it (no delay, no skew).
    fn seen_at(app: &mut App, at: Timestamp) -> &mut App {
        app.now = at;
        app
    }

    fn app(nodes: &[&str]) -> App {
        let mut app = App::new("lab", "http://127.0.0.1:1", true, t(0));
        app.on_cluster(ClusterEvent::ResyncStart(ResourceKind::Nodes));
        for n in nodes {
            app.on_cluster(ClusterEvent::Node(NodeInfo::bare(n, "v1.33.6+k3s1")));
            app.on_cluster(lease(n, t(0)));
        }
        app
    }

    #[test]
    fn renewals_off_screen_do_not_redraw_on_screen_ones_do() {
        let mut app = app(&["a", "b"]);
        let shown = Shown::new(vec!["a".into()]);
        assert!(apply(
            seen_at(&mut app, t(10_000)),
            lease("a", t(10_000)),
            &shown
        ));
        assert!(!apply(
            seen_at(&mut app, t(10_000)),
            lease("b", t(10_000)),
            &shown
        ));
        // The change is applied all the same.
        let renewed = app.fleet.nodes["b"].lease.as_ref().and_then(|l| l.renewed);
        assert_eq!(renewed, Some(t(10_000)));
        // An unchanged lease is no change at all.
        assert!(!apply(
            seen_at(&mut app, t(10_000)),
            lease("a", t(10_000)),
            &shown
        ));
        // The detail screen of an off-screen node shows its lease.
        app.page = Page::Detail("b".into());
        assert!(apply(
            seen_at(&mut app, t(20_000)),
            lease("b", t(20_000)),
            &shown
        ));
    }

    #[test]
    fn a_fresh_renewal_waits_for_the_tick_a_late_one_is_drawn_at_once() {
        let mut app = app(&["a", "b"]);
        let shown = Shown::new(vec!["a".into(), "b".into()]);
        // At 20 s a's lease (renewed at 0) is LATE, b's (renewed at 10 s) fresh.
        apply(seen_at(&mut app, t(10_000)), lease("b", t(10_000)), &shown);
        app.fleet.tick(t(20_000));
        assert!(!apply(
            seen_at(&mut app, t(20_000)),
            lease("b", t(20_000)),
            &shown
        ));
        assert!(apply(
            seen_at(&mut app, t(20_000)),
            lease("a", t(20_000)),
            &shown
        ));
        // Both are applied: the next tick shows them.
        let renewed = app.fleet.nodes["b"].lease.as_ref().and_then(|l| l.renewed);
        assert_eq!(renewed, Some(t(20_000)));
    }

    #[test]
    fn wakes_exactly_at_late_then_expired_and_skips_renewed_nodes() {
        let mut deadlines = Deadlines::default();
        for n in ["a", "b"] {
            deadlines.note(&lease(n, t(0)), t(0));
        }
        // 40 s lease: renew 10 s, LATE after 11.4 s (10 s + 4 % + 1 s slack).
        assert_eq!(deadlines.next_due(), Some(t(11_401)));
        // b renews at 10 s: its first deadline is stale, a's holds.
        deadlines.note(&lease("b", t(10_000)), t(10_000));
        assert!(!deadlines.fire(t(11_400)));
        assert!(deadlines.fire(t(11_401)));
        // Next: b's LATE at 21.401 s, then a's EXPIRED at 40.001 s.
        assert_eq!(deadlines.next_due(), Some(t(21_401)));
        deadlines.note(&lease("b", t(20_000)), t(20_000));
        assert_eq!(deadlines.next_due(), Some(t(31_401)));
        assert!(!deadlines.fire(t(31_400)));
        deadlines.note(&lease("b", t(30_000)), t(30_000));
        assert_eq!(deadlines.next_due(), Some(t(40_001)));
        assert!(deadlines.fire(t(40_001)));
        assert_eq!(deadlines.next_due(), Some(t(41_401)));
        assert_eq!(deadlines.len(), 1);
    }

    /// A kubelet 30 s behind: the deadline counts from when the renewal was
    /// seen, and a relist of the same renewal moves nothing.
    #[test]
    fn deadlines_count_from_the_renewal_seen_not_its_renew_time() {
        let mut deadlines = Deadlines::default();
        deadlines.note(&lease("a", t(-30_000)), t(0));
        assert_eq!(deadlines.next_due(), Some(t(11_401)));
        deadlines.note(&lease("a", t(-30_000)), t(5_000));
        assert_eq!(deadlines.next_due(), Some(t(11_401)));
        assert_eq!(deadlines.len(), 1);
    }
}
