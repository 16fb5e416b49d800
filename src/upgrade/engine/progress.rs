//! Moving units through their phases: beginning a phase (and the action it
//! needs), completing it, the boundary checks before a phase (pause, the
//! gate before a new node, `pause_between`), and finishing the rollout.

use super::unit::Soak;
use super::*;
use crate::upgrade::plan::{Datastore, Role};
use std::collections::BTreeMap;

impl Engine {
    pub(super) fn snapshot_name(now: Timestamp) -> String {
        format!("k3s-cockpit-{}", now.strftime("%Y%m%d-%H%M%S"))
    }

    pub(super) fn needs_snapshot(&self, i: usize) -> bool {
        self.direction == Direction::Forward
            && self.config.datastore == Datastore::Etcd
            && self.snapshot.is_none()
            && self.units[i].role == Role::Server
    }

    /// Why installing unit `i` now would take a server across more than
    /// one minor, judged from the version its kubelet reports. The plan
    /// and a resume check this too; this is the last word before the
    /// install, since an API server may only move one minor at a time.
    fn skips_a_minor(&self, i: usize) -> Option<String> {
        let u = &self.units[i];
        if u.phase != Phase::Install || u.role != Role::Server {
            return None;
        }
        let seen = self.obs.as_ref()?.nodes.iter().find(|n| n.name == u.node)?;
        let running: K3sVersion = seen.version.parse().ok()?;
        let too_far = u.to.major != running.major || u.to.minor > running.minor + 1;
        too_far.then(|| {
            format!(
                "{} runs {running}: installing {} would skip a minor; refusing",
                u.node, u.to
            )
        })
    }

    pub(super) fn begin(&mut self, i: usize, now: Timestamp, out: &mut Vec<Action>) {
        if let Some(reason) = self.skips_a_minor(i) {
            self.halt(Some(i), reason, now);
            return;
        }
        if self.units[i].phase == Phase::Install && self.units[i].args_before.is_none() {
            self.units[i].args_before = self.observed_args(&self.units[i].node);
        }
        let timeout = self.timeout_for(self.units[i].phase);
        let id = self.next_id;
        let snapshot_name = Self::snapshot_name(now);
        let soak = (self.units[i].phase == Phase::Soak).then(|| self.new_soak(i, now));
        let u = &mut self.units[i];
        u.begun = Some(now);
        u.deadline = timeout.map(|t| now + t);
        if soak.is_some() {
            u.soak = soak;
        }
        let mut action = u.start_action(id, &snapshot_name);
        if let Some(Action::Install { reinstate, .. }) = action.as_mut() {
            *reinstate = self.direction == Direction::Rollback;
        }
        let (node, phase, to) = (u.node.clone(), u.phase, u.to.clone());
        let detail = match phase {
            Phase::Handoff => self.begin_handoff(i),
            Phase::Soak => self.units[i].soak.as_ref().map_or(String::new(), |s| {
                format!(" for {}", format_signed(s.window))
            }),
            Phase::Install => format!(" {to}"),
            _ => String::new(),
        };
        if let Some(a) = action {
            self.units[i].inflight = Some(id);
            self.next_id += 1;
            if phase == Phase::Snapshot {
                self.snapshot_requested = Some(snapshot_name);
            }
            out.push(a);
        }
        self.event(
            now,
            EventKind::Action,
            format!("{node} ({to}): {phase}{detail}"),
        );
    }

    /// A soak window starting now. The flap baseline is every node's
    /// transition count at this moment, so only flaps during the soak count;
    /// if the API is unreachable right now, the window starts blind.
    fn new_soak(&self, i: usize, now: Timestamp) -> Soak {
        let timings = &self.config.timings;
        let window = if self.units[i].canary {
            timings.canary_soak
        } else {
            timings.soak
        };
        self.soak_from(window, now)
    }

    /// A soak window starting `now`, with every node's flap count as its
    /// baseline.
    fn soak_from(&self, window: SignedDuration, now: Timestamp) -> Soak {
        let obs_reachable = self.obs.as_ref().is_some_and(|o| o.api_reachable);
        let baseline: BTreeMap<String, u32> = self
            .obs
            .iter()
            .flat_map(|o| o.nodes.iter())
            .map(|n| (n.name.clone(), n.ready_transitions))
            .collect();
        Soak {
            window,
            started: now,
            excluded: SignedDuration::ZERO,
            unreachable_since: (!obs_reachable).then_some(now),
            baseline,
        }
    }

    /// Every unit is finished. Going forward, the whole cluster is watched
    /// for `final_soak` before the rollout is called done: the incident's
    /// kubelets failed minutes after they looked Ready, and the last node
    /// would otherwise get only its own soak.
    fn finish_or_watch(&mut self, now: Timestamp) {
        let window = self.config.timings.final_soak;
        if self.direction == Direction::Rollback || window <= SignedDuration::ZERO {
            self.finish(now);
            return;
        }
        if self.final_watch.is_none() {
            self.final_watch = Some(self.soak_from(window, now));
            self.state = RolloutState::Verifying;
            self.stop_after_unit = false;
            self.note = None;
            self.event(
                now,
                EventKind::Info,
                format!(
                    "every node is done: watching the whole cluster for {} before calling it done",
                    format_signed(window)
                ),
            );
        }
        self.judge_final_watch(now);
    }

    /// Halts on any gate problem during the final watch; done once it
    /// held for the whole window.
    fn judge_final_watch(&mut self, now: Timestamp) {
        let (Some(obs), Some(watch)) = (self.reachable_obs(), self.final_watch.as_ref()) else {
            return;
        };
        let problems = self.gate_problems(obs, None, Some(&watch.baseline));
        let (elapsed, window) = (watch.elapsed(now), watch.window);
        if !problems.is_empty() {
            self.final_watch = None;
            let reason = format!(
                "final stability watch failed after {} of {}: {}",
                format_signed(elapsed),
                format_signed(window),
                problems.join("; ")
            );
            self.halt(None, reason, now);
        } else if elapsed >= window {
            self.final_watch = None;
            self.finish(now);
        }
    }

    pub(super) fn complete_phase(&mut self, i: usize, now: Timestamp) {
        let u = &mut self.units[i];
        u.phase = u.phase.next();
        u.begun = None;
        u.deadline = None;
        u.inflight = None;
        u.soak = None;
        if u.phase == Phase::Handoff {
            u.handoff = None;
        }
        // A restart after an interrupted install is verified like one.
        u.reverify &= u.phase == Phase::WaitVersion;
        if u.phase != Phase::Done {
            return;
        }
        u.error = None;
        let (node, to, canary) = (u.node.clone(), u.to.clone(), u.canary);
        self.event(now, EventKind::Info, format!("{node} is done: {to}"));
        let pause = self.config.timings.pause_between;
        self.not_before = (pause > SignedDuration::ZERO).then(|| now + pause);
        if self.seek().is_none() {
            return; // advance() finishes the rollout
        }
        if canary && self.direction == Direction::Forward {
            self.state = RolloutState::CanaryAwaitingConfirm;
            self.event(
                now,
                EventKind::Info,
                format!("canary {node} passed its soak: confirm to continue"),
            );
        } else if self.stop_after_unit {
            self.stop_after_unit = false;
            self.state = RolloutState::Paused;
            self.event(now, EventKind::Info, "paused after one step".into());
        }
    }

    pub(super) fn advance(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        // The servers' restore comes before any agent goes back.
        if !self.advance_restore(now, out) {
            self.advance_units(now, out);
        }
        self.release_labels(now, out);
    }

    fn advance_units(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        // Every iteration either returns or moves a unit forward by a phase,
        // so the bound is never reached in practice.
        for _ in 0..1000 {
            if !self.is_active() {
                return;
            }
            let Some(i) = self.seek() else {
                self.finish_or_watch(now);
                return;
            };
            let moved = if self.units[i].begun.is_none() {
                self.at_boundary(i, now, out)
            } else {
                self.judge(i, now)
            };
            if !moved {
                return;
            }
        }
    }

    pub(super) fn finish(&mut self, now: Timestamp) {
        self.note = None;
        self.stop_after_unit = false;
        match self.direction {
            Direction::Forward => {
                self.state = RolloutState::Done;
                let target = self
                    .config
                    .path
                    .last()
                    .map_or(String::new(), |t| format!(": {t}"));
                self.event(now, EventKind::Info, format!("rollout done{target}"));
            }
            Direction::Rollback => {
                self.state = RolloutState::RolledBack;
                self.event(now, EventKind::Info, "rollback done".into());
            }
        }
    }

    /// Before a phase begins: pause if asked and safe; before a new node,
    /// apply the global gate. Returns true if the phase began.
    pub(super) fn at_boundary(&mut self, i: usize, now: Timestamp, out: &mut Vec<Action>) -> bool {
        let phase = self.units[i].phase;
        if self.state == RolloutState::Pausing && phase.safe_to_pause_before() {
            self.state = RolloutState::Paused;
            self.note = None;
            let node = self.units[i].node.clone();
            self.event(
                now,
                EventKind::Info,
                format!("paused before {phase} of {node}"),
            );
            return false;
        }
        if phase == Phase::Pending {
            if let Some(t) = self.not_before
                && now < t
            {
                self.set_note(Some(format!(
                    "waiting until {t} before the next node (pause_between)"
                )));
                return false;
            }
            let Some(obs) = self.reachable_obs() else {
                self.set_note(Some(
                    "waiting for a fresh observation of the cluster".into(),
                ));
                return false;
            };
            let problems = self.gate_problems(obs, None, None);
            if !problems.is_empty() {
                let node = self.units[i].node.clone();
                let reason = format!("gate before starting {node}: {}", problems.join("; "));
                self.halt(Some(i), reason, now);
                return false;
            }
            self.not_before = None;
            self.set_note(None);
            self.units[i].phase = if self.needs_snapshot(i) {
                Phase::Snapshot
            } else {
                Phase::Handoff
            };
        }
        if matches!(phase, Phase::Handoff | Phase::Return | Phase::Pending) {
            if self.units[i].phase == Phase::Handoff && self.reachable_obs().is_none() {
                self.set_note(Some(
                    "waiting for a fresh observation of the cluster".into(),
                ));
                return false;
            }
            if self.pass_over(i, now) {
                return true;
            }
        }
        self.begin(i, now, out);
        true
    }
}
