//! The one rollout runner behind every front end. It owns what a running
//! rollout needs besides the fleet: the engine (through the controller and
//! its journal), the cluster lock, the session journal, preflight, and the
//! tasks that carry out the engine's actions. Headless and the cockpit only
//! turn flags or keys into commands, feed it cluster events and ticks, and
//! show what it reports; neither repeats any of this.

use std::path::PathBuf;
use std::sync::Arc;

use color_eyre::eyre::Result;
use jiff::Timestamp;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;

use super::controller::Controller;
use super::drain_report::{self, DrainReport};
use super::executor::{Executor, Manual};
use super::lock::RolloutLock;
use super::node_ops;
use super::preflight::{self, Finding, Level};
use super::{Session, dispatch};
use crate::cluster::Connection;
use crate::cluster::endpoints::ApiEndpoints;
use crate::model::timeline::{EntryKind, Severity};
use crate::model::{ClusterEvent, Fleet};
use crate::report::session::SessionLog;
use crate::upgrade::{Action, Command, Engine, Input, ResolvedPlan, RolloutState, RolloutView};

/// The result of an operator's manual action on a node.
pub struct ManualDone {
    what: Manual,
    node: String,
    result: std::result::Result<(), String>,
}

/// Something the runner's tasks finished.
pub enum Done {
    Action(Input),
    Manual(ManualDone),
    /// A node's drain report, listed again as its turn comes.
    Outlook(String, std::result::Result<DrainReport, String>),
}

/// What the front end holds while the runner runs: the fleet it shows and
/// feeds back, the cluster events that update it, and what to say first.
pub struct Front {
    pub fleet: Fleet,
    pub events: UnboundedReceiver<ClusterEvent>,
    pub conn: Connection,
    pub findings: Vec<Finding>,
    /// Why there is no session journal, if there is none.
    pub warning: Option<String>,
}

/// A fresh rollout that preflight blocked: nothing was changed, the lock
/// is released and the session journal closed.
pub struct Refused {
    pub findings: Vec<Finding>,
    pub session: Option<PathBuf>,
}

/// How a run ended.
pub struct Finished {
    pub state: RolloutState,
    pub journal: PathBuf,
    pub session: Option<PathBuf>,
}

pub struct Runner {
    plan: Arc<ResolvedPlan>,
    controller: Controller,
    executor: Executor,
    lock: RolloutLock,
    keep_lock: JoinHandle<()>,
    session_log: Option<SessionLog>,
    /// Actions the engine asked for, started at the next [`Runner::dispatch`].
    actions: Vec<Action>,
    results_tx: UnboundedSender<Input>,
    results: UnboundedReceiver<Input>,
    manual_tx: UnboundedSender<ManualDone>,
    manual: UnboundedReceiver<ManualDone>,
    /// The API servers the client can move between.
    endpoints: Option<ApiEndpoints>,
    /// The node of each running action, to file a failure's evidence.
    running: std::collections::HashMap<u64, String>,
    client: kube::Client,
    outlook_tx: UnboundedSender<(String, std::result::Result<DrainReport, String>)>,
    outlooks: UnboundedReceiver<(String, std::result::Result<DrainReport, String>)>,
    /// The node whose pods were listed last: its handoff label and its
    /// cordon come one after the other, one listing serves both.
    listed_last: Option<String>,
}

fn severity(level: Level) -> Severity {
    match level {
        Level::Block => Severity::Error,
        Level::Warn => Severity::Warn,
        Level::Ok => Severity::Info,
    }
}

impl Runner {
    /// Opens the session journal (`mode` names it), keeps the lock alive
    /// and runs preflight on the synced fleet. A fresh rollout that
    /// preflight blocks is refused before anything changes; a resumed one
    /// goes on (its findings are on the timeline), since stopping halfway
    /// is worse than the finding.
    pub async fn start(
        s: Session,
        mode: &str,
    ) -> Result<std::result::Result<(Runner, Front), Refused>> {
        let Session {
            plan,
            conn,
            mut fleet,
            events,
            controller,
            executor,
            pending,
            lock,
            resumed,
            probes,
        } = s;
        let now = crate::clock::now();
        let (session_log, warning) = match crate::report::session::start_for(
            &mut fleet,
            &conn.context,
            &conn.server,
            mode,
            &probes,
        ) {
            Ok(log) => (Some(log), None),
            Err(e) => (None, Some(format!("no session journal: {e:#}"))),
        };
        let keep_lock = lock.keep_alive();
        let reports = list_drain_reports(&conn.client, &plan, &mut fleet, now).await;
        let mut findings = preflight::run(&fleet, &plan, now);
        if !resumed {
            findings.extend(preflight::drain_findings(&reports, &plan));
        }
        for f in &findings {
            fleet
                .timeline
                .push(now, severity(f.level), "preflight", f.text.clone());
        }
        let blocked = findings.iter().any(|f| f.level == Level::Block);
        if blocked && !resumed {
            let session = end_session(session_log.as_ref(), now);
            keep_lock.abort();
            lock.release().await;
            return Ok(Err(Refused { findings, session }));
        }
        let (results_tx, results) = mpsc::unbounded_channel();
        let (manual_tx, manual) = mpsc::unbounded_channel();
        let (outlook_tx, outlooks) = mpsc::unbounded_channel();
        let mut runner = Runner {
            plan,
            controller,
            executor,
            lock,
            keep_lock,
            session_log,
            actions: pending,
            results_tx,
            results,
            manual_tx,
            manual,
            endpoints: conn.endpoints.clone(),
            running: Default::default(),
            client: conn.client.clone(),
            outlook_tx,
            outlooks,
            listed_last: None,
        };
        runner.observe(&mut fleet, now)?;
        let front = Front {
            fleet,
            events,
            conn,
            findings,
            warning,
        };
        Ok(Ok((runner, front)))
    }

    pub fn engine(&self) -> &Engine {
        self.controller.engine()
    }

    pub fn plan(&self) -> &ResolvedPlan {
        &self.plan
    }

    pub fn view(&self, now: Timestamp) -> RolloutView {
        self.controller.view(now)
    }

    pub fn journal_path(&self) -> &std::path::Path {
        self.controller.journal_path()
    }

    /// Starts the actions asked for since the last call, each on its own
    /// task, and returns them (headless prints them). Before an action
    /// that stops a node's K3s, the client moves off that node's API.
    pub fn dispatch(&mut self, fleet: &Fleet) -> Vec<Action> {
        let actions = std::mem::take(&mut self.actions);
        for a in &actions {
            match a {
                Action::Install { node, .. } | Action::Restart { node, .. } => {
                    self.leave_api_of(node, fleet);
                }
                Action::Cordon { node, .. } | Action::Label { node, .. } => {
                    self.refresh_outlook(node);
                }
                _ => {}
            }
            self.running.insert(a.id(), a.node().to_string());
        }
        dispatch(&self.executor, actions.clone(), &self.results_tx);
        actions
    }

    /// Lists `node`'s pods again as its turn comes: the outlook taken at
    /// the start may be an hour old by the time the drain reaches it.
    fn refresh_outlook(&mut self, node: &str) {
        if self.listed_last.as_deref() == Some(node) {
            return;
        }
        self.listed_last = Some(node.to_string());
        let (client, drain, tx) = (
            self.client.clone(),
            self.plan.drain.clone(),
            self.outlook_tx.clone(),
        );
        let node = node.to_string();
        tokio::spawn(async move {
            let report = node_ops::inspect(&client, &node, &drain).await;
            let _ = tx.send((node, report));
        });
    }

    /// Moves the client off `node`'s API endpoint if it is the one in use,
    /// so the cockpit keeps its eyes while that node restarts.
    fn leave_api_of(&self, node: &str, fleet: &Fleet) {
        let (Some(endpoints), Some(ip)) = (
            &self.endpoints,
            fleet
                .nodes
                .get(node)
                .and_then(|s| s.info.as_ref()?.internal_ip.as_deref()),
        ) else {
            return;
        };
        if !endpoints.avoid(ip) {
            tracing::warn!(
                target: "upgrade",
                "{node} serves the only API endpoint the cockpit knows ({}): it is blind while {node} restarts",
                endpoints.current()
            );
        }
    }

    /// An operator decision; a refusal comes back as `Err(reason)` inside
    /// the `Ok` (and is on the timeline).
    pub fn command(
        &mut self,
        cmd: Command,
        fleet: &mut Fleet,
        now: Timestamp,
    ) -> Result<std::result::Result<(), String>> {
        // Judged on the cluster as it is now: a renewal seen since the last
        // tick must not refuse a resume the operator can see is safe.
        self.observe(fleet, now)?;
        Ok(self
            .controller
            .command(cmd, fleet, now)?
            .map(|a| self.actions.extend(a)))
    }

    /// An operator's action on one node outside the engine (restart K3s,
    /// cordon, ...): on the timeline now, its result later through
    /// [`Runner::next`].
    pub fn manual(&mut self, what: Manual, node: String, fleet: &mut Fleet, now: Timestamp) {
        let action = format!("{} {node}", what.label());
        fleet.timeline.push_kind(
            now,
            Severity::Info,
            "operator",
            EntryKind::Operator {
                action: action.clone(),
            },
            action,
        );
        if what == Manual::RestartK3s {
            self.leave_api_of(&node, fleet);
        }
        let (executor, tx) = (self.executor.clone(), self.manual_tx.clone());
        tokio::spawn(async move {
            let result = executor.manual(what, &node).await;
            let _ = tx.send(ManualDone { what, node, result });
        });
    }

    /// The fleet changed: the engine looks again. True if the rollout
    /// moved (it asked for actions or wrote to the timeline).
    pub fn observe(&mut self, fleet: &mut Fleet, now: Timestamp) -> Result<bool> {
        let before = fleet.timeline.pushed();
        let actions = self.controller.observe(fleet, now)?;
        let moved = !actions.is_empty() || fleet.timeline.pushed() != before;
        self.actions.extend(actions);
        Ok(moved)
    }

    /// Time passed: heartbeat classes (the fleet is ticked before the
    /// engine looks), soaks and timeouts advance.
    pub fn tick(&mut self, fleet: &mut Fleet, now: Timestamp) -> Result<()> {
        let actions = self.controller.tick(fleet, now)?;
        self.actions.extend(actions);
        Ok(())
    }

    /// The next finished action or manual operation.
    pub async fn next(&mut self) -> Option<Done> {
        tokio::select! {
            Some(input) = self.results.recv() => Some(Done::Action(input)),
            Some(manual) = self.manual.recv() => Some(Done::Manual(manual)),
            Some((node, report)) = self.outlooks.recv() => Some(Done::Outlook(node, report)),
            else => None,
        }
    }

    /// Takes a finished task's result. For a manual operation, returns
    /// the line to show the operator.
    pub fn on_done(
        &mut self,
        done: Done,
        fleet: &mut Fleet,
        now: Timestamp,
    ) -> Result<Option<String>> {
        match done {
            Done::Action(input) => {
                if let Input::ActionFinished { id, result, output } = &input
                    && let Some(node) = self.running.remove(id)
                    && let (Err(_), Some(lines)) = (result, output)
                {
                    fleet.failed_step_output(&node, lines, now);
                }
                let actions = self.controller.finished(input, fleet, now)?;
                self.actions.extend(actions);
                Ok(None)
            }
            Done::Manual(ManualDone { what, node, result }) => {
                let (severity, text) = match &result {
                    Ok(()) => (Severity::Info, format!("{} {node}: done", what.label())),
                    Err(e) => (
                        Severity::Error,
                        format!("{} {node} failed: {e}", what.label()),
                    ),
                };
                fleet.timeline.push(now, severity, "operator", text.clone());
                Ok(Some(text))
            }
            Done::Outlook(node, Ok(report)) => {
                let outlook = drain_report::outlook(&report, &self.plan.drain, now);
                let severity = match (outlook.blocks(), outlook.notes.len()) {
                    (0, 0) => Severity::Info,
                    (0, _) => Severity::Warn,
                    _ => Severity::Error,
                };
                let text = format!("drain {node} as its turn comes: {}", outlook.summary());
                fleet.timeline.push(now, severity, "upgrade", text);
                fleet.set_drain_outlook(&node, outlook);
                Ok(None)
            }
            // The drain itself lists the pods again and names what fails.
            Done::Outlook(node, Err(e)) => {
                tracing::debug!(target: "upgrade", "drain outlook of {node}: {e}");
                Ok(None)
            }
        }
    }

    /// Closes the session journal and releases the lock.
    pub async fn finish(self, now: Timestamp) -> Finished {
        let session = end_session(self.session_log.as_ref(), now);
        self.keep_lock.abort();
        let state = self.controller.engine().state().clone();
        let journal = self.controller.journal_path().to_path_buf();
        self.lock.release().await;
        Finished {
            state,
            journal,
            session,
        }
    }
}

/// Every plan node's drain report from one listing; each node's outlook
/// goes to the fleet, for the panel and the node detail.
async fn list_drain_reports(
    client: &kube::Client,
    plan: &ResolvedPlan,
    fleet: &mut Fleet,
    now: Timestamp,
) -> std::result::Result<Vec<DrainReport>, String> {
    let nodes: Vec<String> = plan.nodes.iter().map(|n| n.name.clone()).collect();
    let reports = node_ops::reports(client, &nodes, &plan.drain).await;
    for r in reports.iter().flatten() {
        fleet.set_drain_outlook(&r.node, drain_report::outlook(r, &plan.drain, now));
    }
    reports
}

fn end_session(log: Option<&SessionLog>, now: Timestamp) -> Option<PathBuf> {
    log.map(|log| {
        log.end(now);
        log.path().to_path_buf()
    })
}
