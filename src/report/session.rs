//! The session journal: every timeline entry of one cockpit session as a
//! JSON line, appended and flushed as it happens, in
//! `$XDG_STATE_HOME/k3s-cockpit/sessions/<UTC timestamp>-<mode>.jsonl`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use color_eyre::eyre::{Result, WrapErr, eyre};
use jiff::Timestamp;

use crate::model::timeline::{Entry, EntryKind, EntrySink, Severity};

/// `$XDG_STATE_HOME/k3s-cockpit/sessions`.
pub fn sessions_dir() -> PathBuf {
    crate::paths::state_dir().join("sessions")
}

/// An open session journal. Clones write to the same file.
#[derive(Clone, Debug)]
pub struct SessionLog {
    path: PathBuf,
    file: Arc<Mutex<Option<File>>>,
}

impl SessionLog {
    /// Creates `DIR/<UTC timestamp>-<mode>.jsonl` (with `-2`, `-3`, ... if
    /// a session started in the same second).
    pub fn create(dir: &Path, mode: &str, now: Timestamp) -> Result<SessionLog> {
        std::fs::create_dir_all(dir)
            .wrap_err_with(|| format!("cannot create the sessions directory {}", dir.display()))?;
        let stamp = now.strftime("%Y%m%dT%H%M%SZ").to_string();
        for n in 1..100 {
            let name = if n == 1 {
                format!("{stamp}-{mode}.jsonl")
            } else {
                format!("{stamp}-{mode}-{n}.jsonl")
            };
            let path = dir.join(name);
            match OpenOptions::new().create_new(true).append(true).open(&path) {
                Ok(file) => {
                    return Ok(SessionLog {
                        path,
                        file: Arc::new(Mutex::new(Some(file))),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).wrap_err_with(|| {
                        format!("cannot create the session journal {}", path.display())
                    });
                }
            }
        }
        Err(eyre!(
            "cannot create a session journal in {}: too many sessions this second",
            dir.display()
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one entry as a line. A write error is logged once and ends
    /// journaling; the cockpit goes on.
    pub fn write(&self, entry: &Entry) {
        let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let Some(file) = guard.as_mut() else {
            return;
        };
        let mut line = match serde_json::to_string(entry) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("session journal: cannot encode an entry: {e}");
                return;
            }
        };
        line.push('\n');
        if let Err(e) = file.write_all(line.as_bytes()).and_then(|()| file.flush()) {
            tracing::warn!(
                "session journal {}: write failed, journaling stops: {e}",
                self.path.display()
            );
            *guard = None;
        }
    }

    /// The closing line.
    pub fn end(&self, at: Timestamp) {
        self.write(&Entry {
            at,
            severity: Severity::Info,
            subject: "cockpit".into(),
            kind: EntryKind::SessionEnd,
            text: "session ended".into(),
        });
    }

    /// A timeline sink writing to this journal.
    pub fn sink(&self) -> Box<dyn EntrySink> {
        Box::new(self.clone())
    }
}

impl EntrySink for SessionLog {
    fn write(&mut self, entry: &Entry) {
        SessionLog::write(self, entry);
    }

    fn path(&self) -> Option<&Path> {
        Some(&self.path)
    }
}

/// Opens the session journal for `fleet` (`sessions/<UTC>-<mode>.jsonl`
/// under the state dir), sends its timeline there and writes the first lines.
pub fn start_for(
    fleet: &mut crate::model::Fleet,
    context: &str,
    server: &str,
    mode: &str,
    probes: &crate::probe::Selection,
) -> color_eyre::eyre::Result<SessionLog> {
    use crate::model::timeline::{EntryKind, Severity};
    let now = jiff::Timestamp::now();
    let dir = sessions_dir();
    let log = SessionLog::create(&dir, mode, now)?;
    fleet.timeline.set_sink(log.sink());
    let text = format!("{mode} session started on context {context} ({server})");
    fleet.timeline.push_kind(
        now,
        Severity::Info,
        "cockpit",
        EntryKind::SessionStart {
            mode: mode.to_string(),
            context: context.to_string(),
            server: server.to_string(),
        },
        text,
    );
    if !probes.is_empty() {
        let mut what: Vec<String> = probes
            .specs
            .iter()
            .map(|s| {
                let port = s.port.map(|p| format!(":{p}")).unwrap_or_default();
                format!("{}/{}{port} {}", s.namespace, s.name, s.check.label())
            })
            .collect();
        if let Some(check) = &probes.all {
            what.push(format!("every LoadBalancer service ({})", check.label()));
        }
        fleet.timeline.push(
            now,
            Severity::Info,
            "cockpit",
            format!(
                "probing {} every {}s from this machine",
                what.join(", "),
                crate::probe::INTERVAL.as_secs()
            ),
        );
    }
    Ok(log)
}

/// The most recently modified `*.jsonl` in `dir`.
pub fn newest(dir: &Path) -> Result<PathBuf> {
    let entries = std::fs::read_dir(dir).wrap_err_with(|| {
        format!(
            "no session journals in {} (run `k3s-cockpit watch` or `demo` first, or name a JOURNAL)",
            dir.display()
        )
    })?;
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        let modified = entry
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH);
        if best
            .as_ref()
            .is_none_or(|(t, p)| (modified, &path) > (*t, p))
        {
            best = Some((modified, path));
        }
    }
    best.map(|(_, p)| p)
        .ok_or_else(|| eyre!("no session journals (*.jsonl) in {}", dir.display()))
}
