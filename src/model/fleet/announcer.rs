//! Announcers: which node MetalLB announces each service from, by its
//! ServiceL2Status objects or, for MetalLB before them, by `nodeAssigned`
//! events alone. An event says who announced, not who announces now: a
//! name is kept only while its node's speaker runs and the node has not
//! been NotReady for longer than the speakers need to notice (after which
//! memberlist moves the IP, and no event may say where); a service with no
//! event left shows `unknown (no recent event)` rather than no announcer.

use std::time::Duration;

use jiff::Timestamp;

use super::{AnnounceSource, EventInfo, Fleet, L2Info, ResourceKind, Tri};
use crate::model::health;
use crate::model::timeline::{EntryKind, Severity};

/// memberlist's suspicion timeout for small clusters (4 s: probe interval
/// 1 s × SuspicionMult 4), the least time speakers take to drop a node.
pub const SPEAKER_DETECTION: Duration = Duration::from_secs(4);

impl Fleet {
    pub(super) fn apply_l2(&mut self, l2: L2Info, now: Timestamp) -> bool {
        self.seen(ResourceKind::L2Statuses, &l2.object);
        let (service, node) = (l2.service.clone(), l2.node.clone());
        self.l2.insert(l2.object.clone(), l2);
        self.set_announcer(&service, Some(node), now)
    }

    /// Another status object may still name an announcer for the service.
    pub(super) fn l2_deleted(&mut self, object: &str, now: Timestamp) -> bool {
        let Some(l2) = self.l2.remove(object) else {
            return false;
        };
        let still = self
            .l2
            .values()
            .find(|o| o.service == l2.service)
            .map(|o| o.node.clone());
        self.set_announcer(&l2.service, still, now)
    }

    pub(super) fn set_announcer(
        &mut self,
        service: &(String, String),
        node: Option<String>,
        now: Timestamp,
    ) -> bool {
        let Some(svc) = self.services.get_mut(service) else {
            return false;
        };
        if svc.announcer == node {
            return false;
        }
        let label = format!("{}/{}", service.0, service.1);
        let mut note = None;
        match (&node, &svc.last_announcer) {
            (Some(new), Some(last)) if new != last => {
                svc.moves += 1;
                svc.last_change = Some(now);
                note = Some((
                    Severity::Warn,
                    EntryKind::AnnouncerMove {
                        from: last.clone(),
                        to: new.clone(),
                    },
                    format!("announcer moved {last} → {new}"),
                ));
            }
            (Some(new), None) => {
                note = Some((
                    Severity::Info,
                    EntryKind::Announced { node: new.clone() },
                    format!("announced from {new}"),
                ));
            }
            (Some(new), Some(_)) => {
                if let Some(since) = svc.unannounced_since {
                    let gap = health::age(since, now);
                    note = Some((
                        Severity::Info,
                        EntryKind::AnnouncedAgain {
                            node: new.clone(),
                            after_ms: u64::try_from(gap.as_millis()).unwrap_or(u64::MAX),
                        },
                        format!(
                            "announced again after {}",
                            crate::durations::format_duration(gap)
                        ),
                    ));
                }
            }
            (None, _) => svc.unannounced_since = Some(now),
        }
        if node.is_some() {
            svc.unannounced_since = None;
            svc.last_announcer = node.clone();
        }
        svc.announcer = node;
        if let Some((sev, kind, text)) = note {
            self.timeline.push_kind(now, sev, &label, kind, text);
        }
        true
    }

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
