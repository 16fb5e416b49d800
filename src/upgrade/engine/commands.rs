//! Operator commands: whether each would be accepted now (and why not), and
//! what accepting it changes.

use super::*;
use crate::upgrade::plan::Role;

impl Engine {
    /// Whether `cmd` would be accepted now, and if not, why. Pure; the TUI
    /// can use it to explain a key before asking for confirmation.
    pub fn check_command(&self, cmd: &Command) -> Result<(), String> {
        use RolloutState as S;
        let state = &self.state;
        let over = || Err(format!("the rollout is {}", state.label()));
        let halted = || Err("halted: use retry, resume, skip, rollback or abort".to_string());
        if let Some(verdict) = self.check_during_restore(cmd) {
            return verdict;
        }
        match cmd {
            Command::Start | Command::Canary => match state {
                // Start with nothing to do is fine: it ends at once in Done.
                S::Idle if *cmd == Command::Canary && self.current().is_none() => {
                    Err("nothing to upgrade".into())
                }
                S::Idle => Ok(()),
                S::Paused => Err("paused: use resume".into()),
                S::Halted(_) => halted(),
                s if s.is_terminal() => over(),
                _ => Err(format!("already {}", state.label())),
            },
            Command::ConfirmCanary => match state {
                S::CanaryAwaitingConfirm => Ok(()),
                _ => Err("no canary is waiting for confirmation".into()),
            },
            Command::Pause => match state {
                S::Running | S::RollingBack => Ok(()),
                S::Pausing => Err("a pause is already pending".into()),
                S::Paused => Err("already paused".into()),
                S::Idle => Err("not started".into()),
                S::CanaryAwaitingConfirm => {
                    Err("already waiting for the canary to be confirmed".into())
                }
                S::Halted(_) => Err("already halted".into()),
                S::Verifying => {
                    Err("the final stability watch cannot pause: end it early, or abort".into())
                }
                _ => over(),
            },
            Command::Resume => match state {
                S::Paused | S::Pausing => Ok(()),
                S::Halted(h) => self.check_resume_after_halt(h),
                S::Idle => Err("not started: use start, canary or step".into()),
                S::Running | S::RollingBack | S::Verifying => Err("already running".into()),
                S::CanaryAwaitingConfirm => Err("use confirm canary".into()),
                _ => over(),
            },
            Command::Step => match state {
                S::Idle if self.current().is_none() => Err("nothing to upgrade".into()),
                S::Idle | S::Paused => Ok(()),
                S::Running | S::RollingBack if self.stop_after_unit => {
                    Err("a step is already under way".into())
                }
                S::Running | S::RollingBack => Ok(()),
                S::Pausing => Err("a pause is already pending".into()),
                S::Halted(_) => halted(),
                S::CanaryAwaitingConfirm => Err("confirm the canary first".into()),
                S::Verifying => Err("every node is done; the final stability watch runs".into()),
                _ => over(),
            },
            Command::Abort => match state {
                S::Aborted => Err("already aborted".into()),
                S::Done | S::RolledBack => over(),
                _ => Ok(()),
            },
            Command::Retry => match state {
                S::Halted(_) => Ok(()),
                _ => Err("nothing to retry: the rollout is not halted".into()),
            },
            Command::Skip(node) => self.check_skip(node),
            Command::Rollback => self.check_rollback(),
            Command::ClusterRestore => self.check_cluster_restore(),
            Command::EndFinalWatch => match state {
                S::Verifying => Ok(()),
                _ => Err("no final stability watch is running".into()),
            },
        }
    }

    /// Resuming a halted rollout re-runs the halted phase, so it is only
    /// accepted once the gate that halted it is healthy again.
    fn check_resume_after_halt(&self, h: &Halt) -> Result<(), String> {
        let obs = self
            .reachable_obs()
            .ok_or("no fresh observation of the cluster yet; wait for the API")?;
        let current = self
            .current()
            .map(|i| &self.units[i])
            .filter(|u| u.phase != Phase::Pending)
            .map(|u| u.node.as_str());
        let problems = self.gate_problems(obs, current, None);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "the gate is still unhealthy: {} (halted for: {})",
                problems.join("; "),
                h.reason
            ))
        }
    }

    pub(super) fn check_skip(&self, node: &str) -> Result<(), String> {
        if self.state.is_terminal() {
            return Err(format!("the rollout is {}", self.state.label()));
        }
        if !self.config.nodes.iter().any(|n| n.name == node) {
            return Err(format!("{node} is not part of this rollout"));
        }
        if self.skipped.contains(node) {
            return Err(format!("{node} is already skipped"));
        }
        let range = self.range();
        let remaining: Vec<usize> = range
            .clone()
            .filter(|&i| self.units[i].node == node && !self.units[i].finished())
            .collect();
        if remaining.is_empty() {
            return Err(format!("{node} has nothing left to do"));
        }
        if let Some(i) = self.current()
            && self.units[i].node == node
            && self.units[i].in_progress()
            && !matches!(
                self.state,
                RolloutState::Halted(_) | RolloutState::Paused | RolloutState::Idle
            )
        {
            return Err(format!(
                "{node} is being worked on; wait for a halt or pause it first"
            ));
        }
        if self.direction == Direction::Forward
            && let Some(cfg) = self.config.nodes.iter().find(|n| n.name == node)
            && cfg.role == Role::Server
            && let Some(target) = self.config.path.last()
        {
            let stays = remaining
                .first()
                .map(|&i| &self.units[i])
                .map(|u| if u.install_started { &u.to } else { &u.from });
            if let Some(stays) = stays
                && stays.minor + 1 < target.minor
            {
                return Err(format!(
                    "skipping server {node} would leave it on {stays}, more than one minor version behind {target}"
                ));
            }
        }
        Ok(())
    }

    pub(super) fn apply(&mut self, cmd: Command, now: Timestamp) {
        match cmd {
            Command::Start => {
                self.state = RolloutState::Running;
                self.event(now, EventKind::Info, "rollout started".into());
            }
            Command::Canary => {
                if let Some(i) = self.current() {
                    self.units[i].canary = true;
                    let node = self.units[i].node.clone();
                    self.event(
                        now,
                        EventKind::Info,
                        format!(
                            "canary started on {node}: soak {}, then wait for confirmation",
                            format_signed(self.config.timings.canary_soak)
                        ),
                    );
                }
                self.state = RolloutState::Running;
            }
            Command::ConfirmCanary => {
                self.state = RolloutState::Running;
                self.event(now, EventKind::Info, "canary confirmed: continuing".into());
            }
            Command::Pause => {
                self.state = RolloutState::Pausing;
                self.event(
                    now,
                    EventKind::Info,
                    "pause requested: takes effect at the next safe point".into(),
                );
            }
            Command::Resume => {
                let from_halt = matches!(self.state, RolloutState::Halted(_));
                self.state = self.active_state();
                if from_halt {
                    self.rewind_for_retry();
                }
                self.event(now, EventKind::Info, "resumed".into());
            }
            Command::Step => {
                self.stop_after_unit = true;
                self.state = self.active_state();
                self.event(
                    now,
                    EventKind::Info,
                    "step: one more node, then pause".into(),
                );
            }
            Command::Abort => self.abort(now),
            Command::Retry => {
                self.state = self.active_state();
                self.rewind_for_retry();
                self.event(now, EventKind::Info, "retrying the failed phase".into());
            }
            Command::Skip(node) => self.skip(&node, now),
            Command::Rollback => {
                self.final_watch = None;
                self.start_rollback(now);
            }
            Command::ClusterRestore => self.start_cluster_restore(now),
            Command::EndFinalWatch => self.end_final_watch(now),
        }
    }

    fn abort(&mut self, now: Timestamp) {
        self.final_watch = None;
        self.state = RolloutState::Aborted;
        self.stop_after_unit = false;
        self.note = None;
        let mut text = "ABORTED by the operator".to_string();
        if let Some((id, node, phase)) = self.in_flight() {
            text.push_str(&format!(
                "; {phase} of {node} (action #{id}) is still running"
            ));
        }
        let cordoned: Vec<String> = self
            .units
            .iter()
            .filter(|u| u.cordoned && !u.finished())
            .map(|u| u.node.clone())
            .collect();
        if !cordoned.is_empty() {
            text.push_str(&format!("; left cordoned: {}", cordoned.join(", ")));
        }
        self.event(now, EventKind::Warn, text);
    }

    fn end_final_watch(&mut self, now: Timestamp) {
        if let Some(watch) = self.final_watch.take() {
            self.event(
                now,
                EventKind::Warn,
                format!(
                    "final stability watch ended early by the operator after {} of {}",
                    format_signed(watch.elapsed(now)),
                    format_signed(watch.window)
                ),
            );
        }
        self.finish(now);
    }

    /// Retry resumes from the earliest phase that re-verifies: a failed
    /// version wait re-installs (waiting again would change nothing), a
    /// failed soak waits for Ready again and then soaks a full window.
    pub(super) fn rewind_for_retry(&mut self) {
        if let Some(i) = self.current() {
            let u = &mut self.units[i];
            u.phase = match u.phase {
                Phase::WaitVersion => Phase::Install,
                Phase::Soak => Phase::WaitReady,
                p => p,
            };
            u.begun = None;
            u.deadline = None;
            u.soak = None;
        }
    }

    pub(super) fn skip(&mut self, node: &str, now: Timestamp) {
        let range = self.range();
        let current = self.current();
        let mut was_current = false;
        let mut cordoned = false;
        for i in range {
            let u = &mut self.units[i];
            if u.node == node && !u.finished() {
                was_current |= Some(i) == current && u.in_progress();
                cordoned |= u.cordoned;
                u.phase = Phase::Skipped;
                u.begun = None;
                u.deadline = None;
                u.soak = None;
            }
        }
        self.skipped.insert(node.to_string());
        let mut text =
            format!("{node} skipped for the rest of the rollout; the gate no longer judges it");
        if cordoned {
            text.push_str(&format!("; {node} is left cordoned"));
        }
        self.event(now, EventKind::Warn, text);
        if was_current && matches!(self.state, RolloutState::Halted(_)) {
            self.state = RolloutState::Paused;
            self.event(
                now,
                EventKind::Info,
                "paused: resume to continue with the next node".into(),
            );
        }
    }
}
