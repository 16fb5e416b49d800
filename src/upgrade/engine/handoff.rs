//! The handoff: before a node that announces LoadBalancer IPs is touched,
//! MetalLB's exclude label moves every IP to another node (see
//! `crate::model::metallb`); the rollout goes on once each IP is announced
//! from a Ready node and the gated probes stayed green for
//! `handoff_settle`. The label comes off in the `return` phase, and any
//! label the rollout no longer needs (abort, skip, rollback, a halt that
//! ended the node's work) is removed by [`Engine::release_labels`].

use super::unit::Handoff;
use super::*;

impl Engine {
    /// The services `node` announces now, if the handoff phase has work:
    /// None when handoff is off, or when the node announces nothing and
    /// carries no label of ours.
    pub(super) fn handoff_work(&self, node: &str) -> Option<Vec<String>> {
        if self.config.handoff == HandoffMode::Off {
            return None;
        }
        let obs = self.reachable_obs()?;
        let services: Vec<String> = obs
            .services
            .iter()
            .filter(|s| s.announced_by.as_deref() == Some(node))
            .map(|s| s.name.clone())
            .collect();
        (!services.is_empty() || self.labelled.contains(node)).then_some(services)
    }

    /// At the boundary of `handoff` or `return`: true if the phase has
    /// nothing to do and was passed over (the unit moved on).
    pub(super) fn pass_over(&mut self, i: usize, now: Timestamp) -> bool {
        let node = self.units[i].node.clone();
        match self.units[i].phase {
            Phase::Handoff if self.config.handoff == HandoffMode::Off => {}
            Phase::Handoff if self.reachable_obs().is_none() => return false,
            Phase::Handoff if self.handoff_work(&node).is_none() => {}
            Phase::Return if !self.labelled.contains(&node) => {}
            _ => return false,
        }
        self.complete_phase(i, now);
        true
    }

    /// Beginning the handoff: remembers what the node announces; the label
    /// counts as set from the moment it is asked for (removal is harmless
    /// if it never landed).
    pub(super) fn begin_handoff(&mut self, i: usize) -> String {
        let node = self.units[i].node.clone();
        let services = self.handoff_work(&node).unwrap_or_default();
        self.labelled.insert(node);
        let detail = if services.is_empty() {
            String::new()
        } else {
            format!(" of {}", services.join(", "))
        };
        self.units[i].handoff = Some(Handoff {
            services,
            labelled_at: None,
            moved_at: None,
            green_since: None,
        });
        detail
    }

    pub(super) fn label_set(&mut self, i: usize, now: Timestamp) {
        let u = &mut self.units[i];
        u.inflight = None;
        let node = u.node.clone();
        let services = match u.handoff.as_mut() {
            Some(h) => {
                h.labelled_at = Some(now);
                h.services.join(", ")
            }
            None => String::new(),
        };
        self.event(
            now,
            EventKind::Info,
            format!(
                "{node}: exclude label set; waiting for MetalLB to move {}",
                if services.is_empty() {
                    "nothing"
                } else {
                    &services
                }
            ),
        );
    }

    /// What keeps the handoff of unit `i` from being done: announcements
    /// not moved yet, then gated probes that are not green.
    pub(super) fn handoff_problems(&self, i: usize) -> (Vec<String>, Vec<String>) {
        let u = &self.units[i];
        let (Some(obs), Some(h)) = (self.reachable_obs(), u.handoff.as_ref()) else {
            return (vec!["no fresh observation".into()], Vec::new());
        };
        let ready = |n: &str| obs.nodes.iter().any(|o| o.name == n && o.ready);
        let mut moving = Vec::new();
        for s in &h.services {
            match obs.services.iter().find(|o| &o.name == s) {
                None => moving.push(format!("service {s} is not observed")),
                Some(o) => match o.announced_by.as_deref() {
                    None => moving.push(format!("service {s} is not announced by any node")),
                    Some(n) if n == u.node => {
                        moving.push(format!("service {s} is still announced from {n}"))
                    }
                    Some(n) if !ready(n) => moving.push(format!(
                        "service {s} is announced from {n}, which is NotReady"
                    )),
                    Some(_) => {}
                },
            }
        }
        let probes = self
            .config
            .gates
            .services
            .iter()
            .filter(|g| {
                obs.services
                    .iter()
                    .any(|o| &o.name == *g && o.probe_ok == Some(false))
            })
            .map(|g| format!("service {g} probe is failing"))
            .collect();
        (moving, probes)
    }

    /// Judges a handoff in progress; true once it is done.
    pub(super) fn handoff_progress(&mut self, i: usize, now: Timestamp) -> bool {
        let waiting = self.units[i].inflight.is_some()
            || self.reachable_obs().is_none()
            || self.units[i].handoff.is_none();
        if waiting {
            return false;
        }
        let (moving, probes) = self.handoff_problems(i);
        let settle = self.config.timings.handoff_settle;
        let announced = self.announced_from(i);
        let node = self.units[i].node.clone();
        let Some(h) = self.units[i].handoff.as_mut() else {
            return false;
        };
        let mut news = None;
        if moving.is_empty() && h.moved_at.is_none() {
            h.moved_at = Some(now);
            let took = h.labelled_at.map(|t| now.duration_since(t));
            news = Some(format!(
                "{node}: handoff moved {}{}",
                if announced.is_empty() {
                    "nothing".into()
                } else {
                    announced
                },
                took.map_or(String::new(), |d| format!(
                    " ({} after the label)",
                    format_signed(d)
                ))
            ));
        }
        h.green_since = if moving.is_empty() && probes.is_empty() {
            h.green_since.or(Some(now))
        } else {
            None
        };
        let done = h
            .green_since
            .is_some_and(|t| now.duration_since(t) >= settle);
        if let Some(text) = news {
            self.event(now, EventKind::Info, text);
        }
        if done {
            self.event(
                now,
                EventKind::Info,
                format!(
                    "{node}: handoff done: probes green for {} after the move",
                    format_signed(settle)
                ),
            );
        }
        done
    }

    /// `service → node` for what unit `i` handed off, as observed now.
    pub(super) fn announced_from(&self, i: usize) -> String {
        let (Some(obs), Some(h)) = (self.reachable_obs(), self.units[i].handoff.as_ref()) else {
            return String::new();
        };
        let list: Vec<String> = h
            .services
            .iter()
            .map(|s| {
                let at = obs
                    .services
                    .iter()
                    .find(|o| &o.name == s)
                    .and_then(|o| o.announced_by.clone())
                    .unwrap_or_else(|| "no node".into());
                format!("{s} → {at}")
            })
            .collect();
        list.join(", ")
    }

    /// The `return` phase's label removal finished.
    pub(super) fn label_removed(&mut self, i: usize, now: Timestamp) {
        let node = self.units[i].node.clone();
        self.labelled.remove(&node);
        let now_at = self.announced_from(i);
        let where_ = if now_at.is_empty() {
            String::new()
        } else {
            format!("; announced now: {now_at}")
        };
        self.event(
            now,
            EventKind::Info,
            format!("{node}: exclude label removed{where_}"),
        );
    }

    /// Whether our label on `node` is still needed (or being changed by a
    /// unit's own action).
    fn label_held(&self, node: &str) -> bool {
        let acting = self.units.iter().any(|u| {
            u.node == node
                && u.inflight.is_some()
                && matches!(u.phase, Phase::Handoff | Phase::Return)
        });
        if acting {
            return true;
        }
        if self.state.is_terminal() {
            return false;
        }
        self.units[self.range()].iter().any(|u| {
            u.node == node && u.in_progress() && (Phase::Handoff..=Phase::Return).contains(&u.phase)
        })
    }

    /// Removes every label of ours no unit needs any more, once.
    pub(super) fn release_labels(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        let stray: Vec<String> = self
            .labelled
            .iter()
            .filter(|n| !self.label_held(n) && !self.releasing.values().any(|r| r == *n))
            .cloned()
            .collect();
        for node in stray {
            let id = self.next_id;
            self.next_id += 1;
            self.releasing.insert(id, node.clone());
            out.push(Action::Unlabel {
                id,
                node: node.clone(),
            });
            self.event(
                now,
                EventKind::Action,
                format!("{node}: removing the exclude label (the node's upgrade stopped)"),
            );
        }
    }

    /// A release action finished: the label is gone, or the operator is
    /// told how to remove it.
    pub(super) fn released(&mut self, node: String, result: Result<(), String>, now: Timestamp) {
        self.labelled.remove(&node);
        match result {
            Ok(()) => self.event(now, EventKind::Info, format!("{node}: exclude label removed")),
            Err(e) => self.event(
                now,
                EventKind::Warn,
                format!(
                    "could not remove the exclude label from {node}: {e}; remove it by hand: kubectl label node {node} {}-",
                    crate::model::metallb::EXCLUDE_LABEL
                ),
            ),
        }
    }

    /// A label removal outside a unit is still running (after an abort,
    /// skip or rollback): a run that exits now could leave the label.
    pub fn releasing_labels(&self) -> bool {
        !self.releasing.is_empty()
    }

    /// Nodes that carry (or may carry) the rollout's exclude label.
    pub fn labelled(&self) -> &std::collections::BTreeSet<String> {
        &self.labelled
    }
}
