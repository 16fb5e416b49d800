//! What the edges report: cluster observations, executor results, and a
//! restart of the cockpit itself.

use super::*;

impl Engine {
    pub(super) fn observe(&mut self, obs: Observation, now: Timestamp) {
        let was = self.obs.as_ref().map(|o| o.api_reachable);
        match (was, obs.api_reachable) {
            (Some(true), false) => self.event(
                now,
                EventKind::Warn,
                "API unreachable: health judgements paused, timeouts still run".into(),
            ),
            (Some(false), true) => self.event(now, EventKind::Info, "API reachable again".into()),
            _ => {}
        }
        let unit_soak = self.current().and_then(|i| self.units[i].soak.as_mut());
        if let Some(soak) = unit_soak.or(self.final_watch.as_mut()) {
            match (soak.unreachable_since, obs.api_reachable) {
                (Some(t), true) => {
                    soak.excluded += now.duration_since(t);
                    soak.unreachable_since = None;
                }
                (None, false) => soak.unreachable_since = Some(now),
                _ => {}
            }
        }
        self.obs = Some(obs);
    }

    pub(super) fn finished(
        &mut self,
        id: u64,
        result: Result<(), String>,
        output: Option<String>,
        now: Timestamp,
    ) {
        if let Some(node) = self.releasing.remove(&id) {
            self.released(node, result, now);
            return;
        }
        if self.restore_finished(id, &result, now) {
            return;
        }
        let Some(i) = self.units.iter().position(|u| u.inflight == Some(id)) else {
            self.event(
                now,
                EventKind::Warn,
                format!("ignored the result of action #{id}: no longer waited for"),
            );
            return;
        };
        let (node, phase) = (self.units[i].node.clone(), self.units[i].phase);
        if !self.is_active() {
            // Aborted with an action still running: record how it ended.
            if phase == Phase::Return && result.is_ok() {
                self.labelled.remove(&node);
            }
            let u = &mut self.units[i];
            u.inflight = None;
            u.begun = None;
            u.deadline = None;
            let how = match &result {
                Ok(()) => "succeeded".to_string(),
                Err(e) => format!("failed: {e}"),
            };
            self.event(
                now,
                EventKind::Warn,
                format!("{phase} of {node} {how} after the rollout stopped"),
            );
            return;
        }
        match result {
            Ok(()) => {
                if phase == Phase::Snapshot {
                    let name = self
                        .snapshot_requested
                        .take()
                        .unwrap_or_else(|| Self::snapshot_name(now));
                    self.event(
                        now,
                        EventKind::Info,
                        format!(
                            "etcd snapshot {name} saved on {node}{}",
                            output.as_ref().map_or(String::new(), |o| format!(" ({o})"))
                        ),
                    );
                    self.snapshot = Some(SnapshotRecord {
                        node: node.clone(),
                        name,
                        reported: output,
                        at: now,
                    });
                }
                match phase {
                    // The phase goes on until the IPs moved.
                    Phase::Handoff => return self.label_set(i, now),
                    Phase::Return => self.label_removed(i, now),
                    _ => {}
                }
                self.complete_phase(i, now);
            }
            Err(e) => {
                let reason = format!("{phase} of {node} failed: {e}");
                self.halt(Some(i), reason, now);
            }
        }
    }

    pub(super) fn reattach(&mut self, now: Timestamp) {
        // Anything observed before the restart is stale; label removals
        // in flight are issued again (they are idempotent).
        self.obs = None;
        self.note = None;
        self.releasing.clear();
        for u in &mut self.units {
            if let Some(h) = u.handoff.as_mut() {
                h.green_since = None;
            }
        }
        if self.reattach_restore(now) {
            return;
        }
        let Some(i) = self.current() else {
            self.event(now, EventKind::Info, "cockpit restarted".into());
            return;
        };
        if !self.is_active() {
            if let Some(id) = self.units[i].inflight.take() {
                let (node, phase) = (self.units[i].node.clone(), self.units[i].phase);
                self.units[i].begun = None;
                self.units[i].deadline = None;
                self.event(
                    now,
                    EventKind::Warn,
                    format!("cockpit restarted while {phase} of {node} (action #{id}) was running; check {node} by hand"),
                );
            } else {
                self.event(now, EventKind::Info, "cockpit restarted".into());
            }
            return;
        }
        let u = &mut self.units[i];
        let node = u.node.clone();
        let phase = u.phase;
        let text = match (phase, u.inflight.is_some(), u.begun.is_some()) {
            (Phase::Install, true, _) | (Phase::WaitVersion, false, true) => {
                // The install may have finished, may still run under nohup,
                // or may never have started. Restart K3s (the post-mortem's
                // fix, and what loads a new binary), then look at the
                // kubelet's version; install again only if it does not show
                // up in time.
                u.inflight = None;
                u.phase = Phase::Restart;
                u.begun = None;
                u.deadline = None;
                u.reverify = true;
                format!(
                    "cockpit restarted during {phase} on {node}: restarting K3s, then verifying the version (installing again only if it does not show up)"
                )
            }
            (_, true, _) => {
                u.inflight = None;
                u.begun = None;
                u.deadline = None;
                format!(
                    "cockpit restarted during {phase} of {node}: issuing it again (it is idempotent)"
                )
            }
            (Phase::WaitReady | Phase::Soak, false, true) => {
                u.begun = None;
                u.deadline = None;
                u.soak = None;
                format!("cockpit restarted during {phase} of {node}: checking again from the start")
            }
            _ => "cockpit restarted".to_string(),
        };
        self.event(now, EventKind::Warn, text);
    }
}
