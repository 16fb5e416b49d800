//! Turns the cockpit's fleet model into the engine's [`Observation`]: what
//! the rollout's gates judge. Pure, so the gate inputs are unit-tested.

use std::collections::HashMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::model::fleet::{ApiStatus, Fleet, Tri};
use crate::model::health;
use crate::upgrade::{NodeObservation, Observation, ServiceObservation};

/// Keeps what one fleet snapshot cannot tell: how often each node's Ready
/// condition fell, so a flap between two observations still counts.
#[derive(Debug, Default)]
pub struct Observer {
    /// Per node: Ready at the last look, and true→false transitions so far.
    ready: HashMap<String, (bool, u32)>,
    /// From the plan; None derives lateness from each node's lease.
    max_heartbeat_age: Option<SignedDuration>,
    /// Renewals missed in a row that fail the gate (the plan's
    /// `gates.missed_renewals`).
    missed_limit: u32,
}

impl Observer {
    pub fn new(max_heartbeat_age: Option<SignedDuration>, missed_limit: u32) -> Self {
        Observer {
            ready: HashMap::new(),
            max_heartbeat_age,
            missed_limit: missed_limit.max(1),
        }
    }

    /// Whether a heartbeat seen renewing `at` fails the gate at `now`: its
    /// lease expired, or it missed `missed_limit` renewals in a row. One
    /// missed renewal is LATE on screen (and rings), not a halt.
    fn heartbeat_fails(&self, at: Option<Timestamp>, lease: Duration, now: Timestamp) -> bool {
        match (self.max_heartbeat_age, at) {
            (Some(max), Some(at)) => now.duration_since(at) > max,
            (_, None) => true,
            (None, Some(at)) => {
                let age = health::age(at, now);
                age > lease || health::missed_renewals(age, lease) >= self.missed_limit
            }
        }
    }

    /// The observation of every node the cluster reports (the global gate
    /// judges nodes outside the plan too), of the gated `services`
    /// (`namespace/name`) first, then of every other announced service
    /// (the handoff moves them too), each with its latest probe result.
    pub fn observe(&mut self, fleet: &Fleet, services: &[String], now: Timestamp) -> Observation {
        let mut nodes = Vec::with_capacity(fleet.nodes.len());
        for (name, state) in &fleet.nodes {
            let Some(info) = &state.info else { continue };
            let ready = info.ready().is_some_and(|c| c.status == Tri::True);
            let heartbeat_late = if !fleet.leases_readable {
                // Without leases the only heartbeat is the Ready condition's,
                // refreshed every 5 minutes: Ready itself is the signal.
                false
            } else {
                self.heartbeat_fails(state.heartbeat_at(), state.lease_duration(), now)
            };
            // Looked up before inserting: a tick sees every node, and the
            // name is cloned only the first time.
            let entry = match self.ready.get_mut(name) {
                Some(entry) => entry,
                None => self.ready.entry(name.clone()).or_insert((ready, 0)),
            };
            if entry.0 && !ready {
                entry.1 += 1;
            }
            entry.0 = ready;
            nodes.push(NodeObservation {
                name: name.clone(),
                ready,
                version: info.version.clone(),
                heartbeat_late,
                unschedulable: info.unschedulable,
                ready_transitions: entry.1,
                node_args: info.node_args.clone(),
            });
        }
        let mut services: Vec<ServiceObservation> = services
            .iter()
            .map(|key| {
                let state = key
                    .split_once('/')
                    .and_then(|(ns, name)| fleet.services.get(&(ns.to_string(), name.to_string())));
                ServiceObservation {
                    name: key.clone(),
                    announced_by: state.and_then(|s| s.announcer.clone()),
                    probe_ok: state.and_then(|s| s.probe_ok()),
                    announcer_unknown: state.is_some_and(|s| s.unknown.is_some()),
                }
            })
            .collect();
        // Announced services outside the gate still need a handoff.
        for ((ns, name), state) in &fleet.services {
            let key = format!("{ns}/{name}");
            if state.announcer.is_some() && !services.iter().any(|s| s.name == key) {
                services.push(ServiceObservation {
                    name: key,
                    announced_by: state.announcer.clone(),
                    probe_ok: state.probe_ok(),
                    announcer_unknown: false,
                });
            }
        }
        Observation {
            nodes,
            services,
            // Only an outage (unreachable, silent) pauses the engine's
            // judgements; a 401, 403 or 5xx is the server saying no, and
            // the rollout must not carry on as if blind time were soak.
            // Any failure leaves the engine blind: a 401 or 403 is the server
            // answering, but what the watchers would have seen is missing,
            // and judging stale data would halt for nothing. Only an
            // unreachable or silent server counts as an outage elsewhere.
            api_reachable: fleet.api == ApiStatus::Up,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::model::ClusterEvent;
    use crate::model::fleet::{Condition, L2Info, LeaseInfo, NodeInfo, ServiceInfo};
    use crate::model::health::Heartbeat;
    use std::time::Duration;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_769_378_700 + secs).unwrap()
    }

    fn node(name: &str, ready: Tri) -> ClusterEvent {
        ClusterEvent::Node(NodeInfo {
            name: name.into(),
            roles: vec![],
            node_args: None,
            version: "v1.34.3+k3s1".into(),
            unschedulable: false,
            taints: vec![],
            conditions: vec![Condition {
                kind: "Ready".into(),
                status: ready,
                reason: String::new(),
                message: String::new(),
                last_transition: Some(t(0)),
                last_heartbeat: Some(t(0)),
            }],
            boot_id: "b".into(),
            internal_ip: None,
            lb_excluded: false,
        })
    }

    fn lease(name: &str, renewed: i64) -> ClusterEvent {
        ClusterEvent::Lease(LeaseInfo {
            node: name.into(),
            holder: name.into(),
            renewed: Some(t(renewed)),
            duration: Duration::from_secs(40),
        })
    }

    fn fleet() -> Fleet {
        let mut f = Fleet::new();
        f.apply(ClusterEvent::ApiOk, t(0));
        f.apply(node("a", Tri::True), t(0));
        f.apply(lease("a", 0), t(0));
        f.apply(
            ClusterEvent::Service(ServiceInfo {
                namespace: "frigate".into(),
                name: "frigate".into(),
                ips: vec!["127.77.0.12".into()],
                ports: vec![5000],
                selector: Default::default(),
            }),
            t(0),
        );
        f.apply(
            ClusterEvent::L2(L2Info {
                object: "metallb-system/x".into(),
                node: "a".into(),
                service: ("frigate".into(), "frigate".into()),
            }),
            t(0),
        );
        f
    }

    fn probe(at: i64, ok: bool) -> ClusterEvent {
        ClusterEvent::Probe(crate::model::probe::ProbeResult {
            service: ("frigate".into(), "frigate".into()),
            endpoint: "127.77.0.12:5000".into(),
            check: "tcp".into(),
            ok,
            latency: Duration::from_millis(3),
            error: (!ok).then(|| "no answer within 800ms".into()),
            at: t(at),
        })
    }

    /// Over Wi-Fi one probe in ten times out: the gate's input never says
    /// the service is failing, and the panel counts the flaps.
    #[test]
    fn a_probe_failing_once_in_ten_keeps_probe_ok_and_counts_flaps() {
        let mut f = fleet();
        let mut o = Observer::new(None, 2);
        let gated = ["frigate/frigate".to_string()];
        for i in 1..=100 {
            f.apply(probe(i, i % 10 != 5), t(i));
            let obs = o.observe(&f, &gated, t(i));
            assert_eq!(obs.services[0].probe_ok, Some(true), "halt-worthy at {i}");
            assert!(obs.api_reachable);
        }
        let svc = &f.services[&("frigate".to_string(), "frigate".to_string())];
        assert_eq!(svc.flaps(), 10);
    }

    /// Three failures in a row: the service is failing for the gate, and the
    /// timeline says so.
    #[test]
    fn three_failures_in_a_row_fail_the_probe_and_reach_the_timeline() {
        let mut f = fleet();
        let mut o = Observer::new(None, 2);
        let gated = ["frigate/frigate".to_string()];
        f.apply(probe(1, true), t(1));
        for i in 2..=3 {
            f.apply(probe(i, false), t(i));
            assert_eq!(o.observe(&f, &gated, t(i)).services[0].probe_ok, Some(true));
        }
        f.apply(probe(4, false), t(4));
        assert_eq!(
            o.observe(&f, &gated, t(4)).services[0].probe_ok,
            Some(false)
        );
        let last = f.timeline.entries().last().unwrap();
        assert_eq!(
            last.text,
            "probe DOWN (tcp 127.77.0.12:5000): no answer within 800ms (3 failures in a row)"
        );
    }

    /// One missed renewal is an alert (LATE on screen), not a halt: the gate
    /// fails at the plan's count of missed renewals in a row.
    #[test]
    fn the_gate_fails_after_the_planned_count_of_missed_renewals() {
        let f = fleet();
        let mut o = Observer::new(None, 2);
        assert!(!o.observe(&f, &[], t(10)).nodes[0].heartbeat_late);
        // 40 s lease: renew every 10 s; LATE after ~11.4 s, a second
        // renewal missed after ~21.8 s.
        assert!(!o.observe(&f, &[], t(12)).nodes[0].heartbeat_late);
        assert!(o.observe(&f, &[], t(22)).nodes[0].heartbeat_late);
        let mut eager = Observer::new(None, 1);
        assert!(eager.observe(&f, &[], t(12)).nodes[0].heartbeat_late);
        let mut strict = Observer::new(Some(SignedDuration::from_secs(5)), 2);
        assert!(strict.observe(&f, &[], t(6)).nodes[0].heartbeat_late);
    }

    /// A kubelet whose clock runs 30 s behind renews on time: by the time it
    /// writes it would be late at once; by when it is seen, never.
    #[test]
    fn a_node_clock_30s_behind_is_never_late_and_a_stopped_one_is() {
        let mut f = fleet();
        let mut o = Observer::new(None, 1);
        for i in 1..=30 {
            f.apply(lease("a", i * 10 - 30), t(i * 10));
            f.tick(t(i * 10 + 9));
            assert!(
                !o.observe(&f, &[], t(i * 10 + 9)).nodes[0].heartbeat_late,
                "at {i}"
            );
        }
        assert_eq!(f.nodes["a"].heartbeat, Some(Heartbeat::Fresh));
        assert_eq!(
            f.nodes["a"].seen.skew(),
            Some(SignedDuration::from_secs(30))
        );
        // It stops renewing after t(300): LATE within 12 s of that renewal.
        f.tick(t(311));
        assert_eq!(f.nodes["a"].heartbeat, Some(Heartbeat::Fresh));
        f.tick(t(312));
        assert_eq!(f.nodes["a"].heartbeat, Some(Heartbeat::Late));
        assert!(o.observe(&f, &[], t(312)).nodes[0].heartbeat_late);
    }

    #[test]
    fn a_flap_between_two_looks_is_counted_and_services_carry_announcer_and_probe() {
        let mut f = fleet();
        let mut o = Observer::new(None, 2);
        for at in [-1, 0, 1] {
            f.apply(probe(at, false), t(1));
        }
        let gated = ["frigate/frigate".to_string(), "x/missing".to_string()];
        let first = o.observe(&f, &gated, t(1));
        assert_eq!(first.nodes[0].ready_transitions, 0);
        assert!(first.api_reachable);
        assert_eq!(first.services[0].announced_by.as_deref(), Some("a"));
        assert_eq!(first.services[0].probe_ok, Some(false));
        assert_eq!(first.services[1].announced_by, None);

        f.apply(node("a", Tri::Unknown), t(2));
        assert_eq!(o.observe(&f, &gated, t(2)).nodes[0].ready_transitions, 1);
        f.apply(node("a", Tri::True), t(3));
        let healed = o.observe(&f, &gated, t(3));
        assert!(healed.nodes[0].ready);
        assert_eq!(healed.nodes[0].ready_transitions, 1);
    }

    /// Every failure pauses the engine's judgements (its data is stale);
    /// a 410 is a resync, not a failure.
    #[test]
    fn any_api_failure_pauses_judgement_but_a_resync_does_not() {
        use crate::model::fleet::{ApiFailure, ApiFailureKind};
        let mut o = Observer::new(None, 2);
        let reachable = |kind| {
            let mut f = fleet();
            f.apply(ClusterEvent::ApiError(ApiFailure::new(kind, "x")), t(1));
            Observer::new(None, 2).observe(&f, &[], t(1)).api_reachable
        };
        assert!(!reachable(ApiFailureKind::Unreachable));
        assert!(!reachable(ApiFailureKind::Unauthorized));
        assert!(!reachable(ApiFailureKind::Forbidden));
        assert!(!reachable(ApiFailureKind::ServerError));
        assert!(reachable(ApiFailureKind::Resync));
        let mut f = fleet();
        f.apply(ClusterEvent::ApiSilent("no answer".into()), t(1));
        assert!(!o.observe(&f, &[], t(1)).api_reachable);
    }
}
