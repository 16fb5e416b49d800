//! End-to-end benchmarks of k3s-cockpit (issue #5): the real binary watching
//! the real lab over HTTP, on a pseudo-terminal whose output is parsed into a
//! screen, beside `kubectl get nodes -w` and kdash where they exist.
//!
//! ```sh
//! cargo bench --bench cockpit                          # everything, ~12 min
//! cargo bench --bench cockpit -- events idle           # some scenarios
//! cargo bench --bench cockpit -- --help
//! ```
//!
//! Prints Markdown tables (and writes them to `--out`). Timings that cross
//! processes use the shared wall clock (Unix ns): the lab's `--commit-log`
//! records when a change was committed, the PTY reader when the bytes
//! showing it arrived, the cockpit's frame log (`K3S_COCKPIT_FRAME_LOG`) how
//! long each frame took. Costs are CPU time from /proc, not wall time.

mod lab;
mod observe;
mod procfs;
mod procs;
mod pty;
mod scenarios;
mod stats;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;

pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

pub const BIN: &str = env!("CARGO_BIN_EXE_k3s-cockpit");

pub fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

#[derive(Parser, Debug, Clone)]
#[command(name = "cockpit-bench", about = "k3s-cockpit end-to-end benchmarks")]
pub struct Opts {
    /// Scenarios to run: heartbeat, events, scale, control, idle, soak (default: all).
    pub scenarios: Vec<String>,
    /// Repeated runs per scale size.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Node counts for the scale runs.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,5000")]
    pub sizes: Vec<usize>,
    /// Measurement window of each scale run, seconds.
    #[arg(long, default_value_t = 12.0)]
    pub window: f64,
    /// Changes to drive in the event-to-screen run.
    #[arg(long, default_value_t = 1000)]
    pub events: usize,
    /// Kubelets stopped in the heartbeat run.
    #[arg(long, default_value_t = 8)]
    pub victims: usize,
    /// Length of the idle run, seconds.
    #[arg(long, default_value_t = 60.0)]
    pub idle_secs: f64,
    /// Length of the false-LATE soak, seconds (the issue asks for 600).
    #[arg(long, default_value_t = 60.0)]
    pub soak_secs: f64,
    /// Nodes in the soak's cluster.
    #[arg(long, default_value_t = 100)]
    pub soak_nodes: usize,
    /// kdash binary (default: `kdash` on PATH).
    #[arg(long, env = "K3S_BENCH_KDASH")]
    pub kdash: Option<PathBuf>,
    /// kubectl binary (default: `kubectl` on PATH).
    #[arg(long)]
    pub kubectl: Option<PathBuf>,
    /// Skip the peers (kdash, kubectl).
    #[arg(long)]
    pub no_peers: bool,
    /// Also write the report to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Keep the working directory (logs, frame logs, commit logs) here.
    #[arg(long)]
    pub keep: Option<PathBuf>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    pub bench: bool,
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

fn machine() -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "?".into());
    let mem_kb: u64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let rustc = std::process::Command::new("rustc")
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "- date: {}\n- CPU: {cpu}, {cores} cores (nproc)\n- RAM: {:.1} GiB\n- kernel: {}\n- {rustc}, {} profile\n- load average at start: {}",
        jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M UTC"),
        mem_kb as f64 / 1024.0 / 1024.0,
        read("/proc/sys/kernel/osrelease").trim(),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release (bench)"
        },
        read("/proc/loadavg")
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

fn main() {
    let opts = Opts::parse();
    if let Err(e) = run(opts) {
        eprintln!("cockpit-bench: {e}");
        std::process::exit(1);
    }
}

fn run(mut opts: Opts) -> Result<()> {
    if opts.scenarios.is_empty() {
        opts.scenarios = ["heartbeat", "events", "scale", "control", "idle", "soak"]
            .map(String::from)
            .to_vec();
    }
    if !opts.no_peers {
        opts.kdash = opts.kdash.clone().or_else(|| on_path("kdash"));
        opts.kubectl = opts.kubectl.clone().or_else(|| on_path("kubectl"));
    } else {
        opts.kdash = None;
        opts.kubectl = None;
    }
    let temp = tempfile::tempdir()?;
    let root = match &opts.keep {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => temp.path().to_path_buf(),
    };
    let mut report = format!("## Machine\n\n{}\n", machine());
    report.push_str(&format!(
        "- peers: kubectl {}, kdash {}\n",
        opts.kubectl
            .as_ref()
            .map_or("absent (column skipped)".into(), |p| p
                .display()
                .to_string()),
        opts.kdash
            .as_ref()
            .map_or("absent (column skipped)".into(), |p| p
                .display()
                .to_string()),
    ));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for name in opts.scenarios.clone() {
        let dir = root.join(&name);
        std::fs::create_dir_all(&dir)?;
        eprintln!("== {name}");
        let section = match name.as_str() {
            "heartbeat" => scenarios::heartbeat(&opts, &dir),
            "events" => scenarios::events(&opts, &dir, &runtime),
            "scale" => scenarios::scale(&opts, &dir),
            "idle" => scenarios::idle(&opts, &dir),
            "soak" => scenarios::soak(&opts, &dir),
            "control" => scenarios::control(&opts, &dir),
            other => Err(format!("unknown scenario {other:?}").into()),
        };
        let section = section.unwrap_or_else(|e| format!("## {name}\n\nFAILED: {e}\n"));
        println!("{section}");
        report.push('\n');
        report.push_str(&section);
    }
    report.push_str(&format!(
        "\nLoad average at the end: {}\n",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    ));
    println!("{}", report.lines().take(9).collect::<Vec<_>>().join("\n"));
    if let Some(out) = &opts.out {
        std::fs::write(out, &report)?;
        eprintln!("report written to {}", out.display());
    }
    Ok(())
}
