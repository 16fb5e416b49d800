//! The cluster-wide restore, carried out step by step: what K3s documents
//! for rolling back servers on embedded etcd across a minor (docs.k3s.io
//! upgrades/roll-back and cli/etcd-snapshot "Cluster Reset and Restore").
//!
//! K3s's own code fixes the order (k3s-io/k3s pkg/etcd/etcd.go, `Reset`):
//! `--cluster-reset --cluster-reset-restore-path` restores the snapshot on
//! a stopped server, makes it a new one-member cluster, touches
//! `db/reset-flag` and exits, asking to start K3s normally and to delete
//! `server/db` on every other server so each joins as a new member. So:
//! stop every server; put the old version back without starting it;
//! reset on the snapshot's server; clear the db on the others; start the
//! snapshot's server and wait for Ready; then start the others one by one.
//! Agents that were upgraded go back rolling afterwards.
//!
//! Every step is one action (or one wait), recorded through the journal
//! like any other, so a restart resumes at the step that was running.

use super::rollback::saved_name;
use super::*;
use crate::upgrade::plan::Role;
use serde::{Deserialize, Serialize};

/// One step of the restore.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestoreStep {
    Stop(String),
    /// The old version back on the node, K3s not started.
    Reinstall(String, K3sVersion),
    /// `--cluster-reset` with the snapshot file on its server.
    Reset(String, String),
    ClearDb(String),
    Start(String),
    /// Observed: the node Ready on its old version.
    WaitReady(String, K3sVersion),
    /// The snapshot predates the cordon; uncordon is idempotent.
    Uncordon(String),
}

impl RestoreStep {
    pub fn node(&self) -> &str {
        match self {
            RestoreStep::Stop(n)
            | RestoreStep::Reinstall(n, _)
            | RestoreStep::Reset(n, _)
            | RestoreStep::ClearDb(n)
            | RestoreStep::Start(n)
            | RestoreStep::WaitReady(n, _)
            | RestoreStep::Uncordon(n) => n,
        }
    }

    /// What the step does, for the timeline.
    pub fn describe(&self) -> String {
        match self {
            RestoreStep::Stop(n) => format!("{n}: stop K3s"),
            RestoreStep::Reinstall(n, v) => format!("{n}: put {v} back without starting it"),
            RestoreStep::Reset(n, p) => {
                format!("{n}: k3s server --cluster-reset --cluster-reset-restore-path={p}")
            }
            RestoreStep::ClearDb(n) => format!("{n}: rm -rf {DB_DIR}"),
            RestoreStep::Start(n) => format!("{n}: start K3s"),
            RestoreStep::WaitReady(n, v) => {
                format!("{n}: wait until Ready on {v}, heartbeating for a soak")
            }
            RestoreStep::Uncordon(n) => format!("{n}: uncordon"),
        }
    }

    fn action(&self, id: u64) -> Option<Action> {
        let node = self.node().to_string();
        Some(match self {
            RestoreStep::Stop(_) => Action::StopK3s { id, node },
            RestoreStep::Reinstall(_, v) => Action::Install {
                id,
                node,
                version: v.clone(),
                reinstate: true,
            },
            RestoreStep::Reset(_, p) => Action::ClusterReset {
                id,
                node,
                snapshot: p.clone(),
            },
            RestoreStep::ClearDb(_) => Action::ClearDb { id, node },
            RestoreStep::Start(_) => Action::StartK3s { id, node },
            RestoreStep::Uncordon(_) => Action::Uncordon { id, node },
            RestoreStep::WaitReady(..) => return None,
        })
    }
}

/// K3s's datastore directory on a server.
pub const DB_DIR: &str = "/var/lib/rancher/k3s/server/db";

/// The restore's progress: the steps, the current one, its action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Restore {
    pub(super) steps: Vec<RestoreStep>,
    pub(super) cursor: usize,
    pub(super) inflight: Option<u64>,
    pub(super) begun: Option<Timestamp>,
    pub(super) deadline: Option<Timestamp>,
    /// Since when the awaited server has looked healthy without a break.
    pub(super) healthy_since: Option<Timestamp>,
}

impl Restore {
    pub(super) fn done(&self) -> bool {
        self.cursor >= self.steps.len()
    }

    fn clear_step(&mut self) {
        self.inflight = None;
        self.begun = None;
        self.deadline = None;
        self.healthy_since = None;
    }
}

impl Engine {
    pub(super) fn check_cluster_restore(&self) -> Result<(), String> {
        if self.restore.is_some() {
            return Err("the cluster restore has already begun".into());
        }
        if !self.needs_datastore_restore() {
            return Err(
                "no server on embedded etcd crossed a minor: use rollback (node by node)".into(),
            );
        }
        self.check_can_go_back()?;
        self.restore_snapshot_file().map(|_| ())
    }

    /// The snapshot's server and exact file, or why the restore cannot name
    /// them: K3s needs the real file name, which it printed when saving.
    pub(super) fn restore_snapshot_file(&self) -> Result<(String, String), String> {
        let s = self.snapshot.as_ref().ok_or(
            "this rollout recorded no etcd snapshot: restore from your own backup by hand",
        )?;
        let reported = s.reported.as_deref().map(saved_name).ok_or(format!(
            "K3s did not report the snapshot's file name on {}: find it with `k3s etcd-snapshot ls` and restore by hand",
            s.node
        ))?;
        let path = if reported.starts_with('/') {
            reported.to_string()
        } else {
            format!("{SNAPSHOT_DIR}/{reported}")
        };
        Ok((s.node.clone(), path))
    }

    /// The restore the cockpit would carry out, numbered, for the operator
    /// to read before confirming it (or why it cannot be carried out).
    /// Empty when no restore is needed.
    pub fn restore_plan(&self) -> Vec<String> {
        if !self.needs_datastore_restore() {
            return Vec::new();
        }
        match self.restore_snapshot_file() {
            Ok((first, path)) => self
                .restore_steps(&first, &path)
                .iter()
                .enumerate()
                .map(|(i, s)| format!("{}. {}", i + 1, s.describe()))
                .collect(),
            Err(why) => vec![why],
        }
    }

    /// The running restore's current step, for the rollout panel.
    pub fn restore_progress(&self) -> Option<super::view::RestoreProgress> {
        let r = self.restore.as_ref().filter(|r| !r.done())?;
        Some(super::view::RestoreProgress {
            step: r.cursor + 1,
            total: r.steps.len(),
            text: r.steps[r.cursor].describe(),
            begun: r.begun,
        })
    }

    /// The plan's servers, in plan order.
    pub(super) fn servers(&self) -> Vec<&NodeConfig> {
        self.config
            .nodes
            .iter()
            .filter(|n| n.role == Role::Server)
            .collect()
    }

    /// The steps for every server of the plan, snapshot's server first.
    fn restore_steps(&self, first: &str, path: &str) -> Vec<RestoreStep> {
        let servers = self.servers();
        let mut order: Vec<&NodeConfig> = servers
            .iter()
            .copied()
            .filter(|n| n.name == first)
            .collect();
        order.extend(servers.iter().copied().filter(|n| n.name != first));
        let mut steps: Vec<RestoreStep> = order
            .iter()
            .map(|n| RestoreStep::Stop(n.name.clone()))
            .collect();
        // A server whose install never began still has its old binary.
        let installed = |name: &str| {
            self.units[..self.rollback_from]
                .iter()
                .any(|u| u.node == name && u.install_started)
        };
        steps.extend(
            order
                .iter()
                .filter(|n| installed(&n.name))
                .map(|n| RestoreStep::Reinstall(n.name.clone(), n.version.clone())),
        );
        steps.push(RestoreStep::Reset(first.to_string(), path.to_string()));
        steps.extend(
            order[1..]
                .iter()
                .map(|n| RestoreStep::ClearDb(n.name.clone())),
        );
        for n in &order {
            steps.push(RestoreStep::Start(n.name.clone()));
            steps.push(RestoreStep::WaitReady(n.name.clone(), n.version.clone()));
        }
        let touched = |name: &str| {
            self.units[..self.rollback_from]
                .iter()
                .any(|u| u.node == name && (u.cordoned || u.install_started))
        };
        steps.extend(
            order
                .iter()
                .filter(|n| touched(&n.name))
                .map(|n| RestoreStep::Uncordon(n.name.clone())),
        );
        steps
    }

    pub(super) fn start_cluster_restore(&mut self, now: Timestamp) {
        let Ok((first, path)) = self.restore_snapshot_file() else {
            return; // check_cluster_restore refused it already
        };
        let steps = self.restore_steps(&first, &path);
        // Servers are restored as a whole; only agents go back rolling.
        let agents: Vec<Unit> = self
            .rollback_units()
            .into_iter()
            .filter(|u| u.role == Role::Agent)
            .collect();
        self.units.truncate(self.rollback_from);
        self.units.extend(agents);
        self.final_watch = None;
        self.direction = Direction::Rollback;
        self.cursor = self.rollback_from;
        self.stop_after_unit = false;
        self.not_before = None;
        self.state = RolloutState::RollingBack;
        let list: Vec<String> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{}. {}", i + 1, s.describe()))
            .collect();
        self.event(
            now,
            EventKind::Warn,
            format!("CLUSTER RESTORE of {path}: {}", list.join("; ")),
        );
        self.restore = Some(Restore {
            steps,
            cursor: 0,
            inflight: None,
            begun: None,
            deadline: None,
            healthy_since: None,
        });
    }

    /// Moves the restore on; true while it still holds the rollout (the
    /// agents' units wait for it).
    pub(super) fn advance_restore(&mut self, now: Timestamp, out: &mut Vec<Action>) -> bool {
        for _ in 0..1000 {
            let Some(r) = self.restore.as_ref() else {
                return false;
            };
            if r.done() {
                return false;
            }
            if !self.is_active() {
                return true;
            }
            if r.inflight.is_some() {
                return true;
            }
            let step = r.steps[r.cursor].clone();
            let begun = r.begun;
            if begun.is_none() {
                self.begin_restore_step(&step, now, out);
                continue;
            }
            if let RestoreStep::WaitReady(node, version) = &step {
                if !self.judge_ready(node, version, now) {
                    return true;
                }
                self.restore_step_done(now);
                continue;
            }
            return true;
        }
        true
    }

    fn begin_restore_step(&mut self, step: &RestoreStep, now: Timestamp, out: &mut Vec<Action>) {
        let id = self.next_id;
        let action = step.action(id);
        let ready_timeout = self.config.timings.ready_timeout;
        let Some(r) = self.restore.as_mut() else {
            return;
        };
        r.begun = Some(now);
        let n = r.cursor + 1;
        let total = r.steps.len();
        if let Some(a) = action {
            r.inflight = Some(id);
            self.next_id += 1;
            out.push(a);
        } else {
            r.deadline = Some(now + ready_timeout);
        }
        self.event(
            now,
            EventKind::Action,
            format!("restore {n}/{total}: {}", step.describe()),
        );
    }

    /// Whether `node` has been Ready on `version`, with a live heartbeat,
    /// for a whole soak; halts when it is not healthy past the deadline.
    ///
    /// One look is not enough: the restored datastore holds every node as
    /// the snapshot saw it, Ready included, and a stopped kubelet's node
    /// stays Ready until the lifecycle controller's grace period runs out.
    /// A server that only looks Ready would let the next one start against
    /// a cluster that is not there.
    fn judge_ready(&mut self, node: &str, version: &K3sVersion, now: Timestamp) -> bool {
        let healthy = self.reachable_obs().is_some_and(|o| {
            o.nodes.iter().any(|n| {
                n.name == node && n.ready && !n.heartbeat_late && n.version == version.to_string()
            })
        });
        let soak = self.config.timings.soak;
        let Some(r) = self.restore.as_mut() else {
            return false;
        };
        if healthy {
            let since = *r.healthy_since.get_or_insert(now);
            return now.duration_since(since) >= soak;
        }
        r.healthy_since = None;
        let late = self
            .restore
            .as_ref()
            .and_then(|r| r.deadline)
            .is_some_and(|d| now >= d);
        if late {
            let seen = self
                .obs
                .as_ref()
                .and_then(|o| o.nodes.iter().find(|n| n.name == node))
                .map_or("not seen".to_string(), |n| {
                    format!("ready={} version={}", n.ready, n.version)
                });
            self.halt_restore(
                format!("restore: {node} not Ready on {version} in time ({seen}); see `journalctl -u k3s` on {node}"),
                now,
            );
        }
        false
    }

    fn restore_step_done(&mut self, now: Timestamp) {
        let Some(r) = self.restore.as_mut() else {
            return;
        };
        r.clear_step();
        r.cursor += 1;
        if r.done() {
            self.event(
                now,
                EventKind::Info,
                "cluster restore done: every server runs its old version on the snapshot's data"
                    .into(),
            );
        }
    }

    fn halt_restore(&mut self, reason: String, now: Timestamp) {
        if let Some(r) = self.restore.as_mut() {
            r.clear_step();
        }
        self.halt(None, reason, now);
    }

    /// An action of the restore ended; false if `id` is not the restore's.
    pub(super) fn restore_finished(
        &mut self,
        id: u64,
        result: &Result<(), String>,
        now: Timestamp,
    ) -> bool {
        let Some(r) = self.restore.as_mut() else {
            return false;
        };
        if r.inflight != Some(id) {
            return false;
        }
        let step = r.steps[r.cursor].describe();
        match result {
            Ok(()) if self.is_active() => self.restore_step_done(now),
            Ok(()) => {
                // Stopped meanwhile: the step is done, the next waits.
                self.restore_step_done(now);
                self.event(
                    now,
                    EventKind::Warn,
                    format!("restore step done after the rollout stopped: {step}"),
                );
            }
            Err(e) => self.halt_restore(format!("restore step failed: {step}: {e}"), now),
        }
        true
    }

    /// After a restart of the cockpit: a step that was running is issued
    /// again. Each is idempotent or re-checked by its executor (the reset
    /// looks for K3s's reset-flag first); a wait starts over.
    pub(super) fn reattach_restore(&mut self, now: Timestamp) -> bool {
        let Some(r) = self.restore.as_mut().filter(|r| !r.done()) else {
            return false;
        };
        let step = r.steps[r.cursor].describe();
        let running = r.begun.is_some();
        r.clear_step();
        let text = if running {
            format!("cockpit restarted during the cluster restore: issuing again: {step}")
        } else {
            format!("cockpit restarted during the cluster restore; next: {step}")
        };
        self.event(now, EventKind::Warn, text);
        true
    }

    /// Commands that mean something else while the restore runs: it cannot
    /// pause or skip a node with servers stopped, and resuming after a
    /// halt re-runs the halted step whatever the gate says (the gate sees
    /// stopped servers). None: judge `cmd` as usual.
    pub(super) fn check_during_restore(&self, cmd: &Command) -> Option<Result<(), String>> {
        if !self.restore_in_progress() {
            return None;
        }
        match cmd {
            Command::Pause | Command::Step => Some(Err(
                "the cluster restore runs to its end once begun (servers are stopped); abort stops it"
                    .into(),
            )),
            Command::Skip(_) => Some(Err(
                "no node can be skipped during the cluster restore".into(),
            )),
            Command::Resume if matches!(self.state, RolloutState::Halted(_)) => Some(Ok(())),
            _ => None,
        }
    }

    /// The restore's running action, with the unit phase closest to it.
    pub(super) fn restore_in_flight(&self) -> Option<(u64, &str, Phase)> {
        let r = self.restore.as_ref()?;
        let id = r.inflight?;
        let step = r.steps.get(r.cursor)?;
        let phase = match step {
            RestoreStep::Reinstall(..) => Phase::Install,
            RestoreStep::Uncordon(_) => Phase::Uncordon,
            _ => Phase::Restart,
        };
        Some((id, step.node(), phase))
    }

    /// The restore has begun and not ended.
    pub fn restore_in_progress(&self) -> bool {
        self.restore.as_ref().is_some_and(|r| !r.done())
    }
}
