//! The read-only picture of a rollout for the TUI and headless output.

use super::*;
use crate::upgrade::plan::Role;
use serde::Serialize;
use std::ops::Range;

/// Read-only state for the TUI and headless output.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RolloutView {
    pub state: RolloutState,
    pub direction: Direction,
    /// Node being worked on, if any.
    pub current: Option<String>,
    pub path: Vec<K3sVersion>,
    pub nodes: Vec<NodeProgress>,
    /// Why a running rollout is waiting, if it is.
    pub note: Option<String>,
    pub snapshot: Option<SnapshotRecord>,
    pub needs_datastore_restore: bool,
    pub restore_command: Option<String>,
    /// The cluster restore's steps as the cockpit would run them.
    pub restore_plan: Vec<String>,
    /// The running cluster restore's current step.
    pub restore_progress: Option<RestoreProgress>,
    /// The final stability watch's progress, while it runs.
    pub final_watch: Option<SoakView>,
    pub events: Vec<Event>,
}

/// One node's progress over its whole path (the engine's view of it, as
/// opposed to the cluster's `cluster::node_view::NodeView`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeProgress {
    pub name: String,
    pub role: Role,
    /// Version the engine knows the node to run (from its finished hops).
    pub version: K3sVersion,
    /// Version of the node's current or next hop.
    pub target: Option<K3sVersion>,
    pub phase: Phase,
    pub phase_started: Option<Timestamp>,
    /// 0..1 over the node's whole path; soak counts by elapsed/window.
    pub progress: f64,
    pub soak: Option<SoakView>,
    pub last_error: Option<String>,
    pub skipped: bool,
    /// The node carries (or may carry) the rollout's MetalLB exclude label.
    pub labelled: bool,
}

/// Where a running cluster restore is: step `step` of `total`, since when.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RestoreProgress {
    pub step: usize,
    pub total: usize,
    pub text: String,
    pub begun: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SoakView {
    pub elapsed: SignedDuration,
    pub window: SignedDuration,
}

impl SoakView {
    pub fn fraction(&self) -> f64 {
        if self.window <= SignedDuration::ZERO {
            1.0
        } else {
            (self.elapsed.as_secs_f64() / self.window.as_secs_f64()).clamp(0.0, 1.0)
        }
    }
}

impl Engine {
    /// A read-only picture of the rollout at `now` (soak progress depends on it).
    pub fn view(&self, now: Timestamp) -> RolloutView {
        let current = self.current().filter(|&i| self.units[i].in_progress());
        let range = self.range();
        let nodes = self
            .config
            .nodes
            .iter()
            .map(|n| self.node_progress(n, range.clone(), current, now))
            .collect();
        RolloutView {
            state: self.state.clone(),
            direction: self.direction,
            current: current.map(|i| self.units[i].node.clone()),
            path: self.config.path.clone(),
            nodes,
            note: self.note.clone(),
            snapshot: self.snapshot.clone(),
            needs_datastore_restore: self.needs_datastore_restore(),
            restore_command: self.restore_command(),
            restore_plan: self.restore_plan(),
            restore_progress: self.restore_progress(),
            final_watch: self.final_watch.as_ref().map(|w| SoakView {
                elapsed: w.elapsed(now),
                window: w.window,
            }),
            events: self.events.clone(),
        }
    }

    /// One node's row: its units in the current direction, the one being
    /// worked on (`current`, if it is this node's) or the next one.
    fn node_progress(
        &self,
        n: &NodeConfig,
        range: Range<usize>,
        current: Option<usize>,
        now: Timestamp,
    ) -> NodeProgress {
        let mine: Vec<usize> = range.filter(|&i| self.units[i].node == n.name).collect();
        let total = mine
            .iter()
            .filter(|&&i| self.units[i].phase != Phase::Skipped)
            .count();
        let done = mine
            .iter()
            .filter(|&&i| self.units[i].phase == Phase::Done)
            .count();
        let active = current.filter(|i| mine.contains(i));
        let next = mine.iter().copied().find(|&i| !self.units[i].finished());
        let shown = active.or(next).or(mine.last().copied());
        let version = self
            .units
            .iter()
            .rfind(|u| u.node == n.name && u.phase == Phase::Done)
            .map_or(n.version.clone(), |u| u.to.clone());
        let soak = active
            .and_then(|i| self.units[i].soak.as_ref())
            .map(|s| SoakView {
                elapsed: s.elapsed(now),
                window: s.window,
            });
        let unit_fraction = active.map_or(0.0, |i| {
            let u = &self.units[i];
            let within = if u.phase == Phase::Soak {
                soak.as_ref().map_or(0.0, SoakView::fraction)
            } else {
                0.0
            };
            (u.phase.ordinal() + within) / 8.0
        });
        let progress = if total == 0 {
            1.0
        } else {
            ((done as f64 + unit_fraction) / total as f64).clamp(0.0, 1.0)
        };
        let skipped = self.skipped.contains(&n.name);
        let phase = match (shown, active) {
            (_, Some(i)) => self.units[i].phase,
            (Some(i), None) if self.units[i].finished() => self.units[i].phase,
            (Some(_), None) => Phase::Pending,
            (None, None) => Phase::Done,
        };
        NodeProgress {
            name: n.name.clone(),
            role: n.role,
            version,
            target: shown.map(|i| self.units[i].to.clone()),
            phase: if skipped { Phase::Skipped } else { phase },
            phase_started: active.and_then(|i| self.units[i].begun),
            progress,
            soak,
            last_error: mine.iter().rev().find_map(|&i| self.units[i].error.clone()),
            skipped,
            labelled: self.labelled.contains(&n.name),
        }
    }
}
