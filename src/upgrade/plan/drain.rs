//! The plan's `[drain]` table: what a drain may do that `kubectl drain`
//! refuses without a flag, and how the pre-cordon drain report rates the
//! risks it finds.

use serde::{Deserialize, Serialize};

/// How a drain report finding counts: `warn` lets the rollout go on,
/// `block` stops it before anything is cordoned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Warn,
    Block,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DrainSpec {
    /// Evict pods no controller owns (`kubectl drain --force`): they are
    /// deleted for good, nothing recreates them.
    pub force: bool,
    /// Evict pods with emptyDir volumes, deleting that data
    /// (`kubectl drain --delete-emptydir-data`).
    pub delete_emptydir_data: bool,
    /// Pods on node-local volumes (K3s's `local-path` StorageClass): they
    /// stay Pending until their node is back.
    pub local_volumes: Level,
    /// Pods that are the only replica of their workload: down until they
    /// start elsewhere.
    pub single_replica: Level,
    /// PodDisruptionBudgets that allow no disruption now: the drain would
    /// wait on them until its timeout.
    pub pdb_blocking: Level,
    /// StorageClasses whose volumes live on one node.
    pub local_storage_classes: Vec<String>,
}

impl Default for DrainSpec {
    fn default() -> Self {
        DrainSpec {
            force: false,
            delete_emptydir_data: false,
            local_volumes: Level::Warn,
            single_replica: Level::Warn,
            pdb_blocking: Level::Block,
            local_storage_classes: vec!["local-path".into()],
        }
    }
}
