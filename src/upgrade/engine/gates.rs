//! Health judgements: what is wrong with a node or service, whether a phase
//! in progress passed, failed or timed out, and halting for the operator.

use super::*;
use std::collections::BTreeMap;

impl Engine {
    /// Nodes the gate does not judge: skipped ones, and during rollback the
    /// ones still waiting to be rolled back (they are why we roll back).
    pub(super) fn exempt(&self, node: &str) -> bool {
        if self.skipped.contains(node) {
            return true;
        }
        self.direction == Direction::Rollback
            && self.units[self.rollback_from..]
                .iter()
                .any(|u| u.node == node && !u.finished())
    }

    /// What is wrong with one node, if anything.
    pub(super) fn node_problem(
        obs: &Observation,
        node: &str,
        baseline: Option<&BTreeMap<String, u32>>,
    ) -> Option<String> {
        let Some(n) = obs.nodes.iter().find(|n| n.name == node) else {
            return Some(format!("node {node} is missing from the cluster"));
        };
        if !n.ready {
            return Some(format!("node {node} is NotReady"));
        }
        if n.heartbeat_late {
            return Some(format!("node {node} heartbeat is late"));
        }
        if let Some(before) = baseline.and_then(|b| b.get(node))
            && n.ready_transitions > *before
        {
            return Some(format!(
                "node {node} went NotReady and back ({} flap(s))",
                n.ready_transitions - before
            ));
        }
        None
    }

    /// Gate problems, current node first. `current` is always judged; other
    /// nodes and services only with the global gate. Services are not gated
    /// during rollback: they may be down because of the nodes rolled back.
    pub(super) fn gate_problems(
        &self,
        obs: &Observation,
        current: Option<&str>,
        baseline: Option<&BTreeMap<String, u32>>,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(c) = current
            && let Some(p) = Self::node_problem(obs, c, baseline)
        {
            problems.push(p);
        }
        if !self.config.gates.global_gate {
            return problems;
        }
        let mut names: Vec<&str> = self.config.nodes.iter().map(|n| n.name.as_str()).collect();
        for n in &obs.nodes {
            if !names.contains(&n.name.as_str()) {
                names.push(&n.name);
            }
        }
        for name in names {
            if Some(name) == current || self.exempt(name) {
                continue;
            }
            if let Some(p) = Self::node_problem(obs, name, baseline) {
                problems.push(p);
            }
        }
        if self.direction == Direction::Forward {
            for s in &self.config.gates.services {
                match obs.services.iter().find(|o| &o.name == s) {
                    None => problems.push(format!("service {s} is not observed")),
                    Some(o) if o.announced_by.is_none() && !o.announcer_unknown => {
                        problems.push(format!("service {s} is not announced by any node"))
                    }
                    Some(o) if o.probe_ok == Some(false) => {
                        problems.push(format!("service {s} probe is failing"))
                    }
                    Some(_) => {}
                }
            }
        }
        problems
    }

    pub(super) fn halt(&mut self, i: Option<usize>, reason: String, now: Timestamp) {
        let (node, phase) = match i {
            Some(i) => {
                let u = &mut self.units[i];
                u.begun = None;
                u.deadline = None;
                u.inflight = None;
                u.soak = None;
                u.error = Some(reason.clone());
                (Some(u.node.clone()), Some(u.phase))
            }
            None => (None, None),
        };
        self.stop_after_unit = false;
        self.note = None;
        self.event(now, EventKind::Halt, format!("HALTED: {reason}"));
        self.state = RolloutState::Halted(Halt {
            reason,
            node,
            phase,
        });
    }

    pub(super) fn observed_args(&self, node: &str) -> Option<Vec<String>> {
        let obs = self.obs.as_ref()?;
        obs.nodes.iter().find(|n| n.name == node)?.node_args.clone()
    }

    /// Why unit `i`'s node now runs K3s with other arguments than before
    /// its install, if it does.
    fn args_changed(&self, i: usize) -> Option<String> {
        let u = &self.units[i];
        let before = u.args_before.as_ref()?;
        let after = self.observed_args(&u.node)?;
        let what = super::flags::changed(before, &after)?;
        Some(format!(
            "{}'s K3s arguments changed in the upgrade to {}: {what} (k3s.io/node-args before: {}; after: {}). Restore them on the node (unit ExecStart or config.yaml), restart K3s, then retry",
            u.node,
            u.to,
            before.join(" "),
            after.join(" ")
        ))
    }

    /// Judges a phase in progress. Returns true if it completed.
    pub(super) fn judge(&mut self, i: usize, now: Timestamp) -> bool {
        let handed_off = self.units[i].phase == Phase::Handoff && self.handoff_progress(i, now);
        let u = &self.units[i];
        let phase = u.phase;
        let node = u.node.clone();
        let obs = self.reachable_obs();
        let observed = obs.and_then(|o| o.nodes.iter().find(|n| n.name == node));
        let passed = match phase {
            Phase::WaitVersion => observed
                .and_then(|n| n.version.parse::<K3sVersion>().ok())
                .is_some_and(|v| v == u.to),
            Phase::WaitReady => {
                let ready = observed.is_some_and(|n| n.ready && !n.heartbeat_late);
                if ready && let Some(reason) = self.args_changed(i) {
                    self.halt(Some(i), reason, now);
                    return false;
                }
                ready
            }
            Phase::Handoff => handed_off,
            Phase::Soak => {
                let (Some(obs), Some(soak)) = (obs, u.soak.as_ref()) else {
                    return false;
                };
                let problems = self.gate_problems(obs, Some(&node), Some(&soak.baseline));
                if !problems.is_empty() {
                    let reason = format!(
                        "soak of {node} ({}) failed after {} of {}: {}",
                        u.to,
                        format_signed(soak.elapsed(now)),
                        format_signed(soak.window),
                        problems.join("; ")
                    );
                    self.halt(Some(i), reason, now);
                    return false;
                }
                soak.elapsed(now) >= soak.window
            }
            _ => false,
        };
        if passed {
            self.complete_phase(i, now);
            return true;
        }
        self.judge_deadline(i, now)
    }

    /// A phase past its deadline: a version that never showed after an
    /// interrupted install installs again; anything else halts, saying
    /// what was still missing. Returns true if the unit moved.
    fn judge_deadline(&mut self, i: usize, now: Timestamp) -> bool {
        let u = &self.units[i];
        let (phase, node) = (u.phase, u.node.clone());
        let (Some(deadline), Some(begun)) = (u.deadline, u.begun) else {
            return false;
        };
        if now < deadline {
            return false;
        }
        if phase == Phase::WaitVersion && u.reverify {
            let u = &mut self.units[i];
            u.phase = Phase::Install;
            u.begun = None;
            u.deadline = None;
            u.reverify = false;
            let to = u.to.clone();
            self.event(
                now,
                EventKind::Warn,
                format!("{node} does not report {to} after the restart: installing again"),
            );
            return true;
        }
        let mut reason = format!(
            "{phase} of {node} did not finish within {}",
            format_signed(deadline.duration_since(begun))
        );
        if phase == Phase::Handoff {
            let (moving, probes) = self.handoff_problems(i);
            let all: Vec<String> = moving.into_iter().chain(probes).collect();
            if !all.is_empty() {
                reason.push_str(&format!(": {}", all.join("; ")));
            }
        }
        let observed = self
            .reachable_obs()
            .and_then(|o| o.nodes.iter().find(|n| n.name == node));
        if phase == Phase::WaitVersion
            && let Some(n) = observed
        {
            reason.push_str(&format!(
                " (kubelet reports {}, expected {})",
                n.version, self.units[i].to
            ));
        }
        self.halt(Some(i), reason, now);
        false
    }
}
