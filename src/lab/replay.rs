//! The post-mortem's automation, replayed inside the lab: install, check the
//! version changed, check Ready once, wait a fixed time, next node. It is
//! what the cockpit's watch demo shows failing, and what the upgrade engine
//! is compared against.

use std::sync::Arc;
use std::time::Duration;

use super::scenario::{ReplaySpec, Role};
use super::sim::SimHandle;
use super::store::{Kind, Store};

pub async fn run(sim: SimHandle, store: Arc<Store>, spec: ReplaySpec, time_scale: f64) {
    let scale = |d: Duration| d.div_f64(time_scale);
    tokio::time::sleep(scale(spec.start)).await;
    let order: Vec<String> = {
        let s = sim.lock();
        let mut servers: Vec<&str> = s
            .nodes
            .iter()
            .filter(|n| n.role == Role::Server)
            .map(|n| n.name.as_str())
            .collect();
        let mut agents: Vec<&str> = s
            .nodes
            .iter()
            .filter(|n| n.role == Role::Agent)
            .map(|n| n.name.as_str())
            .collect();
        servers.sort_unstable();
        agents.sort_unstable();
        servers
            .into_iter()
            .chain(agents)
            .map(str::to_string)
            .collect()
    };
    for version in &spec.versions {
        tracing::info!(target: "lab", "replay: old automation upgrading to {version}");
        for node in &order {
            // `nohup install.sh &`: the script restarts K3s by itself.
            if let Err(e) = sim.install(node, version).await {
                tracing::warn!(target: "lab", "replay: install on {node} failed: {e}");
                return;
            }
            // Poll for version changed and Ready (once), like the script.
            loop {
                if node_reports(&store, node, version) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            tokio::time::sleep(scale(spec.settle)).await;
        }
    }
    tracing::info!(target: "lab", "replay: old automation finished: all nodes upgraded and Ready");
}

fn node_reports(store: &Store, node: &str, version: &str) -> bool {
    store.get(Kind::Node, "", node).is_some_and(|n| {
        n["status"]["nodeInfo"]["kubeletVersion"] == version
            && n["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
    })
}
