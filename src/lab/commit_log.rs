//! `--commit-log`: one line per committed change, with the instant it was
//! broadcast to the watches, so a benchmark can measure how long a change
//! takes from the lab to a client's screen:
//!
//! ```text
//! RV UNIX_NS KIND NAMESPACE/NAME TYPE
//! ```
//!
//! Off unless asked for; the store then only checks an empty `OnceLock`.

use std::fs::File;
use std::io::{LineWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use color_eyre::eyre::{Result, WrapErr};

use super::store::Change;

pub struct CommitLog {
    file: Mutex<LineWriter<File>>,
}

impl CommitLog {
    pub fn create(path: &Path) -> Result<Self> {
        let file = File::create(path)
            .wrap_err_with(|| format!("cannot create commit log {}", path.display()))?;
        Ok(CommitLog {
            file: Mutex::new(LineWriter::new(file)),
        })
    }

    pub fn record(&self, change: &Change) {
        let unix_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let meta = &change.object["metadata"];
        let line = format!(
            "{} {unix_ns} {} {}/{} {}\n",
            change.rv,
            change.kind.kind_name(),
            meta["namespace"].as_str().unwrap_or_default(),
            meta["name"].as_str().unwrap_or_default(),
            change.event_type,
        );
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        // Like the audit log: a failed write must not take the lab down.
        let _ = file.write_all(line.as_bytes());
    }
}
