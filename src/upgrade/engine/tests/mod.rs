//! Engine tests, driven through the testkit's simulated cluster and grouped
//! by the concern they exercise.

mod commands;
mod gates;
mod handoff;
mod inputs;
mod progress;
mod rollback;
mod view;

use super::*;
use crate::upgrade::plan::{Datastore, Role};
use crate::upgrade::testkit::*;
use jiff::Timestamp;

pub(super) fn halted(e: &Engine) -> Option<&Halt> {
    match e.state() {
        RolloutState::Halted(h) => Some(h),
        _ => None,
    }
}

pub(super) fn phase_of(e: &Engine, node: &str, now: Timestamp) -> Phase {
    e.view(now)
        .nodes
        .into_iter()
        .find(|n| n.name == node)
        .unwrap()
        .phase
}

pub(super) fn in_phase(node: &'static str, phase: Phase) -> impl Fn(&Engine, &FakeCluster) -> bool {
    move |e, s| phase_of(e, node, s.now) == phase
}

pub(super) fn started(cfg: EngineConfig, extra: &[&str]) -> (Engine, FakeCluster) {
    let mut e = Engine::new(cfg.clone());
    let mut s = FakeCluster::new(&cfg, extra);
    s.observe(&mut e);
    s.command(&mut e, Command::Start);
    (e, s)
}

pub(super) fn last_event(e: &Engine) -> &Event {
    e.events().last().unwrap()
}
