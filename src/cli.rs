//! What each subcommand does, between argument parsing (main.rs) and the
//! modules that do the work.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use color_eyre::eyre::{Result, WrapErr};
use tokio::sync::mpsc;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, filter};

pub use crate::cluster::ClusterTarget;
use crate::lab::scenario::Scenario;
use crate::lab::{Lab, LabConfig};
use crate::tui::app::App;

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

pub async fn run_lab(opts: LabOptions) -> Result<()> {
    let scenario = load_scenario(&opts.scenario, opts.nodes, opts.time_scale)?;
    let mut config = LabConfig::new(scenario);
    config.listen = opts.listen;
    config.allow_non_loopback = opts.allow_non_loopback;
    config.audit_log = opts.audit_log;
    config.commit_log = opts.commit_log;
    config.replay = !opts.no_replay;
    let lab = Lab::start(config).await?;
    lab.write_kubeconfig(&opts.kubeconfig_out)?;
    let key_dir = opts
        .kubeconfig_out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), PathBuf::from);
    let ssh = crate::lab::shell::start_ssh(&lab.sim, &key_dir, lab.scenario.proxmox_host).await?;
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
    println!("Ctrl-C stops the lab.");
    tokio::signal::ctrl_c()
        .await
        .wrap_err("waiting for Ctrl-C")?;
    println!("lab stopped");
    Ok(())
}

/// `watch`: the read-only cockpit on a real (or lab) cluster.
pub async fn run_watch(target: ClusterTarget, _log: LogGuard) -> Result<ExitCode> {
    let conn = crate::cluster::connect(&target, true).await?;
    crate::cluster::check_reachable(&conn).await?;
    let (tx, rx) = mpsc::unbounded_channel();
    crate::cluster::watch::spawn_all(&conn.client, &tx);
    let app = App::new(&conn.context, &conn.server, true, jiff::Timestamp::now());
    crate::tui::run(app, rx).await?;
    Ok(ExitCode::SUCCESS)
}

/// `demo`: the lab and the cockpit in one process.
pub async fn run_demo(scenario: &str, _log: LogGuard) -> Result<ExitCode> {
    let scenario = load_scenario(scenario, None, None)?;
    let lab = Lab::start(LabConfig::new(scenario)).await?;
    let dir = state_dir();
    let kubeconfig = dir.join("demo.kubeconfig");
    lab.write_kubeconfig(&kubeconfig)?;
    let target = ClusterTarget {
        kubeconfig: Some(kubeconfig),
        context: None,
    };
    let conn = crate::cluster::connect(&target, true).await?;
    let (tx, rx) = mpsc::unbounded_channel();
    crate::cluster::watch::spawn_all(&conn.client, &tx);
    let mut app = App::new(
        &format!("demo: {}", lab.scenario.name),
        &conn.server,
        true,
        jiff::Timestamp::now(),
    );
    app.hint = Some(
        " Demo: the old automation upgrades every node (v1.33 → v1.34 → v1.35), waits 30 s each, and moves on. Watch the heartbeats a minute later."
            .into(),
    );
    crate::tui::run(app, rx).await?;
    Ok(ExitCode::SUCCESS)
}

/// `$XDG_STATE_HOME/k3s-cockpit` (or `~/.local/state/k3s-cockpit`).
pub fn state_dir() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("k3s-cockpit")
}

/// Keeps logging alive for the program's life.
pub struct LogGuard {
    pub path: PathBuf,
}

fn env_filter() -> EnvFilter {
    EnvFilter::try_from_env("K3S_COCKPIT_LOG_LEVEL").unwrap_or_else(|_| {
        EnvFilter::new("info,kube=warn,hyper=warn,tower=warn,rustls=warn,russh=warn")
    })
}

/// For the TUI: logs go to a file, timeline events also to the log panel.
pub fn init_tui_logging(path: Option<PathBuf>) -> Result<LogGuard> {
    let path = path.unwrap_or_else(|| state_dir().join("k3s-cockpit.log"));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .wrap_err_with(|| format!("cannot create log directory {}", dir.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .wrap_err_with(|| format!("cannot open log file {}", path.display()))?;
    tui_logger::set_default_level(log_level_info());
    let panel = tui_logger::TuiTracingSubscriberLayer.with_filter(filter::filter_fn(|meta| {
        matches!(meta.target(), "timeline" | "upgrade")
    }));
    let file_layer = tracing_subscriber::fmt::layer()
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .with_filter(env_filter());
    tracing_subscriber::registry()
        .with(file_layer)
        .with(panel.with_filter(LevelFilter::INFO))
        .try_init()
        .wrap_err("logging was already initialised")?;
    Ok(LogGuard { path })
}

fn log_level_info() -> tui_logger::LevelFilter {
    tui_logger::LevelFilter::Info
}

/// For non-TUI commands: logs to stderr.
pub fn init_stderr_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(env_filter())
        .with_writer(std::io::stderr)
        .try_init();
}

/// `check-plan`: validate a plan against the cluster's nodes (read-only)
/// and print what would run, node by node. Exit 2 on a bad plan.
pub async fn run_check_plan(
    plan_path: &std::path::Path,
    target: ClusterTarget,
) -> Result<ExitCode> {
    use crate::upgrade::plan::Role;
    let plan = match crate::upgrade::Plan::load(plan_path) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let conn = crate::cluster::connect(&target, true).await?;
    crate::cluster::check_reachable(&conn).await?;
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(conn.client.clone());
    let list = nodes
        .list(&Default::default())
        .await
        .wrap_err_with(|| format!("listing nodes on {}", conn.server))?;
    let mut cluster = Vec::new();
    for n in &list.items {
        let info = crate::cluster::convert::node(n);
        let version = info.version.parse().map_err(|e| {
            color_eyre::eyre::eyre!(
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
        cluster.push(crate::upgrade::ClusterNode {
            name: info.name,
            role,
            version,
        });
    }
    match crate::upgrade::resolve(&plan, &cluster) {
        Ok(resolved) => {
            println!("{resolved}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::from(2))
        }
    }
}
