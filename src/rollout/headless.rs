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

use super::controller::engine_sees;
use super::runner::{Finished, Front, Runner};
use super::{CanaryConfirm, OnHalt, Session, UpgradeOptions};
use crate::model::Fleet;
use crate::model::fleet::ApiStatus;
use crate::remote::redact_command;
use crate::upgrade::{Action, Command, ResolvedPlan, RolloutState};
use jiff::SignedDuration;
use tokio::signal::unix::{Signal, SignalKind, signal};

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

fn action_json(plan: &ResolvedPlan, action: &Action) -> Value {
    let mut v = json!({"type": "action", "at": crate::clock::now().to_string(), "action": action});
    if let Some(n) = plan.node(action.node())
        && let Some(cmd) = n.action_command(action)
    {
        v["command"] = json!(redact_command(&n.privileged(&cmd)));
    }
    v
}

fn exit_json(code: u8, reason: &str, finished: &Finished) -> Value {
    json!({
        "type": "exit",
        "code": code,
        "reason": reason,
        "state": finished.state.label(),
        "journal": finished.journal.display().to_string(),
        "session": finished.session.as_ref().map(|p| p.display().to_string()),
    })
}

/// The `exit` line of a run that never started (bad input: 2; the
/// cluster could not be reached or locked: 1).
pub fn exit_before_start(code: u8, reason: &str) {
    emit(json!({"type": "exit", "code": code, "reason": reason}));
}

/// Why the run ends without the engine having finished.
enum Stop {
    Signal(&'static str),
    ApiLost(String),
    FeedClosed,
}

/// How long the API server may stay unreachable before headless gives up:
/// a script waiting on it must get an answer, and nothing can be judged
/// without the API.
fn api_lost(fleet: &Fleet, deadline: SignedDuration, now: Timestamp) -> Option<String> {
    match &fleet.api {
        ApiStatus::Down { since, .. } if now.duration_since(*since) >= deadline => {
            let why = fleet.api.describe(now).unwrap_or_default();
            Some(format!(
                "{why}; the rollout is left as it is: resume with --resume"
            ))
        }
        _ => None,
    }
}

/// SIGTERM or SIGINT, whichever comes first.
async fn signalled(term: &mut Option<Signal>) -> &'static str {
    tokio::select! {
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}

/// The first command, from the flags and the state a resume found.
fn first_command(
    state: &RolloutState,
    opts: &UpgradeOptions,
    restore_needed: bool,
) -> Option<Command> {
    match state {
        _ if opts.rollback => Some(rollback_command(opts, restore_needed)),
        RolloutState::Idle if opts.canary => Some(Command::Canary),
        RolloutState::Idle => Some(Command::Start),
        RolloutState::Paused | RolloutState::Halted(_) => Some(Command::Resume),
        _ => None,
    }
}

/// The way back the flags allow: the cluster-wide restore only with
/// `--allow-cluster-restore`; otherwise the rolling rollback, which the
/// engine refuses (naming the flag) when a restore is needed.
fn rollback_command(opts: &UpgradeOptions, restore_needed: bool) -> Command {
    if restore_needed && opts.allow_cluster_restore {
        Command::ClusterRestore
    } else {
        Command::Rollback
    }
}

/// Sends `cmd`, printing a refusal. False if refused.
fn send(runner: &mut Runner, fleet: &mut Fleet, cmd: Command) -> Result<bool> {
    let label = cmd.label();
    if let Err(why) = runner.command(cmd, fleet, crate::clock::now())? {
        emit(json!({"type": "refused", "command": label, "reason": why}));
        return Ok(false);
    }
    Ok(true)
}

/// What the flags decide in `state`: the exit code when the run is over,
/// or a command to send.
enum Decision {
    Exit(u8),
    Send(Command),
    Wait,
}

fn decide(
    state: &RolloutState,
    idle: bool,
    opts: &UpgradeOptions,
    rollback_sent: bool,
    restore_needed: bool,
) -> Decision {
    match state {
        RolloutState::Done if idle => Decision::Exit(0),
        // A rollback that was asked for and finished is a success.
        RolloutState::RolledBack if idle && opts.rollback => Decision::Exit(0),
        RolloutState::Aborted | RolloutState::RolledBack if idle => Decision::Exit(1),
        RolloutState::CanaryAwaitingConfirm => match opts.canary_confirm {
            CanaryConfirm::Auto => Decision::Send(Command::ConfirmCanary),
            CanaryConfirm::Never if idle => Decision::Exit(1),
            CanaryConfirm::Never => Decision::Wait,
        },
        RolloutState::Halted(_) if opts.on_halt == OnHalt::Rollback && !rollback_sent => {
            Decision::Send(rollback_command(opts, restore_needed))
        }
        RolloutState::Halted(_) if idle => Decision::Exit(1),
        _ => Decision::Wait,
    }
}

/// Prints the engine's new events and a changed state.
struct Printer {
    printed: usize,
    last_state: Option<RolloutState>,
    /// Per node: whether its work was over at the last `outage` line.
    finished: std::collections::BTreeMap<String, bool>,
}

/// The session's user-visible outage: per node and the rollout's total.
fn outage_json(fleet: &Fleet, now: Timestamp) -> Value {
    let meter = fleet.timeline.outage();
    let secs = |d: Duration| (d.as_secs_f64() * 1000.0).round() / 1000.0;
    json!({
        "total_secs": secs(meter.total(now)),
        "nodes": meter.per_node(now).iter().map(|n| json!({
            "node": n.node, "secs": secs(n.outage), "finished": n.finished,
        })).collect::<Vec<_>>(),
    })
}

impl Printer {
    fn print(&mut self, engine: &crate::upgrade::Engine, now: Timestamp) {
        for e in &engine.events()[self.printed.min(engine.events().len())..] {
            emit(json!({"type": "event", "at": e.at.to_string(), "kind": e.kind, "text": e.text}));
        }
        self.printed = engine.events().len();
        let state = engine.state();
        if self.last_state.as_ref() != Some(state) {
            emit(state_json(state, now));
            self.last_state = Some(state.clone());
        }
    }

    /// An `outage` line each time a node's work ends: the downtime users
    /// saw while it was worked on, and the rollout's total so far.
    fn print_outage(&mut self, fleet: &Fleet, now: Timestamp) {
        let meter = fleet.timeline.outage();
        for n in meter.per_node(now) {
            let was = self.finished.insert(n.node.clone(), n.finished);
            if n.finished && was != Some(true) {
                emit(json!({
                    "type": "outage", "at": now.to_string(), "node": n.node,
                    "secs": (n.outage.as_secs_f64() * 1000.0).round() / 1000.0,
                    "total_secs": (meter.total(now).as_secs_f64() * 1000.0).round() / 1000.0,
                }));
            }
        }
    }
}

pub async fn run(s: Session, opts: &UpgradeOptions) -> Result<ExitCode> {
    let (mut runner, front) = match Runner::start(s, "upgrade").await? {
        Ok(started) => started,
        Err(refused) => {
            print_findings(&refused.findings);
            emit(
                json!({"type": "exit", "code": 1, "reason": "preflight failed; nothing was changed"}),
            );
            return Ok(ExitCode::from(1));
        }
    };
    let Front {
        mut fleet,
        mut events,
        findings,
        warning,
        ..
    } = front;
    if let Some(w) = warning {
        emit(json!({"type": "warning", "text": w}));
    }
    print_findings(&findings);
    let mut printer = Printer {
        printed: runner.engine().events().len(),
        last_state: None,
        finished: Default::default(),
    };
    let engine = runner.engine();
    let first = if engine.restore_in_progress() {
        // A restore stopped halfway goes on, whatever the flags ask.
        matches!(engine.state(), RolloutState::Halted(_)).then_some(Command::Resume)
    } else {
        first_command(engine.state(), opts, engine.needs_datastore_restore())
    };
    if let Some(cmd) = first {
        send(&mut runner, &mut fleet, cmd)?;
    }
    let outcome = drive(&mut runner, &mut fleet, &mut events, &mut printer, opts).await?;
    let (code, reason) = match outcome {
        Ok(code) => (code, runner.engine().state().to_string()),
        Err(Stop::Signal(name)) => {
            // Recorded as a pause where the engine allows one; actions
            // still running are re-checked by --resume.
            let _ = runner.command(Command::Pause, &mut fleet, crate::clock::now())?;
            (
                1,
                format!("{name}: stopped; the rollout is left as it is: resume with --resume"),
            )
        }
        Err(Stop::ApiLost(why)) => (1, why),
        Err(Stop::FeedClosed) => (1, "the cluster watchers stopped".to_string()),
    };
    printer.print(runner.engine(), crate::clock::now());
    printer.print_outage(&fleet, crate::clock::now());
    let outage = outage_json(&fleet, crate::clock::now());
    let finished = runner.finish(crate::clock::now()).await;
    let mut exit = exit_json(code, &reason, &finished);
    exit["outage"] = outage;
    emit(exit);
    Ok(ExitCode::from(code))
}

fn print_findings(findings: &[super::preflight::Finding]) {
    for f in findings {
        emit(json!({"type": "preflight", "level": f.level, "text": f.text}));
    }
}

/// Runs the rollout until the flags say it is over (the exit code) or
/// something stops it from outside.
async fn drive(
    runner: &mut Runner,
    fleet: &mut Fleet,
    events: &mut tokio::sync::mpsc::UnboundedReceiver<crate::model::ClusterEvent>,
    printer: &mut Printer,
    opts: &UpgradeOptions,
) -> Result<std::result::Result<u8, Stop>> {
    let mut rollback_sent = false;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut term = signal(SignalKind::terminate()).ok();
    let deadline = runner.plan().timings.api_lost_timeout;
    loop {
        for a in runner.dispatch(fleet) {
            emit(action_json(runner.plan(), &a));
        }
        printer.print(runner.engine(), crate::clock::now());
        printer.print_outage(fleet, crate::clock::now());
        if let Some(why) = api_lost(fleet, deadline, crate::clock::now()) {
            return Ok(Err(Stop::ApiLost(why)));
        }
        let idle = runner.engine().in_flight().is_none() && !runner.engine().releasing_labels();
        let restore_needed = runner.engine().needs_datastore_restore();
        match decide(
            runner.engine().state(),
            idle,
            opts,
            rollback_sent,
            restore_needed,
        ) {
            Decision::Exit(code) => return Ok(Ok(code)),
            Decision::Send(cmd) => {
                let rollback = matches!(cmd, Command::Rollback | Command::ClusterRestore);
                rollback_sent |= rollback;
                // A refused rollback falls through to the halt's exit; any
                // other refused decision would be asked again forever.
                if !send(runner, fleet, cmd)? && !rollback {
                    return Ok(Ok(1));
                }
                continue;
            }
            Decision::Wait => {}
        }
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { return Ok(Err(Stop::FeedClosed)) };
                apply_batch(runner, fleet, events, ev)?;
            }
            Some(done) = runner.next() => {
                runner.on_done(done, fleet, crate::clock::now())?;
            }
            _ = tick.tick() => runner.tick(fleet, crate::clock::now())?,
            name = signalled(&mut term) => return Ok(Err(Stop::Signal(name))),
        }
    }
}

/// Applies `first` and whatever else has arrived; the engine looks once.
fn apply_batch(
    runner: &mut Runner,
    fleet: &mut Fleet,
    events: &mut tokio::sync::mpsc::UnboundedReceiver<crate::model::ClusterEvent>,
    first: crate::model::ClusterEvent,
) -> Result<()> {
    let now = crate::clock::now();
    let mut news = engine_sees(&first);
    fleet.apply(first, now);
    while let Ok(ev) = events.try_recv() {
        news |= engine_sees(&ev);
        fleet.apply(ev, now);
    }
    if news {
        runner.observe(fleet, now)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upgrade::engine::Halt;

    fn opts(on_halt: OnHalt, rollback: bool, allow: bool) -> UpgradeOptions {
        let mut o = UpgradeOptions::for_plan("plan.toml".into(), Default::default());
        o.headless = true;
        o.on_halt = on_halt;
        o.rollback = rollback;
        o.allow_cluster_restore = allow;
        o
    }

    fn halted() -> RolloutState {
        RolloutState::Halted(Halt {
            reason: "x".into(),
            node: None,
            phase: None,
        })
    }

    /// The restore is asked for only with the opt-in; without it the
    /// rolling rollback is sent, which the engine refuses naming the flag.
    #[test]
    fn the_cluster_restore_is_sent_only_with_the_opt_in() {
        let with = opts(OnHalt::Stop, true, true);
        let without = opts(OnHalt::Stop, true, false);
        let paused = RolloutState::Paused;
        assert_eq!(
            first_command(&paused, &with, true),
            Some(Command::ClusterRestore)
        );
        assert_eq!(
            first_command(&paused, &without, true),
            Some(Command::Rollback)
        );
        assert_eq!(
            first_command(&paused, &with, false),
            Some(Command::Rollback)
        );
        let on_halt = opts(OnHalt::Rollback, false, true);
        let Decision::Send(cmd) = decide(&halted(), true, &on_halt, false, true) else {
            panic!("no command on halt");
        };
        assert_eq!(cmd, Command::ClusterRestore);
        let on_halt = opts(OnHalt::Rollback, false, false);
        let Decision::Send(cmd) = decide(&halted(), true, &on_halt, false, true) else {
            panic!("no command on halt");
        };
        assert_eq!(cmd, Command::Rollback);
    }
}
