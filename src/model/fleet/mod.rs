//! The fleet as the cockpit knows it: nodes, their leases, LoadBalancer
//! services and who announces them. Updates arrive as [`ClusterEvent`]s from
//! the watchers; every notable change is written to the [`Timeline`].

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use jiff::Timestamp;

use super::health::{self, Heartbeat};
use super::heartbeat_seen::HeartbeatSeen;
use super::probe::{ProbeResult, ProbeState, ProbeTransition};
use super::timeline::{EntryKind, Severity, Timeline};

mod api;
mod drain_outlook;
mod evidence;
pub use api::*;
mod announcer;
mod speaker;
pub use announcer::announced_node;
pub use drain_outlook::{DrainNote, DrainOutlook};
pub use speaker::SpeakerBuild;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tri {
    True,
    False,
    Unknown,
}

impl Tri {
    pub fn parse(s: &str) -> Tri {
        match s {
            "True" => Tri::True,
            "False" => Tri::False,
            _ => Tri::Unknown,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub kind: String,
    pub status: Tri,
    pub reason: String,
    pub message: String,
    pub last_transition: Option<Timestamp>,
    pub last_heartbeat: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Taint {
    pub key: String,
    pub effect: String,
}

impl Taint {
    /// Short form for the table: `unreachable:NoExecute`.
    pub fn short(&self) -> String {
        let key = self
            .key
            .strip_prefix("node.kubernetes.io/")
            .unwrap_or(&self.key);
        format!("{key}:{}", self.effect)
    }
}

/// What the Node object says (converted by the cluster edge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub roles: Vec<String>,
    /// K3s's `k3s.io/node-args`: the arguments the node's K3s runs with.
    pub node_args: Option<Vec<String>>,
    pub version: String,
    pub unschedulable: bool,
    pub taints: Vec<Taint>,
    pub conditions: Vec<Condition>,
    pub boot_id: String,
    /// The node's InternalIP: where a K3s server serves its API.
    pub internal_ip: Option<String>,
    /// Carries MetalLB's exclude label: its speaker announces nothing.
    pub lb_excluded: bool,
}

impl NodeInfo {
    /// A node with a name and a version and nothing else (tests build on it).
    pub fn bare(name: &str, version: &str) -> NodeInfo {
        NodeInfo {
            name: name.to_string(),
            roles: vec![],
            node_args: None,
            version: version.to_string(),
            unschedulable: false,
            taints: vec![],
            conditions: vec![],
            boot_id: String::new(),
            internal_ip: None,
            lb_excluded: false,
        }
    }

    pub fn ready(&self) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.kind == "Ready")
    }

    /// A K3s server: any of the roles K3s labels servers with (an
    /// etcd-only server, `--disable-apiserver`, has only `etcd`), or
    /// node-args that start with `server`.
    pub fn is_server(&self) -> bool {
        self.roles
            .iter()
            .any(|r| r == "control-plane" || r == "master" || r == "etcd")
            || self
                .node_args
                .as_ref()
                .and_then(|a| a.first())
                .is_some_and(|c| c == "server")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    pub node: String,
    pub holder: String,
    pub renewed: Option<Timestamp>,
    pub duration: Duration,
}

impl LeaseInfo {
    /// A kubelet's lease renewed at `renewed`, with Kubernetes' default
    /// 40 s duration (tests build on it).
    pub fn renewed_at(node: &str, renewed: Timestamp) -> LeaseInfo {
        LeaseInfo {
            node: node.to_string(),
            holder: node.to_string(),
            renewed: Some(renewed),
            duration: Duration::from_secs(40),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    pub namespace: String,
    pub name: String,
    pub ips: Vec<String>,
    /// TCP ports of the Service (what `--probe-all` probes).
    pub ports: Vec<u16>,
    pub selector: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub node: String,
    pub labels: BTreeMap<String, String>,
    pub ready: bool,
    /// For a MetalLB speaker pod: what it runs.
    pub speaker: Option<SpeakerBuild>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventInfo {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub reason: String,
    pub message: String,
    pub event_type: String,
    pub component: String,
    pub at: Option<Timestamp>,
}

/// One `ServiceL2Status`: which node announces which service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L2Info {
    pub object: String,
    pub node: String,
    pub service: (String, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Nodes,
    Leases,
    Services,
    Pods,
    Events,
    L2Statuses,
}

impl ResourceKind {
    /// The resource's plural name, as the API server spells it.
    pub fn resource(self) -> &'static str {
        match self {
            ResourceKind::Nodes => "nodes",
            ResourceKind::Leases => "leases",
            ResourceKind::Services => "services",
            ResourceKind::Pods => "pods",
            ResourceKind::Events => "events",
            ResourceKind::L2Statuses => "servicel2statuses",
        }
    }
}

/// What the watchers report.
#[derive(Debug, Clone)]
pub enum ClusterEvent {
    /// A watch (re)started listing: objects not re-applied before the
    /// matching `ResyncDone` are gone.
    ResyncStart(ResourceKind),
    ResyncDone(ResourceKind),
    Node(NodeInfo),
    NodeDeleted(String),
    Lease(LeaseInfo),
    LeaseDeleted(String),
    Service(ServiceInfo),
    ServiceDeleted(String, String),
    Pod(PodInfo),
    PodDeleted(String, String),
    Event(EventInfo),
    /// An Event object went away (its TTL expired).
    EventDeleted(EventInfo),
    L2(L2Info),
    L2Deleted(String),
    /// The resource cannot be watched (403 or CRD missing): degrade, say so.
    Unavailable(ResourceKind, String),
    /// A watch call failed, classified (see [`crate::cluster::watch`]); the
    /// watcher retries with backoff.
    ApiError(ApiFailure),
    /// The server holds its connections but answers nothing (see
    /// [`crate::cluster::liveness`]).
    ApiSilent(String),
    /// A watch delivered data again.
    ApiOk,
    /// The client moved to another API server: `left` went away (`why`),
    /// `url` is used from now on (see [`crate::cluster::endpoints`]).
    ApiEndpoint {
        url: String,
        left: String,
        why: String,
    },
    /// A service probe's result (from [`crate::probe`]).
    Probe(ProbeResult),
    /// How many probe failures in a row turn an endpoint DOWN; the probe
    /// edge sends it before its first result (see [`crate::probe::Prober`]).
    ProbeFailures(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnounceSource {
    L2Status,
    Events,
    None,
}

impl AnnounceSource {
    pub fn label(self) -> &'static str {
        match self {
            AnnounceSource::L2Status => "ServiceL2Status",
            AnnounceSource::Events => "nodeAssigned events",
            AnnounceSource::None => "no MetalLB data",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct NodeState {
    pub info: Option<NodeInfo>,
    pub lease: Option<LeaseInfo>,
    /// Last classification, to log transitions once.
    pub heartbeat: Option<Heartbeat>,
    /// When the heartbeat was seen to renew, and the node clock's skew.
    pub seen: HeartbeatSeen,
    /// The last lines a failed remote step printed on this node, and when.
    pub failed_output: Option<(Timestamp, Vec<String>)>,
    /// What draining it would do, as last judged.
    pub drain: Option<DrainOutlook>,
    pub events: VecDeque<EventInfo>,
}

impl NodeState {
    /// When the cockpit saw the heartbeat renew (its own clock): what ages
    /// and lateness count from, so a node's clock skew cannot make it late.
    pub fn heartbeat_at(&self) -> Option<Timestamp> {
        self.seen.at()
    }

    /// The heartbeat instant as the node wrote it: the lease's renewTime,
    /// or where leases cannot be read, the Ready condition's
    /// lastHeartbeatTime (coarse: ~5 min).
    pub fn reported_heartbeat(&self) -> Option<Timestamp> {
        match &self.lease {
            Some(l) => l.renewed,
            None => self.info.as_ref()?.ready()?.last_heartbeat,
        }
    }

    /// The lease is gone: the heartbeat falls back to the Ready condition's,
    /// observed afresh. Returns whether there was a lease.
    fn forget_lease(&mut self, now: Timestamp) -> bool {
        let had = self.lease.take().is_some();
        if had {
            self.seen = HeartbeatSeen::default();
            self.observe_heartbeat(now);
        }
        had
    }

    /// Notes the heartbeat the node reports now.
    fn observe_heartbeat(&mut self, now: Timestamp) {
        let reported = self.reported_heartbeat();
        self.seen.report(reported, now);
    }

    pub fn lease_duration(&self) -> Duration {
        self.lease
            .as_ref()
            .map_or(Duration::from_secs(40), |l| l.duration)
    }
}

#[derive(Debug, Clone)]
pub struct ServiceState {
    pub info: ServiceInfo,
    pub announcer: Option<String>,
    /// Last node that announced, to count real moves (not delete+create).
    pub last_announcer: Option<String>,
    pub moves: u32,
    pub last_change: Option<Timestamp>,
    /// Since when the service has had no announcer (an outage for users).
    pub unannounced_since: Option<Timestamp>,
    /// With events only: why the announcer cannot be known now (its
    /// speaker is gone, its node NotReady, no recent event).
    pub unknown: Option<String>,
    /// Probe state per endpoint (`ip:port`); empty when not probed.
    pub probes: BTreeMap<String, ProbeState>,
}

impl ServiceState {
    /// None when not probed (yet); false when any endpoint is DOWN (a
    /// failure short of the threshold is not).
    pub fn probe_ok(&self) -> Option<bool> {
        if self.probes.is_empty() {
            return None;
        }
        Some(self.probes.values().all(|p| p.up))
    }

    /// Probe failures that did not reach DOWN (a success came first), over
    /// every endpoint: what the services panel shows as flaps.
    pub fn flaps(&self) -> u32 {
        self.probes.values().map(|p| p.flaps).sum()
    }
}

const NODE_EVENTS_KEPT: usize = 20;

#[derive(Debug)]
pub struct Fleet {
    pub nodes: BTreeMap<String, NodeState>,
    pub services: BTreeMap<(String, String), ServiceState>,
    pods: HashMap<(String, String), PodInfo>,
    l2: HashMap<String, L2Info>,
    /// Latest `nodeAssigned` event per service (the events fallback).
    pub(super) assigned_by_event: HashMap<(String, String), String>,
    pub announce_source: AnnounceSource,
    pub leases_readable: bool,
    pub api: ApiStatus,
    /// The API endpoint in use, once the client has moved off the
    /// kubeconfig's.
    pub api_endpoint: Option<String>,
    /// Probe failures in a row that turn an endpoint DOWN.
    pub probe_failures: u32,
    pub timeline: Timeline,
    resync: HashMap<&'static str, HashSet<String>>,
    /// Service name per node for the pods of LoadBalancer services.
    service_pods: HashMap<String, Vec<String>>,
}

impl Default for Fleet {
    fn default() -> Self {
        Fleet::new()
    }
}

impl Fleet {
    pub fn new() -> Self {
        Fleet {
            nodes: BTreeMap::new(),
            services: BTreeMap::new(),
            pods: HashMap::new(),
            l2: HashMap::new(),
            assigned_by_event: HashMap::new(),
            announce_source: AnnounceSource::L2Status,
            leases_readable: true,
            api: ApiStatus::Connecting,
            api_endpoint: None,
            probe_failures: super::probe::DEFAULT_FAILURES,
            timeline: Timeline::default(),
            resync: HashMap::new(),
            service_pods: HashMap::new(),
        }
    }

    /// Services whose pods run on `node`.
    pub fn pods(&self) -> impl Iterator<Item = &PodInfo> {
        self.pods.values()
    }

    pub fn services_on(&self, node: &str) -> &[String] {
        self.service_pods.get(node).map_or(&[], Vec::as_slice)
    }

    /// LoadBalancer IPs announced from `node`.
    pub fn announced_from(&self, node: &str) -> Vec<&str> {
        self.services
            .values()
            .filter(|s| s.announcer.as_deref() == Some(node))
            .flat_map(|s| s.info.ips.iter().map(String::as_str))
            .collect()
    }

    /// Applies one watcher event. Returns true when anything visible changed.
    pub fn apply(&mut self, event: ClusterEvent, now: Timestamp) -> bool {
        match event {
            ClusterEvent::ResyncStart(kind) => {
                self.resync.insert(kind.resource(), HashSet::new());
                false
            }
            ClusterEvent::ResyncDone(kind) => self.finish_resync(kind, now),
            ClusterEvent::Node(info) => {
                self.seen(ResourceKind::Nodes, &info.name);
                self.apply_node(info, now)
            }
            ClusterEvent::NodeDeleted(name) => self.node_deleted(name, now),
            ClusterEvent::Lease(lease) => self.apply_lease(lease, now),
            ClusterEvent::LeaseDeleted(name) => self
                .nodes
                .get_mut(&name)
                .is_some_and(|n| n.forget_lease(now)),
            ClusterEvent::Service(info) => self.apply_service(info, now),
            ClusterEvent::ServiceDeleted(ns, name) => {
                let removed = self.services.remove(&(ns, name)).is_some();
                self.rebuild_service_pods();
                removed
            }
            ClusterEvent::Pod(pod) => self.apply_pod(pod, now),
            ClusterEvent::PodDeleted(ns, name) => {
                let removed = self.pods.remove(&(ns, name)).is_some();
                if removed {
                    self.rebuild_service_pods();
                    self.judge_event_announcers(now);
                }
                removed
            }
            ClusterEvent::Event(ev) => self.apply_event(ev, now),
            ClusterEvent::EventDeleted(ev) => self.event_expired(&ev, now),
            ClusterEvent::L2(l2) => self.apply_l2(l2, now),
            ClusterEvent::L2Deleted(object) => self.l2_deleted(&object, now),
            ClusterEvent::Unavailable(kind, why) => self.degrade(kind, why, now),
            ClusterEvent::ApiError(error) => self.api_error(error, now),
            ClusterEvent::ApiSilent(why) => self.api_silent(why, now),
            ClusterEvent::ApiOk => self.api_ok(now),
            ClusterEvent::ApiEndpoint { url, left, why } => {
                self.timeline.push_kind(
                    now,
                    Severity::Warn,
                    "api",
                    EntryKind::ApiEndpoint { url: url.clone() },
                    format!("API endpoint now {url}; left {left} ({why})"),
                );
                self.api_endpoint = Some(url);
                true
            }
            ClusterEvent::Probe(result) => self.apply_probe(result),
            ClusterEvent::ProbeFailures(n) => {
                self.probe_failures = n.max(1);
                for p in self
                    .services
                    .values_mut()
                    .flat_map(|s| s.probes.values_mut())
                {
                    p.set_threshold(n);
                }
                false
            }
        }
    }

    fn node_deleted(&mut self, name: String, now: Timestamp) -> bool {
        self.timeline.push_kind(
            now,
            Severity::Warn,
            &name,
            EntryKind::NodeDeleted,
            "node deleted".into(),
        );
        self.nodes.remove(&name).is_some()
    }

    fn apply_lease(&mut self, lease: LeaseInfo, now: Timestamp) -> bool {
        self.seen(ResourceKind::Leases, &lease.node);
        // A renewal finds its node: no key to allocate.
        let state = match self.nodes.get_mut(&lease.node) {
            Some(state) => state,
            None => self.nodes.entry(lease.node.clone()).or_default(),
        };
        let changed = state.lease.as_ref() != Some(&lease);
        state.lease = Some(lease);
        state.observe_heartbeat(now);
        changed
    }

    fn apply_service(&mut self, info: ServiceInfo, now: Timestamp) -> bool {
        let key = (info.namespace.clone(), info.name.clone());
        self.seen(ResourceKind::Services, &format!("{}/{}", key.0, key.1));
        match self.services.get_mut(&key) {
            Some(s) => s.info = info,
            None => {
                self.services.insert(
                    key.clone(),
                    ServiceState {
                        info,
                        announcer: None,
                        last_announcer: None,
                        moves: 0,
                        last_change: None,
                        unannounced_since: None,
                        unknown: None,
                        probes: BTreeMap::new(),
                    },
                );
                // Watches deliver in any order: the announcer may
                // have been seen before its Service.
                let known = self.known_announcer(&key);
                if known.is_some() {
                    self.set_announcer(&key, known, now);
                }
            }
        }
        self.rebuild_service_pods();
        true
    }

    fn apply_pod(&mut self, pod: PodInfo, now: Timestamp) -> bool {
        self.seen(
            ResourceKind::Pods,
            &format!("{}/{}", pod.namespace, pod.name),
        );
        let key = (pod.namespace.clone(), pod.name.clone());
        if self.pods.get(&key) == Some(&pod) {
            return false;
        }
        let speaker = pod.is_speaker();
        self.pods.insert(key, pod);
        // During a relist the map is rebuilt once at the end.
        if !self.resync.contains_key(ResourceKind::Pods.resource()) {
            self.rebuild_service_pods();
        }
        if speaker {
            self.judge_event_announcers(now);
        }
        true
    }

    /// The first failure of each kind is logged (named by its kind); later
    /// ones only count. A 410 Gone is the watcher listing afresh: nothing.
    fn api_error(&mut self, failure: ApiFailure, now: Timestamp) -> bool {
        let ApiFailure { kind, text: error } = failure;
        if kind == ApiFailureKind::Resync {
            tracing::debug!("watch resync (410 Gone): {error}");
            return false;
        }
        let (since, failures, was) = match &self.api {
            ApiStatus::Down {
                since,
                failures,
                kind,
                ..
            } => (*since, failures + 1, Some(*kind)),
            _ => (now, 1, None),
        };
        if was != Some(kind) {
            let text = match kind {
                ApiFailureKind::Unreachable => format!("API server unreachable: {error}"),
                ApiFailureKind::Unauthorized => format!(
                    "API credentials expired or rejected (401): {error}; {RENEW_CREDENTIALS}"
                ),
                ApiFailureKind::Forbidden => format!("API {error} (403)"),
                ApiFailureKind::ServerError => format!("API server error: {error}"),
                _ => format!("API request failed: {error}"),
            };
            self.timeline.push_kind(
                now,
                Severity::Error,
                "api",
                EntryKind::Api {
                    failure: Some(kind.name().into()),
                },
                text,
            );
        }
        self.api = ApiStatus::Down {
            since,
            error,
            failures,
            kind,
        };
        true
    }

    /// A silent server: heartbeats cannot be judged until it speaks again.
    fn api_silent(&mut self, why: String, now: Timestamp) -> bool {
        if matches!(self.api, ApiStatus::Down { .. }) {
            return false;
        }
        self.timeline.push_kind(
            now,
            Severity::Error,
            "api",
            EntryKind::Api {
                failure: Some(ApiFailureKind::Silent.name().into()),
            },
            format!("API server silent: {why}; heartbeat judgements paused"),
        );
        self.api = ApiStatus::Down {
            since: now,
            error: why,
            failures: 1,
            kind: ApiFailureKind::Silent,
        };
        true
    }

    fn api_ok(&mut self, now: Timestamp) -> bool {
        match &self.api {
            ApiStatus::Up => false,
            ApiStatus::Down { since, kind, .. } => {
                let down = crate::durations::format_duration(health::age(*since, now));
                let text = if kind.is_outage() {
                    format!("API server reachable again after {down}")
                } else {
                    format!("API requests succeed again after {down} ({})", kind.name())
                };
                self.timeline.push_kind(
                    now,
                    Severity::Info,
                    "api",
                    EntryKind::Api { failure: None },
                    text,
                );
                self.api = ApiStatus::Up;
                true
            }
            ApiStatus::Connecting => {
                self.api = ApiStatus::Up;
                true
            }
        }
    }

    /// One probe result: state, sparkline history, and a timeline entry
    /// for each failure short of DOWN (at Warn), when the endpoint goes DOWN
    /// and when it comes back (with the outage's length, from the first
    /// failure of the run). Entries are stamped with the probe's own
    /// instant, not the tick's.
    fn apply_probe(&mut self, r: ProbeResult) -> bool {
        let Some(svc) = self.services.get_mut(&r.service) else {
            return false;
        };
        let down_after = self.probe_failures;
        let state = svc
            .probes
            .entry(r.endpoint.clone())
            .or_insert_with(|| ProbeState::with_threshold(&r.check, down_after));
        let label = format!("{}/{}", r.service.0, r.service.1);
        match state.record(&r) {
            Some(ProbeTransition::Failed { error, streak, of }) => self.timeline.push_kind(
                r.at,
                Severity::Warn,
                &label,
                EntryKind::ProbeFailed {
                    endpoint: r.endpoint.clone(),
                    error: error.clone(),
                    streak,
                    of,
                },
                format!(
                    "probe failed ({streak}/{of}) ({} {}): {error}",
                    r.check, r.endpoint
                ),
            ),
            Some(ProbeTransition::Down {
                error,
                since,
                failures,
            }) => {
                let mut text = format!("probe DOWN ({} {}): {error}", r.check, r.endpoint);
                if failures > 1 {
                    text.push_str(&format!(" ({failures} failures in a row)"));
                }
                self.timeline.push_kind(
                    r.at,
                    Severity::Error,
                    &label,
                    EntryKind::ProbeDown {
                        endpoint: r.endpoint.clone(),
                        error: error.clone(),
                        since: (since != r.at).then_some(since),
                    },
                    text,
                );
            }
            Some(ProbeTransition::Up { down_for }) => self.timeline.push_kind(
                r.at,
                Severity::Info,
                &label,
                EntryKind::ProbeUp {
                    endpoint: r.endpoint.clone(),
                    down_for_ms: u64::try_from(down_for.as_millis()).unwrap_or(u64::MAX),
                },
                format!(
                    "probe up again after {} ({} {})",
                    crate::durations::format_duration(down_for),
                    r.check,
                    r.endpoint
                ),
            ),
            None => {}
        }
        true
    }

    /// Re-classifies heartbeats (called on the 1 s tick): transitions to
    /// late or expired are logged once. O(nodes) per tick, O(1) per node.
    pub fn tick(&mut self, now: Timestamp) {
        // Without the API nothing is seen, so an old renewal proves nothing
        // about the kubelet: judge again once the server speaks.
        if matches!(self.api, ApiStatus::Down { .. }) {
            return;
        }
        for (name, state) in &mut self.nodes {
            if state.info.is_none() {
                continue;
            }
            let hb = health::classify(state.heartbeat_at(), state.lease_duration(), now);
            let previous = state.heartbeat.replace(hb);
            if previous.is_some_and(|p| p != hb) && hb != Heartbeat::Unknown {
                let age = state
                    .heartbeat_at()
                    .map(|t| health::age(t, now))
                    .unwrap_or_default();
                let (severity, kind, text) = match hb {
                    Heartbeat::Fresh => (
                        Severity::Info,
                        EntryKind::HeartbeatFresh,
                        "heartbeat fresh again".to_string(),
                    ),
                    Heartbeat::Late => (
                        Severity::Warn,
                        EntryKind::HeartbeatLate,
                        format!(
                            "heartbeat LATE: lease not renewed for {}",
                            crate::durations::format_duration(age)
                        ),
                    ),
                    Heartbeat::Expired => (
                        Severity::Error,
                        EntryKind::HeartbeatExpired,
                        format!(
                            "heartbeat EXPIRED: lease not renewed for {}",
                            crate::durations::format_duration(age)
                        ),
                    ),
                    Heartbeat::Unknown => continue,
                };
                self.timeline.push_kind(now, severity, name, kind, text);
            }
        }
        self.judge_event_announcers(now);
    }

    fn seen(&mut self, kind: ResourceKind, key: &str) {
        if let Some(set) = self.resync.get_mut(kind.resource()) {
            set.insert(key.to_string());
        }
    }

    fn finish_resync(&mut self, kind: ResourceKind, now: Timestamp) -> bool {
        let Some(seen) = self.resync.remove(kind.resource()) else {
            return false;
        };
        match kind {
            ResourceKind::Nodes => self
                .nodes
                .retain(|n, s| s.info.is_none() || seen.contains(n)),
            ResourceKind::Leases => {
                for (n, s) in &mut self.nodes {
                    if !seen.contains(n) {
                        s.forget_lease(now);
                    }
                }
            }
            ResourceKind::Services => self
                .services
                .retain(|(ns, n), _| seen.contains(&format!("{ns}/{n}"))),
            ResourceKind::Pods => self
                .pods
                .retain(|(ns, n), _| seen.contains(&format!("{ns}/{n}"))),
            ResourceKind::L2Statuses => {
                let gone: Vec<String> = self
                    .l2
                    .keys()
                    .filter(|k| !seen.contains(*k))
                    .cloned()
                    .collect();
                for object in gone {
                    self.l2_deleted(&object, now);
                }
            }
            ResourceKind::Events => {}
        }
        self.rebuild_service_pods();
        true
    }

    fn apply_node(&mut self, info: NodeInfo, now: Timestamp) -> bool {
        let state = self.nodes.entry(info.name.clone()).or_default();
        let name = info.name.clone();
        let mut notes: Vec<(Severity, EntryKind, String)> = Vec::new();
        if let Some(old) = &state.info {
            if old == &info {
                return false;
            }
            let (was, is) = (
                old.ready().map(|c| c.status),
                info.ready().map(|c| c.status),
            );
            if was != is {
                let reason = info.ready().map(|c| c.reason.clone()).unwrap_or_default();
                let text = match is {
                    Some(Tri::True) => "Ready".to_string(),
                    Some(Tri::False) => format!("NotReady ({reason})"),
                    _ => format!("NotReady: Ready=Unknown ({reason})"),
                };
                let (sev, kind) = if is == Some(Tri::True) {
                    (Severity::Info, EntryKind::NodeReady)
                } else {
                    (Severity::Error, EntryKind::NodeNotReady { reason })
                };
                notes.push((sev, kind, text));
            }
            if old.version != info.version {
                notes.push((
                    Severity::Info,
                    EntryKind::Version {
                        from: old.version.clone(),
                        to: info.version.clone(),
                    },
                    format!("version {} → {}", old.version, info.version),
                ));
            }
            if old.unschedulable != info.unschedulable {
                let (kind, text) = if info.unschedulable {
                    (EntryKind::Cordon, "cordoned")
                } else {
                    (EntryKind::Uncordon, "uncordoned")
                };
                notes.push((Severity::Info, kind, text.to_string()));
            }
            for t in info.taints.iter().filter(|t| !old.taints.contains(t)) {
                notes.push((
                    Severity::Warn,
                    EntryKind::TaintAdded { taint: t.short() },
                    format!("taint added {}", t.short()),
                ));
            }
            for t in old.taints.iter().filter(|t| !info.taints.contains(t)) {
                notes.push((
                    Severity::Info,
                    EntryKind::TaintRemoved { taint: t.short() },
                    format!("taint removed {}", t.short()),
                ));
            }
            if old.boot_id != info.boot_id && !old.boot_id.is_empty() {
                notes.push((
                    Severity::Warn,
                    EntryKind::KubeletRestart,
                    "kubelet restarted (new boot id)".to_string(),
                ));
            }
        }
        state.info = Some(info);
        state.observe_heartbeat(now);
        for (sev, kind, text) in notes {
            self.timeline.push_kind(now, sev, &name, kind, text);
        }
        true
    }

    fn apply_event(&mut self, ev: EventInfo, now: Timestamp) -> bool {
        if ev.kind == "Node" {
            if let Some(state) = self.nodes.get_mut(&ev.name) {
                if state.events.len() >= NODE_EVENTS_KEPT {
                    state.events.pop_front();
                }
                state.events.push_back(ev);
                return true;
            }
            return false;
        }
        if ev.kind == "Service"
            && ev.reason == "nodeAssigned"
            && self.announce_source == AnnounceSource::Events
            && let Some(node) = announced_node(&ev.message)
        {
            let key = (ev.namespace.clone(), ev.name.clone());
            self.assigned_by_event.insert(key.clone(), node.clone());
            if let Some(svc) = self.services.get_mut(&key) {
                svc.unknown = None;
            }
            self.set_announcer(&key, Some(node), now);
            self.judge_event_announcers(now);
            return true;
        }
        false
    }

    fn degrade(&mut self, kind: ResourceKind, why: String, now: Timestamp) -> bool {
        match kind {
            ResourceKind::Leases if self.leases_readable => {
                self.leases_readable = false;
                self.timeline.push(
                    now,
                    Severity::Warn,
                    "cockpit",
                    format!("cannot read node leases ({why}); heartbeat age falls back to the Ready condition"),
                );
            }
            ResourceKind::L2Statuses if self.announce_source == AnnounceSource::L2Status => {
                self.announce_source = AnnounceSource::Events;
                self.timeline.push(
                    now,
                    Severity::Info,
                    "cockpit",
                    format!(
                        "no ServiceL2Status ({why}); announcers from MetalLB nodeAssigned events"
                    ),
                );
                self.judge_event_announcers(now);
            }
            _ => return false,
        }
        true
    }

    fn rebuild_service_pods(&mut self) {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for svc in self.services.values() {
            if svc.info.selector.is_empty() {
                continue;
            }
            for pod in self.pods.values() {
                let selected = pod.namespace == svc.info.namespace
                    && svc
                        .info
                        .selector
                        .iter()
                        .all(|(k, v)| pod.labels.get(k) == Some(v));
                if selected {
                    let names = map.entry(pod.node.clone()).or_default();
                    if !names.contains(&svc.info.name) {
                        names.push(svc.info.name.clone());
                    }
                }
            }
        }
        self.service_pods = map;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
