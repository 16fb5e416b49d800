//! Embedded etcd membership across K3s minors. K3s v1.34 ships etcd 3.6
//! where v1.33 ships 3.5 (K3s release notes). Once every member runs 3.6
//! the cluster's version moves to 3.6 and never goes back by itself; a
//! server restarted on an older etcd then cannot rejoin: K3s exits, systemd
//! starts it again, and it fails again, until the datastore is restored
//! cluster-wide (K3s docs: upgrades/roll-back).

use super::{Kubelet, Sim};
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
}
