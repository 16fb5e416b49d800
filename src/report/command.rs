//! The `report` subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use color_eyre::eyre::{Result, WrapErr};

use crate::text::printable;

/// `report`: a session journal as an incident timeline.
#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// The session journal (default: the newest in
    /// $XDG_STATE_HOME/k3s-cockpit/sessions).
    pub journal: Option<PathBuf>,
    /// markdown (for people) or json (for machines).
    #[arg(long, default_value = "markdown", value_parser = ["markdown", "json"])]
    pub format: String,
    /// Times in UTC instead of the local zone.
    #[arg(long)]
    pub utc: bool,
    /// Write the report to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn run_report(args: ReportArgs) -> Result<ExitCode> {
    let path = match args.journal {
        Some(p) => p,
        None => super::session::newest(&super::session::sessions_dir())?,
    };
    if let Some(out) = &args.out {
        super::refuse_to_overwrite(&path, out)?;
    }
    let journal = super::read_journal(&path)?;
    for w in &journal.warnings {
        eprintln!("k3s-cockpit: warning: {}", printable(w));
    }
    let tz = if args.utc {
        jiff::tz::TimeZone::UTC
    } else {
        jiff::tz::TimeZone::system()
    };
    let report = super::Report::build(journal);
    let mut text = if args.format == "json" {
        super::json_text(&super::json(&report, tz))?
    } else {
        super::markdown(&report, tz)
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    match args.out {
        Some(out) => {
            std::fs::write(&out, text)
                .wrap_err_with(|| format!("cannot write the report {}", out.display()))?;
            eprintln!("report written to {}", out.display());
        }
        None => {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`| head`) is not an error worth a message.
            let _ = stdout.write_all(text.as_bytes());
        }
    }
    Ok(ExitCode::SUCCESS)
}
