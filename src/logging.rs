//! Logging set-up: a file always (the screen belongs to the TUI, stdout to
//! headless JSON lines); in the cockpit also the log panel and the full log view.

use std::path::PathBuf;

use color_eyre::eyre::{Result, WrapErr};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, filter};

/// Keeps logging alive for the program's life.
pub struct LogGuard {
    pub path: PathBuf,
    /// The cockpit's log panel, fed with timeline and upgrade records.
    panel: Option<crate::tui::log_panel::PanelLog>,
    /// Writes out what the log file's thread still holds when dropped.
    _file_flush: tracing_appender::non_blocking::WorkerGuard,
}

impl LogGuard {
    /// What the cockpit's log panel shows: the records, or (no panel) the
    /// model's timeline.
    pub fn log_panel(&self) -> crate::tui::app::LogPanel {
        match &self.panel {
            Some(log) => crate::tui::app::LogPanel::Records(log.clone()),
            None => crate::tui::app::LogPanel::Timeline,
        }
    }
}

fn env_filter() -> EnvFilter {
    filter_or("info,kube=warn,hyper=warn,tower=warn,rustls=warn,russh=warn")
}

fn filter_or(default: &str) -> EnvFilter {
    EnvFilter::try_from_env("K3S_COCKPIT_LOG_LEVEL").unwrap_or_else(|_| EnvFilter::new(default))
}

/// Logs go to a file (the screen is the TUI's, or stdout is JSON lines);
/// with `panel`, timeline and upgrade records also feed the log panel, and
/// tui-logger keeps what the file gets for the full log view (`L`).
pub fn init_tui_logging(path: Option<PathBuf>, panel: bool) -> Result<LogGuard> {
    let path = path.unwrap_or_else(|| crate::paths::state_dir().join("k3s-cockpit.log"));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .wrap_err_with(|| format!("cannot create log directory {}", dir.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .wrap_err_with(|| format!("cannot open log file {}", path.display()))?;
    // A thread of its own writes the file: a slow disk (an SD card on an
    // edge box) does not stall the cockpit's loop until it is 4,096 lines
    // behind; then the loop waits, so no line is lost. (The default queue,
    // 128,000 lines, is allocated up front: 4 MB.)
    let (writer, file_flush) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(4_096)
        .lossy(false)
        .finish(file);
    let file_layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(false)
        .with_filter(env_filter());
    let panel_log = panel.then(crate::tui::log_panel::PanelLog::default);
    let panel_layer = panel_log.clone().map(|log| {
        crate::tui::log_panel::PanelLayer::new(log, jiff::tz::TimeZone::system())
            .with_filter(filter::filter_fn(|meta| {
                matches!(meta.target(), "timeline" | "upgrade")
            }))
            .with_filter(LevelFilter::INFO)
    });
    let full_log_layer = panel.then(|| {
        tui_logger::set_default_level(log_level_info());
        tui_logger::TuiTracingSubscriberLayer.with_filter(env_filter())
    });
    tracing_subscriber::registry()
        .with(file_layer)
        .with(panel_layer)
        .with(full_log_layer)
        .try_init()
        .wrap_err("logging was already initialised")?;
    Ok(LogGuard {
        path,
        panel: panel_log,
        _file_flush: file_flush,
    })
}

fn log_level_info() -> tui_logger::LevelFilter {
    tui_logger::LevelFilter::Info
}

/// For non-TUI commands: logs to stderr.
pub fn init_stderr_logging() {
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_ansi(std::io::stderr().is_terminal())
        // The commands' own errors say what failed; kube's warnings would
        // repeat them with whole response bodies.
        .with_env_filter(filter_or(
            "info,kube=error,hyper=warn,tower=warn,rustls=warn,russh=warn",
        ))
        .with_writer(std::io::stderr)
        .try_init();
}
