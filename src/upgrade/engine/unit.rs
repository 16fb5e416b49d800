//! Per-node bookkeeping the engine keeps private: one unit per (node,
//! version hop), and the soak window of the unit being judged.

use super::types::{Action, NodeConfig, Phase};
use crate::upgrade::plan::Role;
use crate::upgrade::version::K3sVersion;
use jiff::{SignedDuration, Timestamp};
use std::collections::BTreeMap;

/// Soak bookkeeping. Time while the API is unreachable does not count
/// towards the window: nothing was observed then.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Soak {
    pub(super) window: SignedDuration,
    pub(super) started: Timestamp,
    pub(super) excluded: SignedDuration,
    pub(super) unreachable_since: Option<Timestamp>,
    /// `ready_transitions` of every node when the soak began.
    pub(super) baseline: BTreeMap<String, u32>,
}

impl Soak {
    pub(super) fn elapsed(&self, now: Timestamp) -> SignedDuration {
        let blind = self
            .unreachable_since
            .map_or(SignedDuration::ZERO, |t| now.duration_since(t));
        (now.duration_since(self.started) - self.excluded - blind).max(SignedDuration::ZERO)
    }
}

/// One node at one version hop (or, during rollback, back one hop).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Unit {
    pub(super) node: String,
    pub(super) role: Role,
    pub(super) from: K3sVersion,
    pub(super) to: K3sVersion,
    pub(super) phase: Phase,
    /// When the current phase began; None while waiting at the boundary
    /// before it (paused, halted, or not reached yet).
    pub(super) begun: Option<Timestamp>,
    pub(super) deadline: Option<Timestamp>,
    pub(super) inflight: Option<u64>,
    pub(super) soak: Option<Soak>,
    pub(super) cordoned: bool,
    pub(super) install_started: bool,
    /// Install was in flight at a restart: on version timeout, install again.
    pub(super) reverify: bool,
    pub(super) canary: bool,
    pub(super) error: Option<String>,
    /// The node's `k3s.io/node-args` when its install began.
    pub(super) args_before: Option<Vec<String>>,
    /// While handing off: what the node announced and how far it got.
    pub(super) handoff: Option<Handoff>,
}

/// The handoff of one node's LoadBalancer IPs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Handoff {
    /// Services (`namespace/name`) the node announced when it began.
    pub(super) services: Vec<String>,
    /// The label action finished: the wait for the move has begun.
    pub(super) labelled_at: Option<Timestamp>,
    /// First look at which every IP was announced elsewhere.
    pub(super) moved_at: Option<Timestamp>,
    /// Since when every IP is elsewhere and every gated probe green.
    pub(super) green_since: Option<Timestamp>,
}

impl Unit {
    pub(super) fn new(node: &NodeConfig, from: K3sVersion, to: K3sVersion) -> Unit {
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
            args_before: None,
            handoff: None,
        }
    }

    pub(super) fn finished(&self) -> bool {
        matches!(self.phase, Phase::Done | Phase::Skipped)
    }

    /// Started and not finished: a node in the middle of its work.
    pub(super) fn in_progress(&self) -> bool {
        !self.finished() && (self.phase != Phase::Pending || self.begun.is_some())
    }

    /// Records what beginning the current phase changes on the node and
    /// returns the action the phase needs, if any (waits and soaks need none).
    pub(super) fn start_action(&mut self, id: u64, snapshot_name: &str) -> Option<Action> {
        let node = self.node.clone();
        match self.phase {
            Phase::Snapshot => Some(Action::EtcdSnapshot {
                id,
                node,
                name: snapshot_name.to_string(),
            }),
            Phase::Cordon => {
                self.cordoned = true;
                Some(Action::Cordon { id, node })
            }
            Phase::Drain => Some(Action::Drain { id, node }),
            Phase::Install => {
                self.install_started = true;
                Some(Action::Install {
                    id,
                    node,
                    version: self.to.clone(),
                    reinstate: false,
                })
            }
            Phase::Restart => Some(Action::Restart { id, node }),
            Phase::Uncordon => Some(Action::Uncordon { id, node }),
            Phase::Handoff => Some(Action::Label { id, node }),
            Phase::Return => Some(Action::Unlabel { id, node }),
            _ => None,
        }
    }
}
