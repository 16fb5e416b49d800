//! The drain report: what draining one node would do to its pods, judged
//! before anything is cordoned. Pure: it reads listed objects and the plan's
//! `[drain]` settings and returns lines rated `warn` or `block`.
//!
//! The pod filters follow `kubectl drain` (kubernetes/kubectl pkg/drain,
//! filters.go): mirror pods and DaemonSet pods are left alone, finished
//! pods need no eviction, a pod without a controller is refused unless
//! forced (nothing would recreate it), and a pod with an emptyDir volume is
//! refused unless its data may be deleted.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;

use crate::model::fleet::{DrainNote, DrainOutlook};
use crate::upgrade::plan::{DrainSpec, Level};

/// What the cluster holds that a drain report needs.
#[derive(Debug, Default, Clone)]
pub struct ClusterPods {
    pub pods: Vec<Pod>,
    pub pdbs: Vec<PodDisruptionBudget>,
    pub pvcs: Vec<PersistentVolumeClaim>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// No controller: eviction deletes it for good.
    Unmanaged,
    /// An emptyDir volume: its data goes with the pod.
    EmptyDir,
    /// A claim on a node-local StorageClass.
    LocalVolume { claim: String, class: String },
    /// The only pod of its controller.
    SingleReplica { owner: String },
    /// A budget selecting the pod allows no disruption now.
    PdbBlocks {
        pdb: String,
        desired: i32,
        current: i32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// `namespace/name` of the pod.
    pub pod: String,
    pub finding: Finding,
    pub level: Level,
}

impl Line {
    /// What the finding means for the drain.
    pub fn text(&self, settings: &DrainSpec) -> String {
        let pod = &self.pod;
        match &self.finding {
            Finding::Unmanaged if settings.force => {
                format!("{pod}: no controller; drain.force evicts it and it will not come back")
            }
            Finding::Unmanaged => format!(
                "{pod}: no controller (ReplicaSet, StatefulSet, Job, DaemonSet); evicting it would delete it for good"
            ),
            Finding::EmptyDir if settings.delete_emptydir_data => {
                format!("{pod}: emptyDir data will be deleted")
            }
            Finding::EmptyDir => format!("{pod}: has emptyDir data, which eviction deletes"),
            Finding::LocalVolume { claim, class } => format!(
                "{pod}: volume {claim} is node-local ({class}); the pod stays Pending until this node is back"
            ),
            Finding::SingleReplica { owner } => {
                format!("{pod}: the only replica of {owner}; it is down until it starts elsewhere")
            }
            Finding::PdbBlocks {
                pdb,
                desired,
                current,
            } => format!(
                "{pod}: PodDisruptionBudget {pdb} allows no disruption now (needs {desired} healthy pods, has {current})"
            ),
        }
    }

    /// How to clear a block.
    pub fn fix(&self) -> &'static str {
        match self.finding {
            Finding::Unmanaged => {
                "give it a controller (a Deployment), delete it yourself, or set drain.force = true"
            }
            Finding::EmptyDir => "set drain.delete_emptydir_data = true if its data may go",
            Finding::LocalVolume { .. } => {
                "move the data to shared storage, or set drain.local_volumes = \"warn\""
            }
            Finding::SingleReplica { .. } => {
                "run 2 replicas, or set drain.single_replica = \"warn\""
            }
            Finding::PdbBlocks { .. } => {
                "wait until the budget's pods are healthy, relax the budget, or set drain.pdb_blocking = \"warn\""
            }
        }
    }
}

/// A pod a drain evicts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// No controller: it will not come back.
    pub unmanaged: bool,
}

impl PodRef {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainReport {
    pub node: String,
    pub lines: Vec<Line>,
    pub evict: Vec<PodRef>,
    /// Pods the drain leaves alone, and why.
    pub skipped: Vec<(String, &'static str)>,
}

impl DrainReport {
    pub fn blocks(&self) -> impl Iterator<Item = &Line> {
        self.lines.iter().filter(|l| l.level == Level::Block)
    }

    /// Why the drain itself refuses, as `kubectl drain` does without
    /// `--force` / `--delete-emptydir-data`: every such pod named.
    pub fn refusal(&self, settings: &DrainSpec) -> Option<String> {
        let refused: Vec<String> = self
            .lines
            .iter()
            .filter(|l| match l.finding {
                Finding::Unmanaged => !settings.force,
                Finding::EmptyDir => !settings.delete_emptydir_data,
                _ => false,
            })
            .map(|l| format!("{} ({})", l.text(settings), l.fix()))
            .collect();
        (!refused.is_empty()).then(|| {
            format!(
                "drain {} refused before cordon: {}",
                self.node,
                refused.join("; ")
            )
        })
    }
}

/// The drain report of every node in `nodes`, each line as its level and
/// text (`drain NODE: ...`, a block with its fix), then a line per node on
/// what it evicts and leaves alone.
pub fn describe(reports: &[DrainReport], settings: &DrainSpec) -> Vec<(Level, String)> {
    let mut out = Vec::new();
    for r in reports {
        for l in &r.lines {
            let text = match l.level {
                Level::Warn => format!("drain {}: {}", r.node, l.text(settings)),
                Level::Block => {
                    format!("drain {}: {} (fix: {})", r.node, l.text(settings), l.fix())
                }
            };
            out.push((l.level, text));
        }
    }
    out
}

/// The report as the cockpit keeps it for the node: each line with its
/// fix when it blocks.
pub fn outlook(r: &DrainReport, settings: &DrainSpec, at: jiff::Timestamp) -> DrainOutlook {
    let notes = r
        .lines
        .iter()
        .map(|l| DrainNote {
            blocks: l.level == Level::Block,
            text: match l.level {
                Level::Warn => l.text(settings),
                Level::Block => format!("{} (fix: {})", l.text(settings), l.fix()),
            },
        })
        .collect();
    DrainOutlook {
        at,
        evicts: r.evict.len(),
        notes,
    }
}

/// One line per node: how many pods it evicts and which it leaves.
pub fn summary(r: &DrainReport) -> String {
    let left: Vec<String> = r
        .skipped
        .iter()
        .map(|(p, why)| format!("{p} ({why})"))
        .collect();
    format!(
        "drain {}: evicts {} pod(s){}",
        r.node,
        r.evict.len(),
        if left.is_empty() {
            String::new()
        } else {
            format!(", leaves {}", left.join(", "))
        }
    )
}

fn controller(pod: &Pod) -> Option<(String, String)> {
    pod.owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| (o.kind.clone(), o.name.clone()))
}

/// Why a drain leaves the pod alone, if it does.
fn skipped(pod: &Pod) -> Option<&'static str> {
    if pod
        .annotations()
        .contains_key("kubernetes.io/config.mirror")
    {
        return Some("mirror pod");
    }
    if controller(pod).is_some_and(|(kind, _)| kind == "DaemonSet") {
        return Some("DaemonSet pod");
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return Some("finished");
    }
    None
}

/// matchLabels and matchExpressions, as label selectors mean them.
fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let exprs_ok = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.clone().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    let empty = selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(|m| m.is_empty());
    !empty && labels_ok && exprs_ok
}

fn pdb_finding(pod: &Pod, pdbs: &[PodDisruptionBudget]) -> Option<Finding> {
    pdbs.iter()
        .filter(|b| b.namespace() == pod.namespace())
        .filter(|b| {
            b.spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .is_some_and(|sel| selects(sel, pod.labels()))
        })
        .find_map(|b| {
            let st = b.status.as_ref()?;
            (st.disruptions_allowed <= 0).then(|| Finding::PdbBlocks {
                pdb: format!("{}/{}", b.namespace().unwrap_or_default(), b.name_any()),
                desired: st.desired_healthy,
                current: st.current_healthy,
            })
        })
}

fn volume_findings(
    pod: &Pod,
    pvcs: &[PersistentVolumeClaim],
    settings: &DrainSpec,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let volumes = pod.spec.iter().flat_map(|s| s.volumes.iter().flatten());
    for v in volumes {
        if v.empty_dir.is_some() && !out.contains(&Finding::EmptyDir) {
            out.push(Finding::EmptyDir);
        }
        let Some(claim) = &v.persistent_volume_claim else {
            continue;
        };
        let class = pvcs
            .iter()
            .find(|c| c.namespace() == pod.namespace() && c.name_any() == claim.claim_name)
            .and_then(|c| c.spec.as_ref()?.storage_class_name.clone());
        if let Some(class) = class.filter(|c| settings.local_storage_classes.contains(c)) {
            out.push(Finding::LocalVolume {
                claim: claim.claim_name.clone(),
                class,
            });
        }
    }
    out
}

/// The findings for one pod the drain would evict.
fn findings(pod: &Pod, cluster: &ClusterPods, settings: &DrainSpec) -> Vec<Finding> {
    let mut out = Vec::new();
    match controller(pod) {
        None => out.push(Finding::Unmanaged),
        Some((kind, name)) => {
            let replicas = cluster
                .pods
                .iter()
                .filter(|p| {
                    p.namespace() == pod.namespace()
                        && controller(p).is_some_and(|c| c.0 == kind && c.1 == name)
                })
                .count();
            if replicas <= 1 {
                out.push(Finding::SingleReplica {
                    owner: format!("{kind} {}/{name}", pod.namespace().unwrap_or_default()),
                });
            }
        }
    }
    out.extend(volume_findings(pod, &cluster.pvcs, settings));
    out.extend(pdb_finding(pod, &cluster.pdbs));
    out
}

fn level(finding: &Finding, settings: &DrainSpec) -> Level {
    let allowed = |yes: bool| if yes { Level::Warn } else { Level::Block };
    match finding {
        Finding::Unmanaged => allowed(settings.force),
        Finding::EmptyDir => allowed(settings.delete_emptydir_data),
        Finding::LocalVolume { .. } => settings.local_volumes,
        Finding::SingleReplica { .. } => settings.single_replica,
        Finding::PdbBlocks { .. } => settings.pdb_blocking,
    }
}

/// What draining `node` would do, pod by pod.
pub fn report(node: &str, cluster: &ClusterPods, settings: &DrainSpec) -> DrainReport {
    let mut out = DrainReport {
        node: node.to_string(),
        lines: Vec::new(),
        evict: Vec::new(),
        skipped: Vec::new(),
    };
    let on_node = cluster
        .pods
        .iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node));
    for pod in on_node {
        let key = format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any());
        if let Some(why) = skipped(pod) {
            out.skipped.push((key, why));
            continue;
        }
        let found = findings(pod, cluster, settings);
        out.evict.push(PodRef {
            namespace: pod.namespace().unwrap_or_default(),
            name: pod.name_any(),
            uid: pod.uid().unwrap_or_default(),
            unmanaged: found.contains(&Finding::Unmanaged),
        });
        for finding in found {
            out.lines.push(Line {
                pod: key.clone(),
                level: level(&finding, settings),
                finding,
            });
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "drain_report_tests.rs"]
mod tests;
