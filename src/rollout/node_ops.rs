//! Node actions through the Kubernetes API, as `kubectl cordon`,
//! `uncordon` and `drain --ignore-daemonsets` do them: a merge patch of
//! `spec.unschedulable`, and evictions that respect PodDisruptionBudgets.
//! Which pods a drain may evict is the drain report's call
//! ([`super::drain_report`]); this module carries it out.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::time::Instant;

use super::drain_report::{self, ClusterPods, DrainReport, PodRef};
use super::eviction::{Evicted, evict};
use crate::upgrade::plan::DrainSpec;

/// How often a drain retries an eviction a disruption budget refused, and
/// re-checks whether evicted pods are gone.
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

async fn list_all<K>(client: &Client, purpose: &str, what: &str) -> Result<Vec<K>, String>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    Api::<K>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .map_err(|e| format!("{purpose}: listing {what}: {e}"))
}

/// The pods, budgets and claims a drain report reads; `purpose` opens
/// error messages ("drain NODE", "drain report").
pub async fn cluster_pods(client: &Client, purpose: &str) -> Result<ClusterPods, String> {
    Ok(ClusterPods {
        pods: list_all::<Pod>(client, purpose, "pods").await?,
        pdbs: list_all::<PodDisruptionBudget>(client, purpose, "PodDisruptionBudgets").await?,
        pvcs: list_all::<PersistentVolumeClaim>(client, purpose, "PersistentVolumeClaims").await?,
    })
}

/// What draining `node` would do now.
pub async fn inspect(
    client: &Client,
    node: &str,
    drain: &DrainSpec,
) -> Result<DrainReport, String> {
    Ok(drain_report::report(
        node,
        &cluster_pods(client, &format!("drain {node}")).await?,
        drain,
    ))
}

/// The drain report of each node the plan upgrades, from one listing.
pub async fn reports(
    client: &Client,
    nodes: &[String],
    drain: &DrainSpec,
) -> Result<Vec<DrainReport>, String> {
    let cluster = cluster_pods(client, "drain report").await?;
    Ok(nodes
        .iter()
        .map(|n| drain_report::report(n, &cluster, drain))
        .collect())
}

/// Refuses, before the node is cordoned, a drain that `kubectl drain` would
/// refuse: every pod without a controller or with emptyDir data is named.
pub async fn check_drainable(client: &Client, node: &str, drain: &DrainSpec) -> Result<(), String> {
    match inspect(client, node, drain).await?.refusal(drain) {
        Some(why) => Err(why),
        None => Ok(()),
    }
}

/// One pod still to evict: when to try again, and why it is still there.
struct Pending {
    pod: PodRef,
    not_before: Instant,
    why: Option<String>,
}

fn still_there(pending: &[Pending]) -> String {
    pending
        .iter()
        .map(|p| match &p.why {
            Some(why) => format!("{} ({why})", p.pod.key()),
            None => p.pod.key(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One pass over the pods due now; returns the uids evicted.
async fn evict_due(
    client: &Client,
    node: &str,
    pending: &mut Vec<Pending>,
    progress: &(dyn Fn(String) + Send + Sync),
) -> Result<Vec<String>, String> {
    let mut evicted = Vec::new();
    let mut left = Vec::new();
    for mut p in std::mem::take(pending) {
        let now = Instant::now();
        if p.not_before > now {
            left.push(p);
            continue;
        }
        match evict(client, &p.pod.namespace, &p.pod.name).await? {
            Evicted::Done => {
                let gone = if p.pod.unmanaged {
                    " (no controller: it will not come back)"
                } else {
                    ""
                };
                progress(format!("{node}: evicted {}{gone}", p.pod.key()));
                evicted.push(p.pod.uid.clone());
            }
            Evicted::Gone => {}
            Evicted::Budget(why) => {
                if p.why.as_deref() != Some(why.as_str()) {
                    progress(format!("{node}: {} waits: {why}", p.pod.key()));
                }
                p.why = Some(why);
                p.not_before = now + DRAIN_POLL;
                left.push(p);
            }
            Evicted::Throttled(after) => {
                progress(format!(
                    "{node}: evicting {}: the API server is throttling (429); retrying after {}",
                    p.pod.key(),
                    crate::durations::format_duration(after)
                ));
                p.why = Some("API server throttling".into());
                p.not_before = now + after;
                left.push(p);
            }
        }
    }
    *pending = left;
    Ok(evicted)
}

/// Evicts every pod the drain moves and waits until they are gone from the
/// node, within `timeout`. Refuses, naming them, pods `kubectl drain` would
/// refuse under the same settings. `progress` receives one line per step.
pub async fn drain(
    client: &Client,
    node: &str,
    settings: &DrainSpec,
    timeout: Duration,
    progress: &(dyn Fn(String) + Send + Sync),
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let report = inspect(client, node, settings).await?;
    if let Some(why) = report.refusal(settings) {
        return Err(why);
    }
    for (pod, why) in &report.skipped {
        progress(format!("{node}: leaving {pod} ({why})"));
    }
    let start = Instant::now();
    let mut pending: Vec<Pending> = report
        .evict
        .into_iter()
        .map(|pod| Pending {
            pod,
            not_before: start,
            why: None,
        })
        .collect();
    let mut evicted: BTreeSet<String> = BTreeSet::new();
    while !pending.is_empty() {
        evicted.extend(evict_due(client, node, &mut pending, progress).await?);
        if pending.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "drain {node}: timed out after {}; still on the node: {}",
                crate::durations::format_duration(timeout),
                still_there(&pending)
            ));
        }
        let next = pending
            .iter()
            .map(|p| p.not_before)
            .min()
            .unwrap_or(deadline);
        tokio::time::sleep_until(next.min(deadline)).await;
    }
    wait_terminated(client, node, &evicted, deadline).await
}

/// Evicted pods terminate before the node counts as drained.
async fn wait_terminated(
    client: &Client,
    node: &str,
    evicted: &BTreeSet<String>,
    deadline: Instant,
) -> Result<(), String> {
    let pods: Api<Pod> = Api::all(client.clone());
    let params = ListParams::default().fields(&format!("spec.nodeName={node}"));
    loop {
        let left: Vec<String> = pods
            .list(&params)
            .await
            .map_err(|e| format!("drain {node}: listing its pods: {e}"))?
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
