//! MetalLB L2 speakers: which node announces each service IP, whether the
//! IP answers (only while the announcing speaker is alive), and the dark
//! periods in between.

use super::*;

impl Sim {
    /// MetalLB L2: each service IP is announced by the first live member in
    /// sha256(node#ip) order. Only changes are written.
    pub(super) fn elect_all(&mut self) {
        for s in 0..self.services.len() {
            let ip = self.services[s].ip.clone();
            let winner = self
                .nodes
                .iter()
                .filter(|n| n.speaker_member)
                .min_by_key(|n| objects::l2_rank(&n.name, &ip))
                .map(|n| n.name.clone());
            if winner == self.services[s].announcer {
                continue;
            }
            let (ns, name) = (
                self.services[s].namespace.clone(),
                self.services[s].name.clone(),
            );
            if let Some(old) = self.services[s].l2_object.take() {
                self.store
                    .delete(Kind::ServiceL2Status, METALLB_NAMESPACE, &old);
            }
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
            self.services[s].announcer = winner;
        }
        self.sync_serving();
    }

    /// A service IP answers exactly while its announcer's speaker is alive:
    /// a dead speaker that memberlist still counts as the announcer answers
    /// no ARP, so the IP is dark until another speaker takes over. Binds and
    /// drops listeners to match, and records the dark periods.
    pub(super) fn sync_serving(&mut self) {
        for s in 0..self.services.len() {
            let live = self.services[s].announcer.clone().filter(|n| {
                self.by_name
                    .get(n)
                    .is_some_and(|&i| self.nodes[i].speaker_alive)
            });
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
                            self.open_outage(s, label, endpoint);
                        }
                    }
                }
                None => {
                    if self.services[s].served.take().is_some() {
                        self.record(format!(
                            "{label}: {endpoint} dark: no live speaker announces it"
                        ));
                    }
                    self.open_outage(s, label, endpoint);
                }
            }
        }
    }

    pub(super) fn open_outage(&mut self, s: usize, service: String, endpoint: String) {
        if self.services[s].open_outage.is_some() {
            return;
        }
        self.services[s].open_outage = Some(self.outages.len());
        self.outages.push(OutageWindow {
            service,
            endpoint,
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
