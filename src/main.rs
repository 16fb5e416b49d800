//! k3s-cockpit command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
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
    /// Never ring the terminal bell (the cockpit rings when a heartbeat
    /// turns LATE or EXPIRED, a probe goes DOWN, the rollout halts or a
    /// canary waits for confirmation).
    /// (`K3S_COCKPIT_NO_BELL=1`; `0`, `false`, `no` or empty keep the bell.)
    #[arg(
        long,
        global = true,
        env = "K3S_COCKPIT_NO_BELL",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    no_bell: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Open the read-only cockpit on a cluster. Never changes anything.
    /// The session's timeline is journaled for `report`.
    Watch {
        #[command(flatten)]
        cluster: cli::ClusterTarget,
        #[command(flatten)]
        probes: k3s_cockpit::probe::ProbeArgs,
    },
    /// Start the incident lab and drive its upgrade from the cockpit: no
    /// cluster needed. Every service IP is probed over HTTP and the session
    /// is journaled.
    Demo {
        /// Scenario name or file.
        #[arg(long, default_value = "incident-2026-01-25")]
        scenario: String,
        /// Read-only: watch the old automation replay the incident instead.
        #[arg(long)]
        watch: bool,
        /// Restart announcers in place (the plan's `handoff = "off"`), to
        /// see the outage the handoff avoids.
        #[arg(long)]
        no_handoff: bool,
    },
    /// Validate an upgrade plan against the cluster and print the resolved
    /// steps (nodes in order, version hops, commands). Changes nothing.
    CheckPlan {
        /// The plan (TOML); see assets/plans/example.toml.
        plan: PathBuf,
        #[command(flatten)]
        cluster: cli::ClusterTarget,
        /// Skip the read-only checks on each node over SSH.
        #[arg(long)]
        offline: bool,
    },
    /// Run the simulated cluster alone, for kubectl or another cockpit.
    Lab(cli::LabOptions),
    /// Drive a rolling upgrade from a plan: in the cockpit, or --headless.
    Upgrade(Box<k3s_cockpit::rollout::UpgradeOptions>),
    /// Turn a session journal (watch, demo) into an incident timeline:
    /// a Markdown table of events plus outage windows, NotReady windows,
    /// announcer moves, upgrade phases and operator actions.
    Report(k3s_cockpit::report::command::ReportArgs),
    /// Print a shell completion script to stdout, e.g.
    /// `k3s-cockpit completions bash > ~/.local/share/bash-completion/completions/k3s-cockpit`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout, e.g. `k3s-cockpit man | man -l -`.
    Man,
    /// One line for tmux's status bar (`#(k3s-cockpit status)`): the running
    /// cockpit's state, as in its pane title. Reads a small file the
    /// cockpit keeps, never the cluster; prints nothing when none runs.
    Status(k3s_cockpit::status_file::StatusArgs),
}

/// Commands that only print: no runtime, no logging, no terminal.
fn print_only(command: &Command) -> Option<std::io::Result<()>> {
    let mut out = std::io::stdout().lock();
    match command {
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "k3s-cockpit", &mut out);
            Some(Ok(()))
        }
        Command::Man => Some(clap_mangen::Man::new(Cli::command()).render(&mut out)),
        Command::Status(args) => Some(k3s_cockpit::status_file::print(args, &mut out)),
        _ => None,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(printed) = print_only(&cli.command) {
        return match printed {
            Ok(()) => ExitCode::SUCCESS,
            // A closed pipe (`| head`) is not an error worth a message.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("k3s-cockpit: {e}");
                ExitCode::from(1)
            }
        };
    }
    if cli.no_bell {
        k3s_cockpit::tui::bell::disable();
    }
    if let Err(e) = color_eyre::install() {
        eprintln!("k3s-cockpit: {e}");
    }
    // Watch mode is one loop fed by watchers: on one thread the watchers hand
    // each event to the loop without waking another thread (at 5,000 nodes,
    // 500 lease renewals a second). The lab (also in `demo`) serves many
    // clients and keeps the worker pool.
    let mut builder = match cli.command {
        Command::Watch { .. } => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
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

/// The cockpit draws on a terminal: without one on stdin and stdout it
/// would write escape sequences into a file or a pipe.
fn needs_terminal(command: &Command) -> bool {
    match command {
        Command::Watch { .. } | Command::Demo { .. } => true,
        Command::Upgrade(opts) => !opts.headless && !opts.dry_run,
        _ => false,
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    use std::io::IsTerminal;
    if needs_terminal(&cli.command)
        && !(std::io::stdout().is_terminal() && std::io::stdin().is_terminal())
    {
        eprintln!(
            "k3s-cockpit: the cockpit needs a terminal on stdin and stdout (for scripts: upgrade --headless)"
        );
        return Ok(ExitCode::from(2));
    }
    match cli.command {
        Command::Lab(opts) => {
            k3s_cockpit::logging::init_stderr_logging();
            cli::run_lab(opts).await.wrap_err("lab failed")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Watch { cluster, probes } => {
            let log = k3s_cockpit::logging::init_tui_logging(cli.log_file, true)?;
            cli::run_watch(cluster, probes, log).await
        }
        Command::Report(args) => {
            k3s_cockpit::logging::init_stderr_logging();
            k3s_cockpit::report::command::run_report(args)
        }
        Command::CheckPlan {
            plan,
            cluster,
            offline,
        } => {
            k3s_cockpit::logging::init_stderr_logging();
            cli::run_check_plan(&plan, cluster, offline).await
        }
        Command::Upgrade(opts) => {
            let log = k3s_cockpit::logging::init_tui_logging(
                cli.log_file,
                !opts.headless && !opts.dry_run,
            )?;
            cli::run_upgrade(*opts, log).await
        }
        Command::Demo {
            scenario,
            watch,
            no_handoff,
        } => {
            let log = k3s_cockpit::logging::init_tui_logging(cli.log_file, true)?;
            cli::run_demo(&scenario, watch, no_handoff, log).await
        }
        // Handled in main, before the runtime starts.
        Command::Completions { .. } | Command::Man | Command::Status(_) => Ok(ExitCode::SUCCESS),
    }
}
