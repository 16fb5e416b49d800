//! The upgrade plan: a TOML file the operator writes, and its resolution
//! against the live cluster.
//!
//! Two stages keep errors early and precise. [`Plan::from_str`] checks
//! everything that can be checked from the text alone (syntax, unknown
//! fields, versions, durations, placeholders) and reports `file:line:column`.
//! [`resolve`] then combines the plan with the cluster's nodes (names, roles,
//! current versions) into a [`ResolvedPlan`]: the exact order, version hops
//! and rendered commands that `check-plan` prints and the engine runs.
//! Nothing here does network I/O; `Plan::load` only reads the file.

use crate::upgrade::duration::{humane, humane_opt};
use crate::upgrade::engine::{AgentHops, EngineConfig, GateConfig, HandoffMode, NodeConfig};
pub use crate::upgrade::method::Method;
use crate::upgrade::template;
use crate::upgrade::version::{K3sVersion, PathError, version_path};
use jiff::SignedDuration;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

pub use drain::{DrainSpec, Level};
pub use node_commands::RESET_FLAG;

mod drain;
mod node_commands;
mod resolve;
mod summary;

pub use resolve::resolve;

/// Always restart after install: the post-mortem's fix for kubelets that
/// went NotReady minutes after an install that restarted K3s on its own.
pub const DEFAULT_RESTART: &str = "systemctl restart {service}";
pub const DEFAULT_VERSION: &str = "k3s --version";
pub const DEFAULT_ETCD_SNAPSHOT: &str = "k3s etcd-snapshot save --name {snapshot}";

const INSTALL_KEYS: &[&str] = &["version", "service", "role", "node"];
const NODE_KEYS: &[&str] = &["service", "role", "node"];
const SNAPSHOT_KEYS: &[&str] = &["snapshot", "node"];

/// A plan error, printed as `file:line:column: message` when the position is
/// known (always for syntax and field errors).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanError {
    pub origin: String,
    /// 1-based line and column (in characters).
    pub location: Option<(usize, usize)>,
    pub message: String,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some((line, col)) => write!(f, "{}:{line}:{col}: {}", self.origin, self.message),
            None => write!(f, "{}: {}", self.origin, self.message),
        }
    }
}

impl std::error::Error for PlanError {}

pub use crate::durations::line_col;

/// Whether a node runs the K3s server (control plane) or only the agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Server,
    Agent,
}

impl Role {
    /// The systemd unit the K3s install script creates for this role.
    pub fn service(self) -> &'static str {
        match self {
            Role::Server => "k3s",
            Role::Agent => "k3s-agent",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Agent => "agent",
        }
    }
}

/// Where the cluster keeps its state; decides whether an etcd snapshot is
/// taken before the first server is touched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Datastore {
    /// Embedded etcd (`--cluster-init`): snapshot first, restore on rollback.
    #[default]
    Etcd,
    /// Embedded SQLite (single server): back up /var/lib/rancher/k3s/server/db yourself.
    Sqlite,
    /// External database: back it up with its own tools.
    External,
}

/// Node order within each version hop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Order {
    /// Servers by name, then agents by name (what the K3s docs require).
    #[default]
    ServersFirst,
    /// Exactly the order of `nodes`; agents may not come before servers.
    Explicit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    Ssh,
    Proxmox,
}

/// Transport settings as written; every field optional so a per-node table
/// only states what differs from `[transport]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransportSpec {
    pub kind: Option<TransportKind>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub key: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    pub accept_unknown_host_keys: Option<bool>,
    pub vmid: Option<Spanned<u32>>,
    /// How a user other than root runs the node's commands as root:
    /// `"sudo -n"` (never asks for a password).
    #[serde(rename = "become")]
    pub escalate: Option<Spanned<String>>,
}

impl TransportSpec {
    fn overlay(&self, over: &TransportSpec) -> TransportSpec {
        TransportSpec {
            kind: over.kind.or(self.kind),
            host: over.host.clone().or_else(|| self.host.clone()),
            port: over.port.or(self.port),
            user: over.user.clone().or_else(|| self.user.clone()),
            key: over.key.clone().or_else(|| self.key.clone()),
            known_hosts: over
                .known_hosts
                .clone()
                .or_else(|| self.known_hosts.clone()),
            accept_unknown_host_keys: over
                .accept_unknown_host_keys
                .or(self.accept_unknown_host_keys),
            vmid: over.vmid.clone().or_else(|| self.vmid.clone()),
            escalate: over.escalate.clone().or_else(|| self.escalate.clone()),
        }
    }
}

/// An SSH endpoint. `key = None` means the SSH agent; `known_hosts = None`
/// means `~/.ssh/known_hosts`. Unknown host keys are refused unless
/// `accept_unknown_host_keys` is set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SshTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub key: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    pub accept_unknown_host_keys: bool,
}

/// How commands reach a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Transport {
    /// SSH straight to the node.
    Ssh(SshTarget),
    /// SSH to the Proxmox host, then `qm guest exec VMID` into the VM.
    Proxmox { host: SshTarget, vmid: u32 },
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ssh = |f: &mut fmt::Formatter<'_>, t: &SshTarget| {
            write!(f, "{}@{}:{}", t.user, t.host, t.port)?;
            match &t.key {
                Some(k) => write!(f, " key {}", k.display())?,
                None => write!(f, " (ssh-agent)")?,
            }
            if t.accept_unknown_host_keys {
                write!(f, " ACCEPTS UNKNOWN HOST KEYS")?;
            }
            Ok(())
        };
        match self {
            Transport::Ssh(t) => {
                write!(f, "ssh ")?;
                ssh(f, t)
            }
            Transport::Proxmox { host, vmid } => {
                write!(f, "proxmox vm {vmid} via ")?;
                ssh(f, host)
            }
        }
    }
}

/// Command templates as written (`[commands]` or `[node.NAME.commands]`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandsSpec {
    pub install: Option<Spanned<String>>,
    pub restart: Option<Spanned<String>>,
    pub version: Option<Spanned<String>>,
    pub etcd_snapshot: Option<Spanned<String>>,
}

/// Per-node settings, `[node.NAME]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeOverride {
    pub transport: Option<TransportSpec>,
    pub commands: Option<CommandsSpec>,
}

/// Timings, written as humane durations ("5m", "30s", "250ms").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timings {
    /// Longest a drain (evictions respecting PodDisruptionBudgets) may take.
    #[serde(with = "positive")]
    pub drain_timeout: SignedDuration,
    /// Longest the install command may run.
    #[serde(with = "positive")]
    pub install_timeout: SignedDuration,
    /// Longest cordon, uncordon, restart and etcd snapshot may take.
    #[serde(with = "positive")]
    pub command_timeout: SignedDuration,
    /// Longest `systemctl restart` of K3s may take: the unit has no start
    /// timeout, and a server restarting its datastore can take minutes.
    #[serde(with = "positive")]
    pub restart_timeout: SignedDuration,
    /// Longest to wait for the kubelet to report the new version.
    #[serde(with = "positive")]
    pub version_timeout: SignedDuration,
    /// Longest to wait for the node to become Ready.
    #[serde(with = "positive")]
    pub ready_timeout: SignedDuration,
    /// How long a node must stay healthy after the upgrade.
    #[serde(with = "humane")]
    pub soak: SignedDuration,
    /// Soak for the canary node.
    #[serde(with = "humane")]
    pub canary_soak: SignedDuration,
    /// Wait between two nodes.
    #[serde(with = "humane")]
    pub pause_between: SignedDuration,
    /// Heartbeat age after which a node counts as late; None derives it from
    /// the node lease duration (the cluster side computes `heartbeat_late`).
    #[serde(with = "humane_opt", skip_serializing_if = "Option::is_none")]
    pub max_heartbeat_age: Option<SignedDuration>,
    /// After the last node: how long the whole cluster must stay healthy
    /// before the rollout is done (0s: no final watch).
    #[serde(with = "humane")]
    pub final_soak: SignedDuration,
    /// Headless: how long the API server may stay unreachable before the
    /// run gives up (exit 1), so that a script waiting on it gets an answer.
    #[serde(with = "positive")]
    pub api_lost_timeout: SignedDuration,
    /// Handoff: how long the probes must stay green after every IP moved.
    #[serde(with = "humane")]
    pub handoff_settle: SignedDuration,
    /// Handoff: longest wait for the IPs to move and the probes to settle.
    #[serde(with = "positive")]
    pub handoff_timeout: SignedDuration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            drain_timeout: SignedDuration::from_mins(5),
            install_timeout: SignedDuration::from_mins(10),
            command_timeout: SignedDuration::from_mins(3),
            restart_timeout: SignedDuration::from_mins(10),
            version_timeout: SignedDuration::from_mins(10),
            ready_timeout: SignedDuration::from_mins(5),
            soak: SignedDuration::from_mins(5),
            canary_soak: SignedDuration::from_mins(10),
            pause_between: SignedDuration::ZERO,
            max_heartbeat_age: None,
            final_soak: SignedDuration::from_mins(10),
            api_lost_timeout: SignedDuration::from_mins(2),
            handoff_settle: SignedDuration::from_secs(10),
            handoff_timeout: SignedDuration::from_mins(2),
        }
    }
}

/// A humane duration that must be longer than zero (a zero timeout would
/// fail every phase at once).
mod positive {
    use super::*;

    pub fn serialize<S: serde::Serializer>(d: &SignedDuration, s: S) -> Result<S::Ok, S::Error> {
        humane::serialize(d, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SignedDuration, D::Error> {
        let value = humane::deserialize(d)?;
        if value <= SignedDuration::ZERO {
            return Err(serde::de::Error::custom("a timeout must be longer than 0s"));
        }
        Ok(value)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    Tcp,
    Http,
}

/// A probe as written in `[[gates.probes]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSpec {
    pub service: Spanned<String>,
    pub kind: ProbeKind,
    pub port: u16,
    pub path: Option<Spanned<String>>,
    pub expect_status: Option<Spanned<u16>>,
}

/// A resolved probe of a LoadBalancer IP, run by the probe edge; its result
/// reaches the engine as `ServiceObservation::probe_ok`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Probe {
    /// `namespace/name` of the LoadBalancer service.
    pub service: String,
    pub port: u16,
    /// For HTTP probes: the path and the status that counts as healthy.
    pub http: Option<HttpProbe>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HttpProbe {
    pub path: String,
    pub expect_status: u16,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatesSpec {
    #[serde(default)]
    pub services: Vec<Spanned<String>>,
    #[serde(default)]
    pub probes: Vec<ProbeSpec>,
    #[serde(default = "yes")]
    pub global_gate: bool,
    /// Probe failures in a row before a probed endpoint counts as DOWN
    /// (default 3): one failed probe is not an outage.
    #[serde(default)]
    pub probe_failures: Option<Spanned<u32>>,
    /// Kubelet lease renewals missed in a row before the gate halts
    /// (default 2); one missed renewal is an alert, and an expired lease
    /// always halts.
    #[serde(default)]
    pub missed_renewals: Option<Spanned<u32>>,
}

impl Default for GatesSpec {
    fn default() -> Self {
        GatesSpec {
            services: Vec::new(),
            probes: Vec::new(),
            global_gate: true,
            probe_failures: None,
            missed_renewals: None,
        }
    }
}

/// A parsed plan, checked as far as the text alone allows.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Where the plan came from (file path), used in error messages.
    #[serde(skip)]
    pub origin: String,
    #[serde(skip)]
    source: String,
    pub target: Option<Spanned<K3sVersion>>,
    pub channel: Option<Spanned<String>>,
    #[serde(default)]
    pub hops: Vec<Spanned<K3sVersion>>,
    pub nodes: Option<Vec<Spanned<String>>>,
    pub order: Option<Spanned<Order>>,
    /// Checked against what the cluster shows; detected when absent.
    pub datastore: Option<Spanned<Datastore>>,
    /// How nodes get the new K3s.
    #[serde(default)]
    pub method: Method,
    /// Binary method: the release URL (`.../releases/download`), or a
    /// directory on every node laid out the same way.
    pub release: Option<Spanned<String>>,
    /// Binary method, airgapped: a directory on the operator's machine laid
    /// out like the release; each node gets its asset copied over SSH.
    pub artifacts: Option<Spanned<PathBuf>>,
    /// What agents install after the servers: `target` (one install) or
    /// `every` hop of the path.
    #[serde(default)]
    pub agent_hops: AgentHops,
    #[serde(default)]
    pub transport: TransportSpec,
    #[serde(default)]
    pub node: BTreeMap<String, Spanned<NodeOverride>>,
    #[serde(default)]
    pub commands: CommandsSpec,
    #[serde(default)]
    pub timings: Timings,
    #[serde(default)]
    pub gates: GatesSpec,
    /// `auto`: nodes that announce a LoadBalancer IP hand it to another
    /// node (MetalLB exclude label) before they are cordoned; `off`: not.
    #[serde(default)]
    pub handoff: HandoffMode,
    #[serde(default)]
    pub drain: DrainSpec,
}

impl Plan {
    /// Reads and checks a plan file.
    pub fn load(path: &Path) -> Result<Plan, PlanError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| PlanError {
            origin: origin.clone(),
            location: None,
            message: format!("cannot read plan: {e}"),
        })?;
        Plan::from_str(&text, &origin)
    }

    /// Parses and checks plan text; `origin` names it in error messages.
    #[allow(clippy::should_implement_trait)] // needs the origin name too
    pub fn from_str(text: &str, origin: &str) -> Result<Plan, PlanError> {
        let mut plan: Plan = toml::from_str(text).map_err(|e| PlanError {
            origin: origin.to_string(),
            location: Some(line_col(text, e.span().map_or(0, |s| s.start))),
            message: e.message().trim_end().to_string(),
        })?;
        plan.origin = origin.to_string();
        plan.source = text.to_string();
        plan.check()?;
        Ok(plan)
    }

    fn error_at(&self, span: Option<Range<usize>>, message: impl Into<String>) -> PlanError {
        PlanError {
            origin: self.origin.clone(),
            location: Some(line_col(&self.source, span.map_or(0, |s| s.start))),
            message: message.into(),
        }
    }

    fn check(&self) -> Result<(), PlanError> {
        match (&self.target, &self.channel) {
            (Some(_), Some(channel)) => {
                return Err(self.error_at(
                    Some(channel.span()),
                    "set either target or channel, not both",
                ));
            }
            (None, None) => {
                return Err(self.error_at(
                    None,
                    "the plan needs target = \"v1.35.0+k3s1\" (or channel with hops)",
                ));
            }
            (None, Some(channel)) if self.hops.is_empty() => {
                return Err(self.error_at(
                    Some(channel.span()),
                    format!(
                        "channel {:?} cannot be looked up offline: list the releases to install in hops; the last one is the target",
                        channel.get_ref()
                    ),
                ));
            }
            _ => {}
        }
        if let Some(order) = &self.order
            && *order.get_ref() == Order::Explicit
            && self.nodes.is_none()
        {
            return Err(self.error_at(
                Some(order.span()),
                "order = \"explicit\" needs a nodes list giving the order",
            ));
        }
        let mut seen = BTreeSet::new();
        for name in self.nodes.iter().flatten() {
            if !seen.insert(name.get_ref().as_str()) {
                return Err(self.error_at(
                    Some(name.span()),
                    format!("node {:?} is listed twice", name.get_ref()),
                ));
            }
        }
        self.check_artifacts()?;
        self.check_commands(&self.commands)?;
        for over in self.node.values() {
            if let Some(commands) = &over.get_ref().commands {
                self.check_commands(commands)?;
            }
        }
        self.check_gates()
    }

    /// `artifacts` feeds the binary method's script: it needs that method,
    /// and names the release source in place of `release`.
    fn check_artifacts(&self) -> Result<(), PlanError> {
        let Some(dir) = &self.artifacts else {
            return Ok(());
        };
        let span = Some(dir.span());
        if let Some(release) = &self.release {
            return Err(self.error_at(
                Some(release.span()),
                "set release (a URL or a directory on the nodes) or artifacts (a directory here, copied to the nodes), not both",
            ));
        }
        if self.method != Method::Binary {
            return Err(self.error_at(
                span,
                "artifacts needs method = \"binary\": the install script downloads K3s itself",
            ));
        }
        let custom = self.commands.install.is_some()
            || self.node.values().any(|o| {
                o.get_ref()
                    .commands
                    .as_ref()
                    .is_some_and(|c| c.install.is_some())
            });
        if custom {
            return Err(self.error_at(
                span,
                "artifacts feeds the binary method; a custom install command would not use the copied binary",
            ));
        }
        if !dir.get_ref().is_absolute() && !dir.get_ref().starts_with("~") {
            return Err(self.error_at(span, "artifacts must be an absolute path (or start with ~)"));
        }
        Ok(())
    }

    fn check_gates(&self) -> Result<(), PlanError> {
        for service in &self.gates.services {
            self.check_service(service)?;
        }
        if let Some(n) = &self.gates.probe_failures
            && !(1..=100).contains(n.get_ref())
        {
            return Err(self.error_at(Some(n.span()), "probe_failures must be between 1 and 100"));
        }
        if let Some(n) = &self.gates.missed_renewals
            && !(1..=3).contains(n.get_ref())
        {
            // A fourth missed renewal is past the lease: EXPIRED halts anyway.
            return Err(self.error_at(Some(n.span()), "missed_renewals must be between 1 and 3"));
        }
        for probe in &self.gates.probes {
            self.check_service(&probe.service)?;
            if probe.port == 0 {
                return Err(self.error_at(Some(probe.service.span()), "probe port must not be 0"));
            }
            if probe.kind == ProbeKind::Tcp {
                if let Some(path) = &probe.path {
                    return Err(self.error_at(Some(path.span()), "path is only for http probes"));
                }
                if let Some(status) = &probe.expect_status {
                    return Err(
                        self.error_at(Some(status.span()), "expect_status is only for http probes")
                    );
                }
            }
        }
        Ok(())
    }

    fn check_service(&self, service: &Spanned<String>) -> Result<(), PlanError> {
        let ok = service
            .get_ref()
            .split_once('/')
            .is_some_and(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains('/'));
        if ok {
            Ok(())
        } else {
            Err(self.error_at(
                Some(service.span()),
                format!(
                    "service {:?} must be written namespace/name",
                    service.get_ref()
                ),
            ))
        }
    }

    fn check_commands(&self, commands: &CommandsSpec) -> Result<(), PlanError> {
        let fields = [
            (&commands.install, INSTALL_KEYS),
            (&commands.restart, NODE_KEYS),
            (&commands.version, NODE_KEYS),
            (&commands.etcd_snapshot, SNAPSHOT_KEYS),
        ];
        for (field, allowed) in fields {
            if let Some(text) = field {
                if text.get_ref().trim().is_empty() {
                    return Err(self.error_at(Some(text.span()), "command must not be empty"));
                }
                if let Err((offset, message)) = template::validate(text.get_ref(), allowed) {
                    // +1 skips the opening quote of the TOML string.
                    let start = text.span().start + 1 + offset;
                    return Err(self.error_at(Some(start..start), message));
                }
            }
        }
        Ok(())
    }

    /// The target version: `target`, or the newest hop for a channel plan.
    pub fn target(&self) -> Option<K3sVersion> {
        match &self.target {
            Some(t) => Some(t.get_ref().clone()),
            None => self.hops.iter().map(|h| h.get_ref().clone()).max(),
        }
    }
}

/// A node as the cluster reports it, the input to [`resolve`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterNode {
    pub name: String,
    pub role: Role,
    /// The kubelet's reported version, parsed.
    pub version: K3sVersion,
    /// `k3s.io/node-args`, when the node has it.
    pub node_args: Option<Vec<String>>,
    /// Carries the `node-role.kubernetes.io/etcd` label: an embedded etcd member.
    pub etcd: bool,
}

/// Command templates for one node with the node's own placeholders filled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeCommands {
    pub install: String,
    pub restart: String,
    pub version: String,
    pub etcd_snapshot: String,
    /// Going back with the binary method: put the binary kept for the
    /// version in place.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reinstate: Option<String>,
}

/// One node of a resolved plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResolvedNode {
    pub name: String,
    pub role: Role,
    /// Version when the plan was resolved.
    pub version: K3sVersion,
    /// The versions this node will install, in order (hops it is below).
    pub hops: Vec<K3sVersion>,
    pub transport: Transport,
    /// `become`: every command runs as `BECOME sh -c 'COMMAND'`.
    #[serde(rename = "become", skip_serializing_if = "Option::is_none")]
    pub escalate: Option<String>,
    pub commands: NodeCommands,
}

impl ResolvedNode {
    /// `command` as the node runs it: as one privileged `sh -c` (with its
    /// redirections and environment) when the plan sets `become`. In a
    /// Proxmox VM the guest agent already runs it as root; there `become`
    /// applies to qm on the host instead.
    pub fn privileged(&self, command: &str) -> String {
        match (&self.escalate, &self.transport) {
            (Some(b), Transport::Ssh(_)) => {
                format!("{b} sh -c {}", crate::remote::quote::shell_quote(command))
            }
            _ => command.to_string(),
        }
    }

    /// The Proxmox host's login user, for a node reached through qm.
    pub fn proxmox_user(&self) -> Option<&str> {
        match &self.transport {
            Transport::Proxmox { host, .. } => Some(&host.user),
            Transport::Ssh(_) => None,
        }
    }

    /// The login user, when commands reach the node over SSH (the guest
    /// agent of a Proxmox VM runs them as root).
    pub fn login_user(&self) -> Option<&str> {
        match &self.transport {
            Transport::Ssh(t) => Some(&t.user),
            Transport::Proxmox { .. } => None,
        }
    }

    /// The install command for `version` on this node.
    pub fn install_command(&self, version: &K3sVersion) -> String {
        template::render(&self.commands.install, &[("version", &version.to_string())])
    }

    pub fn restart_command(&self) -> String {
        self.commands.restart.clone()
    }

    /// `systemctl is-active` of the role's unit: `activating` while it starts.
    pub fn unit_state_command(&self) -> String {
        format!("systemctl is-active {}", self.role.service())
    }

    pub fn version_command(&self) -> String {
        self.commands.version.clone()
    }

    /// The etcd snapshot command for a snapshot called `name`.
    pub fn snapshot_command(&self, name: &str) -> String {
        template::render(&self.commands.etcd_snapshot, &[("snapshot", name)])
    }
}

/// Resolved gates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResolvedGates {
    /// Services that must stay announced (and probe green if probed):
    /// the `services` list plus every probed service.
    pub services: Vec<String>,
    pub probes: Vec<Probe>,
    pub global_gate: bool,
    /// Probe failures in a row before an endpoint counts as DOWN.
    pub probe_failures: u32,
    /// Lease renewals missed in a row before the gate halts.
    pub missed_renewals: u32,
}

/// The plan combined with the cluster: what `check-plan` prints and what the
/// engine and executors run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResolvedPlan {
    pub origin: String,
    pub target: K3sVersion,
    pub channel: Option<String>,
    /// Versions to install, one minor at a time, ending with `target`.
    pub path: Vec<K3sVersion>,
    pub order: Order,
    pub datastore: Datastore,
    pub method: Method,
    /// Binary method: the release URL or a directory on the nodes (where
    /// the artifacts are copied to, when the plan sets `artifacts`).
    pub release: String,
    /// The local artifacts directory copied to each node before its install.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<PathBuf>,
    pub agent_hops: AgentHops,
    /// Nodes in rollout order (within each hop).
    pub nodes: Vec<ResolvedNode>,
    /// Cluster nodes the plan leaves alone (still watched by the gate).
    pub excluded: Vec<String>,
    pub timings: Timings,
    pub gates: ResolvedGates,
    pub handoff: HandoffMode,
    pub drain: DrainSpec,
}

impl ResolvedPlan {
    pub fn node(&self, name: &str) -> Option<&ResolvedNode> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The server the etcd snapshot is taken on: the first server to be
    /// upgraded, if the datastore is embedded etcd.
    pub fn snapshot_node(&self) -> Option<&ResolvedNode> {
        if self.datastore != Datastore::Etcd {
            return None;
        }
        self.nodes
            .iter()
            .find(|n| n.role == Role::Server && !n.hops.is_empty())
    }

    /// The engine's configuration: no transports, no commands, no secrets,
    /// so it can be written to the journal as is.
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            nodes: self
                .nodes
                .iter()
                .map(|n| NodeConfig {
                    name: n.name.clone(),
                    role: n.role,
                    version: n.version.clone(),
                    kept_binaries: n.commands.reinstate.is_some(),
                })
                .collect(),
            path: self.path.clone(),
            timings: self.timings.clone(),
            gates: GateConfig {
                services: self.gates.services.clone(),
                global_gate: self.gates.global_gate,
            },
            datastore: self.datastore,
            handoff: self.handoff,
            agent_hops: self.agent_hops,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
