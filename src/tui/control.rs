//! The cockpit in control mode (`k3s-cockpit upgrade`, `demo`): the watch
//! view plus the rollout. One `select!` loop over keys, cluster events,
//! action results and a 1 s tick; the engine is stepped in the loop, its
//! actions run on tasks, and their results come back as messages.

use std::process::ExitCode;
use std::time::Duration;

use color_eyre::eyre::{Result, WrapErr};
use crossterm::event::{Event, EventStream, KeyEventKind};
use futures::StreamExt;
use jiff::Timestamp;
use tokio::sync::mpsc;

use super::TerminalGuard;
use super::app::{App, Request};
use super::view;
use crate::model::timeline::{EntryKind, Severity};
use crate::rollout::executor::Manual;
use crate::rollout::{Session, dispatch, preflight};
use crate::upgrade::{Action, RolloutState};

/// The result of an operator's manual action on a node.
struct ManualDone {
    what: Manual,
    node: String,
    result: Result<(), String>,
}

/// `mode` names the session journal (`upgrade`, `demo`).
pub async fn run(mut s: Session, mode: &str, hint: Option<String>) -> Result<ExitCode> {
    let now = Timestamp::now();
    let mut app = App::new(&s.conn.context, &s.conn.server, false, now);
    app.fleet = std::mem::take(&mut s.fleet);
    app.hint = hint;
    let session_log = crate::report::session::start(&mut app, mode, &s.probes);
    let keep_lock = s.lock.keep_alive();
    let (results_tx, mut results) = mpsc::unbounded_channel();
    let (manual_tx, mut manual) = mpsc::unbounded_channel::<ManualDone>();

    // Preflight findings go on the timeline before anything can change.
    for f in preflight::run(&app.fleet, &s.plan, now) {
        let severity = match f.level {
            preflight::Level::Block => Severity::Error,
            preflight::Level::Warn => Severity::Warn,
            preflight::Level::Ok => Severity::Info,
        };
        app.fleet.timeline.push(now, severity, "preflight", f.text);
    }
    let mut actions: Vec<Action> = std::mem::take(&mut s.pending);
    actions.extend(s.controller.observe(&mut app.fleet, now)?);
    app.rollout = Some(s.controller.view(now));

    let mut terminal =
        ratatui::try_init().wrap_err("cannot initialise the terminal (is this a TTY?)")?;
    let guard = TerminalGuard;
    let mut keys = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dirty = true;
    let mut feed_open = true;
    loop {
        dispatch(&s.executor, std::mem::take(&mut actions), &results_tx);
        if dirty {
            app.rollout = Some(s.controller.view(app.now));
            tui_logger::move_events();
            terminal
                .draw(|f| view::render(&app, f))
                .wrap_err("drawing the cockpit")?;
            dirty = false;
        }
        tokio::select! {
            key = keys.next() => match key {
                Some(Ok(Event::Key(k))) if k.kind == KeyEventKind::Press => {
                    dirty |= app.on_key(k);
                    for request in std::mem::take(&mut app.requests) {
                        let now = Timestamp::now();
                        match request {
                            Request::Engine(cmd) => {
                                match s.controller.command(cmd, &mut app.fleet, now)? {
                                    Ok(a) => actions.extend(a),
                                    Err(why) => app.flash = Some((format!("refused: {why}"), now)),
                                }
                            }
                            Request::Manual(what, node) => {
                                let action = format!("{} {node}", what.label());
                                app.fleet.timeline.push_kind(now, Severity::Info, "operator", EntryKind::Operator { action: action.clone() }, action);
                                let (executor, tx) = (s.executor.clone(), manual_tx.clone());
                                tokio::spawn(async move {
                                    let result = executor.manual(what, &node).await;
                                    let _ = tx.send(ManualDone { what, node, result });
                                });
                            }
                        }
                        dirty = true;
                    }
                }
                Some(Ok(Event::Resize(..))) => dirty = true,
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e).wrap_err("reading the terminal"),
                None => break,
            },
            msg = s.events.recv(), if feed_open => {
                let Some(msg) = msg else { feed_open = false; continue };
                dirty |= app.on_cluster(msg);
                while let Ok(m) = s.events.try_recv() {
                    dirty |= app.on_cluster(m);
                }
                actions.extend(s.controller.observe(&mut app.fleet, Timestamp::now())?);
            }
            done = results.recv() => {
                if let Some(done) = done {
                    actions.extend(s.controller.finished(done, &mut app.fleet, Timestamp::now())?);
                    dirty = true;
                }
            }
            done = manual.recv() => {
                if let Some(ManualDone { what, node, result }) = done {
                    let now = Timestamp::now();
                    let text = match &result {
                        Ok(()) => format!("{} {node}: done", what.label()),
                        Err(e) => format!("{} {node} failed: {e}", what.label()),
                    };
                    let severity = if result.is_ok() { Severity::Info } else { Severity::Error };
                    app.fleet.timeline.push(now, severity, "operator", text.clone());
                    app.flash = Some((text, now));
                    dirty = true;
                }
            }
            _ = tick.tick() => {
                let now = Timestamp::now();
                app.on_tick(now);
                actions.extend(s.controller.tick(&mut app.fleet, now)?);
                dirty = true;
            }
        }
        if app.quit {
            break;
        }
    }
    keep_lock.abort();
    s.lock.release().await;
    let state = s.controller.engine().state().clone();
    drop(terminal);
    drop(guard);
    crate::cli::end_session(session_log);
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
