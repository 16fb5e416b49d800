//! The rollout state machine: a pure function of (state, input, now).
//!
//! The post-mortem's automation checked "version changed" and "Ready" once,
//! waited 30 s and moved on while two kubelets were about to fail. This
//! engine instead soaks every node for minutes, watches the whole cluster
//! (the global gate) and halts before the next node whenever anything is
//! unhealthy, then waits for the operator.
//!
//! It never sleeps and never touches the network: the caller feeds
//! [`Input`]s with the current time and carries out the [`Action`]s it
//! returns, reporting back with [`Input::ActionFinished`]. Time only moves
//! when the caller says so, so a 10-minute canary soak is tested in
//! microseconds, and because the engine is deterministic, replaying the
//! recorded inputs (see `journal`) rebuilds it exactly after a crash.
//!
//! Work is split into units, one per (node, version hop), ordered hop-major:
//! the whole cluster goes to v1.34 before any node goes to v1.35, servers
//! first within each hop, as the post-mortem's operators did.
//!
//! The engine is one struct whose methods are grouped by concern:
//! `commands` (operator decisions), `inputs` (observations, executor
//! results, reattach), `progress` (phases beginning and ending), `gates`
//! (health judgements and halts), `rollback`, and `view` (what the TUI
//! and headless output read). `types` holds the public vocabulary.

mod commands;
mod flags;
mod gates;
mod handoff;
mod inputs;
mod progress;
mod restore;
mod rollback;
mod types;
mod unit;
mod view;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;

pub use restore::{DB_DIR, RestoreStep};
pub use types::*;
pub use view::{NodeProgress, RestoreProgress, RolloutView, SoakView};

use crate::durations::format_signed;
use crate::upgrade::plan::Role;
use crate::upgrade::version::K3sVersion;
use jiff::{SignedDuration, Timestamp};
use std::collections::{BTreeMap, BTreeSet};
use unit::{Soak, Unit};

/// Error and output text from executors is cut to this many characters
/// before the engine (and therefore the journal) keeps it.
pub const MAX_MESSAGE_CHARS: usize = 500;

/// Where K3s writes etcd snapshots by default.
pub const SNAPSHOT_DIR: &str = "/var/lib/rancher/k3s/server/db/snapshots";

/// The rollout engine. Feed it with [`Engine::step`]; read it with
/// [`Engine::view`]. Equal inputs at equal times give equal engines.
#[derive(Clone, Debug, PartialEq)]
pub struct Engine {
    config: EngineConfig,
    state: RolloutState,
    direction: Direction,
    /// Forward units, then (after Rollback) rollback units.
    units: Vec<Unit>,
    /// Index of the current or next unit.
    cursor: usize,
    /// Index of the first rollback unit (== number of forward units).
    rollback_from: usize,
    skipped: BTreeSet<String>,
    obs: Option<Observation>,
    next_id: u64,
    snapshot: Option<SnapshotRecord>,
    snapshot_requested: Option<String>,
    /// Step: pause after the current unit.
    stop_after_unit: bool,
    /// Earliest start of the next unit (`pause_between`).
    not_before: Option<Timestamp>,
    /// Why a running rollout is not moving (waiting for the API, ...).
    note: Option<String>,
    /// The final stability watch, once every node is done.
    final_watch: Option<Soak>,
    /// Nodes the rollout put MetalLB's exclude label on (or asked to).
    labelled: BTreeSet<String>,
    /// Label removals outside a unit's `return` phase, by action id.
    releasing: BTreeMap<u64, String>,
    /// The cluster-wide restore, once the operator asked for it.
    restore: Option<restore::Restore>,
    events: Vec<Event>,
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

impl Engine {
    /// A fresh engine in [`RolloutState::Idle`]. Units are built hop-major:
    /// for each version of the path, every node still below it, in order.
    pub fn new(config: EngineConfig) -> Engine {
        let mut units = Vec::new();
        let mut current: Vec<K3sVersion> = config.nodes.iter().map(|n| n.version.clone()).collect();
        // Servers walk every minor (API servers may not skip one); agents
        // follow once every server is done, straight to the target unless
        // the plan asks for every hop: a kubelet may be up to three minors
        // older than the API server.
        for hop in &config.path {
            for (node, version) in config.nodes.iter().zip(current.iter_mut()) {
                if node.role == Role::Server && *version < *hop {
                    units.push(Unit::new(node, version.clone(), hop.clone()));
                    *version = hop.clone();
                }
            }
        }
        let agent_versions: Vec<Vec<K3sVersion>> = config
            .nodes
            .iter()
            .zip(current.iter())
            .map(|(n, v)| match n.role {
                Role::Agent => config.agent_hops.versions(&config.path, v),
                Role::Server => Vec::new(),
            })
            .collect();
        // Hop-major for agents too: every agent on one version before any
        // goes to the next.
        for hop in &config.path {
            for ((node, version), versions) in config
                .nodes
                .iter()
                .zip(current.iter_mut())
                .zip(&agent_versions)
            {
                if versions.contains(hop) {
                    units.push(Unit::new(node, version.clone(), hop.clone()));
                    *version = hop.clone();
                }
            }
        }
        let rollback_from = units.len();
        Engine {
            config,
            state: RolloutState::Idle,
            direction: Direction::Forward,
            units,
            cursor: 0,
            rollback_from,
            skipped: BTreeSet::new(),
            obs: None,
            next_id: 1,
            snapshot: None,
            snapshot_requested: None,
            stop_after_unit: false,
            not_before: None,
            note: None,
            final_watch: None,
            labelled: BTreeSet::new(),
            releasing: BTreeMap::new(),
            restore: None,
            events: Vec::new(),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn state(&self) -> &RolloutState {
        &self.state
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }

    pub fn snapshot(&self) -> Option<&SnapshotRecord> {
        self.snapshot.as_ref()
    }

    /// The action the engine waits for, if any: (id, node, phase).
    pub fn in_flight(&self) -> Option<(u64, &str, Phase)> {
        self.units
            .iter()
            .find_map(|u| u.inflight.map(|id| (id, u.node.as_str(), u.phase)))
            .or_else(|| self.restore_in_flight())
    }

    /// Cuts executor text to what the engine keeps, so that the journal
    /// records exactly what the engine used (and no stray command output).
    pub fn normalize(&self, input: Input) -> Input {
        match input {
            Input::ActionFinished { id, result, output } => {
                let is_snapshot = self
                    .units
                    .iter()
                    .any(|u| u.inflight == Some(id) && u.phase == Phase::Snapshot);
                Input::ActionFinished {
                    id,
                    result: result.map_err(|e| truncate(&e)),
                    output: if is_snapshot {
                        output.map(|o| truncate(o.trim()))
                    } else {
                        None
                    },
                }
            }
            other => other,
        }
    }

    /// Feeds one input at time `now` and returns the actions to carry out.
    /// A refused command changes nothing but adds a [`EventKind::Refused`]
    /// event saying why.
    pub fn step(&mut self, input: Input, now: Timestamp) -> Vec<Action> {
        let mut out = Vec::new();
        match self.normalize(input) {
            Input::Observe(obs) => self.observe(obs, now),
            Input::Tick => {}
            Input::ActionFinished { id, result, output } => self.finished(id, result, output, now),
            Input::Command(cmd) => match self.check_command(&cmd) {
                Ok(()) => self.apply(cmd, now),
                Err(why) => self.event(
                    now,
                    EventKind::Refused,
                    format!("refused {}: {why}", cmd.label()),
                ),
            },
            Input::Reattach => self.reattach(now),
        }
        self.advance(now, &mut out);
        out
    }

    fn event(&mut self, at: Timestamp, kind: EventKind, text: String) {
        self.events.push(Event { at, kind, text });
    }

    fn active_state(&self) -> RolloutState {
        match self.direction {
            Direction::Forward => RolloutState::Running,
            Direction::Rollback => RolloutState::RollingBack,
        }
    }

    fn is_active(&self) -> bool {
        matches!(
            self.state,
            RolloutState::Running
                | RolloutState::Pausing
                | RolloutState::RollingBack
                | RolloutState::Verifying
        )
    }

    fn range(&self) -> std::ops::Range<usize> {
        match self.direction {
            Direction::Forward => 0..self.rollback_from,
            Direction::Rollback => self.rollback_from..self.units.len(),
        }
    }

    /// The first unfinished unit at or after the cursor.
    fn seek(&mut self) -> Option<usize> {
        let end = self.range().end;
        while self.cursor < end && self.units[self.cursor].finished() {
            self.cursor += 1;
        }
        (self.cursor < end).then_some(self.cursor)
    }

    fn current(&self) -> Option<usize> {
        let end = self.range().end;
        (self.cursor..end).find(|&i| !self.units[i].finished())
    }

    fn reachable_obs(&self) -> Option<&Observation> {
        self.obs.as_ref().filter(|o| o.api_reachable)
    }

    fn timeout_for(&self, phase: Phase) -> Option<SignedDuration> {
        let t = &self.config.timings;
        match phase {
            Phase::Snapshot | Phase::Cordon | Phase::Restart | Phase::Uncordon | Phase::Return => {
                Some(t.command_timeout)
            }
            Phase::Handoff => Some(t.handoff_timeout),
            Phase::Drain => Some(t.drain_timeout),
            Phase::Install => Some(t.install_timeout),
            Phase::WaitVersion => Some(t.version_timeout),
            Phase::WaitReady => Some(t.ready_timeout),
            _ => None,
        }
    }

    fn set_note(&mut self, note: Option<String>) {
        if self.note != note {
            self.note = note;
        }
    }
}
