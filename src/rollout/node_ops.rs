//! Node actions through the Kubernetes API, as `kubectl cordon`,
//! `uncordon` and `drain --ignore-daemonsets --delete-emptydir-data` do
//! them: a merge patch of `spec.unschedulable`, and evictions that respect
//! PodDisruptionBudgets (a 429 is retried until the drain timeout).

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, EvictParams, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::time::Instant;

/// How often a drain retries an eviction refused by a disruption budget
/// and re-checks whether evicted pods are gone.
const DRAIN_POLL: Duration = Duration::from_millis(500);

pub async fn set_unschedulable(
    client: &Client,
    node: &str,
    unschedulable: bool,
) -> Result<(), String> {
    let nodes: Api<Node> = Api::all(client.clone());
    let patch = json!({"spec": {"unschedulable": unschedulable}});
    nodes
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|e| {
            let verb = if unschedulable { "cordon" } else { "uncordon" };
            format!("{verb} {node}: {e}")
        })
}

/// Sets or removes MetalLB's exclude label on `node` (a merge patch; a
/// removal of an absent label succeeds).
pub async fn set_exclude_label(client: &Client, node: &str, on: bool) -> Result<(), String> {
    let nodes: Api<Node> = Api::all(client.clone());
    let value = if on {
        json!("true")
    } else {
        serde_json::Value::Null
    };
    let label = crate::model::metallb::EXCLUDE_LABEL;
    let patch = json!({"metadata": {"labels": {label: value}}});
    nodes
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|e| {
            let verb = if on { "label" } else { "unlabel" };
            format!("{verb} {node} ({label}): {e}")
        })
}

/// Waits until no ServiceL2Status names `node` (MetalLB moved every IP it
/// announced), within `timeout`.
pub async fn wait_moved(client: &Client, node: &str, timeout: Duration) -> Result<(), String> {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let gvk = GroupVersionKind::gvk("metallb.io", "v1beta1", "ServiceL2Status");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "servicel2statuses");
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let params = ListParams::default().labels(&format!("metallb.io/node={node}"));
    let deadline = Instant::now() + timeout;
    loop {
        let left: Vec<String> = api
            .list(&params)
            .await
            .map_err(|e| format!("handoff of {node}: listing ServiceL2Status: {e}"))?
            .items
            .iter()
            .map(|o| {
                let svc = o.labels().get("metallb.io/service-name").cloned();
                svc.unwrap_or_else(|| o.name_any())
            })
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "handoff of {node}: still announced from it after {}: {}",
                crate::durations::format_duration(timeout),
                left.join(", ")
            ));
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
}

/// Pods a drain leaves alone: DaemonSet pods (they would come straight
/// back), mirror pods (owned by the kubelet) and finished pods.
fn skipped_by_drain(pod: &Pod) -> bool {
    let daemon = pod.owner_references().iter().any(|o| o.kind == "DaemonSet");
    let mirror = pod
        .annotations()
        .contains_key("kubernetes.io/config.mirror");
    let finished = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Succeeded" || p == "Failed");
    daemon || mirror || finished
}

async fn pods_on(client: &Client, node: &str) -> Result<Vec<Pod>, String> {
    let pods: Api<Pod> = Api::all(client.clone());
    let params = ListParams::default().fields(&format!("spec.nodeName={node}"));
    pods.list(&params)
        .await
        .map(|l| l.items)
        .map_err(|e| format!("drain {node}: listing its pods: {e}"))
}

/// Evicts every pod a drain moves and waits until they are gone from the
/// node, within `timeout`. `progress` receives one line per eviction.
pub async fn drain(
    client: &Client,
    node: &str,
    timeout: Duration,
    progress: &(dyn Fn(String) + Send + Sync),
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let mut pending: Vec<Pod> = pods_on(client, node)
        .await?
        .into_iter()
        .filter(|p| !skipped_by_drain(p))
        .collect();
    let mut evicted: BTreeSet<String> = BTreeSet::new();
    while !pending.is_empty() {
        let mut blocked = Vec::new();
        for pod in pending {
            let ns = pod.namespace().unwrap_or_default();
            let name = pod.name_any();
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            match api.evict(&name, &EvictParams::default()).await {
                Ok(_) => {
                    progress(format!("{node}: evicted {ns}/{name}"));
                    evicted.insert(pod.uid().unwrap_or(name));
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(kube::Error::Api(e)) if e.code == 429 => blocked.push((pod, e.message)),
                Err(e) => return Err(format!("drain {node}: evicting {ns}/{name}: {e}")),
            }
        }
        if blocked.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            let names: Vec<String> = blocked
                .iter()
                .map(|(p, why)| {
                    format!(
                        "{}/{} ({why})",
                        p.namespace().unwrap_or_default(),
                        p.name_any()
                    )
                })
                .collect();
            return Err(format!(
                "drain {node}: timed out after {}; still blocked by a disruption budget: {}",
                crate::durations::format_duration(timeout),
                names.join(", ")
            ));
        }
        tokio::time::sleep(DRAIN_POLL).await;
        pending = blocked.into_iter().map(|(p, _)| p).collect();
    }
    // Evicted pods terminate before the node counts as drained.
    loop {
        let left: Vec<String> = pods_on(client, node)
            .await?
            .iter()
            .filter(|p| p.uid().is_some_and(|u| evicted.contains(&u)))
            .map(|p| format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any()))
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "drain {node}: timed out waiting for evicted pods to terminate: {}",
                left.join(", ")
            ));
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
}
