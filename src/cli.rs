//! What each subcommand does, between argument parsing (main.rs) and the
//! modules that do the work.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use color_eyre::eyre::{Result, WrapErr};
use tokio::sync::mpsc;

pub use crate::cluster::ClusterTarget;
use crate::lab::scenario::Scenario;
use crate::lab::{Lab, LabConfig};
use crate::logging::LogGuard;
use crate::tui::app::{App, Look};
use crate::tui::control::Setup;

#[derive(clap::Args, Debug)]
pub struct LabOptions {
    /// Scenario name (healthy, incident-2026-01-25) or a TOML file.
    #[arg(long, default_value = "healthy")]
    pub scenario: String,
    /// Replace the scenario's nodes with N generated ones (scale runs).
    #[arg(long)]
    pub nodes: Option<usize>,
    /// Address to serve the Kubernetes API on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// Allow a non-loopback listen address (the lab has no authentication).
    #[arg(long)]
    pub allow_non_loopback: bool,
    /// Where to write the kubeconfig for the lab.
    #[arg(long, default_value = "k3s-lab.kubeconfig")]
    pub kubeconfig_out: PathBuf,
    /// Record every API request as a JSON line.
    #[arg(long)]
    pub audit_log: Option<PathBuf>,
    /// Record every committed change with its instant, one line each
    /// (`RV UNIX_NS KIND NAMESPACE/NAME TYPE`; for benchmarks).
    #[arg(long)]
    pub commit_log: Option<PathBuf>,
    /// Override the scenario's time compression.
    #[arg(long)]
    pub time_scale: Option<f64>,
    /// Do not replay the scenario's old upgrade automation.
    #[arg(long)]
    pub no_replay: bool,
    /// Write an upgrade plan for the lab's nodes (SSH endpoints, keys,
    /// known_hosts filled in); implies --no-replay, since the plan is for
    /// k3s-cockpit to drive the upgrade.
    #[arg(long)]
    pub plan_out: Option<PathBuf>,
    /// Append the lab's own record of each service outage (a period with no
    /// listener on the service IP) to FILE as JSON lines.
    #[arg(long, value_name = "FILE")]
    pub outage_log: Option<PathBuf>,
    /// Append every command a node's shell starts (node, command) to FILE
    /// as JSON lines.
    #[arg(long, value_name = "FILE")]
    pub node_log: Option<PathBuf>,
    /// Ask clients for a bearer token (written into the kubeconfig) that
    /// expires after DURATION ("10s", "1h"): open watches end then, and
    /// every request after it is answered 401, as with an expired
    /// service-account token.
    #[arg(long, value_name = "DURATION", value_parser = crate::durations::parse_duration)]
    pub token_ttl: Option<std::time::Duration>,
    /// Answer 403 for every request on RESOURCE (a plural name such as
    /// "leases"), as a role without it would; repeatable.
    #[arg(long, value_name = "RESOURCE")]
    pub forbid: Vec<String>,
    /// Serve the API on each server node's own loopback address
    /// (127.78.0.N, same port), stopped while that node's K3s restarts, and
    /// point the kubeconfig at the first server, like a kubeconfig copied
    /// from /etc/rancher/k3s/k3s.yaml.
    #[arg(long)]
    pub api_per_server: bool,
}

fn load_scenario(name: &str, nodes: Option<usize>, time_scale: Option<f64>) -> Result<Scenario> {
    let mut scenario = Scenario::load(name)?;
    if let Some(n) = nodes {
        scenario = scenario.with_generated_nodes(n);
    }
    if let Some(scale) = time_scale {
        if scale.is_nan() || scale <= 0.0 {
            color_eyre::eyre::bail!("--time-scale must be positive, got {scale}");
        }
        scenario.time_scale = scale;
    }
    Ok(scenario)
}

/// The lab's auth from its flags: a token only when it is to expire.
fn lab_auth(ttl: Option<std::time::Duration>, forbid: Vec<String>) -> crate::lab::auth::Auth {
    let auth = crate::lab::auth::Auth::default().forbidding(forbid);
    match ttl {
        Some(ttl) => {
            let token: String = (0..32)
                .map(|_| char::from(b"0123456789abcdef"[rand::random_range(0..16)]))
                .collect();
            auth.with_token(token, Some(ttl))
        }
        None => auth,
    }
}

pub async fn run_lab(opts: LabOptions) -> Result<()> {
    let scenario = load_scenario(&opts.scenario, opts.nodes, opts.time_scale)?;
    let mut config = LabConfig::new(scenario);
    config.listen = opts.listen;
    config.allow_non_loopback = opts.allow_non_loopback;
    config.audit_log = opts.audit_log;
    config.replay = !opts.no_replay && opts.plan_out.is_none();
    config.outage_log = opts.outage_log;
    config.node_log = opts.node_log;
    config.commit_log = opts.commit_log;
    config.auth = lab_auth(opts.token_ttl, opts.forbid);
    config.api_per_server = opts.api_per_server;
    let lab = Lab::start(config).await?;
    let key_dir = opts
        .kubeconfig_out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), PathBuf::from);
    // Absolute, so the plan written below works from any directory.
    let key_dir = std::path::absolute(&key_dir)
        .wrap_err_with(|| format!("cannot resolve {}", key_dir.display()))?;
    let ssh = crate::lab::shell::start_ssh(&lab.sim, &key_dir, lab.scenario.proxmox_host).await?;
    if let Some(path) = &opts.plan_out {
        let text = crate::lab::plan_out::plan_toml(&lab.scenario, &ssh);
        std::fs::write(path, text)
            .wrap_err_with(|| format!("cannot write the plan {}", path.display()))?;
    }
    // Last: scripts wait for the kubeconfig, so everything else is ready.
    lab.write_kubeconfig(&opts.kubeconfig_out)?;
    let kc = opts.kubeconfig_out.display();
    println!(
        "k3s-cockpit lab: scenario {} with {} nodes serving on {}",
        lab.scenario.name,
        lab.scenario.nodes.len(),
        lab.server_url()
    );
    println!("  kubeconfig: {kc}");
    println!("  kubectl --kubeconfig {kc} get nodes -o wide");
    println!("  k3s-cockpit watch --kubeconfig {kc}");
    for (node, addr) in &ssh.nodes {
        println!(
            "  ssh {node}: ssh -i {} -o UserKnownHostsFile={} -p {} root@127.0.0.1",
            ssh.keys.client_key_path.display(),
            ssh.keys.known_hosts_path.display(),
            addr.port()
        );
    }
    if let Some(addr) = ssh.proxmox {
        println!(
            "  proxmox host: port {} (qm guest exec VMID -- CMD)",
            addr.port()
        );
    }
    for s in &lab.scenario.services {
        println!(
            "  service {}/{}: http://{}:{}/ answers while a live speaker announces it",
            s.namespace, s.name, s.ip, s.port
        );
    }
    if let Some(path) = &opts.plan_out {
        println!(
            "  upgrade plan: {0}\n  k3s-cockpit upgrade --plan {0} --kubeconfig {kc}",
            path.display()
        );
    }
    println!("Ctrl-C stops the lab.");
    tokio::signal::ctrl_c()
        .await
        .wrap_err("waiting for Ctrl-C")?;
    println!("lab stopped");
    Ok(())
}

/// `watch`: the read-only cockpit on a real (or lab) cluster.
pub async fn run_watch(
    target: ClusterTarget,
    probes: crate::probe::ProbeArgs,
    log: LogGuard,
) -> Result<ExitCode> {
    let conn = crate::cluster::connect(&target, true).await?;
    crate::cluster::check_reachable(&conn).await?;
    let (tx, rx) = mpsc::unbounded_channel();
    crate::cluster::liveness::spawn_all(&conn.client, &tx);
    conn.follow_endpoints(&tx);
    let selection = probes.selection();
    let rx = crate::probe::attach(selection.clone(), rx);
    let mut app = App::new(&conn.context, &conn.server, true, crate::clock::now())
        .with_look(Look::from_env());
    app.log_panel = log.log_panel();
    crate::tui::run(app, rx, "watch", &selection).await?;
    Ok(ExitCode::SUCCESS)
}

/// `demo`: the lab and the cockpit in one process. By default the cockpit
/// drives the post-mortem's upgrade itself (control mode); `--watch` shows
/// the old automation replaying it, read-only.
pub async fn run_demo(
    scenario: &str,
    watch: bool,
    no_handoff: bool,
    log: LogGuard,
) -> Result<ExitCode> {
    let scenario = load_scenario(scenario, None, None)?;
    let mut config = LabConfig::new(scenario);
    config.replay = watch;
    let lab = Lab::start(config).await?;
    let dir = crate::paths::state_dir().join("demo");
    std::fs::create_dir_all(&dir)
        .wrap_err_with(|| format!("cannot create the demo directory {}", dir.display()))?;
    let kubeconfig = dir.join("demo.kubeconfig");
    lab.write_kubeconfig(&kubeconfig)?;
    let target = ClusterTarget {
        kubeconfig: Some(kubeconfig),
        context: None,
    };
    // The lab serves HTTP on every service IP while it is announced.
    let selection = crate::probe::Selection {
        specs: Vec::new(),
        all: Some(crate::probe::Check::http()),
        // Loopback never flaps, and at four-fold time one failure is 4 s.
        failures: 1,
    };
    if watch {
        let conn = crate::cluster::connect(&target, true).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        crate::cluster::liveness::spawn_all(&conn.client, &tx);
        conn.follow_endpoints(&tx);
        let rx = crate::probe::attach(selection.clone(), rx);
        let mut app = App::new(
            &format!("demo: {}", lab.scenario.name),
            &conn.server,
            true,
            crate::clock::now(),
        )
        .with_look(Look::from_env());
        app.log_panel = log.log_panel();
        app.hint = Some(
            " Demo: the old automation upgrades every node (v1.33 → v1.34 → v1.35), waits 30 s each, and moves on. Watch the heartbeats a minute later."
                .into(),
        );
        crate::tui::run(app, rx, "demo", &selection).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let ssh = crate::lab::shell::start_ssh(&lab.sim, &dir, lab.scenario.proxmox_host).await?;
    let plan = dir.join("demo-plan.toml");
    let mut text = crate::lab::plan_out::plan_toml(&lab.scenario, &ssh);
    if no_handoff {
        text = format!("handoff = \"off\"\n{text}");
    }
    std::fs::write(&plan, text)
        .wrap_err_with(|| format!("cannot write the demo plan {}", plan.display()))?;
    // Every demo is a fresh lab: an old journal would describe another one.
    let journal = crate::upgrade::Journal::path_for_plan(&plan);
    if journal.exists() {
        std::fs::remove_file(&journal).wrap_err_with(|| {
            format!("cannot remove the old demo journal {}", journal.display())
        })?;
    }
    let mut opts = crate::rollout::UpgradeOptions::for_plan(plan, target);
    opts.break_lock = true;
    let session = match crate::rollout::open(&opts, selection).await? {
        Ok(s) => s,
        Err(crate::rollout::BadInput(e)) => color_eyre::eyre::bail!("demo plan: {e}"),
    };
    let hint = " Demo: s start (C canary). On v1.35 a kubelet dies after its upgrade: the soak halts. R restarts K3s, p resumes, B rolls back";
    let setup = Setup {
        mode: "demo",
        hint: Some(hint.into()),
        log_panel: log.log_panel(),
        look: Look::from_env(),
    };
    crate::tui::control::run(session, setup).await
}

/// `check-plan`: validate a plan against the cluster's nodes (read-only)
/// and print what would run, node by node, then check every node over SSH
/// unless `offline`. Exit 2 on a bad plan or a node that fails a check.
pub async fn run_check_plan(
    plan_path: &std::path::Path,
    target: ClusterTarget,
    offline: bool,
) -> Result<ExitCode> {
    let plan = match crate::upgrade::Plan::load(plan_path) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let conn = crate::cluster::connect(&target, true).await?;
    crate::cluster::check_reachable(&conn).await?;
    let cluster = crate::rollout::cluster_nodes(&conn).await?;
    match crate::upgrade::resolve(&plan, &cluster) {
        Ok(resolved) => {
            println!("{resolved}");
            let drained = print_drain_report(&conn.client, &resolved).await?;
            if offline {
                return Ok(drained);
            }
            let count = resolved.nodes.len();
            match crate::rollout::check_nodes(&conn, &std::sync::Arc::new(resolved), &cluster).await
            {
                Ok(()) => {
                    println!(
                        "node checks: all {count} nodes pass (ssh, privilege, unit, binary, arch, disk, target binary)"
                    );
                    Ok(drained)
                }
                Err(crate::rollout::BadInput(e)) => {
                    eprintln!("{e}");
                    Ok(ExitCode::from(2))
                }
            }
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::from(2))
        }
    }
}

/// check-plan's drain report: exit 1 when a line blocks the rollout.
async fn print_drain_report(
    client: &kube::Client,
    plan: &crate::upgrade::ResolvedPlan,
) -> Result<ExitCode> {
    use crate::rollout::drain_report;
    let nodes: Vec<String> = plan.nodes.iter().map(|n| n.name.clone()).collect();
    let reports = crate::rollout::node_ops::reports(client, &nodes, &plan.drain)
        .await
        .map_err(|e| color_eyre::eyre::eyre!(e))?;
    println!("\nDrain report (before anything is cordoned):");
    for r in &reports {
        println!("  {}", drain_report::summary(r));
    }
    let lines = drain_report::describe(&reports, &plan.drain);
    for (level, text) in &lines {
        let tag = match level {
            crate::upgrade::plan::Level::Warn => "warn ",
            crate::upgrade::plan::Level::Block => "BLOCK",
        };
        println!("  {tag} {text}");
    }
    let blocked = lines
        .iter()
        .any(|(l, _)| *l == crate::upgrade::plan::Level::Block);
    Ok(if blocked {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `upgrade`: the rollout, headless or in the cockpit; `--dry-run` only
/// simulates. Bad input exits 2, failures to start exit 1.
pub async fn run_upgrade(opts: crate::rollout::UpgradeOptions, log: LogGuard) -> Result<ExitCode> {
    if opts.dry_run {
        return crate::rollout::run_dry(&opts).await;
    }
    let (code, why) = match crate::rollout::open(&opts, crate::probe::Selection::default()).await {
        Ok(Ok(s)) if opts.headless => return crate::rollout::headless::run(s, &opts).await,
        Ok(Ok(s)) => return run_control(s, log).await,
        Ok(Err(crate::rollout::BadInput(e))) => (2, e),
        Err(e) => (1, format!("error: {e:#}")),
    };
    eprintln!("k3s-cockpit: {why}");
    if opts.headless {
        crate::rollout::headless::exit_before_start(code, &why);
    }
    Ok(ExitCode::from(code))
}

/// `upgrade` in the cockpit.
async fn run_control(session: crate::rollout::Session, log: LogGuard) -> Result<ExitCode> {
    let setup = Setup {
        mode: "upgrade",
        hint: None,
        log_panel: log.log_panel(),
        look: Look::from_env(),
    };
    crate::tui::control::run(session, setup).await
}
