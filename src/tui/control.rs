//! The cockpit in control mode (`k3s-cockpit upgrade`, `demo`): the watch
//! loop of [`super::run_loop`] with the [`Runner`] plugged in. Keys become
//! the runner's commands; the runner's view becomes the rollout panel.

use std::process::ExitCode;

use color_eyre::eyre::Result;

use super::app::{App, LogPanel, Request};
use crate::rollout::Session;
use crate::rollout::preflight::Level;
use crate::rollout::runner::{Front, Runner};
use crate::upgrade::RolloutState;

/// Carries out the operator's requests for the rollout from the last key.
/// True if any.
pub(crate) fn on_requests(
    runner: &mut Runner,
    app: &mut App,
    requests: Vec<Request>,
) -> Result<bool> {
    let any = !requests.is_empty();
    for request in requests {
        let now = crate::clock::now();
        match request {
            Request::Engine(cmd) => {
                if let Err(why) = runner.command(cmd, &mut app.fleet, now)? {
                    app.flash = Some((format!("refused: {why}"), now));
                }
            }
            Request::Manual(what, node) => runner.manual(what, node, &mut app.fleet, now),
            Request::WriteReport | Request::Quit => {}
        }
    }
    Ok(any)
}

/// The cockpit's look and words for this session.
pub struct Setup {
    /// Names the session journal (`upgrade`, `demo`).
    pub mode: &'static str,
    pub hint: Option<String>,
    pub log_panel: LogPanel,
    pub look: super::app::Look,
}

/// Runs the rollout in the cockpit. A fresh rollout that preflight blocks
/// is refused before the terminal opens, as headless refuses it.
pub async fn run(s: Session, setup: Setup) -> Result<ExitCode> {
    let (mut runner, front) = match Runner::start(s, setup.mode).await? {
        Ok(started) => started,
        Err(refused) => {
            for f in refused.findings.iter().filter(|f| f.level != Level::Ok) {
                eprintln!("preflight {:?}: {}", f.level, f.text);
            }
            eprintln!("k3s-cockpit: preflight failed; nothing was changed");
            return Ok(ExitCode::from(1));
        }
    };
    let Front {
        fleet,
        mut events,
        conn,
        warning,
        ..
    } = front;
    let now = crate::clock::now();
    let mut app = App::new(&conn.context, &conn.server, false, now).with_look(setup.look);
    app.log_panel = setup.log_panel;
    app.fleet = fleet;
    app.hint = setup.hint;
    if let Some(w) = warning {
        app.flash = Some((w, now));
    }
    let ended = super::run_loop(&mut app, &mut events, Some(&mut runner)).await;
    let finished = runner.finish(crate::clock::now()).await;
    super::say_session(finished.session.as_deref());
    ended?;
    let state = finished.state;
    if !state.is_terminal() && state != RolloutState::Idle {
        if setup.mode == "demo" {
            eprintln!(
                "k3s-cockpit: the demo's rollout was {} and its lab is gone with it; `k3s-cockpit demo` starts a fresh one",
                state.label()
            );
        } else {
            eprintln!(
                "k3s-cockpit: the rollout is {}; its journal is {}. Continue with: k3s-cockpit upgrade --plan PLAN --resume",
                state.label(),
                finished.journal.display()
            );
        }
    }
    Ok(if state == RolloutState::Done {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
