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

use crate::upgrade::duration;
use crate::upgrade::plan::{Datastore, Role, Timings};
use crate::upgrade::version::K3sVersion;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Error and output text from executors is cut to this many characters
/// before the engine (and therefore the journal) keeps it.
pub const MAX_MESSAGE_CHARS: usize = 500;

/// Where K3s writes etcd snapshots by default.
pub const SNAPSHOT_DIR: &str = "/var/lib/rancher/k3s/server/db/snapshots";

// ---------------------------------------------------------------- inputs

/// One node as the cluster edge sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeObservation {
    pub name: String,
    pub ready: bool,
    /// The kubelet's reported version (`status.nodeInfo.kubeletVersion`).
    pub version: String,
    /// Lease or status heartbeat older than the allowed age.
    pub heartbeat_late: bool,
    pub unschedulable: bool,
    /// Count of Ready true→false transitions seen, monotonically increasing;
    /// lets the soak catch a flap that healed between two observations.
    pub ready_transitions: u32,
}

impl NodeObservation {
    /// A Ready node with a fresh heartbeat, schedulable, never flapped.
    pub fn healthy(name: &str, version: &str) -> Self {
        NodeObservation {
            name: name.to_string(),
            ready: true,
            version: version.to_string(),
            heartbeat_late: false,
            unschedulable: false,
            ready_transitions: 0,
        }
    }
}

/// One gated LoadBalancer service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceObservation {
    /// `namespace/name`.
    pub name: String,
    /// The node whose MetalLB speaker announces the IP, if any.
    pub announced_by: Option<String>,
    /// Latest probe result; None when not probed (yet).
    pub probe_ok: Option<bool>,
}

/// A snapshot of the cluster. Send one whenever something changed; the
/// engine keeps the latest and judges it again on every [`Input::Tick`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    pub nodes: Vec<NodeObservation>,
    pub services: Vec<ServiceObservation>,
    /// False while the API server cannot be reached (a K3s server restart
    /// takes it down): health judgements pause, timeouts keep running.
    pub api_reachable: bool,
}

/// Operator decisions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Start the rollout.
    Start,
    /// Start with the first node only, soak it for `canary_soak`, then wait
    /// for [`Command::ConfirmCanary`].
    Canary,
    ConfirmCanary,
    /// Pause at the next safe point (never between install and restart).
    Pause,
    /// Continue after a pause; after a halt only if the gate is healthy,
    /// re-running the halted phase.
    Resume,
    /// Run exactly one more node, then pause.
    Step,
    /// Stop issuing actions. Actions already running are not cancelled.
    Abort,
    /// Re-run the failed phase of a halted rollout.
    Retry,
    /// Leave a node out of the rest of the rollout.
    Skip(String),
    /// Reinstall the recorded previous versions, newest change first.
    Rollback,
}

impl Command {
    pub fn label(&self) -> String {
        match self {
            Command::Start => "start".into(),
            Command::Canary => "canary".into(),
            Command::ConfirmCanary => "confirm canary".into(),
            Command::Pause => "pause".into(),
            Command::Resume => "resume".into(),
            Command::Step => "step".into(),
            Command::Abort => "abort".into(),
            Command::Retry => "retry".into(),
            Command::Skip(n) => format!("skip {n}"),
            Command::Rollback => "rollback".into(),
        }
    }
}

/// Everything that can happen to the engine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Input {
    Observe(Observation),
    /// Time passed; judge the latest observation again (soak, timeouts).
    Tick,
    /// An executor finished an [`Action`]. `output` is only used for the
    /// etcd snapshot (the snapshot file name k3s reported, if known).
    ActionFinished {
        id: u64,
        result: Result<(), String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<String>,
    },
    Command(Command),
    /// The cockpit restarted (after a crash or `--resume`): actions that were
    /// in flight are re-verified or re-issued, never blindly redone.
    Reattach,
}

/// Work for the executors; each reports back with `ActionFinished { id }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Cordon {
        id: u64,
        node: String,
    },
    /// Evict pods through the eviction API (PDBs respected, DaemonSets ignored).
    Drain {
        id: u64,
        node: String,
    },
    Install {
        id: u64,
        node: String,
        version: K3sVersion,
    },
    /// Restart the K3s service (k3s or k3s-agent) on the node.
    Restart {
        id: u64,
        node: String,
    },
    Uncordon {
        id: u64,
        node: String,
    },
    /// `k3s etcd-snapshot save --name NAME` on the node.
    EtcdSnapshot {
        id: u64,
        node: String,
        name: String,
    },
}

impl Action {
    pub fn id(&self) -> u64 {
        match self {
            Action::Cordon { id, .. }
            | Action::Drain { id, .. }
            | Action::Install { id, .. }
            | Action::Restart { id, .. }
            | Action::Uncordon { id, .. }
            | Action::EtcdSnapshot { id, .. } => *id,
        }
    }

    pub fn node(&self) -> &str {
        match self {
            Action::Cordon { node, .. }
            | Action::Drain { node, .. }
            | Action::Install { node, .. }
            | Action::Restart { node, .. }
            | Action::Uncordon { node, .. }
            | Action::EtcdSnapshot { node, .. } => node,
        }
    }
}

// ---------------------------------------------------------------- config

/// What the engine needs from a resolved plan. Holds no commands, hosts or
/// keys, so the journal can store it verbatim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineConfig {
    /// Nodes to upgrade, in rollout order within each hop.
    pub nodes: Vec<NodeConfig>,
    /// Versions to install, one minor at a time, ending with the target.
    pub path: Vec<K3sVersion>,
    pub timings: Timings,
    pub gates: GateConfig,
    pub datastore: Datastore,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeConfig {
    pub name: String,
    pub role: Role,
    /// Version before the rollout; the first rollback target.
    pub version: K3sVersion,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateConfig {
    /// Services (`namespace/name`) that must stay announced and probe green.
    pub services: Vec<String>,
    /// Judge every node and service, not only the node being upgraded.
    /// False reproduces the post-mortem's automation; for comparison only.
    pub global_gate: bool,
}

// ---------------------------------------------------------------- state

/// Where a node is within one version hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Phase {
    Pending,
    /// etcd snapshot, before the first server is touched.
    Snapshot,
    Cordon,
    Drain,
    Install,
    /// Always restart after install: the post-mortem's fix.
    Restart,
    WaitVersion,
    WaitReady,
    Soak,
    Uncordon,
    Done,
    Skipped,
}

impl Phase {
    fn next(self) -> Phase {
        match self {
            Phase::Pending | Phase::Snapshot => Phase::Cordon,
            Phase::Cordon => Phase::Drain,
            Phase::Drain => Phase::Install,
            Phase::Install => Phase::Restart,
            Phase::Restart => Phase::WaitVersion,
            Phase::WaitVersion => Phase::WaitReady,
            Phase::WaitReady => Phase::Soak,
            Phase::Soak => Phase::Uncordon,
            Phase::Uncordon | Phase::Done => Phase::Done,
            Phase::Skipped => Phase::Skipped,
        }
    }

    /// A pause may take effect before this phase begins. Never between
    /// install and restart, and never in the middle of the checks that
    /// follow: a node is either untouched-enough or fully verified.
    fn safe_to_pause_before(self) -> bool {
        matches!(
            self,
            Phase::Pending | Phase::Snapshot | Phase::Cordon | Phase::Drain | Phase::Install
        )
    }

    /// Position among the eight working phases, for progress gauges.
    fn ordinal(self) -> f64 {
        match self {
            Phase::Pending | Phase::Snapshot | Phase::Cordon | Phase::Skipped => 0.0,
            Phase::Drain => 1.0,
            Phase::Install => 2.0,
            Phase::Restart => 3.0,
            Phase::WaitVersion => 4.0,
            Phase::WaitReady => 5.0,
            Phase::Soak => 6.0,
            Phase::Uncordon => 7.0,
            Phase::Done => 8.0,
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Pending => "pending",
            Phase::Snapshot => "etcd snapshot",
            Phase::Cordon => "cordon",
            Phase::Drain => "drain",
            Phase::Install => "install",
            Phase::Restart => "restart",
            Phase::WaitVersion => "wait version",
            Phase::WaitReady => "wait Ready",
            Phase::Soak => "soak",
            Phase::Uncordon => "uncordon",
            Phase::Done => "done",
            Phase::Skipped => "skipped",
        })
    }
}

/// Why the rollout stopped and waits for the operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Halt {
    /// Names the cause: the node or service and what was wrong.
    pub reason: String,
    /// The node whose phase halted (for a gate halt before a node: that node).
    pub node: Option<String>,
    pub phase: Option<Phase>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RolloutState {
    /// Waiting for Start, Canary or Step.
    Idle,
    Running,
    /// Pause requested; takes effect at the next safe point.
    Pausing,
    Paused,
    CanaryAwaitingConfirm,
    Halted(Halt),
    Aborted,
    RollingBack,
    Done,
    RolledBack,
}

impl RolloutState {
    pub fn label(&self) -> &'static str {
        match self {
            RolloutState::Idle => "idle",
            RolloutState::Running => "running",
            RolloutState::Pausing => "pausing",
            RolloutState::Paused => "paused",
            RolloutState::CanaryAwaitingConfirm => "canary awaiting confirmation",
            RolloutState::Halted(_) => "halted",
            RolloutState::Aborted => "aborted",
            RolloutState::RollingBack => "rolling back",
            RolloutState::Done => "done",
            RolloutState::RolledBack => "rolled back",
        }
    }

    /// No further command can change anything except, for some, Rollback.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            RolloutState::Aborted | RolloutState::Done | RolloutState::RolledBack
        )
    }
}

impl fmt::Display for RolloutState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RolloutState::Halted(h) => write!(f, "halted: {}", h.reason),
            other => f.write_str(other.label()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    Forward,
    Rollback,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    Info,
    Action,
    Warn,
    Halt,
    /// A command the engine refused, with the reason.
    Refused,
}

/// A human-readable line for the timeline and the journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub at: Timestamp,
    pub kind: EventKind,
    pub text: String,
}

/// The etcd snapshot taken before the first server was touched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub node: String,
    /// The name the cockpit asked for.
    pub name: String,
    /// What the executor reported (k3s appends node and time to the name).
    pub reported: Option<String>,
    pub at: Timestamp,
}

/// Soak bookkeeping. Time while the API is unreachable does not count
/// towards the window: nothing was observed then.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Soak {
    window: SignedDuration,
    started: Timestamp,
    excluded: SignedDuration,
    unreachable_since: Option<Timestamp>,
    /// `ready_transitions` of every node when the soak began.
    baseline: BTreeMap<String, u32>,
}

impl Soak {
    fn elapsed(&self, now: Timestamp) -> SignedDuration {
        let blind = self
            .unreachable_since
            .map_or(SignedDuration::ZERO, |t| now.duration_since(t));
        (now.duration_since(self.started) - self.excluded - blind).max(SignedDuration::ZERO)
    }
}

/// One node at one version hop (or, during rollback, back one hop).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Unit {
    node: String,
    role: Role,
    from: K3sVersion,
    to: K3sVersion,
    phase: Phase,
    /// When the current phase began; None while waiting at the boundary
    /// before it (paused, halted, or not reached yet).
    begun: Option<Timestamp>,
    deadline: Option<Timestamp>,
    inflight: Option<u64>,
    soak: Option<Soak>,
    cordoned: bool,
    install_started: bool,
    /// Install was in flight at a restart: on version timeout, install again.
    reverify: bool,
    canary: bool,
    error: Option<String>,
}

impl Unit {
    fn new(node: &NodeConfig, from: K3sVersion, to: K3sVersion) -> Unit {
        Unit {
            node: node.name.clone(),
            role: node.role,
            from,
            to,
            phase: Phase::Pending,
            begun: None,
            deadline: None,
            inflight: None,
            soak: None,
            cordoned: false,
            install_started: false,
            reverify: false,
            canary: false,
            error: None,
        }
    }

    fn finished(&self) -> bool {
        matches!(self.phase, Phase::Done | Phase::Skipped)
    }

    /// Started and not finished: a node in the middle of its work.
    fn in_progress(&self) -> bool {
        !self.finished() && (self.phase != Phase::Pending || self.begun.is_some())
    }
}

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
    events: Vec<Event>,
}

/// Read-only state for the TUI and headless output.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RolloutView {
    pub state: RolloutState,
    pub direction: Direction,
    /// Node being worked on, if any.
    pub current: Option<String>,
    pub path: Vec<K3sVersion>,
    pub nodes: Vec<NodeView>,
    /// Why a running rollout is waiting, if it is.
    pub note: Option<String>,
    pub snapshot: Option<SnapshotRecord>,
    pub needs_datastore_restore: bool,
    pub restore_command: Option<String>,
    pub events: Vec<Event>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeView {
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

fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

fn fmt_d(d: SignedDuration) -> String {
    // Whole seconds are plenty for people; keep sub-second only if short.
    if d >= SignedDuration::from_secs(1) {
        duration::format(SignedDuration::from_secs(d.as_secs()))
    } else {
        duration::format(d)
    }
}

impl Engine {
    /// A fresh engine in [`RolloutState::Idle`]. Units are built hop-major:
    /// for each version of the path, every node still below it, in order.
    pub fn new(config: EngineConfig) -> Engine {
        let mut units = Vec::new();
        let mut current: Vec<K3sVersion> = config.nodes.iter().map(|n| n.version.clone()).collect();
        for hop in &config.path {
            for (node, version) in config.nodes.iter().zip(current.iter_mut()) {
                if *version < *hop {
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

    // ------------------------------------------------------------ helpers

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
            RolloutState::Running | RolloutState::Pausing | RolloutState::RollingBack
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
            Phase::Snapshot | Phase::Cordon | Phase::Restart | Phase::Uncordon => {
                Some(t.command_timeout)
            }
            Phase::Drain => Some(t.drain_timeout),
            Phase::Install => Some(t.install_timeout),
            Phase::WaitVersion => Some(t.version_timeout),
            Phase::WaitReady => Some(t.ready_timeout),
            _ => None,
        }
    }

    /// Nodes the gate does not judge: skipped ones, and during rollback the
    /// ones still waiting to be rolled back (they are why we roll back).
    fn exempt(&self, node: &str) -> bool {
        if self.skipped.contains(node) {
            return true;
        }
        self.direction == Direction::Rollback
            && self.units[self.rollback_from..]
                .iter()
                .any(|u| u.node == node && !u.finished())
    }

    /// What is wrong with one node, if anything.
    fn node_problem(
        obs: &Observation,
        node: &str,
        baseline: Option<&BTreeMap<String, u32>>,
    ) -> Option<String> {
        let Some(n) = obs.nodes.iter().find(|n| n.name == node) else {
            return Some(format!("node {node} is missing from the cluster"));
        };
        if !n.ready {
            return Some(format!("node {node} is NotReady"));
        }
        if n.heartbeat_late {
            return Some(format!("node {node} heartbeat is late"));
        }
        if let Some(before) = baseline.and_then(|b| b.get(node))
            && n.ready_transitions > *before
        {
            return Some(format!(
                "node {node} went NotReady and back ({} flap(s))",
                n.ready_transitions - before
            ));
        }
        None
    }

    /// Gate problems, current node first. `current` is always judged; other
    /// nodes and services only with the global gate. Services are not gated
    /// during rollback: they may be down because of the nodes rolled back.
    fn gate_problems(
        &self,
        obs: &Observation,
        current: Option<&str>,
        baseline: Option<&BTreeMap<String, u32>>,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(c) = current
            && let Some(p) = Self::node_problem(obs, c, baseline)
        {
            problems.push(p);
        }
        if !self.config.gates.global_gate {
            return problems;
        }
        let mut names: Vec<&str> = self.config.nodes.iter().map(|n| n.name.as_str()).collect();
        for n in &obs.nodes {
            if !names.contains(&n.name.as_str()) {
                names.push(&n.name);
            }
        }
        for name in names {
            if Some(name) == current || self.exempt(name) {
                continue;
            }
            if let Some(p) = Self::node_problem(obs, name, baseline) {
                problems.push(p);
            }
        }
        if self.direction == Direction::Forward {
            for s in &self.config.gates.services {
                match obs.services.iter().find(|o| &o.name == s) {
                    None => problems.push(format!("service {s} is not observed")),
                    Some(o) if o.announced_by.is_none() => {
                        problems.push(format!("service {s} is not announced by any node"))
                    }
                    Some(o) if o.probe_ok == Some(false) => {
                        problems.push(format!("service {s} probe is failing"))
                    }
                    Some(_) => {}
                }
            }
        }
        problems
    }

    fn halt(&mut self, i: Option<usize>, reason: String, now: Timestamp) {
        let (node, phase) = match i {
            Some(i) => {
                let u = &mut self.units[i];
                u.begun = None;
                u.deadline = None;
                u.inflight = None;
                u.soak = None;
                u.error = Some(reason.clone());
                (Some(u.node.clone()), Some(u.phase))
            }
            None => (None, None),
        };
        self.stop_after_unit = false;
        self.note = None;
        self.event(now, EventKind::Halt, format!("HALTED: {reason}"));
        self.state = RolloutState::Halted(Halt {
            reason,
            node,
            phase,
        });
    }

    fn snapshot_name(now: Timestamp) -> String {
        format!("k3s-cockpit-{}", now.strftime("%Y%m%d-%H%M%S"))
    }

    fn needs_snapshot(&self, i: usize) -> bool {
        self.direction == Direction::Forward
            && self.config.datastore == Datastore::Etcd
            && self.snapshot.is_none()
            && self.units[i].role == Role::Server
    }

    // ------------------------------------------------------------ inputs

    fn observe(&mut self, obs: Observation, now: Timestamp) {
        let was = self.obs.as_ref().map(|o| o.api_reachable);
        match (was, obs.api_reachable) {
            (Some(true), false) => self.event(
                now,
                EventKind::Warn,
                "API unreachable: health judgements paused, timeouts still run".into(),
            ),
            (Some(false), true) => self.event(now, EventKind::Info, "API reachable again".into()),
            _ => {}
        }
        if let Some(i) = self.current()
            && let Some(soak) = self.units[i].soak.as_mut()
        {
            match (soak.unreachable_since, obs.api_reachable) {
                (Some(t), true) => {
                    soak.excluded += now.duration_since(t);
                    soak.unreachable_since = None;
                }
                (None, false) => soak.unreachable_since = Some(now),
                _ => {}
            }
        }
        self.obs = Some(obs);
    }

    fn finished(
        &mut self,
        id: u64,
        result: Result<(), String>,
        output: Option<String>,
        now: Timestamp,
    ) {
        let Some(i) = self.units.iter().position(|u| u.inflight == Some(id)) else {
            self.event(
                now,
                EventKind::Warn,
                format!("ignored the result of action #{id}: no longer waited for"),
            );
            return;
        };
        let (node, phase) = (self.units[i].node.clone(), self.units[i].phase);
        if !self.is_active() {
            // Aborted with an action still running: record how it ended.
            let u = &mut self.units[i];
            u.inflight = None;
            u.begun = None;
            u.deadline = None;
            let how = match &result {
                Ok(()) => "succeeded".to_string(),
                Err(e) => format!("failed: {e}"),
            };
            self.event(
                now,
                EventKind::Warn,
                format!("{phase} of {node} {how} after the rollout stopped"),
            );
            return;
        }
        match result {
            Ok(()) => {
                if phase == Phase::Snapshot {
                    let name = self
                        .snapshot_requested
                        .take()
                        .unwrap_or_else(|| Self::snapshot_name(now));
                    self.event(
                        now,
                        EventKind::Info,
                        format!(
                            "etcd snapshot {name} saved on {node}{}",
                            output.as_ref().map_or(String::new(), |o| format!(" ({o})"))
                        ),
                    );
                    self.snapshot = Some(SnapshotRecord {
                        node: node.clone(),
                        name,
                        reported: output,
                        at: now,
                    });
                }
                self.complete_phase(i, now);
            }
            Err(e) => {
                let reason = format!("{phase} of {node} failed: {e}");
                self.halt(Some(i), reason, now);
            }
        }
    }

    fn reattach(&mut self, now: Timestamp) {
        // Anything observed before the restart is stale.
        self.obs = None;
        self.note = None;
        let Some(i) = self.current() else {
            self.event(now, EventKind::Info, "cockpit restarted".into());
            return;
        };
        if !self.is_active() {
            if let Some(id) = self.units[i].inflight.take() {
                let (node, phase) = (self.units[i].node.clone(), self.units[i].phase);
                self.units[i].begun = None;
                self.units[i].deadline = None;
                self.event(
                    now,
                    EventKind::Warn,
                    format!("cockpit restarted while {phase} of {node} (action #{id}) was running; check {node} by hand"),
                );
            } else {
                self.event(now, EventKind::Info, "cockpit restarted".into());
            }
            return;
        }
        let timeout = self.config.timings.version_timeout;
        let u = &mut self.units[i];
        let node = u.node.clone();
        let phase = u.phase;
        let text = match (phase, u.inflight.is_some(), u.begun.is_some()) {
            (Phase::Install, true, _) => {
                // The install may have finished, may still run under nohup,
                // or may never have started: look at the kubelet's version
                // instead of installing again; install again only if the
                // version does not show up in time.
                u.inflight = None;
                u.phase = Phase::WaitVersion;
                u.begun = Some(now);
                u.deadline = Some(now + timeout);
                u.reverify = true;
                format!(
                    "cockpit restarted during install on {node}: verifying the version instead of reinstalling"
                )
            }
            (_, true, _) => {
                u.inflight = None;
                u.begun = None;
                u.deadline = None;
                format!(
                    "cockpit restarted during {phase} of {node}: issuing it again (it is idempotent)"
                )
            }
            (Phase::WaitVersion | Phase::WaitReady | Phase::Soak, false, true) => {
                u.begun = None;
                u.deadline = None;
                u.soak = None;
                format!("cockpit restarted during {phase} of {node}: checking again from the start")
            }
            _ => "cockpit restarted".to_string(),
        };
        self.event(now, EventKind::Warn, text);
    }

    // ------------------------------------------------------------ commands

    /// Whether `cmd` would be accepted now, and if not, why. Pure; the TUI
    /// can use it to explain a key before asking for confirmation.
    pub fn check_command(&self, cmd: &Command) -> Result<(), String> {
        use RolloutState as S;
        let state = &self.state;
        let over = || Err(format!("the rollout is {}", state.label()));
        let halted = || Err("halted: use retry, resume, skip, rollback or abort".to_string());
        match cmd {
            Command::Start | Command::Canary => match state {
                // Start with nothing to do is fine: it ends at once in Done.
                S::Idle if *cmd == Command::Canary && self.current().is_none() => {
                    Err("nothing to upgrade".into())
                }
                S::Idle => Ok(()),
                S::Paused => Err("paused: use resume".into()),
                S::Halted(_) => halted(),
                s if s.is_terminal() => over(),
                _ => Err(format!("already {}", state.label())),
            },
            Command::ConfirmCanary => match state {
                S::CanaryAwaitingConfirm => Ok(()),
                _ => Err("no canary is waiting for confirmation".into()),
            },
            Command::Pause => match state {
                S::Running | S::RollingBack => Ok(()),
                S::Pausing => Err("a pause is already pending".into()),
                S::Paused => Err("already paused".into()),
                S::Idle => Err("not started".into()),
                S::CanaryAwaitingConfirm => {
                    Err("already waiting for the canary to be confirmed".into())
                }
                S::Halted(_) => Err("already halted".into()),
                _ => over(),
            },
            Command::Resume => match state {
                S::Paused | S::Pausing => Ok(()),
                S::Halted(h) => {
                    let obs = self
                        .reachable_obs()
                        .ok_or("no fresh observation of the cluster yet; wait for the API")?;
                    let current = self
                        .current()
                        .map(|i| &self.units[i])
                        .filter(|u| u.phase != Phase::Pending)
                        .map(|u| u.node.as_str());
                    let problems = self.gate_problems(obs, current, None);
                    if problems.is_empty() {
                        Ok(())
                    } else {
                        Err(format!(
                            "the gate is still unhealthy: {} (halted for: {})",
                            problems.join("; "),
                            h.reason
                        ))
                    }
                }
                S::Idle => Err("not started: use start, canary or step".into()),
                S::Running | S::RollingBack => Err("already running".into()),
                S::CanaryAwaitingConfirm => Err("use confirm canary".into()),
                _ => over(),
            },
            Command::Step => match state {
                S::Idle if self.current().is_none() => Err("nothing to upgrade".into()),
                S::Idle | S::Paused => Ok(()),
                S::Running | S::RollingBack if self.stop_after_unit => {
                    Err("a step is already under way".into())
                }
                S::Running | S::RollingBack => Ok(()),
                S::Pausing => Err("a pause is already pending".into()),
                S::Halted(_) => halted(),
                S::CanaryAwaitingConfirm => Err("confirm the canary first".into()),
                _ => over(),
            },
            Command::Abort => match state {
                S::Aborted => Err("already aborted".into()),
                S::Done | S::RolledBack => over(),
                _ => Ok(()),
            },
            Command::Retry => match state {
                S::Halted(_) => Ok(()),
                _ => Err("nothing to retry: the rollout is not halted".into()),
            },
            Command::Skip(node) => self.check_skip(node),
            Command::Rollback => self.check_rollback(),
        }
    }

    fn check_skip(&self, node: &str) -> Result<(), String> {
        if self.state.is_terminal() {
            return Err(format!("the rollout is {}", self.state.label()));
        }
        if !self.config.nodes.iter().any(|n| n.name == node) {
            return Err(format!("{node} is not part of this rollout"));
        }
        if self.skipped.contains(node) {
            return Err(format!("{node} is already skipped"));
        }
        let range = self.range();
        let remaining: Vec<usize> = range
            .clone()
            .filter(|&i| self.units[i].node == node && !self.units[i].finished())
            .collect();
        if remaining.is_empty() {
            return Err(format!("{node} has nothing left to do"));
        }
        if let Some(i) = self.current()
            && self.units[i].node == node
            && self.units[i].in_progress()
            && !matches!(
                self.state,
                RolloutState::Halted(_) | RolloutState::Paused | RolloutState::Idle
            )
        {
            return Err(format!(
                "{node} is being worked on; wait for a halt or pause it first"
            ));
        }
        if self.direction == Direction::Forward
            && let Some(cfg) = self.config.nodes.iter().find(|n| n.name == node)
            && cfg.role == Role::Server
            && let Some(target) = self.config.path.last()
        {
            let stays = remaining
                .first()
                .map(|&i| &self.units[i])
                .map(|u| if u.install_started { &u.to } else { &u.from });
            if let Some(stays) = stays
                && stays.minor + 1 < target.minor
            {
                return Err(format!(
                    "skipping server {node} would leave it on {stays}, more than one minor version behind {target}"
                ));
            }
        }
        Ok(())
    }

    fn check_rollback(&self) -> Result<(), String> {
        use RolloutState as S;
        if self.direction == Direction::Rollback {
            return Err("already rolling back".into());
        }
        match &self.state {
            S::Idle => return Err("nothing to roll back: the rollout has not started".into()),
            S::Running | S::Pausing => {
                return Err(
                    "pause (or abort) first; rollback starts from a stopped rollout".into(),
                );
            }
            _ => {}
        }
        if let Some((id, node, phase)) = self.in_flight() {
            return Err(format!(
                "wait for {phase} of {node} (action #{id}) to finish"
            ));
        }
        if self.rollback_units().is_empty() {
            return Err("no node has been changed".into());
        }
        Ok(())
    }

    fn apply(&mut self, cmd: Command, now: Timestamp) {
        match cmd {
            Command::Start => {
                self.state = RolloutState::Running;
                self.event(now, EventKind::Info, "rollout started".into());
            }
            Command::Canary => {
                if let Some(i) = self.current() {
                    self.units[i].canary = true;
                    let node = self.units[i].node.clone();
                    self.event(
                        now,
                        EventKind::Info,
                        format!(
                            "canary started on {node}: soak {}, then wait for confirmation",
                            fmt_d(self.config.timings.canary_soak)
                        ),
                    );
                }
                self.state = RolloutState::Running;
            }
            Command::ConfirmCanary => {
                self.state = RolloutState::Running;
                self.event(now, EventKind::Info, "canary confirmed: continuing".into());
            }
            Command::Pause => {
                self.state = RolloutState::Pausing;
                self.event(
                    now,
                    EventKind::Info,
                    "pause requested: takes effect at the next safe point".into(),
                );
            }
            Command::Resume => {
                let from_halt = matches!(self.state, RolloutState::Halted(_));
                self.state = self.active_state();
                if from_halt {
                    self.rewind_for_retry();
                }
                self.event(now, EventKind::Info, "resumed".into());
            }
            Command::Step => {
                self.stop_after_unit = true;
                self.state = self.active_state();
                self.event(
                    now,
                    EventKind::Info,
                    "step: one more node, then pause".into(),
                );
            }
            Command::Abort => {
                self.state = RolloutState::Aborted;
                self.stop_after_unit = false;
                self.note = None;
                let mut text = "ABORTED by the operator".to_string();
                if let Some((id, node, phase)) = self.in_flight() {
                    text.push_str(&format!(
                        "; {phase} of {node} (action #{id}) is still running"
                    ));
                }
                let cordoned: Vec<String> = self
                    .units
                    .iter()
                    .filter(|u| u.cordoned && !u.finished())
                    .map(|u| u.node.clone())
                    .collect();
                if !cordoned.is_empty() {
                    text.push_str(&format!("; left cordoned: {}", cordoned.join(", ")));
                }
                self.event(now, EventKind::Warn, text);
            }
            Command::Retry => {
                self.state = self.active_state();
                self.rewind_for_retry();
                self.event(now, EventKind::Info, "retrying the failed phase".into());
            }
            Command::Skip(node) => self.skip(&node, now),
            Command::Rollback => self.start_rollback(now),
        }
    }

    /// Retry resumes from the earliest phase that re-verifies: a failed
    /// version wait re-installs (waiting again would change nothing), a
    /// failed soak waits for Ready again and then soaks a full window.
    fn rewind_for_retry(&mut self) {
        if let Some(i) = self.current() {
            let u = &mut self.units[i];
            u.phase = match u.phase {
                Phase::WaitVersion => Phase::Install,
                Phase::Soak => Phase::WaitReady,
                p => p,
            };
            u.begun = None;
            u.deadline = None;
            u.soak = None;
        }
    }

    fn skip(&mut self, node: &str, now: Timestamp) {
        let range = self.range();
        let current = self.current();
        let mut was_current = false;
        let mut cordoned = false;
        for i in range {
            let u = &mut self.units[i];
            if u.node == node && !u.finished() {
                was_current |= Some(i) == current && u.in_progress();
                cordoned |= u.cordoned;
                u.phase = Phase::Skipped;
                u.begun = None;
                u.deadline = None;
                u.soak = None;
            }
        }
        self.skipped.insert(node.to_string());
        let mut text =
            format!("{node} skipped for the rest of the rollout; the gate no longer judges it");
        if cordoned {
            text.push_str(&format!("; {node} is left cordoned"));
        }
        self.event(now, EventKind::Warn, text);
        if was_current && matches!(self.state, RolloutState::Halted(_)) {
            self.state = RolloutState::Paused;
            self.event(
                now,
                EventKind::Info,
                "paused: resume to continue with the next node".into(),
            );
        }
    }

    /// Rollback units, newest change first: every unit whose install started
    /// goes back to its `from` version; a node that was only cordoned is
    /// uncordoned.
    fn rollback_units(&self) -> Vec<Unit> {
        let mut out = Vec::new();
        for u in self.units[..self.rollback_from].iter().rev() {
            if u.install_started {
                let mut r = u.clone();
                r.from = u.to.clone();
                r.to = u.from.clone();
                r.phase = Phase::Pending;
                out.push(r);
            } else if u.cordoned && !u.finished() {
                let mut r = u.clone();
                r.to = u.from.clone();
                r.phase = Phase::Uncordon;
                out.push(r);
            } else {
                continue;
            }
            if let Some(r) = out.last_mut() {
                r.begun = None;
                r.deadline = None;
                r.inflight = None;
                r.soak = None;
                r.cordoned = false;
                r.install_started = false;
                r.reverify = false;
                r.canary = false;
                r.error = None;
            }
        }
        out
    }

    fn start_rollback(&mut self, now: Timestamp) {
        let units = self.rollback_units();
        let list: Vec<String> = units
            .iter()
            .map(|u| {
                if u.phase == Phase::Uncordon {
                    format!("{} (uncordon only)", u.node)
                } else {
                    format!("{} {} -> {}", u.node, u.from, u.to)
                }
            })
            .collect();
        self.units.truncate(self.rollback_from);
        self.units.extend(units);
        self.direction = Direction::Rollback;
        self.cursor = self.rollback_from;
        self.stop_after_unit = false;
        self.not_before = None;
        self.state = RolloutState::RollingBack;
        self.event(
            now,
            EventKind::Warn,
            format!("ROLLBACK: {}", list.join(", ")),
        );
        if let Some(cmd) = self.restore_command() {
            self.event(
                now,
                EventKind::Warn,
                format!("datastore restore needed: {cmd}"),
            );
        }
    }

    // ------------------------------------------------------------ progress

    fn begin(&mut self, i: usize, now: Timestamp, out: &mut Vec<Action>) {
        let timeout = self.timeout_for(self.units[i].phase);
        let canary_soak = self.config.timings.canary_soak;
        let soak_window = self.config.timings.soak;
        let id = self.next_id;
        let obs_reachable = self.obs.as_ref().is_some_and(|o| o.api_reachable);
        let baseline: BTreeMap<String, u32> = self
            .obs
            .iter()
            .flat_map(|o| o.nodes.iter())
            .map(|n| (n.name.clone(), n.ready_transitions))
            .collect();
        let snapshot_name = Self::snapshot_name(now);
        let u = &mut self.units[i];
        u.begun = Some(now);
        u.deadline = timeout.map(|t| now + t);
        let node = u.node.clone();
        let action = match u.phase {
            Phase::Snapshot => Some(Action::EtcdSnapshot {
                id,
                node: node.clone(),
                name: snapshot_name.clone(),
            }),
            Phase::Cordon => {
                u.cordoned = true;
                Some(Action::Cordon {
                    id,
                    node: node.clone(),
                })
            }
            Phase::Drain => Some(Action::Drain {
                id,
                node: node.clone(),
            }),
            Phase::Install => {
                u.install_started = true;
                Some(Action::Install {
                    id,
                    node: node.clone(),
                    version: u.to.clone(),
                })
            }
            Phase::Restart => Some(Action::Restart {
                id,
                node: node.clone(),
            }),
            Phase::Uncordon => Some(Action::Uncordon {
                id,
                node: node.clone(),
            }),
            Phase::Soak => {
                u.soak = Some(Soak {
                    window: if u.canary { canary_soak } else { soak_window },
                    started: now,
                    excluded: SignedDuration::ZERO,
                    unreachable_since: (!obs_reachable).then_some(now),
                    baseline,
                });
                None
            }
            _ => None,
        };
        let phase = u.phase;
        let to = u.to.clone();
        let detail = match phase {
            Phase::Soak => u
                .soak
                .as_ref()
                .map_or(String::new(), |s| format!(" for {}", fmt_d(s.window))),
            Phase::Install => format!(" {to}"),
            _ => String::new(),
        };
        if let Some(a) = action {
            u.inflight = Some(id);
            self.next_id += 1;
            if phase == Phase::Snapshot {
                self.snapshot_requested = Some(snapshot_name);
            }
            out.push(a);
        }
        self.event(
            now,
            EventKind::Action,
            format!("{node} ({to}): {phase}{detail}"),
        );
    }

    fn complete_phase(&mut self, i: usize, now: Timestamp) {
        let u = &mut self.units[i];
        u.phase = u.phase.next();
        u.begun = None;
        u.deadline = None;
        u.inflight = None;
        u.soak = None;
        u.reverify = false;
        if u.phase != Phase::Done {
            return;
        }
        u.error = None;
        let (node, to, canary) = (u.node.clone(), u.to.clone(), u.canary);
        self.event(now, EventKind::Info, format!("{node} is done: {to}"));
        let pause = self.config.timings.pause_between;
        self.not_before = (pause > SignedDuration::ZERO).then(|| now + pause);
        if self.seek().is_none() {
            return; // advance() finishes the rollout
        }
        if canary && self.direction == Direction::Forward {
            self.state = RolloutState::CanaryAwaitingConfirm;
            self.event(
                now,
                EventKind::Info,
                format!("canary {node} passed its soak: confirm to continue"),
            );
        } else if self.stop_after_unit {
            self.stop_after_unit = false;
            self.state = RolloutState::Paused;
            self.event(now, EventKind::Info, "paused after one step".into());
        }
    }

    fn advance(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        // Every iteration either returns or moves a unit forward by a phase,
        // so the bound is never reached in practice.
        for _ in 0..1000 {
            if !self.is_active() {
                return;
            }
            let Some(i) = self.seek() else {
                self.finish(now);
                return;
            };
            let moved = if self.units[i].begun.is_none() {
                self.at_boundary(i, now, out)
            } else {
                self.judge(i, now)
            };
            if !moved {
                return;
            }
        }
    }

    fn finish(&mut self, now: Timestamp) {
        self.note = None;
        self.stop_after_unit = false;
        match self.direction {
            Direction::Forward => {
                self.state = RolloutState::Done;
                let target = self
                    .config
                    .path
                    .last()
                    .map_or(String::new(), |t| format!(": {t}"));
                self.event(now, EventKind::Info, format!("rollout done{target}"));
            }
            Direction::Rollback => {
                self.state = RolloutState::RolledBack;
                self.event(now, EventKind::Info, "rollback done".into());
            }
        }
    }

    fn set_note(&mut self, note: Option<String>) {
        if self.note != note {
            self.note = note;
        }
    }

    /// Before a phase begins: pause if asked and safe; before a new node,
    /// apply the global gate. Returns true if the phase began.
    fn at_boundary(&mut self, i: usize, now: Timestamp, out: &mut Vec<Action>) -> bool {
        let phase = self.units[i].phase;
        if self.state == RolloutState::Pausing && phase.safe_to_pause_before() {
            self.state = RolloutState::Paused;
            self.note = None;
            let node = self.units[i].node.clone();
            self.event(
                now,
                EventKind::Info,
                format!("paused before {phase} of {node}"),
            );
            return false;
        }
        if phase == Phase::Pending {
            if let Some(t) = self.not_before
                && now < t
            {
                self.set_note(Some(format!(
                    "waiting until {t} before the next node (pause_between)"
                )));
                return false;
            }
            let Some(obs) = self.reachable_obs() else {
                self.set_note(Some(
                    "waiting for a fresh observation of the cluster".into(),
                ));
                return false;
            };
            let problems = self.gate_problems(obs, None, None);
            if !problems.is_empty() {
                let node = self.units[i].node.clone();
                let reason = format!("gate before starting {node}: {}", problems.join("; "));
                self.halt(Some(i), reason, now);
                return false;
            }
            self.not_before = None;
            self.set_note(None);
            self.units[i].phase = if self.needs_snapshot(i) {
                Phase::Snapshot
            } else {
                Phase::Cordon
            };
        }
        self.begin(i, now, out);
        true
    }

    /// Judges a phase in progress. Returns true if it completed.
    fn judge(&mut self, i: usize, now: Timestamp) -> bool {
        let u = &self.units[i];
        let phase = u.phase;
        let node = u.node.clone();
        let obs = self.reachable_obs();
        let observed = obs.and_then(|o| o.nodes.iter().find(|n| n.name == node));
        let passed = match phase {
            Phase::WaitVersion => observed
                .and_then(|n| n.version.parse::<K3sVersion>().ok())
                .is_some_and(|v| v == u.to),
            Phase::WaitReady => observed.is_some_and(|n| n.ready && !n.heartbeat_late),
            Phase::Soak => {
                let (Some(obs), Some(soak)) = (obs, u.soak.as_ref()) else {
                    return false;
                };
                let problems = self.gate_problems(obs, Some(&node), Some(&soak.baseline));
                if !problems.is_empty() {
                    let reason = format!(
                        "soak of {node} ({}) failed after {} of {}: {}",
                        u.to,
                        fmt_d(soak.elapsed(now)),
                        fmt_d(soak.window),
                        problems.join("; ")
                    );
                    self.halt(Some(i), reason, now);
                    return false;
                }
                soak.elapsed(now) >= soak.window
            }
            _ => false,
        };
        if passed {
            self.complete_phase(i, now);
            return true;
        }
        let u = &self.units[i];
        if let (Some(deadline), Some(begun)) = (u.deadline, u.begun)
            && now >= deadline
        {
            if phase == Phase::WaitVersion && u.reverify {
                let u = &mut self.units[i];
                u.phase = Phase::Install;
                u.begun = None;
                u.deadline = None;
                u.reverify = false;
                self.event(
                    now,
                    EventKind::Warn,
                    format!(
                        "{node} does not report {} after the restart: installing again",
                        self.units[i].to
                    ),
                );
                return true;
            }
            let mut reason = format!(
                "{phase} of {node} did not finish within {}",
                fmt_d(deadline.duration_since(begun))
            );
            if phase == Phase::WaitVersion
                && let Some(n) = observed
            {
                reason.push_str(&format!(
                    " (kubelet reports {}, expected {})",
                    n.version, u.to
                ));
            }
            self.halt(Some(i), reason, now);
        }
        false
    }

    // ------------------------------------------------------------ rollback honesty

    /// True if a server crossed a minor version on embedded etcd: binaries
    /// alone cannot go back, the datastore must be restored from the
    /// snapshot taken before the first server was touched.
    pub fn needs_datastore_restore(&self) -> bool {
        self.config.datastore == Datastore::Etcd
            && self.units[..self.rollback_from]
                .iter()
                .any(|u| u.role == Role::Server && u.install_started && !u.from.same_minor(&u.to))
    }

    /// The restore procedure with the exact command, when one is needed.
    pub fn restore_command(&self) -> Option<String> {
        if !self.needs_datastore_restore() {
            return None;
        }
        Some(match &self.snapshot {
            Some(s) => {
                let path = match &s.reported {
                    Some(r) if r.starts_with('/') => r.clone(),
                    Some(r) => format!("{SNAPSHOT_DIR}/{r}"),
                    None => format!("{SNAPSHOT_DIR}/{}-<node>-<timestamp> (see `k3s etcd-snapshot ls`)", s.name),
                };
                format!(
                    "stop k3s on every server (systemctl stop k3s), then on {node} with the old binary: k3s server --cluster-reset --cluster-reset-restore-path={path} ; start k3s on {node}, then on the other servers after removing /var/lib/rancher/k3s/server/db",
                    node = s.node
                )
            }
            None => "no etcd snapshot was recorded by this rollout: restore from your own backup (k3s server --cluster-reset --cluster-reset-restore-path=<snapshot>)".to_string(),
        })
    }

    // ------------------------------------------------------------ view

    /// A read-only picture of the rollout at `now` (soak progress depends on it).
    pub fn view(&self, now: Timestamp) -> RolloutView {
        let current = self.current().filter(|&i| self.units[i].in_progress());
        let range = self.range();
        let nodes = self
            .config
            .nodes
            .iter()
            .map(|n| {
                let mine: Vec<usize> = range
                    .clone()
                    .filter(|&i| self.units[i].node == n.name)
                    .collect();
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
                NodeView {
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
                }
            })
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
            events: self.events.clone(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::upgrade::testkit::*;

    fn halted(e: &Engine) -> Option<&Halt> {
        match e.state() {
            RolloutState::Halted(h) => Some(h),
            _ => None,
        }
    }

    fn phase_of(e: &Engine, node: &str, now: Timestamp) -> Phase {
        e.view(now)
            .nodes
            .into_iter()
            .find(|n| n.name == node)
            .unwrap()
            .phase
    }

    fn in_phase(node: &'static str, phase: Phase) -> impl Fn(&Engine, &Sim) -> bool {
        move |e, s| phase_of(e, node, s.now) == phase
    }

    fn started(cfg: EngineConfig, extra: &[&str]) -> (Engine, Sim) {
        let mut e = Engine::new(cfg.clone());
        let mut s = Sim::new(&cfg, extra);
        s.observe(&mut e);
        s.command(&mut e, Command::Start);
        (e, s)
    }

    fn last_event(e: &Engine) -> &Event {
        e.events().last().unwrap()
    }

    #[test]
    fn every_node_restarts_after_install_and_etcd_snapshot_comes_first() {
        let (mut e, mut s) = started(abc(), &[]);
        assert!(s.run_until(&mut e, secs(10), mins(60), |e, _| *e.state()
            == RolloutState::Done));
        assert_eq!(
            s.kinds_for("A"),
            [
                "snapshot", "cordon", "drain", "install", "restart", "uncordon"
            ]
        );
        for n in ["B", "C"] {
            assert_eq!(
                s.kinds_for(n),
                ["cordon", "drain", "install", "restart", "uncordon"]
            );
        }
        let snap = e.snapshot().unwrap();
        assert_eq!(snap.node, "A");
        assert_eq!(snap.name, "k3s-cockpit-20260125-213300");
        assert_eq!(
            snap.reported.as_deref(),
            Some("k3s-cockpit-20260125-213300-A-1769376780")
        );
        // Each node soaked a full 5 minutes: three nodes take at least 15.
        assert!(s.now.duration_since(t0()) >= mins(15));
        let view = e.view(s.now);
        assert!(
            view.nodes
                .iter()
                .all(|n| n.phase == Phase::Done && n.progress == 1.0)
        );
        assert!(view.nodes.iter().all(|n| n.version == v("v1.34.3+k3s1")));
    }

    #[test]
    fn no_snapshot_without_embedded_etcd() {
        let mut cfg = abc();
        cfg.datastore = Datastore::Sqlite;
        let (mut e, mut s) = started(cfg, &[]);
        assert!(s.run_until(&mut e, secs(10), mins(60), |e, _| *e.state()
            == RolloutState::Done));
        assert!(!s.kinds_for("A").contains(&"snapshot"));
        assert!(!e.needs_datastore_restore());
    }

    /// The post-mortem: A is upgraded, Ready, and would pass the old 30 s
    /// check; two minutes into its soak its kubelet stops posting
    /// heartbeats. The engine halts naming A and never touches B.
    #[test]
    fn incident_delayed_heartbeat_failure_halts_before_next_node() {
        let (mut e, mut s) = started(abc(), &[]);
        assert!(s.run_until(&mut e, secs(5), mins(30), in_phase("A", Phase::Soak)));
        let soak_start = s.now;
        s.advance(&mut e, secs(30));
        assert_eq!(
            *e.state(),
            RolloutState::Running,
            "A passes the old 30s check"
        );
        assert!(s.nodes.iter().find(|n| n.name == "A").unwrap().ready);
        s.run_until(&mut e, secs(10), mins(2), |_, s| {
            s.now.duration_since(soak_start) >= mins(2)
        });
        assert_eq!(*e.state(), RolloutState::Running);
        s.node("A").heartbeat_late = true;
        s.advance(&mut e, secs(1));
        let h = halted(&e).expect("halted");
        assert_eq!(h.node.as_deref(), Some("A"));
        assert_eq!(h.phase, Some(Phase::Soak));
        assert!(
            h.reason.contains("node A heartbeat is late"),
            "{}",
            h.reason
        );
        assert!(h.reason.contains("after 2m1s of 5m"), "{}", h.reason);
        // Time passes, nothing else happens to the cluster.
        s.advance(&mut e, mins(30));
        assert!(s.kinds_for("B").is_empty(), "{:?}", s.kinds_for("B"));
        assert!(halted(&e).is_some());
        let view = e.view(s.now);
        let a = view.nodes.iter().find(|n| n.name == "A").unwrap();
        assert!(a.last_error.as_deref().unwrap().contains("heartbeat"));
        assert_eq!(a.phase, Phase::Soak);
    }

    /// The same failure with the old automation's settings: only the
    /// upgraded node is checked, for 30 s. B is drained and upgraded while A
    /// is failing, as on 2026-01-25.
    #[test]
    fn legacy_gate_reproduces_the_incident() {
        let mut cfg = abc();
        cfg.gates.global_gate = false;
        cfg.timings.soak = secs(30);
        let (mut e, mut s) = started(cfg, &[]);
        assert!(s.run_until(&mut e, secs(5), mins(30), in_phase("A", Phase::Soak)));
        let soak_start = s.now;
        assert!(s.run_until(&mut e, secs(5), mins(5), |_, s| {
            !s.kinds_for("B").is_empty()
        }));
        assert!(s.now.duration_since(soak_start) <= secs(35));
        s.run_until(&mut e, secs(5), mins(3), |_, s| {
            s.now.duration_since(soak_start) >= mins(2)
        });
        s.node("A").heartbeat_late = true;
        s.node("A").ready = false;
        assert!(s.run_until(&mut e, secs(5), mins(30), |_, s| {
            s.kinds_for("B").contains(&"uncordon")
        }));
        assert!(halted(&e).is_none(), "{:?}", e.state());
        assert!(s.kinds_for("B").contains(&"install"));
    }

    /// Node C is not part of the rollout. It goes NotReady while A is being
    /// uncordoned (not during a soak): the gate halts before B starts and
    /// names C; once C is back, resume starts B.
    #[test]
    fn global_gate_halts_before_the_next_node() {
        let cfg = config(
            &[("A", Role::Server), ("B", Role::Agent)],
            "v1.33.6+k3s1",
            &["v1.34.3+k3s1"],
        );
        let (mut e, mut s) = started(cfg, &["C"]);
        s.hold.insert("uncordon");
        assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Uncordon)));
        s.node("C").ready = false;
        s.advance(&mut e, secs(1));
        assert_eq!(*e.state(), RolloutState::Running, "no halt mid-uncordon");
        s.release(&mut e, "uncordon");
        let h = halted(&e).expect("halted");
        assert_eq!(h.node.as_deref(), Some("B"));
        assert_eq!(h.phase, Some(Phase::Pending));
        assert!(h.reason.contains("node C is NotReady"), "{}", h.reason);
        assert!(s.kinds_for("B").is_empty());
        assert_eq!(phase_of(&e, "A", s.now), Phase::Done);

        s.command(&mut e, Command::Resume);
        assert_eq!(last_event(&e).kind, EventKind::Refused);
        assert!(last_event(&e).text.contains("node C is NotReady"));
        s.node("C").ready = true;
        s.advance(&mut e, secs(1));
        let actions = s.command(&mut e, Command::Resume);
        assert_eq!(actions.iter().map(kind).collect::<Vec<_>>(), ["cordon"]);
        assert_eq!(actions[0].node(), "B");
    }

    #[test]
    fn global_gate_halts_at_once_during_soak() {
        let (mut e, mut s) = started(abc(), &["C2"]);
        assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Soak)));
        s.advance(&mut e, mins(1));
        s.node("C2").heartbeat_late = true;
        s.observe(&mut e);
        let h = halted(&e).expect("halted");
        assert_eq!(h.node.as_deref(), Some("A"));
        assert!(
            h.reason.contains("node C2 heartbeat is late"),
            "{}",
            h.reason
        );
    }

    #[test]
    fn flap_between_observations_fails_the_soak() {
        let (mut e, mut s) = started(abc(), &[]);
        assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Soak)));
        s.advance(&mut e, mins(3));
        // NotReady and back between two observations: only the counter shows it.
        s.node("A").ready_transitions += 1;
        s.advance(&mut e, secs(10));
        let h = halted(&e).expect("halted");
        assert!(
            h.reason.contains("node A went NotReady and back"),
            "{}",
            h.reason
        );
    }

    #[test]
    fn service_gates_lost_announcer_and_failing_probe() {
        let mut cfg = abc();
        cfg.gates.services = vec!["nvr/frigate".into()];
        let (mut e, mut s) = started(cfg.clone(), &[]);
        assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Soak)));
        s.services[0].announced_by = None;
        s.advance(&mut e, secs(10));
        let h = halted(&e).expect("halted");
        assert!(
            h.reason.contains("service nvr/frigate is not announced"),
            "{}",
            h.reason
        );

        let (mut e, mut s) = started(cfg.clone(), &[]);
        assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Soak)));
        s.services[0].probe_ok = Some(false);
        s.advance(&mut e, secs(10));
        assert!(halted(&e).unwrap().reason.contains("probe is failing"));

        // A probe that has not reported yet is not a failure.
        let (mut e, mut s) = started(cfg, &[]);
        s.services[0].probe_ok = None;
        assert!(s.run_until(&mut e, secs(10), mins(60), |e, _| *e.state()
            == RolloutState::Done));
    }

    #[test]
    fn gate_refuses_to_start_on_an_unhealthy_cluster() {
        let cfg = abc();
        let mut e = Engine::new(cfg.clone());
        let mut s = Sim::new(&cfg, &[]);
        s.node("C").ready = false;
        s.observe(&mut e);
        let actions = s.command(&mut e, Command::Start);
        assert!(actions.is_empty());
        let h = halted(&e).expect("halted");
        assert_eq!(h.node.as_deref(), Some("A"));
        assert!(h.reason.contains("node C is NotReady"), "{}", h.reason);
    }

    /// A K3s server restart takes the API down. That time neither fails the
    /// soak nor counts towards it; timeouts keep running.
    #[test]
    fn api_outage_pauses_judgement_not_timeouts() {
        let (mut e, mut s) = started(abc(), &[]);
        assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Soak)));
        let soak_start = s.now;
        s.advance(&mut e, mins(1));
        s.api = false;
        // Stale data from a failing API must not count as a node failure.
        s.node("A").ready = false;
        s.node("B").heartbeat_late = true;
        s.advance(&mut e, secs(0));
        s.advance(&mut e, mins(2));
        s.advance(&mut e, secs(30));
        assert_eq!(*e.state(), RolloutState::Running);
        s.node("A").ready = true;
        s.node("B").heartbeat_late = false;
        s.api = true;
        s.advance(&mut e, secs(0));
        let soak = e.view(s.now).nodes[0].soak.clone().unwrap();
        assert_eq!(soak.elapsed, mins(1));
        // 5m soak + 2m30s blind = A may not finish before 7m30s.
        s.run_until(&mut e, secs(10), mins(7), |_, s| {
            s.now.duration_since(soak_start) >= mins(7)
        });
        assert_eq!(phase_of(&e, "A", s.now), Phase::Soak);
        assert!(
            s.run_until(&mut e, secs(10), mins(1), |e, s| phase_of(e, "A", s.now)
                == Phase::Done)
        );
        assert!(s.now.duration_since(soak_start) >= secs(450));

        // Timeouts run on wall time: the version never shows while the API is down.
        let (mut e, mut s) = started(abc(), &[]);
        s.hold.insert("restart");
        assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Restart)));
        s.api = false;
        s.release(&mut e, "restart");
        assert_eq!(phase_of(&e, "A", s.now), Phase::WaitVersion);
        s.advance(&mut e, mins(10));
        let h = halted(&e).expect("halted");
        assert_eq!(h.phase, Some(Phase::WaitVersion));
        assert!(
            h.reason.contains("did not finish within 10m"),
            "{}",
            h.reason
        );
    }

    #[test]
    fn wait_version_timeout_names_versions_and_retry_reinstalls() {
        let (mut e, mut s) = started(abc(), &[]);
        s.hold.insert("install");
        assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Install)));
        // The install "succeeds" but installs nothing.
        s.pending.clear();
        let id = e.in_flight().unwrap().0;
        s.feed(
            &mut e,
            Input::ActionFinished {
                id,
                result: Ok(()),
                output: None,
            },
        );
        s.hold.clear();
        s.settle(&mut e);
        s.advance(&mut e, mins(10));
        let h = halted(&e).expect("halted");
        assert!(
            h.reason
                .contains("kubelet reports v1.33.6+k3s1, expected v1.34.3+k3s1"),
            "{}",
            h.reason
        );
        let actions = s.command(&mut e, Command::Retry);
        assert_eq!(actions.iter().map(kind).collect::<Vec<_>>(), ["install"]);
        assert!(s.run_until(&mut e, secs(10), mins(60), |e, _| *e.state()
            == RolloutState::Done));
    }

    #[test]
    fn failed_action_halts_and_retry_runs_it_again() {
        let (mut e, mut s) = started(abc(), &[]);
        s.fail.insert(
            ("drain", "B".into()),
            "PDB nvr/frigate allows no disruption".into(),
        );
        assert!(s.run_until(&mut e, secs(10), mins(30), |e, _| halted(e).is_some()));
        let h = halted(&e).unwrap();
        assert_eq!(
            (h.node.as_deref(), h.phase),
            (Some("B"), Some(Phase::Drain))
        );
        assert!(h.reason.contains("PDB nvr/frigate"), "{}", h.reason);
        assert!(!s.kinds_for("B").contains(&"install"));
        let actions = s.command(&mut e, Command::Retry);
        assert_eq!(actions.iter().map(kind).collect::<Vec<_>>(), ["drain"]);
        assert!(s.run_until(&mut e, secs(10), mins(60), |e, _| *e.state()
            == RolloutState::Done));
    }

    #[test]
    fn drain_timeout_halts_and_ignores_the_late_result() {
        let (mut e, mut s) = started(abc(), &[]);
        s.hold.insert("drain");
        assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Drain)));
        let id = e.in_flight().unwrap().0;
        s.advance(&mut e, mins(5));
        let h = halted(&e).expect("halted");
        assert!(
            h.reason.contains("drain of A did not finish within 5m"),
            "{}",
            h.reason
        );
        let before = e.clone();
        s.pending.clear();
        s.feed(
            &mut e,
            Input::ActionFinished {
                id,
                result: Ok(()),
                output: None,
            },
        );
        assert_eq!(e.state(), before.state());
        assert!(last_event(&e).text.contains("no longer waited for"));
    }

    #[test]
    fn retry_after_soak_failure_waits_for_ready_then_soaks_a_full_window() {
        let (mut e, mut s) = started(abc(), &[]);
        assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Soak)));
        s.advance(&mut e, mins(4));
        s.node("A").ready = false;
        s.advance(&mut e, secs(10));
        assert!(halted(&e).is_some());
        // Resume is refused while A is unhealthy; retry is allowed and waits.
        s.command(&mut e, Command::Resume);
        assert_eq!(last_event(&e).kind, EventKind::Refused);
        assert!(s.command(&mut e, Command::Retry).is_empty());
        assert_eq!(phase_of(&e, "A", s.now), Phase::WaitReady);
        s.advance(&mut e, mins(1));
        s.node("A").ready = true;
        s.advance(&mut e, secs(10));
        assert_eq!(phase_of(&e, "A", s.now), Phase::Soak);
        s.advance(&mut e, mins(4));
        assert_eq!(
            phase_of(&e, "A", s.now),
            Phase::Soak,
            "a fresh window, not the rest of the old one"
        );
        assert!(s.run_until(&mut e, secs(10), mins(2), in_phase("A", Phase::Done)));
    }

    #[test]
    fn canary_soaks_longer_and_waits_for_confirmation() {
        let cfg = abc();
        let mut e = Engine::new(cfg.clone());
        let mut s = Sim::new(&cfg, &[]);
        s.observe(&mut e);
        s.command(&mut e, Command::Canary);
        assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Soak)));
        let soak_start = s.now;
        assert_eq!(
            e.view(s.now).nodes[0].soak.as_ref().unwrap().window,
            mins(10)
        );
        s.advance(&mut e, mins(6));
        assert_eq!(
            phase_of(&e, "A", s.now),
            Phase::Soak,
            "canary soak is 10m, not 5m"
        );
        assert!(s.run_until(&mut e, secs(10), mins(10), |e, _| *e.state()
            == RolloutState::CanaryAwaitingConfirm));
        assert!(s.now.duration_since(soak_start) >= mins(10));
        s.advance(&mut e, mins(60));
        assert!(s.kinds_for("B").is_empty());
        assert_eq!(*e.state(), RolloutState::CanaryAwaitingConfirm);
        let actions = s.command(&mut e, Command::ConfirmCanary);
        assert_eq!(actions[0].node(), "B");
        assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("B", Phase::Soak)));
        assert_eq!(
            e.view(s.now).nodes[1].soak.as_ref().unwrap().window,
            mins(5)
        );
        assert!(s.run_until(&mut e, secs(10), mins(60), |e, _| *e.state()
            == RolloutState::Done));
    }

    #[test]
    fn step_runs_exactly_one_node_then_pauses() {
        let cfg = abc();
        let mut e = Engine::new(cfg.clone());
        let mut s = Sim::new(&cfg, &[]);
        s.observe(&mut e);
        s.command(&mut e, Command::Step);
        assert!(s.run_until(&mut e, secs(10), mins(30), |e, _| *e.state()
            == RolloutState::Paused));
        assert_eq!(phase_of(&e, "A", s.now), Phase::Done);
        s.advance(&mut e, mins(30));
        assert!(s.kinds_for("B").is_empty());
        s.command(&mut e, Command::Step);
        assert!(s.run_until(&mut e, secs(10), mins(30), |e, _| *e.state()
            == RolloutState::Paused));
        assert_eq!(phase_of(&e, "B", s.now), Phase::Done);
        assert!(s.kinds_for("C").is_empty());
        s.command(&mut e, Command::Resume);
        assert!(s.run_until(&mut e, secs(10), mins(30), |e, _| *e.state()
            == RolloutState::Done));
    }

    #[test]
    fn pause_never_lands_between_install_and_restart() {
        let (mut e, mut s) = started(abc(), &[]);
        s.hold.insert("install");
        assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Install)));
        s.command(&mut e, Command::Pause);
        assert_eq!(*e.state(), RolloutState::Pausing);
        s.release(&mut e, "install");
        assert_eq!(
            s.kinds_for("A").last(),
            Some(&"restart"),
            "restart follows install even when pausing"
        );
        assert!(s.run_until(&mut e, secs(10), mins(30), |e, _| *e.state()
            == RolloutState::Paused));
        // A finished completely (verified, soaked, uncordoned) before pausing.
        assert_eq!(phase_of(&e, "A", s.now), Phase::Done);
        assert!(s.kinds_for("A").contains(&"uncordon"));
        assert!(s.now.duration_since(t0()) >= mins(5));
        s.advance(&mut e, mins(30));
        assert!(s.kinds_for("B").is_empty());
        let actions = s.command(&mut e, Command::Resume);
        assert_eq!(
            actions
                .iter()
                .map(|a| (kind(a), a.node()))
                .collect::<Vec<_>>(),
            [("cordon", "B")]
        );
    }

    #[test]
    fn pause_during_drain_stops_before_install() {
        let (mut e, mut s) = started(abc(), &[]);
        assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Soak)));
        s.hold.insert("drain");
        assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("B", Phase::Drain)));
        s.command(&mut e, Command::Pause);
        s.release(&mut e, "drain");
        assert_eq!(*e.state(), RolloutState::Paused);
        assert!(!s.kinds_for("B").contains(&"install"));
        assert!(last_event(&e).text.contains("paused before install of B"));
        let actions = s.command(&mut e, Command::Resume);
        assert_eq!(actions.iter().map(kind).collect::<Vec<_>>(), ["install"]);
    }

    #[test]
    fn pause_between_nodes_waits() {
        let mut cfg = abc();
        cfg.timings.pause_between = mins(3);
        let (mut e, mut s) = started(cfg, &[]);
        assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Done)));
        let done = s.now;
        assert!(s.run_until(&mut e, secs(10), mins(10), |_, s| {
            !s.kinds_for("B").is_empty()
        }));
        let started_b = s.log.iter().find(|(_, a)| a.node() == "B").unwrap().0;
        assert!(started_b.duration_since(done) >= mins(3));
        assert!(started_b.duration_since(done) < mins(3) + secs(11));
    }

    #[test]
    fn hops_are_cluster_wide_servers_first() {
        let cfg = config(
            &[("A", Role::Server), ("B", Role::Agent), ("C", Role::Agent)],
            "v1.33.6+k3s1",
            &["v1.34.3+k3s1", "v1.35.0+k3s1"],
        );
        let (mut e, mut s) = started(cfg, &[]);
        assert!(s.run_until(&mut e, secs(10), mins(120), |e, _| *e.state()
            == RolloutState::Done));
        let got: Vec<String> = s
            .installs()
            .iter()
            .map(|(n, v)| format!("{n}@{v}"))
            .collect();
        assert_eq!(
            got,
            [
                "A@v1.34.3+k3s1",
                "B@v1.34.3+k3s1",
                "C@v1.34.3+k3s1",
                "A@v1.35.0+k3s1",
                "B@v1.35.0+k3s1",
                "C@v1.35.0+k3s1"
            ]
        );
        assert_eq!(
            s.kinds_for("A")
                .iter()
                .filter(|k| **k == "snapshot")
                .count(),
            1
        );
    }

    #[test]
    fn nodes_already_at_a_hop_are_not_touched() {
        let mut cfg = abc();
        cfg.nodes[1].version = v("v1.34.3+k3s1");
        let (mut e, mut s) = started(cfg, &[]);
        assert!(s.run_until(&mut e, secs(10), mins(60), |e, _| *e.state()
            == RolloutState::Done));
        assert!(s.kinds_for("B").is_empty());
        assert_eq!(e.view(s.now).nodes[1].phase, Phase::Done);
    }

    #[test]
    fn skip_the_halted_node_then_continue() {
        let (mut e, mut s) = started(abc(), &[]);
        s.fail
            .insert(("install", "B".into()), "ssh: connection refused".into());
        assert!(s.run_until(&mut e, secs(10), mins(30), |e, _| halted(e).is_some()));
        s.node("B").ready = false; // whatever is wrong with B, the operator gives up on it
        s.command(&mut e, Command::Skip("B".into()));
        assert_eq!(*e.state(), RolloutState::Paused);
        assert!(
            e.events()
                .iter()
                .any(|ev| ev.text.contains("B is left cordoned"))
        );
        s.command(&mut e, Command::Resume);
        assert!(s.run_until(&mut e, secs(10), mins(30), |e, _| *e.state()
            == RolloutState::Done));
        assert_eq!(
            s.kinds_for("C"),
            ["cordon", "drain", "install", "restart", "uncordon"]
        );
        assert_eq!(e.view(s.now).nodes[1].phase, Phase::Skipped);
    }

    #[test]
    fn skipping_a_server_that_would_fall_two_minors_behind_is_refused() {
        let cfg = config(
            &[
                ("A", Role::Server),
                ("S2", Role::Server),
                ("B", Role::Agent),
            ],
            "v1.33.6+k3s1",
            &["v1.34.3+k3s1", "v1.35.0+k3s1"],
        );
        let e = Engine::new(cfg);
        let err = e.check_command(&Command::Skip("S2".into())).unwrap_err();
        assert!(err.contains("more than one minor version behind"), "{err}");
        assert!(e.check_command(&Command::Skip("B".into())).is_ok());
    }

    #[test]
    fn abort_stops_issuing_actions() {
        let (mut e, mut s) = started(abc(), &[]);
        s.hold.insert("install");
        assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Install)));
        s.command(&mut e, Command::Abort);
        assert_eq!(*e.state(), RolloutState::Aborted);
        let text = &last_event(&e).text;
        assert!(
            text.contains("install of A") && text.contains("left cordoned: A"),
            "{text}"
        );
        s.release(&mut e, "install");
        s.advance(&mut e, mins(30));
        assert_eq!(s.kinds_for("A").last(), Some(&"install"));
        assert!(e.in_flight().is_none());
        assert!(e.events().iter().any(|ev| {
            ev.text
                .contains("install of A succeeded after the rollout stopped")
        }));
    }

    /// Rollback after a halt in hop 2: every install is undone, newest
    /// first, with the same phases and soak.
    #[test]
    fn rollback_reinstalls_previous_versions_in_reverse_order() {
        let cfg = config(
            &[("A", Role::Server), ("B", Role::Agent), ("C", Role::Agent)],
            "v1.33.6+k3s1",
            &["v1.34.3+k3s1", "v1.35.0+k3s1"],
        );
        let (mut e, mut s) = started(cfg, &[]);
        let b_second_soak =
            |e: &Engine, s: &Sim| s.installs().len() == 5 && phase_of(e, "B", s.now) == Phase::Soak;
        assert!(s.run_until(&mut e, secs(10), mins(120), b_second_soak));
        s.node("B").ready = false;
        s.advance(&mut e, secs(10));
        assert!(halted(&e).is_some());
        assert!(e.needs_datastore_restore());
        let installs_before = s.installs().len();
        s.command(&mut e, Command::Rollback);
        assert_eq!(*e.state(), RolloutState::RollingBack);
        assert!(s.run_until(&mut e, secs(10), mins(120), |e, _| *e.state()
            == RolloutState::RolledBack));
        let back: Vec<String> = s.installs()[installs_before..]
            .iter()
            .map(|(n, v)| format!("{n}@{v}"))
            .collect();
        assert_eq!(
            back,
            [
                "B@v1.34.3+k3s1",
                "A@v1.34.3+k3s1",
                "C@v1.33.6+k3s1",
                "B@v1.33.6+k3s1",
                "A@v1.33.6+k3s1"
            ]
        );
        assert!(
            s.nodes
                .iter()
                .all(|n| n.version == "v1.33.6+k3s1" && !n.unschedulable)
        );
        let view = e.view(s.now);
        assert!(view.needs_datastore_restore);
        let cmd = view.restore_command.unwrap();
        assert!(
            cmd.contains("--cluster-reset-restore-path=/var/lib/rancher/k3s/server/db/snapshots/k3s-cockpit-20260125-213300-A-1769376780"),
            "{cmd}"
        );
        assert!(
            view.nodes.iter().all(|n| n.version == v("v1.33.6+k3s1")),
            "{:?}",
            view.nodes
        );
        // Same soak per node: five units of 5 minutes at least.
        let rollback_started = s.log[s.log.len() - 5 * 5].0;
        assert!(s.now.duration_since(rollback_started) >= mins(20));
    }

    #[test]
    fn rollback_within_a_minor_needs_no_restore_and_uncordons_untouched_nodes() {
        let cfg = config(
            &[("A", Role::Server), ("B", Role::Agent)],
            "v1.33.6+k3s1",
            &["v1.33.7+k3s1"],
        );
        let (mut e, mut s) = started(cfg, &[]);
        s.fail.insert(("drain", "B".into()), "timeout".into());
        assert!(s.run_until(&mut e, secs(10), mins(30), |e, _| halted(e).is_some()));
        assert!(!e.needs_datastore_restore());
        assert_eq!(e.restore_command(), None);
        let n = s.log.len();
        s.command(&mut e, Command::Rollback);
        assert!(s.run_until(&mut e, secs(10), mins(60), |e, _| *e.state()
            == RolloutState::RolledBack));
        let back: Vec<(&str, &str)> = s.log[n..]
            .iter()
            .map(|(_, a)| (kind(a), a.node()))
            .collect();
        assert_eq!(back[0], ("uncordon", "B"));
        assert_eq!(
            back[1..],
            [
                ("cordon", "A"),
                ("drain", "A"),
                ("install", "A"),
                ("restart", "A"),
                ("uncordon", "A")
            ]
        );
    }

    #[test]
    fn results_for_unknown_actions_are_ignored() {
        let (mut e, mut s) = started(abc(), &[]);
        s.hold.insert("cordon");
        s.settle(&mut e);
        let before = e.clone();
        s.feed(
            &mut e,
            Input::ActionFinished {
                id: 999,
                result: Err("x".into()),
                output: None,
            },
        );
        assert_eq!(e.state(), before.state());
        assert_eq!(e.in_flight(), before.in_flight());
        assert_eq!(last_event(&e).kind, EventKind::Warn);
    }

    #[test]
    fn reattach_reverifies_an_install_instead_of_redoing_it() {
        // The install finished on the node but the cockpit died before hearing it.
        let (mut e, mut s) = started(abc(), &[]);
        s.hold.insert("install");
        assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Install)));
        s.pending.clear();
        s.installed.insert("A".into(), "v1.34.3+k3s1".into());
        s.node("A").version = "v1.34.3+k3s1".into();
        s.hold.clear();
        s.now += mins(2);
        let actions = s.feed(&mut e, Input::Reattach);
        assert!(actions.is_empty());
        assert_eq!(phase_of(&e, "A", s.now), Phase::WaitVersion);
        assert!(s.run_until(&mut e, secs(10), mins(60), |e, _| *e.state()
            == RolloutState::Done));
        assert_eq!(s.installs().iter().filter(|(n, _)| n == "A").count(), 1);

        // The install never happened: after the version timeout, install again.
        let (mut e, mut s) = started(abc(), &[]);
        s.hold.insert("install");
        assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Install)));
        s.pending.clear();
        s.hold.clear();
        s.feed(&mut e, Input::Reattach);
        s.advance(&mut e, mins(9));
        assert_eq!(s.installs().len(), 1);
        s.advance(&mut e, mins(1));
        assert_eq!(s.installs().len(), 2);
        assert!(s.run_until(&mut e, secs(10), mins(60), |e, _| *e.state()
            == RolloutState::Done));
    }

    #[test]
    fn reattach_reissues_idempotent_actions_and_restarts_the_soak() {
        let (mut e, mut s) = started(abc(), &[]);
        s.hold.insert("drain");
        assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Drain)));
        s.pending.clear();
        let actions = s.feed(&mut e, Input::Reattach);
        assert_eq!(actions.iter().map(kind).collect::<Vec<_>>(), ["drain"]);
        s.hold.clear();
        assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Soak)));
        s.advance(&mut e, mins(4));
        let restarted = s.now;
        s.feed(&mut e, Input::Reattach);
        s.observe(&mut e);
        s.advance(&mut e, mins(2));
        assert_eq!(
            phase_of(&e, "A", s.now),
            Phase::Soak,
            "soak starts over after a restart"
        );
        assert!(s.run_until(&mut e, secs(10), mins(4), in_phase("A", Phase::Done)));
        assert!(s.now.duration_since(restarted) >= mins(5));
    }

    #[test]
    fn view_reports_phase_times_and_soak_progress() {
        let (mut e, mut s) = started(abc(), &[]);
        assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Soak)));
        let soak_start = s.now;
        s.now += secs(150);
        let view = e.view(s.now);
        assert_eq!(view.current.as_deref(), Some("A"));
        let a = &view.nodes[0];
        assert_eq!(a.phase_started, Some(soak_start));
        let soak = a.soak.as_ref().unwrap();
        assert_eq!(soak.elapsed, secs(150));
        assert!((soak.fraction() - 0.5).abs() < 1e-9);
        assert!((a.progress - 6.5 / 8.0).abs() < 1e-9, "{}", a.progress);
        assert_eq!(view.nodes[1].phase, Phase::Pending);
        assert_eq!(view.nodes[1].progress, 0.0);
        assert_eq!(view.nodes[1].target, Some(v("v1.34.3+k3s1")));
        assert!(
            view.events
                .iter()
                .any(|ev| ev.text == "A (v1.34.3+k3s1): soak for 5m")
        );
    }

    // ------------------------------------------------ every command, every state

    const Y: bool = true;
    const N: bool = false;

    fn commands() -> Vec<Command> {
        vec![
            Command::Start,
            Command::Canary,
            Command::ConfirmCanary,
            Command::Pause,
            Command::Resume,
            Command::Step,
            Command::Abort,
            Command::Retry,
            Command::Skip("C".into()),
            Command::Skip("ghost".into()),
            Command::Rollback,
        ]
    }

    /// Builds an engine in the named state (and the sim that got it there).
    fn engine_in(state: &str) -> (Engine, Sim) {
        let cfg = abc();
        let mut e = Engine::new(cfg.clone());
        let mut s = Sim::new(&cfg, &[]);
        s.observe(&mut e);
        let done = |e: &Engine, _: &Sim| *e.state() == RolloutState::Done;
        match state {
            "idle" => {}
            "running" => {
                s.hold.insert("install");
                s.command(&mut e, Command::Start);
                assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Install)));
            }
            "pausing" => {
                s.hold.insert("install");
                s.command(&mut e, Command::Start);
                assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Install)));
                s.command(&mut e, Command::Pause);
            }
            "paused" => {
                s.command(&mut e, Command::Step);
                assert!(s.run_until(&mut e, secs(10), mins(30), |e, _| *e.state()
                    == RolloutState::Paused));
            }
            "canary awaiting confirmation" => {
                s.command(&mut e, Command::Canary);
                assert!(s.run_until(&mut e, secs(10), mins(30), |e, _| *e.state()
                    == RolloutState::CanaryAwaitingConfirm));
            }
            "halted" => {
                s.command(&mut e, Command::Start);
                assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Soak)));
                s.node("A").heartbeat_late = true;
                s.advance(&mut e, secs(10));
            }
            "aborted" => {
                s.hold.insert("install");
                s.command(&mut e, Command::Start);
                assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Install)));
                s.command(&mut e, Command::Abort);
            }
            "rolling back" => {
                s.command(&mut e, Command::Start);
                assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Soak)));
                s.node("A").heartbeat_late = true;
                s.advance(&mut e, secs(10));
                s.hold.insert("install");
                s.command(&mut e, Command::Rollback);
                s.settle(&mut e);
            }
            "done" => {
                s.command(&mut e, Command::Start);
                assert!(s.run_until(&mut e, secs(10), mins(60), done));
            }
            "rolled back" => {
                s.command(&mut e, Command::Step);
                assert!(s.run_until(&mut e, secs(10), mins(30), |e, _| *e.state()
                    == RolloutState::Paused));
                s.command(&mut e, Command::Rollback);
                assert!(s.run_until(&mut e, secs(10), mins(30), |e, _| *e.state()
                    == RolloutState::RolledBack));
            }
            other => panic!("unknown state {other}"),
        }
        assert_eq!(e.state().label(), state);
        (e, s)
    }

    #[test]
    fn every_command_in_every_state() {
        // Start Canary Confirm Pause Resume Step Abort Retry SkipC Skip? Rollback
        let table: [(&str, [bool; 11]); 10] = [
            ("idle", [Y, Y, N, N, N, Y, Y, N, Y, N, N]),
            ("running", [N, N, N, Y, N, Y, Y, N, Y, N, N]),
            ("pausing", [N, N, N, N, Y, N, Y, N, Y, N, N]),
            ("paused", [N, N, N, N, Y, Y, Y, N, Y, N, Y]),
            (
                "canary awaiting confirmation",
                [N, N, Y, N, N, N, Y, N, Y, N, Y],
            ),
            ("halted", [N, N, N, N, N, N, Y, Y, Y, N, Y]),
            ("aborted", [N, N, N, N, N, N, N, N, N, N, N]),
            ("rolling back", [N, N, N, Y, N, Y, Y, N, N, N, N]),
            ("done", [N, N, N, N, N, N, N, N, N, N, Y]),
            ("rolled back", [N, N, N, N, N, N, N, N, N, N, N]),
        ];
        for (state, expected) in table {
            for (cmd, accept) in commands().into_iter().zip(expected) {
                let (e0, _) = engine_in(state);
                let mut e = e0.clone();
                assert_eq!(
                    e.check_command(&cmd).is_ok(),
                    accept,
                    "{state} / {}: {:?}",
                    cmd.label(),
                    e.check_command(&cmd)
                );
                let now = e0.events().last().map_or(t0(), |ev| ev.at) + secs(1);
                let actions = e.step(Input::Command(cmd.clone()), now);
                let ev = e.events().last().unwrap();
                if accept {
                    assert!(
                        e.events()[e0.events().len()..]
                            .iter()
                            .all(|ev| ev.kind != EventKind::Refused),
                        "{state} / {}: refused",
                        cmd.label()
                    );
                    assert!(
                        e != e0,
                        "{state} / {}: accepted but nothing changed",
                        cmd.label()
                    );
                } else {
                    assert_eq!(ev.kind, EventKind::Refused, "{state} / {}", cmd.label());
                    assert!(
                        ev.text.starts_with(&format!("refused {}: ", cmd.label())),
                        "{}",
                        ev.text
                    );
                    assert!(actions.is_empty());
                    // Nothing but the refusal changed.
                    let mut back = e.clone();
                    back.events.pop();
                    assert_eq!(back, e0, "{state} / {}", cmd.label());
                }
            }
        }
    }
}
