//! The simulated cluster's behaviour: kubelets (lease renewals, status
//! posts, restarts, upgrades), the node lifecycle controller, MetalLB L2
//! speakers and scripted faults.
//!
//! All timed work sits in one timer heap, so the cost per renewal is
//! O(log n) and idle nodes cost nothing between their own timers. The API
//! server only sees the resulting object writes in the [`Store`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use super::host::{self, Host};
use super::objects::{self, LEASE_NAMESPACE, METALLB_NAMESPACE, NOT_READY, UNREACHABLE};
use super::scenario::{FaultKind, NodeSpec, Role, Scenario, ServiceSpec, Timing};
use super::serve::{OutageWindow, Served};
use super::store::{Kind, Store, now_rfc3339, now_rfc3339_micro};

mod etcd;
mod k3s_config;
mod metallb;
mod workloads;

pub use etcd::DB;
pub use metallb::{has_exclude_label, watch_nodes};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kubelet {
    Running,
    /// Stopped by a fault: no lease renewals, no status.
    Hung,
    /// K3s is restarting (install or `systemctl restart`).
    Down,
    /// `systemctl stop`: K3s is not running and nothing restarts it.
    Stopped,
}

#[derive(Debug)]
pub struct SimNode {
    pub name: String,
    pub role: Role,
    pub vmid: Option<u32>,
    /// Version of the running kubelet (what the Node object reports).
    pub version: String,
    /// The machine: unit, arguments, files (the installed binary).
    pub host: Host,
    pub kubelet: Kubelet,
    /// Generation: bumped on every kubelet stop/start so stale timers die.
    generation: u64,
    pub speaker_alive: bool,
    /// memberlist's view: a dead speaker stays a member until detection.
    speaker_member: bool,
    /// kube-proxy's service rules are in place: false while K3s is down
    /// and for the reprogramming window after it starts.
    dataplane_up: bool,
    /// Speakers' view of the MetalLB exclude label on the node.
    excluded: bool,
    /// A label change is waiting for the speakers to see it.
    label_sync_pending: bool,
    /// Faults that fired and heal on restart.
    healable: Vec<FaultKind>,
    boots: usize,
    pub restarts: u32,
    last_renew: Instant,
    /// The node's clock minus true time: stamps its lease renewals.
    clock_offset: jiff::SignedDuration,
    posted_ready: bool,
    nlc_unknown: bool,
    /// Version upgrades that arm faults: version -> instant first run.
    first_ran: HashMap<String, Instant>,
}

#[derive(Debug)]
struct SimService {
    namespace: String,
    name: String,
    ip: String,
    port: u16,
    announcer: Option<String>,
    l2_object: Option<String>,
    /// The HTTP listener on `ip:port`, while a live speaker announces it.
    served: Option<Served>,
    /// Index into `Sim::outages` of the open outage window.
    open_outage: Option<usize>,
    /// Last bind failure, logged once.
    bind_error: Option<String>,
}

#[derive(Debug, Clone)]
enum Timer {
    Renew {
        node: usize,
        generation: u64,
    },
    StatusReport {
        node: usize,
        generation: u64,
    },
    KubeletUp {
        node: usize,
        generation: u64,
    },
    KubeletReady {
        node: usize,
        generation: u64,
    },
    Monitor,
    InstallDone {
        node: usize,
        version: String,
    },
    /// `process`: the node's restart count when the fault was armed by an
    /// upgrade (`None` for scenario-start faults, which always fire).
    Fault {
        fault: usize,
        process: Option<u32>,
    },
    SpeakerDead {
        node: usize,
    },
    SpeakerJoin {
        node: usize,
    },
    DataplaneUp {
        node: usize,
        generation: u64,
    },
    LabelSync {
        node: usize,
    },
    Reschedule {
        pod: Value,
    },
}

/// A timer in the heap, ordered by due instant, then by insertion.
#[derive(Debug)]
struct Scheduled {
    at: Instant,
    seq: u64,
    timer: Timer,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

pub struct Sim {
    store: Arc<Store>,
    pub timing: Timing,
    time_scale: f64,
    /// The MetalLB the speakers behave like (version, flags).
    metallb: super::scenario::MetallbSpec,
    pub nodes: Vec<SimNode>,
    by_name: HashMap<String, usize>,
    services: Vec<SimService>,
    faults: Vec<(super::scenario::FaultSpec, bool)>,
    timers: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    install_waiters: HashMap<usize, Vec<oneshot::Sender<String>>>,
    /// Every period a service IP had no listener, in order.
    outages: Vec<OutageWindow>,
    /// Closed outage windows are appended here as JSON lines.
    outage_log: Option<std::fs::File>,
    airgap: bool,
    sqlite: bool,
    /// LoadBalancer services K3s's own service LB took over (`ns/name`).
    pub servicelb_applied: Vec<String>,
    /// The etcd minor the servers' cluster runs (see `etcd`).
    etcd_cluster_minor: u32,
    /// Bumped by each `--cluster-reset`: members of an older cluster
    /// cannot rejoin (see `etcd`).
    etcd_generation: u64,
    /// Every command a node's shell carries out, as JSON lines.
    node_log: Option<std::fs::File>,
}

/// The simulation behind a mutex plus the notifier that wakes its driver
/// when a new timer might be earlier than the one it sleeps on.
#[derive(Clone)]
pub struct SimHandle {
    sim: Arc<Mutex<Sim>>,
    wake: Arc<Notify>,
}

impl SimHandle {
    pub fn lock(&self) -> MutexGuard<'_, Sim> {
        self.sim.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn poke(&self) {
        self.wake.notify_one();
    }

    /// Runs the install script for `version` on `node`: resolves when the
    /// script has installed the binary and restarted K3s.
    pub async fn install(&self, node: &str, version: &str) -> Result<String, String> {
        let rx = {
            let mut sim = self.lock();
            let idx = sim.index(node)?;
            let (tx, rx) = oneshot::channel();
            sim.install_waiters.entry(idx).or_default().push(tx);
            let after = sim.timing.install;
            sim.schedule(
                after,
                Timer::InstallDone {
                    node: idx,
                    version: version.to_string(),
                },
            );
            rx
        };
        self.poke();
        rx.await.map_err(|_| "lab stopped".to_string())
    }

    /// `systemctl restart k3s`.
    pub fn restart(&self, node: &str) -> Result<(), String> {
        {
            let mut sim = self.lock();
            let idx = sim.index(node)?;
            sim.restart_kubelet(idx);
        }
        self.poke();
        Ok(())
    }

    /// Waits until `node`'s K3s has started (left [`Kubelet::Down`]), as
    /// `systemctl restart k3s` does: the unit is `Type=notify` with
    /// `TimeoutStartSec=0` (k3s-io/k3s install.sh, the unit it writes), so
    /// systemctl returns only once K3s reports ready, however long that
    /// takes. The lab's clock is tokio's, so a paused-clock test can run it.
    pub async fn started(&self, node: &str) -> Result<(), String> {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tick.tick().await;
            if self.kubelet_state(node)? != Kubelet::Down {
                return Ok(());
            }
        }
    }

    /// Runs `f` on the node's machine.
    pub fn with_host<R>(&self, node: &str, f: impl FnOnce(&mut Host) -> R) -> Result<R, String> {
        let mut sim = self.lock();
        let idx = sim.index(node)?;
        Ok(f(&mut sim.nodes[idx].host))
    }

    pub fn kubelet_state(&self, node: &str) -> Result<Kubelet, String> {
        let sim = self.lock();
        Ok(sim.nodes[sim.index(node)?].kubelet)
    }

    pub fn pod_removed(&self, pod: Value) {
        self.lock()
            .schedule(Duration::from_millis(500), Timer::Reschedule { pod });
        self.poke();
    }

    /// Every outage window of every service so far (the last may be open).
    pub fn outages(&self) -> Vec<OutageWindow> {
        self.lock().outages.clone()
    }

    /// Appends each closed outage window to `file` as a JSON line.
    pub fn set_outage_log(&self, file: std::fs::File) {
        self.lock().outage_log = Some(file);
    }

    pub fn announcer(&self, namespace: &str, name: &str) -> Option<String> {
        let sim = self.lock();
        sim.services
            .iter()
            .find(|s| s.namespace == namespace && s.name == name)
            .and_then(|s| s.announcer.clone())
    }

    /// Drives the timers until the handle is dropped everywhere else.
    pub async fn run(self) {
        loop {
            let next = {
                let mut sim = self.lock();
                sim.fire_due(Instant::now());
                sim.timers.peek().map(|Reverse(next)| next.at)
            };
            let sleep_until = next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = tokio::time::sleep_until(sleep_until) => {}
                _ = self.wake.notified() => {}
            }
        }
    }
}

impl Sim {
    pub fn start(store: Arc<Store>, scenario: &Scenario) -> SimHandle {
        let timing = scenario.timing.scaled(scenario.time_scale);
        let mut sim = Sim {
            store,
            nodes: Vec::new(),
            by_name: HashMap::new(),
            services: Vec::new(),
            faults: scenario
                .faults
                .iter()
                .cloned()
                .map(|f| (f, false))
                .collect(),
            timers: BinaryHeap::new(),
            seq: 0,
            install_waiters: HashMap::new(),
            outages: Vec::new(),
            outage_log: None,
            airgap: scenario.airgap,
            sqlite: scenario.sqlite,
            servicelb_applied: Vec::new(),
            etcd_cluster_minor: 0,
            etcd_generation: 0,
            node_log: None,
            timing,
            time_scale: scenario.time_scale,
            metallb: scenario.metallb.clone(),
        };
        let now = Instant::now();
        for (i, spec) in scenario.nodes.iter().enumerate() {
            sim.add_node(i, spec, now);
            let staged = &scenario.staged_releases;
            sim.nodes[i]
                .host
                .stage_releases(staged, spec.corrupt_staged);
        }
        sim.store.upsert(
            Kind::DaemonSet,
            objects::speaker_daemonset(scenario.nodes.len(), &scenario.metallb),
        );
        for (i, s) in scenario.services.iter().enumerate() {
            sim.add_service(i, s);
        }
        sim.add_workloads(scenario);
        sim.ratchet_etcd();
        sim.elect_all();
        sim.arm_start_faults();
        let monitor = sim.timing.monitor_period;
        sim.schedule(monitor, Timer::Monitor);
        SimHandle {
            sim: Arc::new(Mutex::new(sim)),
            wake: Arc::new(Notify::new()),
        }
    }

    /// A running node: its Node, Lease and speaker pod objects, and its
    /// kubelet's first timers.
    fn add_node(&mut self, i: usize, spec: &NodeSpec, now: Instant) {
        let lease_duration_secs = self.timing.lease_duration.as_secs_f64().round().max(1.0) as u64;
        self.store.upsert(
            Kind::Node,
            objects::node(&spec.name, spec.role, &spec.version, i),
        );
        self.store
            .upsert(Kind::Lease, objects::lease(&spec.name, lease_duration_secs));
        self.store.upsert(
            Kind::Pod,
            objects::speaker_pod(&spec.name, &suffix(i as u64 + 7), &self.metallb.version),
        );
        self.by_name.insert(spec.name.clone(), i);
        self.nodes.push(SimNode {
            name: spec.name.clone(),
            role: spec.role,
            vmid: spec.vmid,
            version: spec.version.clone(),
            host: Host::new(spec, self.airgap, self.sqlite),
            kubelet: Kubelet::Running,
            generation: 0,
            speaker_alive: true,
            speaker_member: true,
            dataplane_up: true,
            excluded: false,
            label_sync_pending: false,
            healable: Vec::new(),
            boots: i,
            restarts: 0,
            last_renew: now,
            clock_offset: spec.clock_offset,
            posted_ready: true,
            nlc_unknown: false,
            first_ran: HashMap::from([(spec.version.clone(), now)]),
        });
        self.publish_node_config(i);
        // Spread the first renewals over one interval, as real kubelets are.
        let offset = self
            .timing
            .renew_interval
            .mul_f64(rand::rng().random::<f64>());
        self.schedule(
            offset,
            Timer::Renew {
                node: i,
                generation: 0,
            },
        );
        let report = self.timing.status_report;
        self.schedule(
            report,
            Timer::StatusReport {
                node: i,
                generation: 0,
            },
        );
    }

    /// A LoadBalancer service and its workload pod; announced by `elect_all`.
    fn add_service(&mut self, i: usize, s: &ServiceSpec) {
        self.store.upsert(
            Kind::Service,
            objects::service(&s.namespace, &s.name, &s.ip, s.port, i),
        );
        self.store.upsert(
            Kind::Pod,
            objects::workload_pod(&s.namespace, &s.name, &suffix(i as u64 + 1000), &s.pod_node),
        );
        self.services.push(SimService {
            namespace: s.namespace.clone(),
            name: s.name.clone(),
            ip: s.ip.clone(),
            port: s.port,
            announcer: None,
            l2_object: None,
            served: None,
            open_outage: None,
            bind_error: None,
        });
    }

    /// Faults not tied to an upgrade count from the start of the lab.
    fn arm_start_faults(&mut self) {
        for f in 0..self.faults.len() {
            if self.faults[f].0.after_upgrade_to.is_none() {
                let delay = self.scaled(self.faults[f].0.delay);
                self.schedule(
                    delay,
                    Timer::Fault {
                        fault: f,
                        process: None,
                    },
                );
                self.faults[f].1 = true;
            }
        }
    }

    fn index(&self, node: &str) -> Result<usize, String> {
        self.by_name
            .get(node)
            .copied()
            .ok_or_else(|| format!("no node named {node:?} in the lab"))
    }

    fn schedule(&mut self, after: Duration, timer: Timer) {
        self.seq += 1;
        self.timers.push(Reverse(Scheduled {
            at: Instant::now() + after,
            seq: self.seq,
            timer,
        }));
    }

    fn record(&mut self, what: String) {
        tracing::debug!(target: "lab", "{what}");
    }

    fn fire_due(&mut self, now: Instant) {
        while self
            .timers
            .peek()
            .is_some_and(|Reverse(next)| next.at <= now)
        {
            if let Some(Reverse(due)) = self.timers.pop() {
                self.fire(due.timer, now);
            }
        }
    }

    fn fire(&mut self, timer: Timer, now: Instant) {
        match timer {
            Timer::Renew { node, generation } => {
                if self.nodes[node].generation == generation
                    && self.nodes[node].kubelet == Kubelet::Running
                {
                    self.renew_lease(node, now);
                    let jitter = 1.0 + self.timing.renew_jitter * rand::rng().random::<f64>();
                    let next = self.timing.renew_interval.mul_f64(jitter);
                    self.schedule(next, Timer::Renew { node, generation });
                }
            }
            Timer::StatusReport { node, generation } => {
                if self.nodes[node].generation == generation
                    && self.nodes[node].kubelet == Kubelet::Running
                {
                    self.post_status(node, self.nodes[node].posted_ready);
                    let report = self.timing.status_report;
                    self.schedule(report, Timer::StatusReport { node, generation });
                }
            }
            Timer::KubeletUp { node, generation } => self.kubelet_up(node, generation, now),
            Timer::KubeletReady { node, generation } => {
                if self.nodes[node].generation == generation
                    && self.nodes[node].kubelet == Kubelet::Running
                {
                    self.post_status(node, true);
                }
            }
            Timer::Monitor => {
                self.monitor_nodes(now);
                self.place_pending();
                super::eviction::sync_budgets(&self.store);
                // Retries a listener that could not bind (port in use).
                self.sync_serving();
                let period = self.timing.monitor_period;
                self.schedule(period, Timer::Monitor);
            }
            Timer::InstallDone { node, version } => {
                let name = self.nodes[node].name.clone();
                self.record(format!("{name}: install script installed {version}"));
                let h = &mut self.nodes[node].host;
                let asset = host::asset_for(&h.arch).map_or("k3s", |(_, a)| a);
                h.files
                    .insert(host::BIN.to_string(), host::fake_binary(&version, asset));
                self.restart_kubelet(node);
                for w in self.install_waiters.remove(&node).unwrap_or_default() {
                    let _ = w.send(version.clone());
                }
            }
            Timer::Fault { fault, process } => {
                let (spec, _) = self.faults[fault].clone();
                if let Ok(idx) = self.index(&spec.node) {
                    // A fault armed by an upgrade belongs to the K3s process
                    // that upgrade started: a restart since then replaced it.
                    if process.is_some_and(|p| p != self.nodes[idx].restarts) {
                        self.record(format!(
                            "{}: fault {:?} cancelled by a K3s restart",
                            spec.node, spec.kind
                        ));
                        return;
                    }
                    self.fire_fault_on(idx, spec.kind, spec.heal_on_restart);
                }
            }
            Timer::SpeakerDead { node } => self.speaker_dead(node),
            Timer::SpeakerJoin { node } => self.speaker_join(node),
            Timer::DataplaneUp { node, generation } => self.dataplane_up(node, generation),
            Timer::LabelSync { node } => self.label_sync(node),
            Timer::Reschedule { pod } => self.reschedule(pod),
        }
    }

    fn renew_lease(&mut self, node: usize, now: Instant) {
        self.nodes[node].last_renew = now;
        let name = self.nodes[node].name.clone();
        let stamp = renew_stamp(self.nodes[node].clock_offset);
        self.store
            .update(Kind::Lease, LEASE_NAMESPACE, &name, |lease| {
                lease["spec"]["renewTime"] = json!(stamp);
            });
    }

    /// The kubelet posts its Ready condition (and bumps `lastHeartbeatTime`).
    fn post_status(&mut self, node: usize, ready: bool) {
        let was_ready = self.nodes[node].posted_ready;
        self.nodes[node].posted_ready = ready;
        let (name, version, boots) = {
            let n = &self.nodes[node];
            (n.name.clone(), n.version.clone(), n.boots)
        };
        self.store.update(Kind::Node, "", &name, |n| {
            let (status, reason, message) = if ready {
                ("True", "KubeletReady", "kubelet is posting ready status")
            } else {
                ("False", "KubeletNotReady", objects::KUBELET_STARTING)
            };
            objects::set_condition(n, "Ready", status, reason, message);
            for (kind, reason, msg) in [
                (
                    "MemoryPressure",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
                (
                    "DiskPressure",
                    "KubeletHasNoDiskPressure",
                    "kubelet has no disk pressure",
                ),
                (
                    "PIDPressure",
                    "KubeletHasSufficientPID",
                    "kubelet has sufficient PID available",
                ),
            ] {
                objects::set_condition(n, kind, "False", reason, msg);
            }
            n["status"]["nodeInfo"] = objects::node_info(&version, boots);
        });
        if ready != was_ready || self.nodes[node].nlc_unknown {
            let status = if ready { "NodeReady" } else { "NodeNotReady" };
            self.emit_event(
                ("Node", "", &name),
                "Normal",
                status,
                &format!("Node {name} status is now: {status}"),
                "kubelet",
            );
        }
        self.sync_taints(node);
    }

    /// `systemctl restart k3s`: the kubelet goes down, comes back on the
    /// installed version, reports NotReady briefly, then Ready.
    fn restart_kubelet(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        n.generation += 1;
        n.kubelet = Kubelet::Down;
        n.restarts += 1;
        let healed: Vec<FaultKind> = std::mem::take(&mut n.healable);
        n.dataplane_up = false;
        let generation = n.generation;
        let name = n.name.clone();
        if healed.contains(&FaultKind::SpeakerStop) || !n.speaker_alive {
            // K3s restarts the node's containers with it, the speaker included.
            n.speaker_alive = true;
            let join = self.timing.speaker_failover.min(Duration::from_secs(1));
            self.schedule(join, Timer::SpeakerJoin { node });
        }
        self.record(format!("{name}: k3s restarting"));
        self.sync_serving();
        let down = self.timing.restart_down;
        self.schedule(down, Timer::KubeletUp { node, generation });
    }

    fn kubelet_up(&mut self, node: usize, generation: u64, now: Instant) {
        if self.nodes[node].generation != generation {
            return;
        }
        if let Some(why) = self.etcd_join(node) {
            self.fail_etcd_join(node, &why);
            return;
        }
        let n = &mut self.nodes[node];
        n.kubelet = Kubelet::Running;
        if let Some(v) = n.host.binary_version() {
            n.version = v;
        }
        n.boots += 1000;
        let version = n.version.clone();
        let first = !n.first_ran.contains_key(&version);
        n.first_ran.entry(version.clone()).or_insert(now);
        let name = n.name.clone();
        self.record(format!("{name}: kubelet started, version {version}"));
        self.publish_node_config(node);
        self.renew_lease(node, now);
        self.post_status(node, false);
        let startup = self.timing.kubelet_startup;
        self.schedule(startup, Timer::KubeletReady { node, generation });
        let reprogram = self.timing.reprogram;
        self.schedule(reprogram, Timer::DataplaneUp { node, generation });
        let renew = self.timing.renew_interval;
        self.schedule(renew, Timer::Renew { node, generation });
        let report = self.timing.status_report;
        self.schedule(report, Timer::StatusReport { node, generation });
        if first {
            self.arm_faults(&name, &version);
        }
        self.ratchet_etcd();
    }

    fn arm_faults(&mut self, node: &str, version: &str) {
        for f in 0..self.faults.len() {
            let (spec, armed) = &self.faults[f];
            if !*armed && spec.node == node && spec.after_upgrade_to.as_deref() == Some(version) {
                let delay = self.scaled(spec.delay);
                let process = self.index(node).ok().map(|i| self.nodes[i].restarts);
                self.faults[f].1 = true;
                self.schedule(delay, Timer::Fault { fault: f, process });
                self.record(format!(
                    "{node}: fault {:?} armed, fires in {delay:?}",
                    self.faults[f].0.kind
                ));
            }
        }
    }

    /// Converts a scenario (cluster-time) duration to real time.
    fn scaled(&self, d: Duration) -> Duration {
        d.div_f64(self.time_scale)
    }

    fn fire_fault_on(&mut self, node: usize, kind: FaultKind, healable: bool) {
        let name = self.nodes[node].name.clone();
        match kind {
            FaultKind::KubeletStop => {
                let n = &mut self.nodes[node];
                n.kubelet = Kubelet::Hung;
                n.generation += 1;
                self.record(format!("{name}: kubelet stopped posting status"));
            }
            FaultKind::SpeakerStop => {
                self.nodes[node].speaker_alive = false;
                self.record(format!("{name}: speaker stopped"));
                self.sync_serving();
                let delay = self.timing.speaker_failover;
                self.schedule(delay, Timer::SpeakerDead { node });
            }
        }
        if healable {
            self.nodes[node].healable.push(kind);
        }
    }

    /// The node lifecycle controller's pass: lease older than the grace
    /// period means Ready=Unknown, unreachable taints and a NodeNotReady event.
    fn monitor_nodes(&mut self, now: Instant) {
        for node in 0..self.nodes.len() {
            let silent = now.saturating_duration_since(self.nodes[node].last_renew);
            if silent > self.timing.grace_period && !self.nodes[node].nlc_unknown {
                self.nodes[node].nlc_unknown = true;
                let name = self.nodes[node].name.clone();
                self.store.update(Kind::Node, "", &name, |n| {
                    for kind in ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"] {
                        objects::set_condition(
                            n,
                            kind,
                            "Unknown",
                            "NodeStatusUnknown",
                            "Kubelet stopped posting node status.",
                        );
                    }
                });
                self.record(format!("{name}: NotReady (node-controller: lease expired)"));
                self.emit_event(
                    ("Node", "", &name),
                    "Normal",
                    "NodeNotReady",
                    &format!("Node {name} status is now: NodeNotReady"),
                    "node-controller",
                );
                self.set_pods_ready_on(&name, false);
                self.sync_taints(node);
            } else if self.nodes[node].nlc_unknown
                && self.nodes[node].posted_ready
                && silent <= self.timing.grace_period
            {
                self.nodes[node].nlc_unknown = false;
                let name = self.nodes[node].name.clone();
                self.record(format!("{name}: Ready again"));
                self.set_pods_ready_on(&name, true);
                self.sync_taints(node);
            }
        }
    }

    /// Taints follow the Ready condition, as the controller's NoSchedule
    /// pass and NoExecute tainter do.
    fn sync_taints(&mut self, node: usize) {
        let n = &self.nodes[node];
        let wanted: &[(&str, &str)] = if n.nlc_unknown {
            &[(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")]
        } else if !n.posted_ready {
            &[(NOT_READY, "NoSchedule")]
        } else {
            &[]
        };
        let name = n.name.clone();
        self.store.update(Kind::Node, "", &name, |obj| {
            let mut taints: Vec<Value> = obj["spec"]["taints"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|t| {
                    let key = t["key"].as_str().unwrap_or_default();
                    (key != UNREACHABLE && key != NOT_READY)
                        || wanted
                            .iter()
                            .any(|(k, e)| t["key"] == *k && t["effect"] == *e)
                })
                .collect();
            for (key, effect) in wanted {
                if !taints
                    .iter()
                    .any(|t| t["key"] == *key && t["effect"] == *effect)
                {
                    let mut t = json!({"key": key, "effect": effect});
                    if *effect == "NoExecute" {
                        t["timeAdded"] = json!(now_rfc3339());
                    }
                    taints.push(t);
                }
            }
            if taints.is_empty() {
                if let Some(spec) = obj["spec"].as_object_mut() {
                    spec.remove("taints");
                }
            } else {
                obj["spec"]["taints"] = Value::Array(taints);
            }
        });
    }

    fn set_pods_ready_on(&mut self, node: &str, ready: bool) {
        let pods: Vec<Arc<Value>> = self
            .store
            .list(Kind::Pod, None)
            .1
            .into_iter()
            .filter(|p| p["spec"]["nodeName"] == node)
            .collect();
        for pod in pods {
            let ns = pod["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let name = pod["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            self.store.update(Kind::Pod, &ns, &name, |p| {
                p["status"]["conditions"] = json!([objects::pod_ready_condition(ready)]);
            });
            if !ready {
                self.emit_event(
                    ("Pod", &ns, &name),
                    "Warning",
                    "NodeNotReady",
                    "Node is not ready",
                    "node-controller",
                );
            }
        }
    }

    /// A ReplicaSet-owned pod comes back on another Ready, schedulable node;
    /// a DaemonSet pod comes back on its own node.
    fn emit_event(
        &mut self,
        involved: (&str, &str, &str),
        event_type: &str,
        reason: &str,
        message: &str,
        component: &str,
    ) {
        self.seq += 1;
        self.store.upsert(
            Kind::Event,
            objects::event(self.seq, involved, event_type, reason, message, component),
        );
    }
}

/// Pod-name style random-looking suffix, deterministic per number.
fn suffix(n: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5bd1_e995;
    (0..5)
        .map(|_| {
            let c = ALPHABET[(x % ALPHABET.len() as u64) as usize] as char;
            x /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// A renewTime as a kubelet whose clock is `offset` off writes it (RFC 3339
/// with microseconds, like the kubelet's MicroTime).
fn renew_stamp(offset: jiff::SignedDuration) -> String {
    if offset.is_zero() {
        return now_rfc3339_micro();
    }
    let at = jiff::Timestamp::now()
        .checked_add(offset)
        .unwrap_or_else(|_| jiff::Timestamp::now());
    at.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
