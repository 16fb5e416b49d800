//! Test support: a tiny simulated cluster that carries out the engine's
//! actions instantly and an injected clock that only moves when told.
//! Tests change node health between steps to script faults.

use crate::upgrade::engine::{
    Action, Engine, EngineConfig, GateConfig, Input, NodeConfig, NodeObservation, Observation,
    ServiceObservation,
};
use crate::upgrade::plan::{Datastore, Role, Timings};
use crate::upgrade::version::K3sVersion;
use jiff::{SignedDuration, Timestamp};
use std::collections::{BTreeMap, BTreeSet};

/// Anything that takes inputs and returns actions: the engine, or the
/// journaling recorder around it.
pub trait Feed {
    fn feed(&mut self, input: Input, now: Timestamp) -> Vec<Action>;
    fn engine(&self) -> &Engine;
    /// How many inputs were journaled so far (0 without a journal).
    fn journaled(&self) -> u64 {
        0
    }
}

/// The cluster and the engine right after a journaled input: what a crash
/// at that moment would leave behind.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub engine: Engine,
    pub now: Timestamp,
    pub nodes: Vec<NodeObservation>,
    pub services: Vec<ServiceObservation>,
    pub installed: BTreeMap<String, String>,
}

impl Feed for Engine {
    fn feed(&mut self, input: Input, now: Timestamp) -> Vec<Action> {
        self.step(input, now)
    }
    fn engine(&self) -> &Engine {
        self
    }
}

pub fn t0() -> Timestamp {
    "2026-01-25T21:33:00Z".parse().unwrap()
}

pub fn v(s: &str) -> K3sVersion {
    s.parse().unwrap()
}

pub fn secs(n: i64) -> SignedDuration {
    SignedDuration::from_secs(n)
}

pub fn mins(n: i64) -> SignedDuration {
    SignedDuration::from_mins(n)
}

/// A config with default timings (soak 5m, canary 10m), etcd, global gate.
pub fn config(nodes: &[(&str, Role)], from: &str, path: &[&str]) -> EngineConfig {
    EngineConfig {
        nodes: nodes
            .iter()
            .map(|(n, r)| NodeConfig {
                name: n.to_string(),
                role: *r,
                version: v(from),
                kept_binaries: false,
            })
            .collect(),
        path: path.iter().map(|p| v(p)).collect(),
        // The final watch has tests of its own; elsewhere "done" means
        // the last node is done.
        timings: Timings {
            final_soak: SignedDuration::ZERO,
            ..Timings::default()
        },
        gates: GateConfig {
            services: Vec::new(),
            global_gate: true,
        },
        datastore: Datastore::Etcd,
        handoff: Default::default(),
        agent_hops: Default::default(),
    }
}

/// The incident's cluster: server A, agents B and C, one hop.
pub fn abc() -> EngineConfig {
    config(
        &[("A", Role::Server), ("B", Role::Agent), ("C", Role::Agent)],
        "v1.33.6+k3s1",
        &["v1.34.3+k3s1"],
    )
}

pub fn kind(a: &Action) -> &'static str {
    match a {
        Action::Cordon { .. } => "cordon",
        Action::Drain { .. } => "drain",
        Action::Install { .. } => "install",
        Action::Restart { .. } => "restart",
        Action::Uncordon { .. } => "uncordon",
        Action::EtcdSnapshot { .. } => "snapshot",
        Action::Label { .. } => "label",
        Action::Unlabel { .. } => "unlabel",
        Action::StopK3s { .. } => "stop",
        Action::ClusterReset { .. } => "reset",
        Action::ClearDb { .. } => "clear-db",
        Action::StartK3s { .. } => "start",
    }
}

#[derive(Clone, Debug)]
pub struct FakeCluster {
    pub now: Timestamp,
    pub nodes: Vec<NodeObservation>,
    pub services: Vec<ServiceObservation>,
    pub api: bool,
    /// Version installed on disk, active after the next restart.
    pub installed: BTreeMap<String, String>,
    /// Actions emitted and not yet finished.
    pub pending: Vec<Action>,
    /// Action kinds the sim leaves running until released.
    pub hold: BTreeSet<&'static str>,
    /// One-shot failures: (kind, node) -> error.
    pub fail: BTreeMap<(&'static str, String), String>,
    /// Every action ever emitted, with the time.
    pub log: Vec<(Timestamp, Action)>,
    /// With a journal: a checkpoint after every journaled input.
    pub checkpoints: Vec<Checkpoint>,
    /// The node-args a node's K3s comes back with after a restart.
    pub relaunch_args: BTreeMap<String, Vec<String>>,
    /// Nodes carrying MetalLB's exclude label.
    pub labels: BTreeSet<String>,
    /// Speakers that do not honour the label (old MetalLB).
    pub label_ignored: bool,
}

impl FakeCluster {
    /// Healthy nodes at their configured versions, plus `extra` nodes that
    /// are not part of the rollout; every gated service announced by the
    /// first node and probing green.
    pub fn new(cfg: &EngineConfig, extra: &[&str]) -> FakeCluster {
        let mut nodes: Vec<NodeObservation> = cfg
            .nodes
            .iter()
            .map(|n| NodeObservation::healthy(&n.name, &n.version.to_string()))
            .collect();
        let base = cfg
            .nodes
            .first()
            .map_or("v1.33.6+k3s1".to_string(), |n| n.version.to_string());
        for e in extra {
            nodes.push(NodeObservation::healthy(e, &base));
        }
        let announcer = cfg.nodes.first().map(|n| n.name.clone());
        let services = cfg
            .gates
            .services
            .iter()
            .map(|s| ServiceObservation {
                name: s.clone(),
                announced_by: announcer.clone(),
                probe_ok: Some(true),
                announcer_unknown: false,
            })
            .collect();
        FakeCluster {
            now: t0(),
            nodes,
            services,
            api: true,
            installed: BTreeMap::new(),
            pending: Vec::new(),
            hold: BTreeSet::new(),
            fail: BTreeMap::new(),
            log: Vec::new(),
            checkpoints: Vec::new(),
            relaunch_args: BTreeMap::new(),
            labels: BTreeSet::new(),
            label_ignored: false,
        }
    }

    pub fn obs(&self) -> Observation {
        Observation {
            nodes: self.nodes.clone(),
            services: self.services.clone(),
            api_reachable: self.api,
        }
    }

    pub fn node(&mut self, name: &str) -> &mut NodeObservation {
        self.nodes.iter_mut().find(|n| n.name == name).unwrap()
    }

    pub fn feed(&mut self, e: &mut impl Feed, input: Input) -> Vec<Action> {
        let journaled = e.journaled();
        let actions = e.feed(input, self.now);
        if e.journaled() > journaled {
            self.checkpoints.push(Checkpoint {
                engine: e.engine().clone(),
                now: self.now,
                nodes: self.nodes.clone(),
                services: self.services.clone(),
                installed: self.installed.clone(),
            });
        }
        for a in &actions {
            self.log.push((self.now, a.clone()));
        }
        self.pending.extend(actions.iter().cloned());
        actions
    }

    pub fn command(
        &mut self,
        e: &mut impl Feed,
        cmd: crate::upgrade::engine::Command,
    ) -> Vec<Action> {
        self.feed(e, Input::Command(cmd))
    }

    pub fn observe(&mut self, e: &mut impl Feed) {
        let obs = self.obs();
        self.feed(e, Input::Observe(obs));
    }

    /// Carries out one action's effect on the simulated cluster.
    fn apply(&mut self, a: &Action) -> (Result<(), String>, Option<String>) {
        if let Some(err) = self.fail.remove(&(kind(a), a.node().to_string())) {
            return (Err(err), None);
        }
        let mut output = None;
        match a {
            Action::Cordon { node, .. } => self.node(node).unschedulable = true,
            Action::Uncordon { node, .. } => self.node(node).unschedulable = false,
            Action::Drain { .. } => {}
            Action::Install { node, version, .. } => {
                self.installed.insert(node.clone(), version.to_string());
            }
            Action::Restart { node, .. } => {
                let installed = self.installed.get(node).cloned();
                let args = self.relaunch_args.get(node).cloned();
                let n = self.node(node);
                if args.is_some() {
                    n.node_args = args;
                }
                if let Some(ver) = installed {
                    n.version = ver;
                }
                // A restart blips Ready and heals a stuck kubelet.
                n.ready_transitions += 1;
                n.ready = true;
                n.heartbeat_late = false;
            }
            Action::EtcdSnapshot { node, name, .. } => {
                output = Some(format!("{name}-{node}-1769376780"));
            }
            Action::Label { node, .. } => {
                self.labels.insert(node.clone());
                self.reannounce();
            }
            Action::Unlabel { node, .. } => {
                self.labels.remove(node);
            }
            Action::StopK3s { node, .. } => {
                let n = self.node(node);
                n.ready = false;
                n.heartbeat_late = true;
            }
            Action::StartK3s { node, .. } => {
                let installed = self.installed.get(node).cloned();
                let n = self.node(node);
                if let Some(ver) = installed {
                    n.version = ver;
                }
                n.ready = true;
                n.heartbeat_late = false;
            }
            Action::ClusterReset { .. } | Action::ClearDb { .. } => {}
        }
        (Ok(()), output)
    }

    /// Speakers move every IP off labelled nodes to the first Ready,
    /// unlabelled node.
    pub fn reannounce(&mut self) {
        if self.label_ignored {
            return;
        }
        let free = self
            .nodes
            .iter()
            .find(|n| n.ready && !self.labels.contains(&n.name))
            .map(|n| n.name.clone());
        for s in &mut self.services {
            if s.announced_by
                .as_ref()
                .is_some_and(|n| self.labels.contains(n))
            {
                s.announced_by = free.clone();
            }
        }
    }

    /// Label actions (`label` / `unlabel`) for `node`, in order.
    pub fn label_ops(&self, node: &str) -> Vec<&'static str> {
        self.kinds_for(node)
            .into_iter()
            .filter(|k| *k == "label" || *k == "unlabel")
            .collect()
    }

    /// Finishes every pending action that is not held (and the ones they
    /// lead to), then reports the cluster to the engine.
    pub fn settle(&mut self, e: &mut impl Feed) {
        while let Some(pos) = self
            .pending
            .iter()
            .position(|a| !self.hold.contains(kind(a)))
        {
            let a = self.pending.remove(pos);
            let (result, output) = self.apply(&a);
            self.feed(
                e,
                Input::ActionFinished {
                    id: a.id(),
                    result,
                    output,
                },
            );
        }
        self.observe(e);
    }

    pub fn release(&mut self, e: &mut impl Feed, k: &'static str) {
        self.hold.remove(k);
        self.settle(e);
    }

    /// Moves the clock by `d`, finishes actions, observes.
    pub fn advance(&mut self, e: &mut impl Feed, d: SignedDuration) {
        self.now += d;
        self.settle(e);
    }

    /// Advances in `tick` steps until `pred` holds; false if `limit` passed.
    pub fn run_until(
        &mut self,
        e: &mut impl Feed,
        tick: SignedDuration,
        limit: SignedDuration,
        pred: impl Fn(&Engine, &FakeCluster) -> bool,
    ) -> bool {
        let end = self.now + limit;
        self.settle(e);
        while !pred(e.engine(), self) {
            if self.now >= end {
                return false;
            }
            self.advance(e, tick);
        }
        true
    }

    /// Action kinds emitted for `node`, in order.
    pub fn kinds_for(&self, node: &str) -> Vec<&'static str> {
        self.log
            .iter()
            .filter(|(_, a)| a.node() == node)
            .map(|(_, a)| kind(a))
            .collect()
    }

    /// (node, version) of every install, in order.
    pub fn installs(&self) -> Vec<(String, String)> {
        self.log
            .iter()
            .filter_map(|(_, a)| match a {
                Action::Install { node, version, .. } => Some((node.clone(), version.to_string())),
                _ => None,
            })
            .collect()
    }
}
