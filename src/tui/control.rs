//! The cockpit in control mode (`k3s-cockpit upgrade`, `demo`): the watch
//! loop of [`super::run_loop`] with a [`Driver`] plugged in. The driver
//! steps the engine on keys, cluster events, action results and ticks; the
//! engine's actions run on tasks and their results come back as messages.

use std::process::ExitCode;

use color_eyre::eyre::Result;
use jiff::Timestamp;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use super::app::{App, Request};
use crate::model::timeline::{EntryKind, Severity};
use crate::rollout::controller::Controller;
use crate::rollout::executor::{Executor, Manual};
use crate::rollout::{Session, dispatch, preflight};
use crate::upgrade::{Action, Input, RolloutState};

/// The result of an operator's manual action on a node.
pub(crate) struct ManualDone {
    what: Manual,
    node: String,
    result: Result<(), String>,
}

/// Something the driver's tasks finished.
pub(crate) enum Done {
    Action(Input),
    Manual(ManualDone),
}

/// The rollout side of the loop: the controller, the executor that runs its
/// actions, and the channels their results come back on.
pub(crate) struct Driver<'a> {
    controller: &'a mut Controller,
    executor: Executor,
    /// Actions the engine asked for, dispatched before the loop waits.
    actions: Vec<Action>,
    results_tx: UnboundedSender<Input>,
    results: UnboundedReceiver<Input>,
    manual_tx: UnboundedSender<ManualDone>,
    manual: UnboundedReceiver<ManualDone>,
}

impl Driver<'_> {
    /// Starts the actions asked for since the last call.
    pub(crate) fn dispatch(&mut self) {
        dispatch(
            &self.executor,
            std::mem::take(&mut self.actions),
            &self.results_tx,
        );
    }

    /// Refreshes the rollout panel's view before a frame.
    pub(crate) fn show(&self, app: &mut App) {
        app.rollout = Some(self.controller.view(app.now));
    }

    /// Carries out the operator's requests from the last key. True if any.
    pub(crate) fn on_requests(&mut self, app: &mut App) -> Result<bool> {
        let requests = std::mem::take(&mut app.requests);
        let any = !requests.is_empty();
        for request in requests {
            let now = Timestamp::now();
            match request {
                Request::Engine(cmd) => match self.controller.command(cmd, &mut app.fleet, now)? {
                    Ok(a) => self.actions.extend(a),
                    Err(why) => app.flash = Some((format!("refused: {why}"), now)),
                },
                Request::Manual(what, node) => {
                    let action = format!("{} {node}", what.label());
                    app.fleet.timeline.push_kind(
                        now,
                        Severity::Info,
                        "operator",
                        EntryKind::Operator {
                            action: action.clone(),
                        },
                        action,
                    );
                    let (executor, tx) = (self.executor.clone(), self.manual_tx.clone());
                    tokio::spawn(async move {
                        let result = executor.manual(what, &node).await;
                        let _ = tx.send(ManualDone { what, node, result });
                    });
                }
            }
        }
        Ok(any)
    }

    /// The fleet changed: the engine looks again. True if the rollout
    /// moved (it asked for actions or wrote to the timeline).
    pub(crate) fn on_cluster(&mut self, app: &mut App) -> Result<bool> {
        let before = app.fleet.timeline.pushed();
        let actions = self.controller.observe(&mut app.fleet, Timestamp::now())?;
        let moved = !actions.is_empty() || app.fleet.timeline.pushed() != before;
        self.actions.extend(actions);
        Ok(moved)
    }

    /// Time passed: the clock, heartbeat classes (the controller ticks the
    /// fleet before the engine looks), soaks and timeouts advance.
    pub(crate) fn on_tick(&mut self, app: &mut App, now: Timestamp) -> Result<()> {
        app.on_clock(now);
        let actions = self.controller.tick(&mut app.fleet, now)?;
        self.actions.extend(actions);
        Ok(())
    }

    /// The next finished action or manual operation.
    pub(crate) async fn next(&mut self) -> Option<Done> {
        tokio::select! {
            Some(input) = self.results.recv() => Some(Done::Action(input)),
            Some(manual) = self.manual.recv() => Some(Done::Manual(manual)),
            else => None,
        }
    }

    pub(crate) fn on_done(&mut self, app: &mut App, done: Done) -> Result<()> {
        let now = Timestamp::now();
        match done {
            Done::Action(input) => {
                let actions = self.controller.finished(input, &mut app.fleet, now)?;
                self.actions.extend(actions);
            }
            Done::Manual(ManualDone { what, node, result }) => {
                let text = match &result {
                    Ok(()) => format!("{} {node}: done", what.label()),
                    Err(e) => format!("{} {node} failed: {e}", what.label()),
                };
                let severity = if result.is_ok() {
                    Severity::Info
                } else {
                    Severity::Error
                };
                app.fleet
                    .timeline
                    .push(now, severity, "operator", text.clone());
                app.flash = Some((text, now));
            }
        }
        Ok(())
    }
}

/// `mode` names the session journal (`upgrade`, `demo`).
pub async fn run(
    mut s: Session,
    mode: &str,
    hint: Option<String>,
    log_panel: super::app::LogPanel,
) -> Result<ExitCode> {
    let now = Timestamp::now();
    let mut app = App::new(&s.conn.context, &s.conn.server, false, now);
    app.log_panel = log_panel;
    app.fleet = std::mem::take(&mut s.fleet);
    app.hint = hint;
    let session_log = crate::report::session::start(&mut app, mode, &s.probes);
    let keep_lock = s.lock.keep_alive();

    // Preflight findings go on the timeline before anything can change.
    for f in preflight::run(&app.fleet, &s.plan, now) {
        let severity = match f.level {
            preflight::Level::Block => Severity::Error,
            preflight::Level::Warn => Severity::Warn,
            preflight::Level::Ok => Severity::Info,
        };
        app.fleet.timeline.push(now, severity, "preflight", f.text);
    }
    let (results_tx, results) = mpsc::unbounded_channel();
    let (manual_tx, manual) = mpsc::unbounded_channel();
    let mut driver = Driver {
        controller: &mut s.controller,
        executor: s.executor.clone(),
        actions: std::mem::take(&mut s.pending),
        results_tx,
        results,
        manual_tx,
        manual,
    };
    let first = driver.controller.observe(&mut app.fleet, now)?;
    driver.actions.extend(first);

    let ended = super::run_loop(&mut app, &mut s.events, Some(&mut driver)).await;
    keep_lock.abort();
    s.lock.release().await;
    crate::cli::end_session(session_log);
    ended?;
    let state = s.controller.engine().state().clone();
    if !state.is_terminal() && state != RolloutState::Idle {
        eprintln!(
            "k3s-cockpit: the rollout is {}; its journal is {}. Continue with: k3s-cockpit upgrade --plan PLAN --resume",
            state.label(),
            s.controller.journal_path().display()
        );
    }
    Ok(if state == RolloutState::Done {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
