//! Binds the pure engine to the cockpit: builds observations from the
//! fleet, journals every step (through the [`Recorder`]) and copies the
//! engine's events onto the fleet's timeline. Synchronous and I/O-free but
//! for the journal, so the TUI loop and the headless loop share it.

use std::collections::HashMap;

use color_eyre::eyre::{Result, WrapErr};
use jiff::Timestamp;

use super::observe::Observer;
use crate::model::fleet::{ClusterEvent, Fleet};
use crate::model::timeline::{EntryKind, Severity};
use crate::upgrade::engine::{EventKind, Phase};
use crate::upgrade::{Action, Command, Engine, Input, Observation, Recorder, RolloutView};

/// Whether a cluster event can change the engine's verdict at once, so
/// that the engine looks at the fleet (O(nodes)) after it. A lease renewal
/// cannot make a heartbeat late: time does, and the tick and the heartbeat
/// deadlines step the engine; a renewal that makes a late heartbeat fresh
/// again is judged at the next tick, within a second. At 5,000 nodes this
/// spares the engine a look at every batch of renewals.
pub fn engine_sees(event: &ClusterEvent) -> bool {
    !matches!(event, ClusterEvent::Lease(_))
}

pub struct Controller {
    recorder: Recorder,
    observer: Observer,
    gated: Vec<String>,
    last: Option<Observation>,
    /// Engine events already copied to the timeline.
    published: usize,
    /// Phases and state as last written to the timeline.
    phases: HashMap<String, Phase>,
    state: String,
}

impl Controller {
    pub fn new(recorder: Recorder, observer: Observer) -> Self {
        let gated = recorder.engine().config().gates.services.clone();
        // Events from a resumed journal are history, already on record.
        let published = recorder.engine().events().len();
        Controller {
            recorder,
            observer,
            gated,
            last: None,
            published,
            phases: HashMap::new(),
            state: String::new(),
        }
    }

    pub fn engine(&self) -> &Engine {
        self.recorder.engine()
    }

    pub fn view(&self, now: Timestamp) -> RolloutView {
        self.engine().view(now)
    }

    pub fn journal_path(&self) -> &std::path::Path {
        self.recorder.journal_path()
    }

    fn step(&mut self, input: Input, fleet: &mut Fleet, now: Timestamp) -> Result<Vec<Action>> {
        let actions = self.recorder.step(input, now).wrap_err_with(|| {
            format!(
                "cannot write the rollout journal {}; nothing more will run",
                self.recorder.journal_path().display()
            )
        })?;
        self.publish(fleet, now);
        Ok(actions)
    }

    /// Sends the fleet's state to the engine if it differs from the last
    /// observation sent.
    pub fn observe(&mut self, fleet: &mut Fleet, now: Timestamp) -> Result<Vec<Action>> {
        // Heartbeat classes first, so the timeline shows the LATE that
        // the engine is about to act on before the engine's verdict.
        fleet.tick(now);
        let obs = self.observer.observe(fleet, &self.gated, now);
        if self.last.as_ref() == Some(&obs) {
            return Ok(Vec::new());
        }
        self.last = Some(obs.clone());
        self.step(Input::Observe(obs), fleet, now)
    }

    /// Time passed: heartbeats age and soaks and timeouts advance.
    pub fn tick(&mut self, fleet: &mut Fleet, now: Timestamp) -> Result<Vec<Action>> {
        let mut actions = self.observe(fleet, now)?;
        actions.extend(self.step(Input::Tick, fleet, now)?);
        Ok(actions)
    }

    pub fn finished(
        &mut self,
        done: Input,
        fleet: &mut Fleet,
        now: Timestamp,
    ) -> Result<Vec<Action>> {
        self.step(done, fleet, now)
    }

    /// An operator decision. A refused command comes back as `Err(reason)`
    /// inside the `Ok` (and is on the timeline too).
    pub fn command(
        &mut self,
        cmd: Command,
        fleet: &mut Fleet,
        now: Timestamp,
    ) -> Result<std::result::Result<Vec<Action>, String>> {
        if let Err(why) = self.engine().check_command(&cmd) {
            fleet.timeline.push(
                now,
                Severity::Warn,
                "operator",
                format!("{} refused: {why}", cmd.label()),
            );
            return Ok(Err(why));
        }
        fleet.timeline.push_kind(
            now,
            Severity::Info,
            "operator",
            EntryKind::Operator {
                action: cmd.label(),
            },
            cmd.label(),
        );
        self.step(Input::Command(cmd), fleet, now).map(Ok)
    }

    /// Copies what changed to the timeline (and so to the session
    /// journal): typed phase entries per node and for the rollout, then the
    /// engine's own words for everything that is not a phase start.
    fn publish(&mut self, fleet: &mut Fleet, now: Timestamp) {
        let view = self.recorder.engine().view(now);
        let state = view.state.label().to_string();
        if state != self.state {
            fleet.timeline.push_kind(
                now,
                Severity::Info,
                "upgrade",
                EntryKind::UpgradePhase {
                    node: None,
                    phase: state.clone(),
                },
                format!("rollout {}", view.state),
            );
            self.state = state;
        }
        for n in &view.nodes {
            if self.phases.get(&n.name) == Some(&n.phase) {
                continue;
            }
            let first = !self.phases.contains_key(&n.name);
            self.phases.insert(n.name.clone(), n.phase);
            if first && n.phase == Phase::Pending {
                continue;
            }
            let target = n
                .target
                .as_ref()
                .map(|t| format!(" ({t})"))
                .unwrap_or_default();
            fleet.timeline.push_kind(
                now,
                Severity::Info,
                &n.name,
                EntryKind::UpgradePhase {
                    node: Some(n.name.clone()),
                    phase: n.phase.to_string(),
                },
                format!("upgrade{target}: {}", n.phase),
            );
        }
        let events = self.recorder.engine().events();
        for e in &events[self.published.min(events.len())..] {
            let severity = match e.kind {
                EventKind::Action => continue,
                EventKind::Info => Severity::Info,
                EventKind::Warn | EventKind::Refused => Severity::Warn,
                EventKind::Halt => Severity::Error,
            };
            fleet
                .timeline
                .push(e.at, severity, "upgrade", e.text.clone());
        }
        self.published = events.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fleet::{LeaseInfo, NodeInfo};

    #[test]
    fn only_lease_renewals_spare_the_engine_a_look() {
        let lease = ClusterEvent::Lease(LeaseInfo {
            node: "a".into(),
            holder: "a".into(),
            renewed: None,
            duration: std::time::Duration::from_secs(40),
        });
        let node = ClusterEvent::Node(NodeInfo::bare("a", "v1.35.0+k3s1"));
        assert!(!engine_sees(&lease));
        assert!(engine_sees(&node));
        assert!(engine_sees(&ClusterEvent::NodeDeleted("a".into())));
    }
}
