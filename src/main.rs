//! k3s-cockpit command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use color_eyre::eyre::{Result, WrapErr};

use k3s_cockpit::cli;

#[derive(Parser, Debug)]
#[command(
    name = "k3s-cockpit",
    version,
    about = "Watch and drive rolling K3s upgrades from the terminal"
)]
struct Cli {
    /// Log file (the screen belongs to the TUI). Default: $XDG_STATE_HOME/k3s-cockpit/k3s-cockpit.log
    #[arg(long, global = true, env = "K3S_COCKPIT_LOG")]
    log_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ClusterArgs {
    /// Path to the kubeconfig (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use (default: the current context).
    #[arg(long)]
    context: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Open the read-only cockpit on a cluster. Never changes anything.
    Watch {
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Start the incident lab and open the cockpit on it: no cluster needed.
    Demo {
        /// Scenario name or file.
        #[arg(long, default_value = "incident-2026-01-25")]
        scenario: String,
    },
    /// Validate an upgrade plan against the cluster and print the resolved
    /// steps (nodes in order, version hops, commands). Changes nothing.
    CheckPlan {
        /// The plan (TOML); see assets/plans/example.toml.
        plan: PathBuf,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Run the simulated cluster alone, for kubectl or another cockpit.
    Lab {
        /// Scenario name (healthy, incident-2026-01-25) or a TOML file.
        #[arg(long, default_value = "healthy")]
        scenario: String,
        /// Replace the scenario's nodes with N generated ones (scale runs).
        #[arg(long)]
        nodes: Option<usize>,
        /// Address to serve the Kubernetes API on.
        #[arg(long, default_value = "127.0.0.1:6443")]
        listen: SocketAddr,
        /// Allow a non-loopback listen address (the lab has no authentication).
        #[arg(long)]
        allow_non_loopback: bool,
        /// Where to write the kubeconfig for the lab.
        #[arg(long, default_value = "k3s-lab.kubeconfig")]
        kubeconfig_out: PathBuf,
        /// Record every API request as a JSON line.
        #[arg(long)]
        audit_log: Option<PathBuf>,
        /// Override the scenario's time compression.
        #[arg(long)]
        time_scale: Option<f64>,
        /// Do not replay the scenario's old upgrade automation.
        #[arg(long)]
        no_replay: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = color_eyre::install() {
        eprintln!("k3s-cockpit: {e}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("k3s-cockpit: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(report) => {
            // One screen, no backtrace: bad input is not a bug.
            eprintln!("k3s-cockpit: error: {report:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Lab {
            scenario,
            nodes,
            listen,
            allow_non_loopback,
            kubeconfig_out,
            audit_log,
            time_scale,
            no_replay,
        } => {
            cli::init_stderr_logging();
            let opts = cli::LabOptions {
                scenario,
                nodes,
                listen,
                allow_non_loopback,
                kubeconfig_out,
                audit_log,
                time_scale,
                replay: !no_replay,
            };
            cli::run_lab(opts).await.wrap_err("lab failed")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Watch { cluster } => {
            let log = cli::init_tui_logging(cli.log_file)?;
            let target = cli::ClusterTarget {
                kubeconfig: cluster.kubeconfig,
                context: cluster.context,
            };
            cli::run_watch(target, log).await
        }
        Command::CheckPlan { plan, cluster } => {
            cli::init_stderr_logging();
            let target = cli::ClusterTarget {
                kubeconfig: cluster.kubeconfig,
                context: cluster.context,
            };
            cli::run_check_plan(&plan, target).await
        }
        Command::Demo { scenario } => {
            let log = cli::init_tui_logging(cli.log_file)?;
            cli::run_demo(&scenario, log).await
        }
    }
}
