//! Embedded etcd membership across K3s minors. K3s v1.34 ships etcd 3.6
//! where v1.33 ships 3.5 (K3s release notes). Once every member runs 3.6
//! the cluster's version moves to 3.6 and never goes back by itself; a
//! server restarted on an older etcd then cannot rejoin: K3s exits, systemd
//! starts it again, and it fails again, until the datastore is restored
//! cluster-wide (K3s docs: upgrades/roll-back).

//!
//! The restore (k3s-io/k3s pkg/etcd/etcd.go, `Reset`): `--cluster-reset
//! --cluster-reset-restore-path` on a stopped server restores the snapshot
//! as a new one-member cluster and exits. Members of the old cluster then
//! cannot rejoin with their old data; with `server/db` removed they join
//! the new cluster as new members, once one of its members runs.

use super::{Kubelet, Sim, SimHandle};
use crate::lab::scenario::Role;

/// The etcd minor K3s `version` ships ("v1.34.3+k3s1" → 6).
pub fn etcd_minor(version: &str) -> u32 {
    let k8s_minor = version
        .trim_start_matches('v')
        .split('.')
        .nth(1)
        .and_then(|m| m.parse::<u32>().ok())
        .unwrap_or(0);
    if k8s_minor >= 34 { 6 } else { 5 }
}

impl Sim {
    /// The cluster's etcd minor: the lowest any server last ran, never
    /// lower than it was (a server that failed to join keeps its last).
    pub(super) fn ratchet_etcd(&mut self) {
        let lowest = self
            .nodes
            .iter()
            .filter(|n| n.role == Role::Server)
            .map(|n| etcd_minor(&n.version))
            .min();
        if let Some(lowest) = lowest {
            self.etcd_cluster_minor = self.etcd_cluster_minor.max(lowest);
        }
    }

    /// Why the server `node`, starting on its installed version, cannot
    /// rejoin etcd; None if it can (agents have no etcd).
    pub(super) fn etcd_refusal(&self, node: usize) -> Option<String> {
        let n = &self.nodes[node];
        let installed = n.host.binary_version().unwrap_or_else(|| n.version.clone());
        let mine = etcd_minor(&installed);
        (n.role == Role::Server && mine < self.etcd_cluster_minor).then(|| {
            format!(
                "etcd 3.{mine} (K3s {installed}) cannot rejoin the cluster's etcd 3.{}: its peers moved on; restore the snapshot on every server (k3s server --cluster-reset --cluster-reset-restore-path=...)",
                self.etcd_cluster_minor
            )
        })
    }

    /// Why the server `node` cannot start its etcd member now, checking
    /// its data's cluster first, then the etcd version; None if it can.
    /// Joining as a new member makes it one.
    pub(super) fn etcd_join(&mut self, node: usize) -> Option<String> {
        let n = &self.nodes[node];
        if n.role != Role::Server || !n.host.etcd {
            return None;
        }
        let generation = self.etcd_generation;
        match n.host.etcd_member_of {
            Some(g) if g != generation => {
                return Some(format!(
                    "this server is not a member of the etcd cluster: its data under {DB} belongs to the cluster before the reset; remove {DB} and start K3s again to join as a new member"
                ));
            }
            None if !self.live_member(node) => {
                return Some(
                    "no member of the etcd cluster is running to join: start the server that was reset first"
                        .into(),
                );
            }
            _ => {}
        }
        if let Some(why) = self.etcd_refusal(node) {
            return Some(why);
        }
        let host = &mut self.nodes[node].host;
        host.etcd_member_of = Some(generation);
        host.reset_flag = false;
        None
    }

    fn live_member(&self, except: usize) -> bool {
        self.nodes.iter().enumerate().any(|(i, n)| {
            i != except
                && n.kubelet == Kubelet::Running
                && n.host.etcd_member_of == Some(self.etcd_generation)
        })
    }

    /// `k3s server --cluster-reset --cluster-reset-restore-path=PATH`: the
    /// refusals K3s gives, else the snapshot's data becomes the datastore
    /// of a one-member cluster on the installed binary's etcd.
    fn cluster_reset(&mut self, node: usize, path: &str) -> Result<String, String> {
        let n = &self.nodes[node];
        let fatal = |m: String| format!("level=fatal msg=\"{m}\"\n");
        if n.role != Role::Server || !n.host.etcd {
            return Err(fatal(
                "--cluster-reset: this node runs no embedded etcd".into(),
            ));
        }
        if matches!(n.kubelet, Kubelet::Running | Kubelet::Down) {
            return Err(fatal(
                "listen tcp 127.0.0.1:2380: bind: address already in use (stop K3s first)".into(),
            ));
        }
        if n.host.reset_flag {
            return Err(fatal(format!(
                "cluster-reset was successfully performed previously; start K3s normally, or delete {DB}/reset-flag to reset again"
            )));
        }
        let Some(data) = n.host.files.get(path) else {
            return Err(fatal(format!("etcd: snapshot path does not exist: {path}")));
        };
        let data = String::from_utf8_lossy(data).into_owned();
        let Some(version) = n.host.binary_version() else {
            return Err("sh: 1: k3s: not found\n".to_string());
        };
        self.etcd_generation += 1;
        self.etcd_cluster_minor = etcd_minor(&version);
        let name = n.name.clone();
        let host = &mut self.nodes[node].host;
        host.etcd_member_of = Some(self.etcd_generation);
        host.reset_flag = true;
        let message = format!("datastore restored from {path}: {data}");
        self.record(format!("{name}: {message}"));
        self.emit_event(
            ("Node", "", &name),
            "Normal",
            "LabDatastoreRestored",
            &message,
            "k3s",
        );
        Ok("level=info msg=\"Managed etcd cluster membership has been reset, restart without --cluster-reset flag now. Backup and delete ${datadir}/server/db on each peer etcd server and rejoin the nodes\"\n".into())
    }

    /// `rm -rf .../server/db`: the member's data and its snapshots go.
    fn clear_db(&mut self, node: usize) {
        let host = &mut self.nodes[node].host;
        host.etcd_member_of = None;
        host.reset_flag = false;
        host.snapshots.clear();
        host.files.retain(|f, _| !f.starts_with(DB));
    }

    /// `systemctl stop k3s`: the kubelet stops heartbeating.
    fn stop_k3s(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        n.generation += 1;
        n.kubelet = Kubelet::Stopped;
        n.dataplane_up = false;
        let name = n.name.clone();
        self.record(format!("{name}: k3s stopped"));
        self.sync_serving();
    }

    /// What a snapshot holds in the lab: the version each node's kubelet
    /// ran when it was taken.
    pub(super) fn snapshot_data(&self) -> String {
        let versions: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("{}={}", n.name, n.version))
            .collect();
        format!("node versions at snapshot time: {}", versions.join(", "))
    }

    /// K3s exits on the failed join; the kubelet never starts.
    pub(super) fn fail_etcd_join(&mut self, node: usize, why: &str) {
        self.nodes[node].kubelet = Kubelet::Hung;
        self.nodes[node].generation += 1;
        let name = self.nodes[node].name.clone();
        self.record(format!("{name}: K3s failed to rejoin etcd: {why}"));
        self.emit_event(
            ("Node", "", &name),
            "Warning",
            "EtcdMemberRejoinFailed",
            why,
            "k3s",
        );
    }
}

/// K3s's datastore directory on a server.
pub const DB: &str = "/var/lib/rancher/k3s/server/db";

impl SimHandle {
    pub fn cluster_reset(&self, node: &str, path: &str) -> Result<String, String> {
        let mut sim = self.lock();
        let i = sim.index(node)?;
        sim.cluster_reset(i, path)
    }

    pub fn clear_db(&self, node: &str) -> Result<(), String> {
        let mut sim = self.lock();
        let i = sim.index(node)?;
        sim.clear_db(i);
        Ok(())
    }

    pub fn stop_k3s(&self, node: &str) -> Result<(), String> {
        {
            let mut sim = self.lock();
            let i = sim.index(node)?;
            sim.stop_k3s(i);
        }
        self.poke();
        Ok(())
    }

    /// `systemctl start`: a running unit is left alone.
    pub async fn start_k3s(&self, node: &str) -> Result<(), String> {
        if self.kubelet_state(node)? != Kubelet::Stopped {
            return Ok(());
        }
        self.restart(node)?;
        self.started(node).await
    }

    /// The snapshot a `k3s etcd-snapshot save` writes now.
    pub fn snapshot_data(&self) -> String {
        self.lock().snapshot_data()
    }

    pub fn set_node_log(&self, file: std::fs::File) {
        self.lock().node_log = Some(file);
    }

    /// Appends a command a node's shell starts to the node log.
    pub fn log_node_command(&self, node: &str, command: &str) {
        use std::io::Write;
        let mut sim = self.lock();
        if let Some(f) = sim.node_log.as_mut() {
            let line = serde_json::json!({"node": node, "command": command});
            let _ = writeln!(f, "{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{run_for, start};
    use super::*;
    use crate::lab::store::Kind;
    use std::time::Duration;

    fn go_to(handle: &super::super::SimHandle, node: usize, version: &str) {
        let mut sim = handle.lock();
        let h = &mut sim.nodes[node].host;
        let asset = crate::lab::host::asset_for(&h.arch).map_or("k3s", |(_, a)| a);
        h.files.insert(
            crate::lab::host::BIN.to_string(),
            crate::lab::host::fake_binary(version, asset),
        );
        sim.restart_kubelet(node);
    }

    fn rejoin_failures(store: &crate::lab::store::Store, node: &str) -> Vec<String> {
        store
            .list(Kind::Event, None)
            .1
            .iter()
            .filter(|e| {
                e["reason"] == "EtcdMemberRejoinFailed" && e["involvedObject"]["name"] == node
            })
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// The old rolling downgrade, forced: after every server moved to
    /// v1.34 (etcd 3.6), one restarted on v1.33 never comes back, and an
    /// event says why; a restart does not help.
    #[tokio::test(start_paused = true)]
    async fn a_server_downgraded_below_its_peers_etcd_fails_to_rejoin() {
        let (store, handle) = start("");
        for node in 0..3 {
            go_to(&handle, node, "v1.34.3+k3s1");
        }
        run_for(&handle, Duration::from_secs(60), |_| {}).await;
        assert!(
            handle
                .lock()
                .nodes
                .iter()
                .all(|n| n.kubelet == Kubelet::Running)
        );
        go_to(&handle, 0, "v1.33.6+k3s1");
        run_for(&handle, Duration::from_secs(120), |_| {}).await;
        let name = handle.lock().nodes[0].name.clone();
        assert_eq!(handle.lock().nodes[0].kubelet, Kubelet::Hung);
        let node = store.get(Kind::Node, "", &name).unwrap();
        let ready = node["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()["status"]
            .clone();
        assert_eq!(ready, "Unknown", "{node}");
        let why = rejoin_failures(&store, &name);
        assert_eq!(why.len(), 1, "{why:?}");
        assert!(
            why[0].contains("etcd 3.5 (K3s v1.33.6+k3s1) cannot rejoin the cluster's etcd 3.6"),
            "{}",
            why[0]
        );
        handle.restart(&name).unwrap();
        run_for(&handle, Duration::from_secs(60), |_| {}).await;
        assert_eq!(handle.lock().nodes[0].kubelet, Kubelet::Hung);
        assert_eq!(rejoin_failures(&store, &name).len(), 2);
    }

    /// While a peer still runs etcd 3.5 the cluster is on 3.5: the one
    /// server that moved can come back.
    #[tokio::test(start_paused = true)]
    async fn a_server_downgraded_before_its_peers_moved_rejoins() {
        let (store, handle) = start("");
        go_to(&handle, 0, "v1.34.3+k3s1");
        run_for(&handle, Duration::from_secs(30), |_| {}).await;
        go_to(&handle, 0, "v1.33.6+k3s1");
        run_for(&handle, Duration::from_secs(30), |_| {}).await;
        let name = handle.lock().nodes[0].name.clone();
        assert_eq!(handle.lock().nodes[0].kubelet, Kubelet::Running);
        assert!(rejoin_failures(&store, &name).is_empty());
    }

    fn set_binary(handle: &super::super::SimHandle, node: usize, version: &str) {
        let mut sim = handle.lock();
        let h = &mut sim.nodes[node].host;
        let asset = crate::lab::host::asset_for(&h.arch).map_or("k3s", |(_, a)| a);
        h.files.insert(
            crate::lab::host::BIN.to_string(),
            crate::lab::host::fake_binary(version, asset),
        );
    }

    /// K3s's restore, step by step: the reset is refused while K3s runs,
    /// for a missing snapshot and a second time; a server that kept its
    /// old data cannot rejoin the reset cluster until its db is removed;
    /// then every server runs the old version.
    #[tokio::test(start_paused = true)]
    async fn the_restore_brings_the_cluster_back_and_stale_members_are_refused() {
        let (store, handle) = start("");
        let names: Vec<String> = handle.lock().nodes.iter().map(|n| n.name.clone()).collect();
        let path = format!("{DB}/snapshots/pre");
        let data = handle.snapshot_data();
        handle
            .with_host(&names[0], |h| {
                h.files.insert(path.clone(), data.clone().into_bytes())
            })
            .unwrap();
        for node in 0..3 {
            go_to(&handle, node, "v1.34.3+k3s1");
        }
        run_for(&handle, Duration::from_secs(60), |_| {}).await;
        let running = handle.cluster_reset(&names[0], &path).unwrap_err();
        assert!(running.contains("address already in use"), "{running}");
        for name in &names {
            handle.stop_k3s(name).unwrap();
        }
        run_for(&handle, Duration::from_secs(60), |_| {}).await;
        assert!(
            handle
                .lock()
                .nodes
                .iter()
                .all(|n| n.kubelet == Kubelet::Stopped)
        );
        for node in 0..3 {
            set_binary(&handle, node, "v1.33.6+k3s1");
        }
        let missing = handle.cluster_reset(&names[0], "/nope").unwrap_err();
        assert!(
            missing.contains("snapshot path does not exist: /nope"),
            "{missing}"
        );
        let done = handle.cluster_reset(&names[0], &path).unwrap();
        assert!(
            done.contains("restart without --cluster-reset flag now"),
            "{done}"
        );
        let again = handle.cluster_reset(&names[0], &path).unwrap_err();
        assert!(again.contains("performed previously"), "{again}");
        handle.restart(&names[0]).unwrap();
        run_for(&handle, Duration::from_secs(60), |_| {}).await;
        assert_eq!(handle.lock().nodes[0].kubelet, Kubelet::Running);
        // Stale data: refused, and the event says what to do.
        handle.restart(&names[1]).unwrap();
        run_for(&handle, Duration::from_secs(60), |_| {}).await;
        assert_eq!(handle.lock().nodes[1].kubelet, Kubelet::Hung);
        let why = rejoin_failures(&store, &names[1]);
        assert!(
            why[0].contains("remove /var/lib/rancher/k3s/server/db"),
            "{why:?}"
        );
        for name in &names[1..] {
            handle.clear_db(name).unwrap();
            handle.restart(name).unwrap();
            run_for(&handle, Duration::from_secs(60), |_| {}).await;
        }
        let sim = handle.lock();
        assert!(
            sim.nodes
                .iter()
                .all(|n| n.kubelet == Kubelet::Running && n.version == "v1.33.6+k3s1"),
            "{:?}",
            sim.nodes
                .iter()
                .map(|n| (&n.kubelet, &n.version))
                .collect::<Vec<_>>()
        );
        let restored: Vec<String> = store
            .list(Kind::Event, None)
            .1
            .iter()
            .filter(|e| e["reason"] == "LabDatastoreRestored")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(restored.len(), 1);
        assert!(
            restored[0].contains(&format!("{}=v1.33.6+k3s1", names[1])),
            "{restored:?}"
        );
    }
}
