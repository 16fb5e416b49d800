//! `--audit-log`: one JSON line per API request, so a test (or a sceptical
//! operator) can prove exactly which verbs a client used.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use color_eyre::eyre::{Result, WrapErr};
use serde_json::json;

pub struct AuditLog {
    file: Mutex<File>,
}

impl AuditLog {
    pub fn create(path: &Path) -> Result<Self> {
        let file = File::create(path)
            .wrap_err_with(|| format!("cannot create audit log {}", path.display()))?;
        Ok(AuditLog {
            file: Mutex::new(file),
        })
    }

    pub fn record(&self, verb: &str, method: &str, path: &str, query: Option<&str>, status: u16) {
        let line = json!({
            "ts": jiff::Timestamp::now().to_string(), "verb": verb, "method": method,
            "path": path, "query": query.unwrap_or_default(), "status": status,
        });
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        // Audit write failures must not take the API down; they show up as a
        // short audit file, which the tests notice.
        let _ = writeln!(file, "{line}");
    }
}
