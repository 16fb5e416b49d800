//! The running cockpit's state for tmux's status line: each cockpit keeps
//! a small file, `$XDG_STATE_HOME/k3s-cockpit/status/PID.json`, with the
//! same line as its pane title, and `k3s-cockpit status` prints it (for
//! `set -g status-right '#(k3s-cockpit status)'`, which runs it every few
//! seconds: it reads one small file and never calls the cluster).
//!
//! One file per cockpit, so a `watch` in one pane and an `upgrade` in
//! another do not overwrite each other, and the first to quit does not
//! take the other's line away; `status` shows the most recently updated
//! live one. The file is replaced atomically (a temporary file in the same
//! directory, renamed over it), written only when the text changes, and
//! removed when the cockpit ends; a file left by a killed cockpit is
//! ignored because its pid is no longer alive.

use std::io::Write;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// What `status --format json` prints, and what the file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// A word for scripts: `ok`, `late`, `halted`, ... (see `tui::title`).
    pub state: String,
    /// The pane title.
    pub text: String,
    pub pid: u32,
    /// When the text last changed.
    pub updated: Timestamp,
}

/// This process's status file; removed on drop.
#[derive(Debug)]
pub struct StatusFile {
    path: PathBuf,
    last: Option<String>,
    written: bool,
}

impl StatusFile {
    /// The file for this process in `dir` (created at the first write).
    pub fn new(dir: &Path) -> StatusFile {
        StatusFile {
            path: dir.join(format!("{}.json", std::process::id())),
            last: None,
            written: false,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the state if `text` differs from the last written; true if
    /// it wrote.
    pub fn update(&mut self, state: &str, text: &str, now: Timestamp) -> std::io::Result<bool> {
        if self.last.as_deref() == Some(text) {
            return Ok(false);
        }
        let record = Record {
            state: state.to_string(),
            text: text.to_string(),
            pid: std::process::id(),
            updated: now,
        };
        write_atomically(&self.path, &record)?;
        self.written = true;
        self.last = Some(text.to_string());
        Ok(true)
    }
}

impl Drop for StatusFile {
    fn drop(&mut self) {
        if self.written {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn write_atomically(path: &Path, record: &Record) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    // Hidden and not `.json`: `status` never reads a half-written file.
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{}.tmp", name.unwrap_or_default()));
    let mut bytes = serde_json::to_vec(record)?;
    bytes.push(b'\n');
    std::fs::write(&tmp, &bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Whether process `pid` runs (Linux: `/proc/PID`; elsewhere assumed).
pub fn alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return true;
    }
    pid != 0 && proc.join(pid.to_string()).exists()
}

/// The most recently updated status of a cockpit that still runs.
pub fn read_live(dir: &Path) -> Option<Record> {
    let entries = std::fs::read_dir(dir).ok()?;
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|bytes| serde_json::from_slice::<Record>(&bytes).ok())
        .filter(|r| alive(r.pid))
        .max_by_key(|r| r.updated)
}

#[derive(Clone, Copy, Debug, Default, clap::ValueEnum)]
pub enum Format {
    /// The pane title's text, one line.
    #[default]
    Text,
    /// `{"state":..., "text":..., "pid":..., "updated":...}`.
    Json,
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `k3s-cockpit status`: the line, or nothing when no cockpit runs.
pub fn print(args: &StatusArgs, out: &mut impl Write) -> std::io::Result<()> {
    let Some(record) = read_live(&crate::paths::status_dir()) else {
        return Ok(());
    };
    match args.format {
        Format::Text => writeln!(out, "{}", record.text),
        Format::Json => {
            serde_json::to_writer(&mut *out, &record)?;
            writeln!(out)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    #[test]
    fn written_on_change_read_back_and_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let status = dir.path().join("status");
        assert_eq!(read_live(&status), None, "no directory: no cockpit");
        let mut file = StatusFile::new(&status);
        assert!(
            file.update("ok", "k3s-cockpit watch 3 nodes ok", t(0))
                .unwrap()
        );
        assert!(
            !file
                .update("ok", "k3s-cockpit watch 3 nodes ok", t(1))
                .unwrap(),
            "same text: not written"
        );
        let record = read_live(&status).unwrap();
        assert_eq!(record.text, "k3s-cockpit watch 3 nodes ok");
        assert_eq!(record.updated, t(0));
        assert_eq!(record.pid, std::process::id());
        assert!(
            file.update("late", "k3s-cockpit watch LATE b", t(2))
                .unwrap()
        );
        let record = read_live(&status).unwrap();
        assert_eq!((record.state.as_str(), record.updated), ("late", t(2)));
        // Nothing but the file itself is left in the directory.
        let names: Vec<_> = std::fs::read_dir(&status)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec![format!("{}.json", std::process::id())]);
        let path = file.path().to_path_buf();
        drop(file);
        assert!(!path.exists());
        assert_eq!(read_live(&status), None);
    }

    #[test]
    fn a_dead_cockpits_file_is_ignored_and_the_newest_live_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        // A pid above the kernel's maximum is never alive.
        let dead = Record {
            state: "halted".into(),
            text: "k3s-cockpit HALTED a: old".into(),
            pid: 4_194_305,
            updated: t(100),
        };
        write_atomically(&dir.path().join("4194305.json"), &dead).unwrap();
        std::fs::write(dir.path().join("garbage.json"), "{not json").unwrap();
        assert_eq!(read_live(dir.path()), None);
        let me = std::process::id();
        for (name, at) in [("a.json", 5), ("b.json", 7)] {
            let r = Record {
                state: "ok".into(),
                text: format!("at {at}"),
                pid: me,
                updated: t(at),
            };
            write_atomically(&dir.path().join(name), &r).unwrap();
        }
        assert_eq!(read_live(dir.path()).unwrap().text, "at 7");
        assert!(alive(me));
        assert!(!alive(4_194_305));
    }
}
