//! Rollback: which units go back and in what order, and whether binaries
//! alone are enough or the datastore must be restored from the snapshot.
//!
//! A patch rollback within a minor goes back node by node, as the upgrade
//! came. Servers on embedded etcd that crossed a minor cannot: K3s v1.34
//! ships etcd 3.6 where v1.33 ships 3.5, and a member restarted on the
//! older etcd cannot rejoin peers that moved on, so a rolling downgrade can
//! lose quorum. K3s documents that rollback as cluster-wide (docs.k3s.io
//! upgrades/roll-back and backup-restore): stop every server, reinstall the
//! old version without starting it, restore the snapshot with
//! `--cluster-reset --cluster-reset-restore-path` on one server, clear the
//! database on the others, start them. The engine refuses the rolling path
//! there and spells out that procedure.

use super::*;
use crate::upgrade::method;
use crate::upgrade::plan::{Datastore, Role};

impl Engine {
    pub(super) fn check_rollback(&self) -> Result<(), String> {
        self.check_can_go_back()?;
        if self.needs_datastore_restore() {
            return Err(format!(
                "servers on embedded etcd crossed a minor ({}): a server restarted on the older etcd cannot rejoin its peers, so a rolling downgrade could lose quorum; the rollback is cluster-wide, and the cockpit carries it out only when asked to (headless: --allow-cluster-restore; cockpit: B, then confirm the restore): {}",
                self.crossed_servers().join(", "),
                self.restore_procedure().join(" ; ")
            ));
        }
        Ok(())
    }

    /// The state checks shared by a rolling rollback and the restore.
    pub(super) fn check_can_go_back(&self) -> Result<(), String> {
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

    /// Servers whose install crossed a minor, in plan order.
    fn crossed_servers(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for u in &self.units[..self.rollback_from] {
            if u.role == Role::Server
                && u.install_started
                && !u.from.same_minor(&u.to)
                && !out.contains(&u.node)
            {
                out.push(u.node.clone());
            }
        }
        out
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

    /// The restore procedure with the exact commands, when one is needed.
    pub fn restore_command(&self) -> Option<String> {
        self.needs_datastore_restore()
            .then(|| self.restore_procedure().join(" ; "))
    }

    /// The snapshot file to restore, as exact as the record allows.
    fn snapshot_path(&self) -> Option<(String, String)> {
        let s = self.snapshot.as_ref()?;
        Some(self.restore_snapshot_file().unwrap_or_else(|_| {
            let path = format!(
                "{SNAPSHOT_DIR}/{}-{}-<timestamp> (see `k3s etcd-snapshot ls`)",
                s.name, s.node
            );
            (s.node.clone(), path)
        }))
    }

    /// The cluster-wide restore of the snapshot taken before the first
    /// server was touched, step by step, every server and command named.
    pub fn restore_procedure(&self) -> Vec<String> {
        let servers = self.servers();
        let names: Vec<&str> = servers.iter().map(|n| n.name.as_str()).collect();
        let Some((first, path)) = self.snapshot_path() else {
            return vec![
                "no etcd snapshot was recorded by this rollout: restore from your own backup (k3s server --cluster-reset --cluster-reset-restore-path=<snapshot>)".into(),
            ];
        };
        let reinstall: Vec<String> = servers.iter().map(|n| reinstall_step(n)).collect();
        let others: Vec<&str> = names.iter().copied().filter(|n| *n != first).collect();
        let mut steps = vec![
            format!(
                "1. stop K3s on every server ({}): systemctl stop k3s && k3s-killall.sh",
                names.join(", ")
            ),
            format!(
                "2. put the old version back without starting it: {}",
                reinstall.join("; ")
            ),
            format!(
                "3. on {first}: k3s server --cluster-reset --cluster-reset-restore-path={path}"
            ),
            format!("4. on {first}: systemctl start k3s"),
        ];
        if !others.is_empty() {
            steps.push(format!(
                "5. on {}: rm -rf /var/lib/rancher/k3s/server/db && systemctl start k3s",
                others.join(", ")
            ));
        }
        steps.push(format!(
            "{}. then roll the agents back one by one (their binaries only)",
            steps.len() + 1
        ));
        steps
    }
}

/// How `n` gets its old version back without starting K3s: the binary the
/// binary method kept for that version, checked and renamed into place;
/// else the install script.
fn reinstall_step(n: &NodeConfig) -> String {
    let v = &n.version;
    if n.kept_binaries {
        let kept = method::kept_binary(method::K3S_BIN, &v.to_string());
        let bin = method::K3S_BIN;
        return format!(
            "{}: check that `{kept} --version` says {v}, then cp -p {kept} {bin}.cockpit-new && mv -f {bin}.cockpit-new {bin} (the binary kept when {v} was replaced; nothing to download)",
            n.name
        );
    }
    format!(
        "{}: curl -sfL https://get.k3s.io | INSTALL_K3S_VERSION={v} INSTALL_K3S_SKIP_START=true INSTALL_K3S_EXEC=server sh -",
        n.name
    )
}

/// The snapshot's file name from what `k3s etcd-snapshot save` printed: its
/// log line reads `Snapshot NAME saved.` (plain, or inside logrus's
/// `msg="..."`); anything else is taken as the name itself.
pub(super) fn saved_name(output: &str) -> &str {
    output
        .lines()
        .find_map(|l| {
            let rest = &l[l.find("Snapshot ")? + "Snapshot ".len()..];
            let name = rest.split(" saved").next()?.trim();
            (!name.is_empty() && !name.contains(' ')).then_some(name)
        })
        .unwrap_or(output.trim())
}
