//! The engine's vocabulary: what it is fed (observations, commands,
//! executor results), what it asks for (actions), how it is configured,
//! and the states and events it reports.

use crate::upgrade::plan::{Datastore, Role, Timings};
use crate::upgrade::version::K3sVersion;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;

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
    /// K3s's `k3s.io/node-args`, when the node carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_args: Option<Vec<String>>,
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
            node_args: None,
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
    /// No announcer is named because none can be known (events-only
    /// MetalLB: the last event expired, or its speaker is gone), which is
    /// not evidence of an outage.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub announcer_unknown: bool,
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
    /// Roll back servers on embedded etcd that crossed a minor the way K3s
    /// documents it: restore the pre-rollout snapshot cluster-wide. Only
    /// sent after the operator saw the procedure and opted in.
    ClusterRestore,
    /// End the final stability watch now and call the rollout done.
    EndFinalWatch,
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
            Command::ClusterRestore => "cluster restore".into(),
            Command::EndFinalWatch => "end the final watch".into(),
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
        /// Going back: put the binary kept for `version` in place where
        /// the method keeps them, rather than fetching the release again.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        reinstate: bool,
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
    /// Put MetalLB's exclude label on the node, so that its speakers hand
    /// every IP the node announces to another node.
    Label {
        id: u64,
        node: String,
    },
    /// Remove that label (idempotent: removing an absent label is fine).
    Unlabel {
        id: u64,
        node: String,
    },
    /// `systemctl stop` of the node's K3s unit (cluster restore).
    StopK3s {
        id: u64,
        node: String,
    },
    /// `k3s server --cluster-reset --cluster-reset-restore-path=SNAPSHOT`
    /// on a stopped server: restores the snapshot as a one-member cluster.
    ClusterReset {
        id: u64,
        node: String,
        snapshot: String,
    },
    /// `rm -rf /var/lib/rancher/k3s/server/db` on a stopped server, so it
    /// joins the reset cluster as a new member.
    ClearDb {
        id: u64,
        node: String,
    },
    /// `systemctl start` of the node's K3s unit.
    StartK3s {
        id: u64,
        node: String,
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
            | Action::EtcdSnapshot { id, .. }
            | Action::Label { id, .. }
            | Action::Unlabel { id, .. }
            | Action::StopK3s { id, .. }
            | Action::ClusterReset { id, .. }
            | Action::ClearDb { id, .. }
            | Action::StartK3s { id, .. } => *id,
        }
    }

    pub fn node(&self) -> &str {
        match self {
            Action::Cordon { node, .. }
            | Action::Drain { node, .. }
            | Action::Install { node, .. }
            | Action::Restart { node, .. }
            | Action::Uncordon { node, .. }
            | Action::EtcdSnapshot { node, .. }
            | Action::Label { node, .. }
            | Action::Unlabel { node, .. }
            | Action::StopK3s { node, .. }
            | Action::ClusterReset { node, .. }
            | Action::ClearDb { node, .. }
            | Action::StartK3s { node, .. } => node,
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
    /// Hand announced LoadBalancer IPs to other nodes before touching a node.
    #[serde(default)]
    pub handoff: HandoffMode,
    /// Which versions agents install after the servers.
    #[serde(default)]
    pub agent_hops: AgentHops,
}

/// Plan setting `agent_hops`: what agents install once every server is
/// done. A kubelet may be up to three minors older than the API server, so
/// one install straight to the target is enough; `every` walks each hop of
/// the path instead (one install and restart per hop).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentHops {
    #[default]
    Target,
    Every,
}

impl AgentHops {
    /// The versions of `path` an agent at `version` installs, in order.
    pub fn versions(self, path: &[K3sVersion], version: &K3sVersion) -> Vec<K3sVersion> {
        match (self, path.last()) {
            (AgentHops::Target, Some(target)) if version < target => vec![target.clone()],
            (AgentHops::Target, _) => Vec::new(),
            (AgentHops::Every, _) => path.iter().filter(|h| version < *h).cloned().collect(),
        }
    }
}

/// Plan setting `handoff`: whether nodes that announce a LoadBalancer IP
/// hand it over (MetalLB exclude label) before they are cordoned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HandoffMode {
    #[default]
    Auto,
    /// Restart announcers in place (users see the IP go dark).
    Off,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeConfig {
    pub name: String,
    pub role: Role,
    /// Version before the rollout; the first rollback target.
    pub version: K3sVersion,
    /// The binary method keeps every binary it replaces on the node
    /// (`k3s.cockpit-VERSION`): going back puts one of those in place
    /// instead of reinstalling.
    #[serde(default)]
    pub kept_binaries: bool,
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
    /// Label the node so MetalLB moves its IPs away; wait until they are
    /// announced elsewhere and the probes stayed green.
    Handoff,
    Cordon,
    Drain,
    Install,
    /// Always restart after install: the post-mortem's fix.
    Restart,
    WaitVersion,
    WaitReady,
    Soak,
    Uncordon,
    /// Remove the handoff label; record where the IPs are announced from.
    Return,
    Done,
    Skipped,
}

impl Phase {
    pub(super) fn next(self) -> Phase {
        match self {
            Phase::Pending | Phase::Snapshot => Phase::Handoff,
            Phase::Handoff => Phase::Cordon,
            Phase::Cordon => Phase::Drain,
            Phase::Drain => Phase::Install,
            Phase::Install => Phase::Restart,
            Phase::Restart => Phase::WaitVersion,
            Phase::WaitVersion => Phase::WaitReady,
            Phase::WaitReady => Phase::Soak,
            Phase::Soak => Phase::Uncordon,
            Phase::Uncordon => Phase::Return,
            Phase::Return | Phase::Done => Phase::Done,
            Phase::Skipped => Phase::Skipped,
        }
    }

    /// A pause may take effect before this phase begins. Never between
    /// install and restart, and never in the middle of the checks that
    /// follow: a node is either untouched-enough or fully verified.
    pub(super) fn safe_to_pause_before(self) -> bool {
        matches!(
            self,
            Phase::Pending
                | Phase::Snapshot
                | Phase::Handoff
                | Phase::Cordon
                | Phase::Drain
                | Phase::Install
        )
    }

    /// Position among the eight working phases, for progress gauges.
    pub(super) fn ordinal(self) -> f64 {
        match self {
            Phase::Pending | Phase::Snapshot | Phase::Handoff | Phase::Cordon | Phase::Skipped => {
                0.0
            }
            Phase::Drain => 1.0,
            Phase::Install => 2.0,
            Phase::Restart => 3.0,
            Phase::WaitVersion => 4.0,
            Phase::WaitReady => 5.0,
            Phase::Soak => 6.0,
            Phase::Uncordon => 7.0,
            Phase::Return => 7.5,
            Phase::Done => 8.0,
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Pending => "pending",
            Phase::Snapshot => "etcd snapshot",
            Phase::Handoff => "handoff",
            Phase::Cordon => "cordon",
            Phase::Drain => "drain",
            Phase::Install => "install",
            Phase::Restart => "restart",
            Phase::WaitVersion => "wait version",
            Phase::WaitReady => "wait Ready",
            Phase::Soak => "soak",
            Phase::Uncordon => "uncordon",
            Phase::Return => "return",
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
    /// Every node is done; the whole cluster is watched for
    /// `final_soak` before the rollout is called done.
    Verifying,
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
            RolloutState::Verifying => "verifying",
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
