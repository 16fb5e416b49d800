//! What the controllers do with the scenario's pods: a removed pod comes
//! back only if something owns it (a ReplicaSet elsewhere, a DaemonSet or
//! the kubelet's static pod on the same node), and a pod whose local-path
//! volume lives on one node waits Pending until that node takes pods again.

use serde_json::{Value, json};

use super::{Sim, suffix};
use crate::lab::eviction::sync_budgets;
use crate::lab::objects;
use crate::lab::scenario::Scenario;
use crate::lab::store::Kind;
use crate::lab::workloads::{self, BOUND_NODE, LOCAL_PATH};

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// The kind of the pod's controller, if it has one.
fn controller_kind(pod: &Value) -> Option<String> {
    let refs = pod["metadata"]["ownerReferences"].as_array()?;
    refs.iter()
        .find(|o| o["controller"] == true)
        .or_else(|| refs.first())
        .map(|o| text(&o["kind"]))
}

fn ready_and_schedulable(node: &Value) -> bool {
    node["spec"]["unschedulable"] != true
        && node["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

impl Sim {
    pub(super) fn add_workloads(&mut self, scenario: &Scenario) {
        for p in &scenario.pods {
            self.store.upsert(Kind::Pod, workloads::pod(p));
            if let Some(claim) = &p.local_volume {
                self.store.upsert(
                    Kind::PersistentVolumeClaim,
                    workloads::local_path_claim(&p.namespace, claim, &p.node),
                );
            }
        }
        for b in &scenario.pdbs {
            self.store
                .upsert(Kind::PodDisruptionBudget, workloads::pdb(b));
        }
        sync_budgets(&self.store);
    }

    /// The node a pod's local-path claim pins it to, if it has one.
    fn local_volume_node(&self, pod: &Value) -> Option<String> {
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
        pod["spec"]["volumes"]
            .as_array()?
            .iter()
            .filter_map(|v| v["persistentVolumeClaim"]["claimName"].as_str())
            .filter_map(|claim| self.store.get(Kind::PersistentVolumeClaim, ns, claim))
            .find(|pvc| pvc["spec"]["storageClassName"] == LOCAL_PATH)
            .map(|pvc| text(&pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"]))
    }

    /// A removed pod's controller recreates it: a DaemonSet or a static
    /// pod on the same node, a ReplicaSet or StatefulSet on the first Ready
    /// schedulable other node (or Pending, when a local volume pins it).
    pub(super) fn reschedule(&mut self, pod: Value) {
        let name = format!(
            "{}/{}",
            text(&pod["metadata"]["namespace"]),
            text(&pod["metadata"]["name"])
        );
        let Some(owner) = controller_kind(&pod) else {
            self.record(format!("{name} had no controller: nothing recreates it"));
            sync_budgets(&self.store);
            return;
        };
        let old_node = text(&pod["spec"]["nodeName"]);
        let pinned = self.local_volume_node(&pod);
        let target = if owner == "DaemonSet" || owner == "Node" {
            Some(old_node.clone())
        } else if pinned.is_some() {
            None
        } else {
            let nodes = self.store.list(Kind::Node, None).1;
            let found = nodes
                .iter()
                .filter(|n| n["metadata"]["name"] != old_node.as_str() && ready_and_schedulable(n))
                .map(|n| text(&n["metadata"]["name"]))
                .next();
            if found.is_none() {
                self.record(format!(
                    "{name} could not be rescheduled: no Ready schedulable node"
                ));
                return;
            }
            found
        };
        self.seq += 1;
        let mut new_pod = pod.clone();
        let base = pod["metadata"]["name"].as_str().unwrap_or_default();
        let stem = base.rsplit_once('-').map_or(base, |(s, _)| s);
        new_pod["metadata"] = json!({
            "name": format!("{stem}-{}", suffix(self.seq)),
            "namespace": pod["metadata"]["namespace"], "labels": pod["metadata"]["labels"],
            "annotations": pod["metadata"]["annotations"],
            "ownerReferences": pod["metadata"]["ownerReferences"],
        });
        match (&target, &pinned) {
            (Some(node), _) => {
                new_pod["spec"]["nodeName"] = json!(node);
                new_pod["status"] =
                    json!({"phase": "Running", "conditions": [objects::pod_ready_condition(true)]});
            }
            (None, pinned) => {
                let node = pinned.clone().unwrap_or_default();
                new_pod["metadata"]["annotations"] = json!({BOUND_NODE: node});
                if let Some(spec) = new_pod["spec"].as_object_mut() {
                    spec.remove("nodeName");
                }
                new_pod["status"] = json!({"phase": "Pending", "conditions": [{
                    "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": format!("0/1 nodes are available: 1 node(s) had volume node affinity conflict (local-path volume on {node})")}]});
                self.record(format!(
                    "{name}: replacement Pending until {node} takes pods again (local-path volume)"
                ));
            }
        }
        if new_pod["metadata"]["annotations"].is_null()
            && let Some(m) = new_pod["metadata"].as_object_mut()
        {
            m.remove("annotations");
        }
        self.store.upsert(Kind::Pod, new_pod);
        sync_budgets(&self.store);
    }

    /// Pending pods pinned to a node by a local volume start there once it
    /// is Ready and schedulable again.
    pub(super) fn place_pending(&mut self) {
        for pod in self.store.list(Kind::Pod, None).1 {
            let Some(node) = pod["metadata"]["annotations"][BOUND_NODE].as_str() else {
                continue;
            };
            if pod["spec"]["nodeName"].is_string() {
                continue;
            }
            let usable = self
                .store
                .get(Kind::Node, "", node)
                .is_some_and(|n| ready_and_schedulable(&n));
            if !usable {
                continue;
            }
            let (ns, name) = (
                text(&pod["metadata"]["namespace"]),
                text(&pod["metadata"]["name"]),
            );
            self.store.update(Kind::Pod, &ns, &name, |p| {
                p["spec"]["nodeName"] = json!(node);
                p["status"] =
                    json!({"phase": "Running", "conditions": [objects::pod_ready_condition(true)]});
            });
        }
    }
}
