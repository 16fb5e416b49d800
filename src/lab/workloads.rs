//! The scenario's workload objects: pods with and without controllers,
//! emptyDir and local-path volumes, and PodDisruptionBudgets, shaped as a
//! K3s cluster shows them so a drain has real things to judge.

use serde_json::{Value, json};

use super::objects::pod_ready_condition;
use super::scenario::{PdbSpec, PodOwner, PodSpec};

/// K3s's default StorageClass: hostPath volumes provisioned on one node.
pub const LOCAL_PATH: &str = "local-path";

/// Marks a pod whose replacement must wait for its node (a local-path
/// volume lives there): the lab places it back once the node is Ready and
/// schedulable again.
pub const BOUND_NODE: &str = "lab.k3s-cockpit.io/bound-node";

fn owner_reference(owner: PodOwner, app: &str) -> Option<Value> {
    let (api, kind, name) = match owner {
        PodOwner::ReplicaSet => ("apps/v1", "ReplicaSet", format!("{app}-5f9c8d7b6")),
        PodOwner::StatefulSet => ("apps/v1", "StatefulSet", app.to_string()),
        PodOwner::DaemonSet => ("apps/v1", "DaemonSet", app.to_string()),
        // A mirror pod's owner is its Node; it has no controller.
        PodOwner::None | PodOwner::Mirror => return None,
    };
    Some(json!({"apiVersion": api, "kind": kind, "name": name, "uid": "", "controller": true}))
}

pub fn pod(spec: &PodSpec) -> Value {
    let app = spec.app();
    let mut meta = json!({"name": spec.name, "namespace": spec.namespace,
                          "labels": {"app": app}});
    if let Some(owner) = owner_reference(spec.owner, app) {
        meta["ownerReferences"] = json!([owner]);
    }
    if spec.owner == PodOwner::Mirror {
        // The kubelet sets the static pod's file hash here.
        meta["annotations"] = json!({"kubernetes.io/config.mirror": "4f6e2a9c1b"});
        meta["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "Node",
                                          "name": spec.node, "uid": "", "controller": true}]);
    }
    let mut volumes = Vec::new();
    if spec.empty_dir {
        volumes.push(json!({"name": "scratch", "emptyDir": {}}));
    }
    if let Some(claim) = &spec.local_volume {
        volumes.push(json!({"name": "data", "persistentVolumeClaim": {"claimName": claim}}));
    }
    let mut pod = json!({
        "metadata": meta,
        "spec": {"nodeName": spec.node, "containers": [{"name": app, "image": format!("{app}:stable")}]},
        "status": {"phase": "Running", "conditions": [pod_ready_condition(true)]}
    });
    if !volumes.is_empty() {
        pod["spec"]["volumes"] = json!(volumes);
    }
    pod
}

/// A bound claim on `local-path`; the provisioner pins its volume to the
/// node the first consumer ran on (`volume.kubernetes.io/selected-node`).
pub fn local_path_claim(namespace: &str, claim: &str, node: &str) -> Value {
    json!({
        "metadata": {"name": claim, "namespace": namespace,
                     "annotations": {"volume.kubernetes.io/selected-node": node,
                                     "volume.kubernetes.io/storage-provisioner": "rancher.io/local-path"}},
        "spec": {"storageClassName": LOCAL_PATH, "accessModes": ["ReadWriteOnce"],
                 "volumeName": format!("pvc-{claim}"), "resources": {"requests": {"storage": "1Gi"}}},
        "status": {"phase": "Bound"}
    })
}

pub fn pdb(spec: &PdbSpec) -> Value {
    let mut budget = json!({"selector": {"matchLabels": {"app": spec.app}}});
    if let Some(min) = spec.min_available {
        budget["minAvailable"] = json!(min);
    }
    if let Some(max) = spec.max_unavailable {
        budget["maxUnavailable"] = json!(max);
    }
    json!({
        "metadata": {"name": spec.name, "namespace": spec.namespace, "generation": 1},
        "spec": budget,
        "status": {"observedGeneration": 1, "disruptionsAllowed": 0, "currentHealthy": 0,
                   "desiredHealthy": 0, "expectedPods": 0}
    })
}
