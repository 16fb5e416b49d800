//! Binds the pure engine to the cockpit: builds observations from the
//! fleet, journals every step (through the [`Recorder`]) and copies the
//! engine's events onto the fleet's timeline. Synchronous and I/O-free but
//! for the journal, so the TUI loop and the headless loop share it.

use color_eyre::eyre::{Result, WrapErr};
use jiff::Timestamp;

use super::observe::Observer;
use crate::model::fleet::Fleet;
use crate::model::timeline::Severity;
use crate::upgrade::engine::EventKind;
use crate::upgrade::{Action, Command, Engine, Input, Observation, Recorder, RolloutView};

/// Answers "did the last probe of this service succeed?" (None: no probe).
pub type ProbeLookup<'a> = &'a dyn Fn(&str) -> Option<bool>;

pub struct Controller {
    recorder: Recorder,
    observer: Observer,
    gated: Vec<String>,
    last: Option<Observation>,
    /// Engine events already copied to the timeline.
    published: usize,
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
        self.publish(fleet);
        Ok(actions)
    }

    /// Sends the fleet's state to the engine if it differs from the last
    /// observation sent.
    pub fn observe(
        &mut self,
        fleet: &mut Fleet,
        probes: ProbeLookup<'_>,
        now: Timestamp,
    ) -> Result<Vec<Action>> {
        let obs = self.observer.observe(fleet, &self.gated, probes, now);
        if self.last.as_ref() == Some(&obs) {
            return Ok(Vec::new());
        }
        self.last = Some(obs.clone());
        self.step(Input::Observe(obs), fleet, now)
    }

    /// Time passed: heartbeats age and soaks and timeouts advance.
    pub fn tick(
        &mut self,
        fleet: &mut Fleet,
        probes: ProbeLookup<'_>,
        now: Timestamp,
    ) -> Result<Vec<Action>> {
        let mut actions = self.observe(fleet, probes, now)?;
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
        fleet
            .timeline
            .push(now, Severity::Info, "operator", cmd.label());
        self.step(Input::Command(cmd), fleet, now).map(Ok)
    }

    fn publish(&mut self, fleet: &mut Fleet) {
        let events = self.recorder.engine().events();
        for e in &events[self.published.min(events.len())..] {
            let severity = match e.kind {
                EventKind::Info | EventKind::Action => Severity::Info,
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
