//! The rollout engine and everything it needs that is pure: the plan
//! (TOML), K3s versions and the upgrade path, the rollout state machine and
//! its crash-safe journal. No network, no sleeping, no async here; the
//! edges (cluster, remote, probes, TUI) feed the engine and run its actions.

pub mod duration;
pub mod engine;
pub mod journal;
pub mod method;
pub mod plan;
pub mod template;
pub mod version;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod testkit;

pub use engine::{
    Action, Command, Engine, EngineConfig, Input, NodeObservation, Observation, RestoreProgress,
    RolloutState, RolloutView, ServiceObservation,
};
pub use journal::{Journal, Record, Recorder};
pub use plan::{ClusterNode, Plan, PlanError, ResolvedPlan, resolve};
pub use version::{K3sVersion, PathError, version_path};
