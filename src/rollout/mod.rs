//! `k3s-cockpit upgrade`: the edges around the pure rollout engine. It
//! resolves the plan against the live cluster, takes the cluster lock,
//! opens (or resumes) the journal, feeds the engine observations built from
//! the watchers' fleet model, and runs its actions through the executor,
//! headless (JSON lines) or in the cockpit.

pub mod artifacts;
pub mod controller;
pub mod drain_report;
pub mod dry_run;
pub mod eviction;
pub mod executor;
pub mod handoff_check;
pub mod headless;
pub mod lock;
pub mod node_check;
pub mod node_ops;
pub mod observe;
pub mod preflight;
pub mod restore_exec;
pub mod resume;
pub mod runner;
pub mod unit_args;
pub mod upload;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use color_eyre::eyre::{Result, WrapErr, eyre};
use jiff::SignedDuration;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use self::controller::Controller;
use self::executor::Executor;
use self::lock::RolloutLock;
use self::observe::Observer;
use crate::cluster::{ClusterTarget, Connection};
use crate::model::ClusterEvent;
use crate::model::fleet::Fleet;
use crate::upgrade::journal::Journal;
use crate::upgrade::plan::Role;
use crate::upgrade::{Action, ClusterNode, Input, Plan, Recorder, ResolvedPlan};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CanaryConfirm {
    /// Confirm the canary as soon as its soak passed.
    Auto,
    /// Stop (exit 1) when the canary waits for confirmation.
    Never,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnHalt {
    /// Stop and exit 1, leaving the rollout halted (resume later).
    Stop,
    /// Roll back the upgraded nodes, then exit.
    Rollback,
}

#[derive(clap::Args, Debug)]
pub struct UpgradeOptions {
    /// The upgrade plan (TOML; see assets/plans/example.toml).
    #[arg(long)]
    pub plan: PathBuf,
    #[command(flatten)]
    pub cluster: ClusterTarget,
    /// No cockpit: print one JSON object per line per transition.
    /// Exit status 0 done, 1 halted or failed, 2 bad input.
    #[arg(long)]
    pub headless: bool,
    /// Play the rollout on a simulated copy of the cluster and print the
    /// commands it would send; reads the cluster, changes nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Continue the rollout recorded in the plan's journal.
    #[arg(long)]
    pub resume: bool,
    /// Headless: start with a canary (first node only, canary soak).
    #[arg(long)]
    pub canary: bool,
    /// Headless: what to do when the canary waits for confirmation.
    #[arg(long, value_enum, default_value = "never")]
    pub canary_confirm: CanaryConfirm,
    /// Headless: what to do when the rollout halts.
    #[arg(long, value_enum, default_value = "stop")]
    pub on_halt: OnHalt,
    /// Headless, with --resume: roll back the recorded rollout (reinstall
    /// the previous versions, newest change first).
    #[arg(long, requires = "resume")]
    pub rollback: bool,
    /// Headless, with --rollback or --on-halt rollback: when servers on
    /// embedded etcd crossed a minor, carry out K3s's cluster-wide restore
    /// of the pre-rollout snapshot (every server is stopped; the cluster is
    /// down until the first server is back). Without it that is refused.
    #[arg(long)]
    pub allow_cluster_restore: bool,
    /// Override the plan's soak after each node (e.g. 30s).
    #[arg(long, value_parser = crate::durations::parse_signed)]
    pub soak: Option<SignedDuration>,
    /// Override the plan's canary soak.
    #[arg(long, value_parser = crate::durations::parse_signed)]
    pub canary_soak: Option<SignedDuration>,
    /// Override the plan's final stability watch after the last node
    /// (0s: none).
    #[arg(long, value_parser = crate::durations::parse_signed)]
    pub final_soak: Option<SignedDuration>,
    /// Judge only the node being upgraded, like the post-mortem's script.
    /// For comparison only.
    #[arg(long)]
    pub no_global_gate: bool,
    /// Take over a stale rollout lock left by a cockpit that died.
    #[arg(long)]
    pub break_lock: bool,
    /// Journal file (default: PLAN.journal.jsonl next to the plan).
    #[arg(long)]
    pub journal: Option<PathBuf>,
}

impl UpgradeOptions {
    /// Control mode on `plan` with every flag at its default.
    pub fn for_plan(plan: PathBuf, cluster: ClusterTarget) -> Self {
        UpgradeOptions {
            plan,
            cluster,
            headless: false,
            dry_run: false,
            resume: false,
            canary: false,
            canary_confirm: CanaryConfirm::Never,
            on_halt: OnHalt::Stop,
            rollback: false,
            allow_cluster_restore: false,
            soak: None,
            canary_soak: None,
            final_soak: None,
            no_global_gate: false,
            break_lock: false,
            journal: None,
        }
    }
}

/// Bad input: printed, exit status 2.
pub struct BadInput(pub String);

/// Lists the cluster's nodes as the plan resolver needs them.
pub async fn cluster_nodes(conn: &Connection) -> Result<Vec<ClusterNode>> {
    let nodes: kube::Api<crate::cluster::node_view::NodeView> = kube::Api::all(conn.client.clone());
    let list = nodes
        .list(&Default::default())
        .await
        .wrap_err_with(|| format!("listing nodes on {}", conn.server))?;
    let mut cluster = Vec::new();
    for n in &list.items {
        let info = crate::cluster::convert::node(n);
        let version = info.version.parse().map_err(|e| {
            eyre!(
                "node {}: cannot parse version {:?}: {e}",
                info.name,
                info.version
            )
        })?;
        let role = if info.is_server() {
            Role::Server
        } else {
            Role::Agent
        };
        cluster.push(ClusterNode {
            name: info.name,
            role,
            version,
            etcd: info.roles.iter().any(|r| r == "etcd"),
            node_args: info.node_args,
        });
    }
    Ok(cluster)
}

/// Loads and resolves the plan against the cluster, applying the command
/// line's overrides. Errors here are the operator's input: exit 2.
pub async fn resolve_plan(
    opts: &UpgradeOptions,
    conn: &Connection,
) -> Result<std::result::Result<ResolvedPlan, BadInput>> {
    let nodes = cluster_nodes(conn).await?;
    Ok(resolve_on(opts, &nodes))
}

/// [`resolve_plan`] on nodes already listed.
fn resolve_on(
    opts: &UpgradeOptions,
    nodes: &[ClusterNode],
) -> std::result::Result<ResolvedPlan, BadInput> {
    let plan = Plan::load(&opts.plan).map_err(|e| BadInput(e.to_string()))?;
    let mut resolved = match crate::upgrade::resolve(&plan, nodes) {
        Ok(r) => r,
        Err(e) => return Err(BadInput(e.to_string())),
    };
    if let Some(soak) = opts.soak {
        resolved.timings.soak = soak;
    }
    if let Some(soak) = opts.canary_soak {
        resolved.timings.canary_soak = soak;
    }
    if let Some(soak) = opts.final_soak {
        resolved.timings.final_soak = soak;
    }
    if opts.no_global_gate {
        resolved.gates.global_gate = false;
    }
    Ok(resolved)
}

/// `--resume`: the journal's rollout against the plan and the cluster as
/// they are now. Any difference refuses the resume (bad input, exit 2)
/// before the lock is taken or anything is sent.
fn check_resume(
    journal: &std::path::Path,
    plan: &ResolvedPlan,
    live: &[ClusterNode],
) -> std::result::Result<(), BadInput> {
    let (engine, _) = crate::upgrade::journal::replay(journal)
        .map_err(|e| BadInput(format!("resuming from {}: {e}", journal.display())))?;
    let found = resume::differences(&engine.view(crate::clock::now()), &plan.into(), live);
    if found.is_empty() {
        return Ok(());
    }
    Err(BadInput(format!(
        "cannot resume {}: the cluster or the plan no longer matches it:\n  - {}\nNothing was changed. Put things back as the journal expects, or move the journal away to plan afresh from the cluster as it is.",
        journal.display(),
        found.join("\n  - ")
    )))
}

/// Everything a running rollout needs, set up and checked.
pub struct Session {
    pub plan: Arc<ResolvedPlan>,
    pub conn: Connection,
    pub fleet: Fleet,
    pub events: UnboundedReceiver<ClusterEvent>,
    pub controller: Controller,
    pub executor: Executor,
    /// Actions to run at once (re-issued after `--resume`).
    pub pending: Vec<Action>,
    pub lock: RolloutLock,
    pub resumed: bool,
    /// What the probes check (the plan's, plus any the caller added).
    pub probes: crate::probe::Selection,
}

/// How long to wait for the watchers' first lists before judging the
/// cluster.
const SYNC_TIMEOUT: Duration = Duration::from_secs(15);

/// Connects, resolves, locks, opens the journal, starts the watchers and
/// the probes (the plan's gates plus `extra_probes`) and syncs the fleet.
pub async fn open(
    opts: &UpgradeOptions,
    extra_probes: crate::probe::Selection,
) -> Result<std::result::Result<Session, BadInput>> {
    // A kubeconfig that cannot be used is the operator's input.
    let conn = match crate::cluster::connect(&opts.cluster, false).await {
        Ok(conn) => conn,
        Err(e) => return Ok(Err(BadInput(format!("{e:#}")))),
    };
    crate::cluster::check_reachable(&conn).await?;
    // The watchers' first lists load while the plan is resolved.
    let (tx, events) = mpsc::unbounded_channel();
    crate::cluster::liveness::spawn_all(&conn.client, &tx);
    conn.follow_endpoints(&tx);
    let live = cluster_nodes(&conn).await?;
    let plan = match resolve_on(opts, &live) {
        Ok(p) => Arc::new(p),
        Err(bad) => return Ok(Err(bad)),
    };
    let journal = match journal_for(opts) {
        Ok(journal) => journal,
        Err(bad) => return Ok(Err(bad)),
    };
    if opts.resume
        && let Err(bad) = check_resume(&journal, &plan, &live)
    {
        return Ok(Err(bad));
    }
    // Every node checked before anything changes, the lock included.
    if !opts.resume
        && let Err(bad) = check_nodes(&conn, &plan, &live).await
    {
        return Ok(Err(bad));
    }
    let lock = RolloutLock::acquire(&conn.client, &lock::identity(), opts.break_lock)
        .await
        .map_err(|e| eyre!(e))?;
    let mut probes = crate::probe::Selection::from_plan(&plan.gates.probes);
    probes.specs.extend(extra_probes.specs);
    probes.all = extra_probes.all;
    probes.failures = plan.gates.probe_failures;
    let mut events = crate::probe::attach(probes.clone(), events);
    let mut fleet = Fleet::new();
    sync(&mut fleet, &mut events, &plan).await;
    // Preflight says why (and names the outage to expect).
    let handoff = handoff_check::effective_handoff(&fleet, &plan);
    let plan = if handoff == plan.handoff {
        plan
    } else {
        Arc::new(ResolvedPlan {
            handoff,
            ..(*plan).clone()
        })
    };
    let (recorder, pending) = open_recorder(opts.resume, &journal, &plan)?;
    let observer = Observer::new(plan.timings.max_heartbeat_age, plan.gates.missed_renewals);
    let controller = Controller::new(recorder, observer);
    let executor = Executor::new(conn.client.clone(), plan.clone());
    Ok(Ok(Session {
        plan,
        conn,
        fleet,
        events,
        controller,
        executor,
        pending,
        lock,
        resumed: opts.resume,
        probes,
    }))
}

/// The node checks on every node of the plan, all of them reported.
pub async fn check_nodes(
    conn: &Connection,
    plan: &Arc<ResolvedPlan>,
    live: &[ClusterNode],
) -> std::result::Result<(), BadInput> {
    let executor = Executor::new(conn.client.clone(), plan.clone());
    let mut failures = Vec::new();
    for n in &plan.nodes {
        let kubelet = live
            .iter()
            .find(|c| c.name == n.name)
            .map_or(n.version.to_string(), |c| c.version.to_string());
        if let Err(e) = executor.check_node(&n.name, &kubelet).await {
            failures.push(e);
        }
    }
    if failures.is_empty() {
        return Ok(());
    }
    Err(BadInput(format!(
        "node checks failed; nothing was changed (no node cordoned):\n  {}",
        failures.join("\n  ")
    )))
}

/// The rollout's journal: there must be one to `--resume`, and none to
/// start afresh (a second rollout must not append to the first's).
fn journal_for(opts: &UpgradeOptions) -> std::result::Result<PathBuf, BadInput> {
    let journal = opts
        .journal
        .clone()
        .unwrap_or_else(|| Journal::path_for_plan(&opts.plan));
    let journal_exists = std::fs::metadata(&journal).is_ok_and(|m| m.len() > 0);
    if opts.resume && !journal_exists {
        return Err(BadInput(format!(
            "--resume: there is no journal at {} to resume",
            journal.display()
        )));
    }
    if !opts.resume && journal_exists {
        return Err(BadInput(format!(
            "{} already records a rollout: pass --resume to continue it, or move the file away to start over",
            journal.display()
        )));
    }
    Ok(journal)
}

/// The journal's recorder: replayed on `resume` (with the actions to
/// re-issue), else new for `plan`.
fn open_recorder(
    resume: bool,
    journal: &Path,
    plan: &ResolvedPlan,
) -> Result<(Recorder, Vec<Action>)> {
    let now = crate::clock::now();
    if !resume {
        let recorder = Recorder::create(journal, plan.engine_config(), now)
            .wrap_err_with(|| format!("creating the rollout journal {}", journal.display()))?;
        return Ok((recorder, Vec::new()));
    }
    let (recorder, warnings, actions) = Recorder::resume(journal, now)
        .map_err(|e| eyre!("resuming from {}: {e}", journal.display()))?;
    for w in warnings {
        tracing::warn!(target: "upgrade", "{}: {w}", journal.display());
    }
    // The journal's timings win: the rollout keeps the pace it began with.
    if recorder.engine().config().timings != plan.engine_config().timings {
        tracing::warn!(
            target: "upgrade",
            "the plan's timings changed since the journal began; continuing with the journal's"
        );
    }
    Ok((recorder, actions))
}

/// Feeds the first lists into the fleet until every plan node, its lease
/// and every gated service is known (or the timeout passes: preflight then
/// reports what is missing).
async fn sync(
    fleet: &mut Fleet,
    events: &mut UnboundedReceiver<ClusterEvent>,
    plan: &ResolvedPlan,
) {
    let deadline = tokio::time::Instant::now() + SYNC_TIMEOUT;
    let complete = |fleet: &Fleet| {
        plan.nodes.iter().all(|n| {
            fleet
                .nodes
                .get(&n.name)
                .is_some_and(|s| s.info.is_some() && (s.lease.is_some() || !fleet.leases_readable))
        }) && plan.gates.services.iter().all(|s| {
            s.split_once('/').is_some_and(|(ns, name)| {
                fleet
                    .services
                    .get(&(ns.to_string(), name.to_string()))
                    .is_some_and(|svc| svc.announcer.is_some())
            })
        })
    };
    // Completeness costs O(plan nodes): judged once per batch of events,
    // not once per event, or a first list of thousands of nodes costs
    // their square.
    while !complete(fleet) {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(ev)) => {
                let now = crate::clock::now();
                fleet.apply(ev, now);
                while let Ok(ev) = events.try_recv() {
                    fleet.apply(ev, now);
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    fleet.tick(crate::clock::now());
}

/// Starts each action on its own task; its result comes back on `results`.
pub fn dispatch(executor: &Executor, actions: Vec<Action>, results: &UnboundedSender<Input>) {
    for action in actions {
        let executor = executor.clone();
        let results = results.clone();
        tokio::spawn(async move {
            let done = executor.run(action).await;
            let _ = results.send(done);
        });
    }
}

/// `upgrade --dry-run`: read-only, prints the simulated rollout.
pub async fn run_dry(opts: &UpgradeOptions) -> Result<ExitCode> {
    let conn = crate::cluster::connect(&opts.cluster, true).await?;
    crate::cluster::check_reachable(&conn).await?;
    let plan = match resolve_plan(opts, &conn).await? {
        Ok(p) => p,
        Err(BadInput(e)) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    print!("{plan}");
    for line in dry_run::simulate(&plan, crate::clock::now()) {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}
