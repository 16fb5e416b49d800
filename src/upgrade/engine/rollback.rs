//! Rollback: which units go back and in what order, and whether binaries
//! alone are enough or the datastore must be restored from the snapshot.

use super::*;
use crate::upgrade::plan::{Datastore, Role};

impl Engine {
    pub(super) fn check_rollback(&self) -> Result<(), String> {
        use RolloutState as S;
        if self.direction == Direction::Rollback {
            return Err("already rolling back".into());
        }
        match &self.state {
            S::Idle => return Err("nothing to roll back: the rollout has not started".into()),
            S::Running | S::Pausing => {
                return Err(
                    "pause (or abort) first; rollback starts from a stopped rollout".into(),
                );
            }
            _ => {}
        }
        if let Some((id, node, phase)) = self.in_flight() {
            return Err(format!(
                "wait for {phase} of {node} (action #{id}) to finish"
            ));
        }
        // A node that was only labelled for the handoff is changed too.
        if self.rollback_units().is_empty() && self.labelled.is_empty() {
            return Err("no node has been changed".into());
        }
        Ok(())
    }

    /// Rollback units, newest change first: every unit whose install started
    /// goes back to its `from` version; a node that was only cordoned is
    /// uncordoned.
    pub(super) fn rollback_units(&self) -> Vec<Unit> {
        let mut out = Vec::new();
        for u in self.units[..self.rollback_from].iter().rev() {
            if u.install_started {
                let mut r = u.clone();
                r.from = u.to.clone();
                r.to = u.from.clone();
                r.phase = Phase::Pending;
                out.push(r);
            } else if u.cordoned && !u.finished() {
                let mut r = u.clone();
                r.to = u.from.clone();
                r.phase = Phase::Uncordon;
                out.push(r);
            } else {
                continue;
            }
            if let Some(r) = out.last_mut() {
                r.begun = None;
                r.deadline = None;
                r.inflight = None;
                r.soak = None;
                r.cordoned = false;
                r.install_started = false;
                r.reverify = false;
                r.canary = false;
                r.error = None;
                r.handoff = None;
            }
        }
        out
    }

    pub(super) fn start_rollback(&mut self, now: Timestamp) {
        let units = self.rollback_units();
        let list: Vec<String> = units
            .iter()
            .map(|u| {
                if u.phase == Phase::Uncordon {
                    format!("{} (uncordon only)", u.node)
                } else {
                    format!("{} {} -> {}", u.node, u.from, u.to)
                }
            })
            .collect();
        self.units.truncate(self.rollback_from);
        self.units.extend(units);
        self.direction = Direction::Rollback;
        self.cursor = self.rollback_from;
        self.stop_after_unit = false;
        self.not_before = None;
        self.state = RolloutState::RollingBack;
        self.event(
            now,
            EventKind::Warn,
            format!("ROLLBACK: {}", list.join(", ")),
        );
        if let Some(cmd) = self.restore_command() {
            self.event(
                now,
                EventKind::Warn,
                format!("datastore restore needed: {cmd}"),
            );
        }
    }

    /// True if a server crossed a minor version on embedded etcd: binaries
    /// alone cannot go back, the datastore must be restored from the
    /// snapshot taken before the first server was touched.
    pub fn needs_datastore_restore(&self) -> bool {
        self.config.datastore == Datastore::Etcd
            && self.units[..self.rollback_from]
                .iter()
                .any(|u| u.role == Role::Server && u.install_started && !u.from.same_minor(&u.to))
    }

    /// The restore procedure with the exact command, when one is needed.
    pub fn restore_command(&self) -> Option<String> {
        if !self.needs_datastore_restore() {
            return None;
        }
        Some(match &self.snapshot {
            Some(s) => {
                let path = match &s.reported {
                    Some(r) if r.starts_with('/') => r.clone(),
                    Some(r) => format!("{SNAPSHOT_DIR}/{r}"),
                    None => format!("{SNAPSHOT_DIR}/{}-<node>-<timestamp> (see `k3s etcd-snapshot ls`)", s.name),
                };
                format!(
                    "stop k3s on every server (systemctl stop k3s), then on {node} with the old binary: k3s server --cluster-reset --cluster-reset-restore-path={path} ; start k3s on {node}, then on the other servers after removing /var/lib/rancher/k3s/server/db",
                    node = s.node
                )
            }
            None => "no etcd snapshot was recorded by this rollout: restore from your own backup (k3s server --cluster-reset --cluster-reset-restore-path=<snapshot>)".to_string(),
        })
    }
}
