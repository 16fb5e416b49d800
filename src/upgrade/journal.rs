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
        config: Box<EngineConfig>,
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
                    engine = Some(Engine::new(*config));
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
            config: Box::new(config.clone()),
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::upgrade::engine::{Command, RolloutState};
    use crate::upgrade::testkit::*;
    use jiff::SignedDuration;

    impl Feed for Recorder {
        fn feed(&mut self, input: Input, now: Timestamp) -> Vec<Action> {
            self.step(input, now).unwrap()
        }
        fn engine(&self) -> &Engine {
            Recorder::engine(self)
        }
        fn journaled(&self) -> u64 {
            self.inputs_written()
        }
    }

    fn halted(e: &Engine) -> bool {
        matches!(e.state(), RolloutState::Halted(_))
    }

    fn phase_is(
        node: &'static str,
        phase: crate::upgrade::engine::Phase,
    ) -> impl Fn(&Engine, &FakeCluster) -> bool {
        move |e, s| {
            e.view(s.now)
                .nodes
                .iter()
                .any(|n| n.name == node && n.phase == phase)
        }
    }

    /// A whole rollout through the recorder, touching every kind of input:
    /// canary and confirmation, a failed action and retry, a soak failure
    /// and retry, a pause before install and resume, an API outage.
    fn full_run(path: &Path) -> (Recorder, FakeCluster) {
        use crate::upgrade::engine::Phase;
        let mut cfg = abc();
        cfg.gates.services = vec!["nvr/frigate".into()];
        let mut r = Recorder::create(path, cfg.clone(), t0()).unwrap();
        let mut s = FakeCluster::new(&cfg, &[]);
        let tick = SignedDuration::from_secs(10);
        let long = SignedDuration::from_mins(60);
        s.observe(&mut r);
        s.command(&mut r, Command::Canary);
        assert!(s.run_until(&mut r, tick, long, |e, _| *e.state()
            == RolloutState::CanaryAwaitingConfirm));
        s.fail
            .insert(("drain", "B".into()), "PDB allows no disruption".into());
        s.command(&mut r, Command::ConfirmCanary);
        assert!(s.run_until(&mut r, tick, long, |e, _| halted(e)));
        s.command(&mut r, Command::Retry);
        assert!(s.run_until(&mut r, tick, long, phase_is("B", Phase::Soak)));
        s.advance(&mut r, mins(2));
        s.node("B").heartbeat_late = true;
        s.advance(&mut r, tick);
        assert!(halted(r.engine()));
        s.node("B").heartbeat_late = false;
        s.command(&mut r, Command::Retry);
        assert!(s.run_until(&mut r, tick, long, phase_is("B", Phase::Soak)));
        s.hold.insert("drain");
        assert!(s.run_until(&mut r, tick, long, phase_is("C", Phase::Drain)));
        s.command(&mut r, Command::Pause);
        s.release(&mut r, "drain");
        assert_eq!(*r.engine().state(), RolloutState::Paused);
        s.advance(&mut r, mins(1));
        s.command(&mut r, Command::Resume);
        assert!(s.run_until(&mut r, tick, long, phase_is("C", Phase::Soak)));
        s.api = false;
        s.advance(&mut r, secs(0));
        s.advance(&mut r, mins(1));
        s.api = true;
        assert!(s.run_until(&mut r, tick, long, |e, _| *e.state() == RolloutState::Done));
        (r, s)
    }

    /// The journal truncated after `inputs` input records (with their events).
    fn prefix(full: &str, inputs: usize) -> String {
        let mut out = String::new();
        let mut seen = 0;
        for line in full.lines() {
            if line.contains(r#""record":"input""#) {
                if seen == inputs {
                    break;
                }
                seen += 1;
            }
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    #[test]
    fn replay_of_every_prefix_rebuilds_the_engine_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.toml.journal.jsonl");
        let (r, s) = full_run(&path);
        let full = std::fs::read_to_string(&path).unwrap();
        let n = s.checkpoints.len();
        assert_eq!(n as u64, r.inputs_written());
        assert!(n > 30, "only {n} inputs journaled");
        // Every line is one JSON record.
        for line in full.lines() {
            serde_json::from_str::<Record>(line).unwrap();
        }
        let (whole, warnings) = replay(&path).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(&whole, r.engine());
        let cut = dir.path().join("prefix.jsonl");
        for k in 0..=n {
            std::fs::write(&cut, prefix(&full, k)).unwrap();
            let (engine, warnings) = replay(&cut).unwrap();
            assert!(warnings.is_empty(), "prefix {k}: {warnings:?}");
            let expected = if k == 0 {
                Engine::new(r.engine().config().clone())
            } else {
                s.checkpoints[k - 1].engine.clone()
            };
            assert_eq!(engine, expected, "prefix {k}");
        }
    }

    /// A crash after any journaled input: resume, and the rollout completes
    /// without installing again a version a node had finished.
    #[test]
    fn resume_from_every_prefix_completes_without_redoing_finished_nodes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.toml.journal.jsonl");
        let (r, s) = full_run(&path);
        let full = std::fs::read_to_string(&path).unwrap();
        let target = r.engine().config().path.last().unwrap().to_string();
        let (mut reissued, mut reverified) = (0, 0);
        for (k, cp) in s.checkpoints.iter().enumerate() {
            let cut = dir.path().join(format!("resume-{k}.jsonl"));
            std::fs::write(&cut, prefix(&full, k + 1)).unwrap();
            let now = cp.now + secs(5);
            let (mut rec, warnings, actions) = Recorder::resume(&cut, now).unwrap();
            assert!(warnings.is_empty(), "prefix {k}: {warnings:?}");
            reissued += usize::from(!actions.is_empty());
            reverified += usize::from(rec.engine().events().iter().any(|e| {
                e.text
                    .contains("restarting K3s, then verifying the version")
            }));
            // The cluster as the crash left it; actions in flight were lost,
            // and whatever was wrong has been fixed by the operator.
            let mut sim = FakeCluster::new(rec.engine().config(), &[]);
            sim.now = now;
            sim.nodes = cp.nodes.clone();
            sim.services = cp.services.clone();
            sim.installed = cp.installed.clone();
            for n in &mut sim.nodes {
                n.ready = true;
                n.heartbeat_late = false;
            }
            sim.pending = actions;
            let finished: Vec<(String, String)> = cp
                .engine
                .view(cp.now)
                .nodes
                .iter()
                .filter(|n| n.version.to_string() == target)
                .map(|n| (n.name.clone(), n.version.to_string()))
                .collect();
            sim.observe(&mut rec);
            for _ in 0..20 {
                let cmd = match rec.engine().state() {
                    RolloutState::Idle => Command::Start,
                    RolloutState::Paused => Command::Resume,
                    RolloutState::Halted(_) => Command::Retry,
                    RolloutState::CanaryAwaitingConfirm => Command::ConfirmCanary,
                    _ => {
                        sim.run_until(&mut rec, secs(10), mins(60), |e, _| {
                            !matches!(e.state(), RolloutState::Running | RolloutState::Pausing)
                        });
                        continue;
                    }
                };
                if *rec.engine().state() == RolloutState::Done {
                    break;
                }
                sim.command(&mut rec, cmd);
            }
            assert_eq!(
                *rec.engine().state(),
                RolloutState::Done,
                "prefix {k}: {:?}",
                rec.engine().events().last()
            );
            assert!(
                sim.nodes
                    .iter()
                    .all(|n| n.version == target && !n.unschedulable),
                "prefix {k}"
            );
            for (node, version) in &finished {
                assert!(
                    !sim.installs().contains(&(node.clone(), version.clone())),
                    "prefix {k}: {node} reinstalled {version}"
                );
            }
            // The resumed journal replays to the resumed engine.
            let (again, warnings) = replay(&cut).unwrap();
            assert!(warnings.is_empty(), "prefix {k}: {warnings:?}");
            assert_eq!(&again, rec.engine(), "prefix {k}");
        }
        // The prefixes include crashes with actions in flight, installs among them.
        assert!(reissued >= 5, "{reissued}");
        assert!(reverified >= 3, "{reverified}");
    }

    #[test]
    fn torn_last_line_and_garbage_are_skipped_with_warnings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let (r, s) = full_run(&path);
        let full = std::fs::read_to_string(&path).unwrap();
        let n = s.checkpoints.len();
        // Cut the last input line in half, as a crash mid-write would.
        let keep = prefix(&full, n - 1);
        let last_input = full[keep.len()..].lines().next().unwrap();
        assert!(last_input.contains(r#""record":"input""#));
        let torn = format!("{keep}{}", &last_input[..last_input.len() / 2]);
        std::fs::write(&path, &torn).unwrap();
        let (engine, warnings) = replay(&path).unwrap();
        assert_eq!(engine, s.checkpoints[n - 2].engine);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("torn last line"), "{warnings:?}");

        // Appending after a torn line starts a fresh line.
        let mut j = Journal::open(&path).unwrap();
        j.append(&Record::Input {
            at: s.now,
            input: Input::Tick,
        })
        .unwrap();
        let (_, warnings) = replay(&path).unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("unreadable line"), "{warnings:?}");

        // Garbage in the middle is skipped, the rest still replays.
        let mut lines: Vec<&str> = full.lines().collect();
        lines.insert(3, "{\"record\":\"input\",\"at\":");
        lines.insert(5, "\u{0}\u{1}garbage");
        std::fs::write(&path, lines.join("\n")).unwrap();
        let (engine, warnings) = replay(&path).unwrap();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert_eq!(&engine, r.engine());

        // Without a begin record there is nothing to rebuild.
        std::fs::write(&path, "garbage\n").unwrap();
        assert!(matches!(replay(&path), Err(JournalError::NoBegin)));
    }

    #[test]
    fn command_output_stays_out_of_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let cfg = abc();
        let mut r = Recorder::create(&path, cfg.clone(), t0()).unwrap();
        let mut s = FakeCluster::new(&cfg, &[]);
        s.observe(&mut r);
        s.hold.insert("install");
        s.command(&mut r, Command::Start);
        s.settle(&mut r);
        let (id, node, _) = r.engine().in_flight().unwrap();
        assert_eq!(node, "A");
        let long_error = format!("K3S_TOKEN=hunter2 {}", "x".repeat(2000));
        r.step(
            Input::ActionFinished {
                id,
                result: Err(long_error),
                output: Some("K3S_TOKEN=hunter2".into()),
            },
            s.now,
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        // The error is cut short; the output of a non-snapshot action is dropped.
        assert_eq!(
            text.matches("hunter2").count(),
            2,
            "input and halt event only"
        );
        assert!(!text.contains(&"x".repeat(600)));
        assert!(!text.contains("\"output\":\"K3S_TOKEN"));
        // The plan's commands, hosts and keys never reach the journal.
        assert!(!text.contains("curl") && !text.contains("ssh"));
        let (engine, _) = replay(&path).unwrap();
        assert_eq!(&engine, r.engine());
    }

    #[test]
    fn create_refuses_to_overwrite_a_rollout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        Recorder::create(&path, abc(), t0()).unwrap();
        let err = Recorder::create(&path, abc(), t0()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(
            Journal::path_for_plan(Path::new("/x/plan.toml")),
            Path::new("/x/plan.toml.journal.jsonl")
        );
    }

    #[test]
    fn quiet_ticks_are_not_journaled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let cfg = abc();
        let mut r = Recorder::create(&path, cfg.clone(), t0()).unwrap();
        let mut s = FakeCluster::new(&cfg, &[]);
        s.observe(&mut r);
        let written = r.inputs_written();
        for _ in 0..100 {
            s.advance(&mut r, secs(10));
        }
        assert_eq!(r.inputs_written(), written);
    }
}
