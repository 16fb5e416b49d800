//! Checks shown before anything changes: the cluster must be healthy to
//! start, and single points of failure are named before a drain hits them.

use std::collections::BTreeSet;

use super::drain_report::DrainReport;
use crate::model::fleet::Fleet;
use crate::upgrade::{Observation, ResolvedPlan, ServiceObservation};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// The rollout must not start.
    Block,
    Warn,
    Ok,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub level: Level,
    pub text: String,
}

pub(super) fn finding(level: Level, text: String) -> Finding {
    Finding { level, text }
}

/// The findings for `plan` on the cluster as `fleet` sees it now.
pub fn run(fleet: &Fleet, plan: &ResolvedPlan, now: jiff::Timestamp) -> Vec<Finding> {
    let obs =
        super::observe::Observer::new(plan.timings.max_heartbeat_age, plan.gates.missed_renewals)
            .observe(fleet, &plan.gates.services, now);
    check(fleet, plan, &obs)
}

pub fn check(fleet: &Fleet, plan: &ResolvedPlan, obs: &Observation) -> Vec<Finding> {
    let mut out = Vec::new();
    check_api_and_nodes(plan, obs, &mut out);
    check_speakers(fleet, obs, &mut out);
    super::handoff_check::check(fleet, plan, obs, &mut out);
    // Announced services outside the gate are observed for the handoff
    // only; the gate's own services are judged here.
    let gated = obs
        .services
        .iter()
        .filter(|s| plan.gates.services.contains(&s.name));
    for s in gated {
        check_service(fleet, plan, s, &mut out);
    }
    out
}

/// The drain report of every node the plan drains: its warn and block
/// lines, judged before anything is cordoned.
pub fn drain_findings(
    reports: &Result<Vec<DrainReport>, String>,
    plan: &ResolvedPlan,
) -> Vec<Finding> {
    match reports {
        Ok(reports) => super::drain_report::describe(reports, &plan.drain)
            .into_iter()
            .map(|(level, text)| {
                let level = match level {
                    crate::upgrade::plan::Level::Warn => Level::Warn,
                    crate::upgrade::plan::Level::Block => Level::Block,
                };
                finding(level, text)
            })
            .collect(),
        Err(e) => vec![finding(
            Level::Warn,
            format!("no drain report: {e}; each drain still checks its node before the cordon"),
        )],
    }
}

/// The API server answers, every node is Ready with a live heartbeat, and
/// every node the plan names exists.
fn check_api_and_nodes(plan: &ResolvedPlan, obs: &Observation, out: &mut Vec<Finding>) {
    if !obs.api_reachable {
        out.push(finding(
            Level::Block,
            "the API server is not reachable".into(),
        ));
    }
    for n in &obs.nodes {
        if !n.ready {
            out.push(finding(
                Level::Block,
                format!("node {} is not Ready", n.name),
            ));
        } else if n.heartbeat_late {
            out.push(finding(
                Level::Block,
                format!("node {}: kubelet heartbeat is late", n.name),
            ));
        }
    }
    for p in &plan.nodes {
        if !obs.nodes.iter().any(|n| n.name == p.name) {
            out.push(finding(
                Level::Block,
                format!("node {} of the plan is not in the cluster", p.name),
            ));
        }
    }
}

/// A ready MetalLB speaker on every node: announcer gates rely on them, and
/// a node without one cannot announce an address.
fn check_speakers(fleet: &Fleet, obs: &Observation, out: &mut Vec<Finding>) {
    let speakers: BTreeSet<&str> = fleet
        .pods()
        .filter(|p| p.is_speaker() && p.ready)
        .map(|p| p.node.as_str())
        .collect();
    if speakers.is_empty() {
        out.push(finding(
            Level::Warn,
            "no ready MetalLB speaker pods seen (component=speaker or app.kubernetes.io/component=speaker); announcer gates rely on them"
                .into(),
        ));
        return;
    }
    let missing: Vec<&str> = obs
        .nodes
        .iter()
        .map(|n| n.name.as_str())
        .filter(|n| !speakers.contains(n))
        .collect();
    if !missing.is_empty() {
        out.push(finding(
            Level::Warn,
            format!("no ready MetalLB speaker on {}", missing.join(", ")),
        ));
    }
}

/// A gated service is announced and answers its probe, and does not live
/// on a single node the plan will drain.
fn check_service(
    fleet: &Fleet,
    plan: &ResolvedPlan,
    s: &ServiceObservation,
    out: &mut Vec<Finding>,
) {
    match (&s.announced_by, s.probe_ok) {
        (None, _) if s.announcer_unknown => out.push(finding(
            Level::Warn,
            format!(
                "service {}: announcer unknown ({}); the probes are the gate's evidence",
                s.name,
                fleet_unknown(fleet, &s.name)
            ),
        )),
        (None, _) => out.push(finding(
            Level::Block,
            format!("service {} is not announced by any MetalLB speaker", s.name),
        )),
        (Some(_), Some(false)) => out.push(finding(
            Level::Block,
            format!("service {}: probe failing", s.name),
        )),
        (Some(node), _) => out.push(finding(
            Level::Ok,
            format!("service {} announced from {node}", s.name),
        )),
    }
    if let Some(node) = single_home(fleet, &s.name)
        && plan.node(&node).is_some()
    {
        out.push(finding(
            Level::Warn,
            format!(
                "service {}: every ready pod runs on {node}, which will be drained (a single point of failure; consider pod anti-affinity and 2 replicas)",
                s.name
            ),
        ));
    }
}

/// Why the fleet cannot name the service's announcer.
fn fleet_unknown(fleet: &Fleet, service: &str) -> String {
    service
        .split_once('/')
        .and_then(|(ns, name)| fleet.services.get(&(ns.to_string(), name.to_string())))
        .and_then(|s| s.unknown.clone())
        .unwrap_or_else(|| "no recent event".into())
}

/// The one node hosting all ready pods of a service, if exactly one does.
fn single_home(fleet: &Fleet, service: &str) -> Option<String> {
    let (ns, name) = service.split_once('/')?;
    let svc = fleet.services.get(&(ns.to_string(), name.to_string()))?;
    if svc.info.selector.is_empty() {
        return None;
    }
    let nodes: BTreeSet<&str> = fleet
        .pods()
        .filter(|p| {
            p.ready
                && p.namespace == ns
                && svc
                    .info
                    .selector
                    .iter()
                    .all(|(k, v)| p.labels.get(k) == Some(v))
        })
        .map(|p| p.node.as_str())
        .collect();
    match nodes.len() {
        1 => nodes.into_iter().next().map(str::to_string),
        _ => None,
    }
}
