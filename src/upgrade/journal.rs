//! The crash-safe journal: one JSON object per line, fsynced after each.
//!
//! The journal records the engine's *inputs* (observations, action results,
//! operator commands, restarts) with their timestamps, plus the events they
//! caused for people reading the file. Because the engine is a deterministic
//! function of its inputs, replaying them rebuilds it exactly: a crash,
//! `kill -9` or a closed terminal loses nothing, and `--resume` continues.
//! Inputs that changed nothing (the same observation again, a quiet tick)
//! are not written: skipping a no-op cannot change a replay.
//!
//! What is written: the engine configuration (nodes, versions, timings,
//! gate settings — no hosts, keys or commands), observations, action ids
//! and error text (cut to
//! [`MAX_MESSAGE_CHARS`](crate::upgrade::engine::MAX_MESSAGE_CHARS)), and command output only
//! for the etcd snapshot name. Executors must not put secrets in error text.

use crate::upgrade::engine::{Action, Engine, EngineConfig, EventKind, Input};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Journal line format version, in the `begin` record.
pub const FORMAT: u32 = 1;

/// One journal line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    /// First line: the configuration the engine was built from.
    Begin {
        at: Timestamp,
        format: u32,
        config: EngineConfig,
    },
    /// An input fed to the engine at `at`; replayed on resume.
    Input { at: Timestamp, input: Input },
    /// A transition or decision in words; for people, not replayed.
    Event {
        at: Timestamp,
        kind: EventKind,
        text: String,
    },
}

/// An append-only journal file.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
}

impl Journal {
    /// The journal that belongs to a plan: `PLAN.toml.journal.jsonl` next to it.
    pub fn path_for_plan(plan: &Path) -> PathBuf {
        let mut name = plan.as_os_str().to_owned();
        name.push(".journal.jsonl");
        PathBuf::from(name)
    }

    /// Opens (creating if needed) a journal for appending. If the last line
    /// was cut short by a crash, a newline is added first so that the next
    /// record starts on a line of its own and the torn one stays skippable.
    pub fn open(path: &Path) -> io::Result<Journal> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let len = file.metadata()?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(len - 1))?;
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
                file.sync_data()?;
            }
        }
        Ok(Journal {
            file,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record as one line and waits until it is on disk.
    pub fn append(&mut self, record: &Record) -> io::Result<()> {
        let mut line = serde_json::to_string(record).map_err(io::Error::other)?;
        line.push('\n');
        self.file.write_all(line.as_bytes())?;
        self.file.sync_data()
    }
}

/// Why a journal could not be replayed.
#[derive(Debug)]
pub enum JournalError {
    Io(io::Error),
    /// No readable `begin` record: nothing to rebuild the engine from.
    NoBegin,
    /// The journal was written by an incompatible version of the cockpit.
    Format(u32),
}

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JournalError::Io(e) => write!(f, "cannot read the journal: {e}"),
            JournalError::NoBegin => write!(f, "the journal has no readable begin record"),
            JournalError::Format(v) => write!(
                f,
                "the journal has format {v}, this cockpit reads format {FORMAT}"
            ),
        }
    }
}

impl std::error::Error for JournalError {}

impl From<io::Error> for JournalError {
    fn from(e: io::Error) -> Self {
        JournalError::Io(e)
    }
}

/// Rebuilds the engine by feeding it the recorded inputs again. Unreadable
/// lines (a torn last line, garbage) are skipped with a warning, never a
/// panic. A warning also says if the replayed events differ from the
/// recorded ones (the journal came from a different engine version).
pub fn replay(path: &Path) -> Result<(Engine, Vec<String>), JournalError> {
    let bytes = std::fs::read(path)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut warnings = Vec::new();
    let mut engine: Option<Engine> = None;
    let mut recorded_events: Vec<String> = Vec::new();
    let lines: Vec<&str> = text.split('\n').collect();
    for (n, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let lineno = n + 1;
        let record: Record = match serde_json::from_str(line) {
            Ok(r) => r,
            Err(e) => {
                let last = lines[n + 1..].iter().all(|l| l.trim().is_empty());
                let what = if last {
                    "torn last line"
                } else {
                    "unreadable line"
                };
                warnings.push(format!("{}:{lineno}: skipped {what}: {e}", path.display()));
                continue;
            }
        };
        match record {
            Record::Begin { format, config, .. } => {
                if format != FORMAT {
                    return Err(JournalError::Format(format));
                }
                if engine.is_some() {
                    warnings.push(format!(
                        "{}:{lineno}: skipped a second begin record",
                        path.display()
                    ));
                } else {
                    engine = Some(Engine::new(config));
                }
            }
            Record::Input { at, input } => match engine.as_mut() {
                Some(e) => {
                    e.step(input, at);
                }
                None => warnings.push(format!(
                    "{}:{lineno}: skipped an input before the begin record",
                    path.display()
                )),
            },
            Record::Event { text, .. } => recorded_events.push(text),
        }
    }
    let engine = engine.ok_or(JournalError::NoBegin)?;
    let replayed: Vec<&str> = engine.events().iter().map(|e| e.text.as_str()).collect();
    if let Some(k) = (0..recorded_events.len().min(replayed.len()))
        .find(|&k| recorded_events[k] != replayed[k])
        .or((recorded_events.len() > replayed.len()).then_some(replayed.len()))
    {
        warnings.push(format!(
            "replayed events differ from the recorded ones from event {}: recorded {:?}, replayed {:?}",
            k + 1,
            recorded_events.get(k),
            replayed.get(k)
        ));
    }
    Ok((engine, warnings))
}

/// An engine whose every state change is journaled before its actions are
/// handed out: if the cockpit dies after `step` returns, the journal
/// already knows about the actions it was about to run.
#[derive(Debug)]
pub struct Recorder {
    engine: Engine,
    journal: Journal,
    inputs: u64,
}

impl Recorder {
    /// Starts a new journal at `path`; refuses to overwrite a non-empty one
    /// (that is a rollout to resume, not to restart).
    pub fn create(path: &Path, config: EngineConfig, now: Timestamp) -> io::Result<Recorder> {
        if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} already holds a rollout; resume it or move it away",
                    path.display()
                ),
            ));
        }
        let mut journal = Journal::open(path)?;
        journal.append(&Record::Begin {
            at: now,
            format: FORMAT,
            config: config.clone(),
        })?;
        Ok(Recorder {
            engine: Engine::new(config),
            journal,
            inputs: 0,
        })
    }

    /// Replays the journal at `path`, then tells the engine it restarted
    /// ([`Input::Reattach`]): returns the recorder, replay warnings, and the
    /// actions to run now (re-issued idempotent actions, if any).
    pub fn resume(
        path: &Path,
        now: Timestamp,
    ) -> Result<(Recorder, Vec<String>, Vec<Action>), JournalError> {
        let (engine, warnings) = replay(path)?;
        let journal = Journal::open(path)?;
        let mut recorder = Recorder {
            engine,
            journal,
            inputs: 0,
        };
        let actions = recorder.step(Input::Reattach, now)?;
        Ok((recorder, warnings, actions))
    }

    /// Feeds one input; journals it (and its events) if it changed the
    /// engine, then returns the actions. On a journal error the actions are
    /// withheld: running them without a record would break `--resume`.
    pub fn step(&mut self, input: Input, now: Timestamp) -> io::Result<Vec<Action>> {
        let input = self.engine.normalize(input);
        let before = self.engine.clone();
        let actions = self.engine.step(input.clone(), now);
        if self.engine != before || !actions.is_empty() {
            self.journal.append(&Record::Input { at: now, input })?;
            self.inputs += 1;
            for e in &self.engine.events()[before.events().len()..] {
                self.journal.append(&Record::Event {
                    at: e.at,
                    kind: e.kind,
                    text: e.text.clone(),
                })?;
            }
        }
        Ok(actions)
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn journal_path(&self) -> &Path {
        self.journal.path()
    }

    /// Inputs written since this recorder was created or resumed.
    pub fn inputs_written(&self) -> u64 {
        self.inputs
    }
}
