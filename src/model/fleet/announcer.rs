//! Announcers from MetalLB's `nodeAssigned` events alone (MetalLB before
//! ServiceL2Status): an event says who announced, not who announces now.
//! A name is kept only while its node's speaker runs and the node has not
//! been NotReady for longer than the speakers need to notice (after which
//! memberlist moves the IP, and no event may say where); a service with no
//! event left shows `unknown (no recent event)` rather than no announcer.

use std::time::Duration;

use jiff::Timestamp;

use super::{AnnounceSource, EventInfo, Fleet, Tri};
use crate::model::health;
use crate::model::timeline::Severity;

/// memberlist's suspicion timeout for small clusters (4 s: probe interval
/// 1 s × SuspicionMult 4), the least time speakers take to drop a node.
pub const SPEAKER_DETECTION: Duration = Duration::from_secs(4);

impl Fleet {
    /// The announcer already recorded for a service by the active source.
    pub(super) fn known_announcer(&self, service: &(String, String)) -> Option<String> {
        match self.announce_source {
            AnnounceSource::L2Status => self
                .l2
                .values()
                .find(|o| &o.service == service)
                .map(|o| o.node.clone()),
            AnnounceSource::Events => self.assigned_by_event.get(service).cloned(),
            AnnounceSource::None => None,
        }
    }

    /// Why the event-reported announcer of a service cannot be trusted now.
    fn doubt(&self, node: Option<&String>, now: Timestamp) -> Option<String> {
        let Some(node) = node else {
            return Some("no recent event".into());
        };
        let speakers_seen = self.pods().any(|p| p.is_speaker());
        let speaker_here = self
            .pods()
            .any(|p| p.is_speaker() && p.ready && &p.node == node);
        if speakers_seen && !speaker_here {
            return Some(format!("speaker on {node} gone"));
        }
        let ready = self
            .nodes
            .get(node)
            .and_then(|n| n.info.as_ref())
            .and_then(|i| i.ready().cloned());
        if let Some(c) = ready
            && c.status != Tri::True
            && let Some(since) = c.last_transition
            && health::age(since, now) > SPEAKER_DETECTION
        {
            return Some(format!(
                "{node} NotReady for {}",
                crate::durations::format_duration(health::age(since, now))
            ));
        }
        None
    }

    /// Re-judges every service's event-reported announcer.
    pub(super) fn judge_event_announcers(&mut self, now: Timestamp) {
        if self.announce_source != AnnounceSource::Events {
            return;
        }
        let keys: Vec<(String, String)> = self.services.keys().cloned().collect();
        for key in keys {
            let node = self.assigned_by_event.get(&key).cloned();
            let doubt = self.doubt(node.as_ref(), now);
            let Some(svc) = self.services.get_mut(&key) else {
                continue;
            };
            if svc.unknown == doubt {
                continue;
            }
            let label = format!("{}/{}", key.0, key.1);
            match doubt {
                Some(why) => {
                    svc.announcer = None;
                    svc.unknown = Some(why.clone());
                    self.timeline.push(
                        now,
                        Severity::Warn,
                        &label,
                        format!("announcer unknown ({why})"),
                    );
                }
                None => {
                    svc.unknown = None;
                    self.set_announcer(&key, node, now);
                }
            }
        }
    }

    /// A `nodeAssigned` event expired: the announcer it named is no
    /// longer known.
    pub(super) fn event_expired(&mut self, ev: &EventInfo, now: Timestamp) -> bool {
        let key = (ev.namespace.clone(), ev.name.clone());
        let same = ev.kind == "Service"
            && ev.reason == "nodeAssigned"
            && announced_node(&ev.message)
                .is_some_and(|n| self.assigned_by_event.get(&key) == Some(&n));
        if !same {
            return false;
        }
        self.assigned_by_event.remove(&key);
        self.judge_event_announcers(now);
        true
    }
}

/// `announcing from node "k3s-w2" with protocol "layer2"` → `k3s-w2`.
pub fn announced_node(message: &str) -> Option<String> {
    let rest = message.strip_prefix("announcing from node \"")?;
    Some(rest.split('"').next()?.to_string())
}
