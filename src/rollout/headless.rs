//! `upgrade --headless`: the same engine with no terminal. One JSON object
//! per line on stdout for every preflight finding, action, engine event and
//! state change; operator decisions come from flags. Exit status 0 when
//! the rollout is done (or a rollback that was asked for is), 1 when it
//! halted, failed, waits for a canary decision, or was aborted.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use color_eyre::eyre::Result;
use jiff::Timestamp;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::controller::engine_sees;
use super::{CanaryConfirm, OnHalt, Session, UpgradeOptions, dispatch, preflight};
use crate::remote::redact_command;
use crate::upgrade::{Action, Command, RolloutState};

/// Engine ticks: soak and timeout resolution in headless runs.
const TICK: Duration = Duration::from_millis(250);

fn emit(value: Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

fn state_json(state: &RolloutState, now: Timestamp) -> Value {
    let mut v = json!({"type": "state", "at": now.to_string(), "state": state.label()});
    if let RolloutState::Halted(h) = state {
        v["reason"] = json!(h.reason);
        v["node"] = json!(h.node);
        v["phase"] = json!(h.phase.map(|p| p.to_string()));
    }
    v
}

fn action_json(session: &Session, action: &Action) -> Value {
    let mut v = json!({"type": "action", "at": Timestamp::now().to_string(), "action": action});
    if let Some(n) = session.plan.node(action.node()) {
        let cmd = match action {
            Action::Install { version, .. } => Some(n.install_command(version)),
            Action::Restart { .. } => Some(n.restart_command()),
            Action::EtcdSnapshot { name, .. } => Some(n.snapshot_command(name)),
            _ => None,
        };
        if let Some(cmd) = cmd {
            v["command"] = json!(redact_command(&cmd));
        }
    }
    v
}

pub async fn run(mut s: Session, opts: &UpgradeOptions) -> Result<ExitCode> {
    let (results_tx, mut results) = mpsc::unbounded_channel();
    // The session journal, for `k3s-cockpit report`; a run without one
    // loses the report, not the rollout.
    let session_log = match crate::report::session::start_for(
        &mut s.fleet,
        &s.conn.context,
        &s.conn.server,
        "upgrade",
        &s.probes,
    ) {
        Ok(log) => Some(log),
        Err(e) => {
            emit(json!({"type": "warning", "text": format!("no session journal: {e:#}")}));
            None
        }
    };
    let keep_lock = s.lock.keep_alive();
    let now = Timestamp::now();

    // Preflight against the synced fleet, before anything changes.
    let findings = preflight::run(&s.fleet, &s.plan, now);
    for f in &findings {
        emit(json!({"type": "preflight", "level": f.level, "text": f.text}));
    }
    let fresh_start = !s.resumed;
    if fresh_start && findings.iter().any(|f| f.level == preflight::Level::Block) {
        emit(json!({"type": "exit", "code": 1, "reason": "preflight failed; nothing was changed"}));
        keep_lock.abort();
        s.lock.release().await;
        return Ok(ExitCode::from(1));
    }

    let mut actions = std::mem::take(&mut s.pending);
    actions.extend(s.controller.observe(&mut s.fleet, now)?);
    let first = match s.controller.engine().state() {
        _ if opts.rollback => Some(Command::Rollback),
        RolloutState::Idle if opts.canary => Some(Command::Canary),
        RolloutState::Idle => Some(Command::Start),
        RolloutState::Paused | RolloutState::Halted(_) => Some(Command::Resume),
        _ => None,
    };
    let mut printed = s.controller.engine().events().len();
    let mut last_state = None;
    let mut rollback_requested = false;
    if let Some(cmd) = first
        && let Err(why) = s
            .controller
            .command(cmd.clone(), &mut s.fleet, now)?
            .map(|a| actions.extend(a))
    {
        emit(json!({"type": "refused", "command": cmd.label(), "reason": why}));
    }
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let code = loop {
        for a in &actions {
            emit(action_json(&s, a));
        }
        dispatch(&s.executor, std::mem::take(&mut actions), &results_tx);
        let now = Timestamp::now();
        let engine = s.controller.engine();
        for e in &engine.events()[printed..] {
            emit(json!({"type": "event", "at": e.at.to_string(), "kind": e.kind, "text": e.text}));
        }
        printed = engine.events().len();
        let state = engine.state().clone();
        if last_state.as_ref() != Some(&state) {
            emit(state_json(&state, now));
            last_state = Some(state.clone());
        }
        let idle = engine.in_flight().is_none();
        match &state {
            RolloutState::Done if idle => break 0,
            // A rollback that was asked for and finished is a success.
            RolloutState::RolledBack if idle && opts.rollback => break 0,
            RolloutState::Aborted | RolloutState::RolledBack if idle => break 1,
            RolloutState::CanaryAwaitingConfirm => match opts.canary_confirm {
                CanaryConfirm::Auto => {
                    if let Ok(a) =
                        s.controller
                            .command(Command::ConfirmCanary, &mut s.fleet, now)?
                    {
                        actions.extend(a);
                    }
                    continue;
                }
                CanaryConfirm::Never if idle => break 1,
                CanaryConfirm::Never => {}
            },
            RolloutState::Halted(_) if opts.on_halt == OnHalt::Rollback && !rollback_requested => {
                rollback_requested = true;
                match s.controller.command(Command::Rollback, &mut s.fleet, now)? {
                    Ok(a) => actions.extend(a),
                    Err(why) => {
                        emit(json!({"type": "refused", "command": "rollback", "reason": why}))
                    }
                }
                continue;
            }
            RolloutState::Halted(_) if idle => break 1,
            _ => {}
        }
        tokio::select! {
            ev = s.events.recv() => {
                let Some(ev) = ev else { break 1 };
                let now = Timestamp::now();
                let mut news = engine_sees(&ev);
                s.fleet.apply(ev, now);
                while let Ok(ev) = s.events.try_recv() {
                    news |= engine_sees(&ev);
                    s.fleet.apply(ev, now);
                }
                if news {
                    actions.extend(s.controller.observe(&mut s.fleet, now)?);
                }
            }
            done = results.recv() => {
                if let Some(done) = done {
                    actions.extend(s.controller.finished(done, &mut s.fleet, Timestamp::now())?);
                }
            }
            _ = tick.tick() => {
                // The controller ticks the fleet before the engine looks.
                actions.extend(s.controller.tick(&mut s.fleet, Timestamp::now())?);
            }
        }
    };
    let session = session_log.map(|log| {
        log.end(Timestamp::now());
        log.path().display().to_string()
    });
    emit(json!({
        "type": "exit",
        "code": code,
        "state": s.controller.engine().state().label(),
        "journal": s.controller.journal_path().display().to_string(),
        "session": session,
    }));
    keep_lock.abort();
    s.lock.release().await;
    Ok(ExitCode::from(code))
}
