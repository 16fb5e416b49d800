//! MetalLB L2 speakers: which node announces each service IP, whether the
//! IP answers (only while the announcing speaker is alive and its node's
//! service rules are programmed), and the dark periods in between.

use super::*;

impl Sim {
    /// MetalLB L2: each service IP is announced by the first live member in
    /// sha256(node#ip) order, leaving out nodes with the exclude label when
    /// this MetalLB honours it (see `crate::model::metallb` for the source).
    /// Only changes are written.
    pub(super) fn elect_all(&mut self) {
        let honours = self.metallb.honours_exclude_label();
        for s in 0..self.services.len() {
            let ip = self.services[s].ip.clone();
            let winner = self
                .nodes
                .iter()
                .filter(|n| n.speaker_member && !(honours && n.excluded))
                .min_by_key(|n| objects::l2_rank(&n.name, &ip))
                .map(|n| n.name.clone());
            if winner == self.services[s].announcer {
                continue;
            }
            let (ns, name) = (
                self.services[s].namespace.clone(),
                self.services[s].name.clone(),
            );
            // The new announcer writes its status before the old one's is
            // deleted, as MetalLB's status controller does.
            let old = self.services[s].l2_object.take();
            match &winner {
                Some(node) => {
                    self.seq += 1;
                    let obj_name = format!("l2-{}", suffix(self.seq));
                    self.store.upsert(
                        Kind::ServiceL2Status,
                        objects::l2_status(&obj_name, node, &ns, &name),
                    );
                    self.services[s].l2_object = Some(obj_name);
                    let msg = format!("announcing from node \"{node}\" with protocol \"layer2\"");
                    self.emit_event(
                        ("Service", &ns, &name),
                        "Normal",
                        "nodeAssigned",
                        &msg,
                        "metallb-speaker",
                    );
                    self.record(format!("{ns}/{name}: {msg}"));
                }
                None => self.record(format!("{ns}/{name}: no speaker announces {ip}")),
            }
            if let Some(old) = old {
                self.store
                    .delete(Kind::ServiceL2Status, METALLB_NAMESPACE, &old);
            }
            self.services[s].announcer = winner;
        }
        self.sync_serving();
    }

    /// A service IP answers exactly while its announcer's speaker is alive
    /// and the announcer's service rules are programmed: a dead speaker that
    /// memberlist still counts as the announcer answers no ARP, and a node
    /// whose K3s restarts (the install script flushed the `KUBE-` chains)
    /// drops what reaches it. Binds and drops listeners to match, and
    /// records the dark periods with their cause.
    pub(super) fn sync_serving(&mut self) {
        for s in 0..self.services.len() {
            let announcer = self.services[s].announcer.clone();
            let node = announcer
                .as_ref()
                .and_then(|n| self.by_name.get(n).copied());
            let live = announcer.clone().filter(|_| {
                node.is_some_and(|i| self.nodes[i].speaker_alive && self.nodes[i].dataplane_up)
            });
            let cause = match (announcer, node) {
                (Some(name), Some(i)) if !self.nodes[i].dataplane_up => {
                    format!("{name}: K3s restarting, service rules not programmed")
                }
                (Some(name), _) => format!("{name}: speaker dead, failover pending"),
                (None, _) => "no speaker announces it".to_string(),
            };
            let label = format!("{}/{}", self.services[s].namespace, self.services[s].name);
            let endpoint = format!("{}:{}", self.services[s].ip, self.services[s].port);
            match live {
                Some(node) => {
                    if let Some(served) = &self.services[s].served {
                        served.set_announcer(&node);
                        continue;
                    }
                    let bound = endpoint
                        .parse()
                        .map_err(|e| std::io::Error::other(format!("bad address: {e}")))
                        .and_then(|addr| Served::bind(addr, &label, &node));
                    match bound {
                        Ok(served) => {
                            self.services[s].served = Some(served);
                            self.services[s].bind_error = None;
                            self.record(format!("{label}: {endpoint} serving from {node}"));
                            if let Some(i) = self.services[s].open_outage.take() {
                                self.close_outage(i);
                            }
                        }
                        Err(e) => {
                            let text = e.to_string();
                            if self.services[s].bind_error.as_deref() != Some(&text) {
                                tracing::warn!(target: "lab", "{label}: cannot serve {endpoint}: {text}");
                                self.services[s].bind_error = Some(text);
                            }
                            self.open_outage(s, label, endpoint, cause);
                        }
                    }
                }
                None => {
                    if self.services[s].served.take().is_some() {
                        self.record(format!("{label}: {endpoint} dark: {cause}"));
                    }
                    self.open_outage(s, label, endpoint, cause);
                }
            }
        }
    }

    pub(super) fn open_outage(
        &mut self,
        s: usize,
        service: String,
        endpoint: String,
        cause: String,
    ) {
        if self.services[s].open_outage.is_some() {
            return;
        }
        self.services[s].open_outage = Some(self.outages.len());
        self.outages.push(OutageWindow {
            service,
            endpoint,
            cause,
            start: jiff::Timestamp::now(),
            end: None,
        });
    }

    pub(super) fn close_outage(&mut self, i: usize) {
        let Some(window) = self.outages.get_mut(i) else {
            return;
        };
        window.end = Some(jiff::Timestamp::now());
        let window = window.clone();
        tracing::info!(
            target: "lab",
            "{} outage on {} lasted {:?}",
            window.service,
            window.endpoint,
            window.duration().unwrap_or_default()
        );
        if let Some(file) = &mut self.outage_log {
            use std::io::Write;
            let mut line = serde_json::to_string(&window).unwrap_or_default();
            line.push('\n');
            if let Err(e) = file.write_all(line.as_bytes()) {
                tracing::warn!(target: "lab", "cannot write the outage log: {e}");
                self.outage_log = None;
            }
        }
    }
}

impl Sim {
    /// memberlist's verdict on a dead speaker: it leaves the election.
    pub(super) fn speaker_dead(&mut self, node: usize) {
        if !self.nodes[node].speaker_alive && self.nodes[node].speaker_member {
            self.nodes[node].speaker_member = false;
            let name = self.nodes[node].name.clone();
            self.record(format!("memberlist: speaker on {name} marked failed"));
            self.elect_all();
        }
    }

    /// A restarted speaker joins memberlist again.
    pub(super) fn speaker_join(&mut self, node: usize) {
        if self.nodes[node].speaker_alive && !self.nodes[node].speaker_member {
            self.nodes[node].speaker_member = true;
            self.elect_all();
        }
    }

    /// The node's service rules are programmed again after a K3s start.
    pub(super) fn dataplane_up(&mut self, node: usize, generation: u64) {
        let n = &mut self.nodes[node];
        if n.generation != generation || n.kubelet != Kubelet::Running {
            return;
        }
        n.dataplane_up = true;
        let name = n.name.clone();
        self.record(format!("{name}: service rules programmed"));
        self.sync_serving();
    }

    /// The speakers see the node's exclude label as it is now in the store
    /// and re-elect.
    pub(super) fn label_sync(&mut self, node: usize) {
        self.nodes[node].label_sync_pending = false;
        let name = self.nodes[node].name.clone();
        let labelled = self
            .store
            .get(Kind::Node, "", &name)
            .is_some_and(|n| has_exclude_label(&n));
        if labelled == self.nodes[node].excluded {
            return;
        }
        self.nodes[node].excluded = labelled;
        let what = if labelled { "set" } else { "removed" };
        self.record(format!("{name}: exclude label {what}, speakers re-elect"));
        self.elect_all();
    }
}

pub fn has_exclude_label(node: &Value) -> bool {
    node["metadata"]["labels"]
        .get(crate::model::metallb::EXCLUDE_LABEL)
        .is_some()
}

impl SimHandle {
    /// A Node object changed: if its exclude label differs from what the
    /// speakers act on, they see it after `label_sync` (their node watch).
    pub fn node_changed(&self, node: &Value) {
        let name = node["metadata"]["name"].as_str().unwrap_or_default();
        let labelled = has_exclude_label(node);
        {
            let mut sim = self.lock();
            let Ok(i) = sim.index(name) else { return };
            if sim.nodes[i].excluded == labelled || sim.nodes[i].label_sync_pending {
                return;
            }
            sim.nodes[i].label_sync_pending = true;
            let delay = sim.timing.label_sync;
            sim.schedule(delay, Timer::LabelSync { node: i });
        }
        self.poke();
    }
}

/// Feeds every Node change in the store to the speakers, as their node
/// informer does; a lagging receiver re-reads every node.
pub async fn watch_nodes(sim: SimHandle, store: Arc<Store>) {
    let Ok(start) = store.watch(store.current_rv()) else {
        return;
    };
    let mut live = start.live;
    loop {
        match live.recv().await {
            Ok(change) if change.kind == Kind::Node => sim.node_changed(&change.object),
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                for node in store.list(Kind::Node, None).1 {
                    sim.node_changed(&node);
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}
