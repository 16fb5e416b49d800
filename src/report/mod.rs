//! `k3s-cockpit report`: a session journal turned into an incident timeline
//! shaped like a post-mortem's table (time, event), plus a summary: outage
//! windows and total downtime per probed service, NotReady windows per
//! node, announcer moves, version changes, upgrade phases with durations,
//! operator interventions. Markdown for people, JSON for machines.
//!
//! Reading never fails on a bad line: garbage and a line torn by a crash
//! are skipped with a warning naming `file:line`, and the rest is used.

pub mod command;
pub mod session;
mod user_outage;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use color_eyre::eyre::{Result, WrapErr, bail};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Value, json};

use crate::durations::format_duration;
use crate::model::timeline::{Entry, EntryKind, Severity};
use crate::text::printable;

/// A journal as read: the entries that parsed and what was skipped.
#[derive(Debug, Clone)]
pub struct Journal {
    pub path: PathBuf,
    pub entries: Vec<Entry>,
    /// `file:line: why`, one per skipped line.
    pub warnings: Vec<String>,
}

/// The longest line a session journal holds: one timeline entry. A longer
/// one means the file is not a journal (or is `/dev/zero`), and reading
/// stops there rather than growing without bound.
const MAX_LINE: u64 = 1 << 20;

/// Reads a session journal line by line, skipping (and reporting) lines
/// that do not parse. Only an unreadable file is an error.
pub fn read_journal(path: &Path) -> Result<Journal> {
    use std::io::{BufRead, Read};
    let file = std::fs::File::open(path)
        .wrap_err_with(|| format!("cannot read the session journal {}", path.display()))?;
    let mut reader = std::io::BufReader::new(file);
    let mut entries = Vec::new();
    let mut warnings = Vec::new();
    let mut line = Vec::new();
    for lineno in 1.. {
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut line)
            .wrap_err_with(|| format!("cannot read the session journal {}", path.display()))?;
        if read == 0 {
            break;
        }
        let complete = line.last() == Some(&b'\n');
        if !complete && read as u64 > MAX_LINE {
            warnings.push(format!(
                "{}:{lineno}: a line longer than {} KiB: not a session journal from here on; stopped reading",
                path.display(),
                MAX_LINE / 1024
            ));
            break;
        }
        let text = String::from_utf8_lossy(&line);
        if text.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Entry>(&text) {
            Ok(e) => entries.push(e),
            Err(e) => {
                // Only the last line can lack its newline: a crash cut it.
                let why = if complete {
                    format!("skipped: {e}")
                } else {
                    "truncated last line skipped".to_string()
                };
                warnings.push(format!("{}:{lineno}: {why}", path.display()));
            }
        }
    }
    // Entries are journaled as they happen; a stable sort only mends
    // probe results stamped a moment before they were processed.
    entries.sort_by_key(|e| e.at);
    Ok(Journal {
        path: path.to_path_buf(),
        entries,
        warnings,
    })
}

/// A period between two instants; `end` None means it was still open when
/// the journal ends (its length is counted up to the last entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub start: Timestamp,
    pub end: Option<Timestamp>,
}

impl Window {
    fn length(&self, journal_end: Timestamp) -> Duration {
        let end = self.end.unwrap_or(journal_end);
        Duration::try_from(end.duration_since(self.start)).unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
pub struct ServiceOutages {
    pub service: String,
    /// (endpoint, window), by start.
    pub windows: Vec<(String, Window)>,
    /// Union of the windows: time with at least one endpoint down.
    pub total: Duration,
}

#[derive(Debug, Clone)]
pub struct Phase {
    pub node: Option<String>,
    pub phase: String,
    pub window: Window,
}

/// Everything the report shows, computed from the entries' kinds.
#[derive(Debug, Clone)]
pub struct Report {
    pub journal: Journal,
    /// (mode, context, server) from the session's first line.
    pub session: Option<(String, String, String)>,
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    pub ended_cleanly: bool,
    pub outages: Vec<ServiceOutages>,
    /// Per service: probe failures that did not reach DOWN (a success came
    /// first, or the journal ended), by service name.
    pub flaps: Vec<(String, u32)>,
    /// API server outages: only unreachable or silent (a 401, 403 or 5xx
    /// is the server answering), by start.
    pub api_outages: Vec<Window>,
    /// (node, reason, window), by start.
    pub not_ready: Vec<(String, String, Window)>,
    /// (at, service, from, to).
    pub moves: Vec<(Timestamp, String, String, String)>,
    /// (at, node, from, to).
    pub versions: Vec<(Timestamp, String, String, String)>,
    pub phases: Vec<Phase>,
    /// (at, subject, action).
    pub operator: Vec<(Timestamp, String, String)>,
}

impl Report {
    pub fn build(journal: Journal) -> Report {
        let entries = &journal.entries;
        let start = entries.first().map(|e| e.at);
        let end = entries.last().map(|e| e.at);
        let session = entries.iter().find_map(|e| match &e.kind {
            EntryKind::SessionStart {
                mode,
                context,
                server,
            } => Some((mode.clone(), context.clone(), server.clone())),
            _ => None,
        });
        let ended_cleanly = entries
            .last()
            .is_some_and(|e| e.kind == EntryKind::SessionEnd);
        let mut tally = Tally::default();
        for e in entries {
            tally.read(e);
        }
        tally.close_at_journal_end();
        let flaps = tally.flaps();
        let outages = outages(tally.windows, end.unwrap_or(Timestamp::UNIX_EPOCH));
        Report {
            journal,
            session,
            start,
            end,
            ended_cleanly,
            outages,
            flaps,
            api_outages: tally.api_outages,
            not_ready: tally.not_ready,
            moves: tally.moves,
            versions: tally.versions,
            phases: tally.phases,
            operator: tally.operator,
        }
    }

    fn journal_end(&self) -> Timestamp {
        self.end.unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn journal_name(&self) -> String {
        self.journal
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.journal.path.display().to_string())
    }
}

/// The report's lists, gathered entry by entry in journal order. A window
/// (outage, NotReady, phase) opens on one entry and closes on a later one:
/// until then it waits in an `open` map.
#[derive(Default)]
struct Tally {
    /// Down endpoints: (service, endpoint) → since.
    down: BTreeMap<(String, String), Timestamp>,
    /// Outage windows by service: (endpoint, window).
    windows: BTreeMap<String, Vec<(String, Window)>>,
    /// NotReady nodes: node → (reason, since).
    not_ready_open: BTreeMap<String, (String, Timestamp)>,
    not_ready: Vec<(String, String, Window)>,
    moves: Vec<(Timestamp, String, String, String)>,
    versions: Vec<(Timestamp, String, String, String)>,
    /// The current phase of each node (None: the rollout's own), as an
    /// index into `phases`.
    phase_open: BTreeMap<Option<String>, usize>,
    phases: Vec<Phase>,
    operator: Vec<(Timestamp, String, String)>,
    /// Failures of the current run per endpoint, not (yet) an outage.
    failing: BTreeMap<(String, String), u32>,
    /// Failures that recovered short of DOWN, per service.
    flaps: BTreeMap<String, u32>,
    /// Since when the API server has been out, if it is.
    api_open: Option<Timestamp>,
    api_outages: Vec<Window>,
}

impl Tally {
    fn read(&mut self, e: &Entry) {
        match &e.kind {
            EntryKind::Api { failure } => self.api(e, failure.as_deref()),
            EntryKind::ProbeFailed {
                endpoint, streak, ..
            } => self.probe_failed(e, endpoint, *streak),
            EntryKind::ProbeDown {
                endpoint, since, ..
            } => {
                // The run's failures were the outage's beginning.
                self.failing.remove(&(e.subject.clone(), endpoint.clone()));
                self.down
                    .entry((e.subject.clone(), endpoint.clone()))
                    .or_insert(since.unwrap_or(e.at));
            }
            EntryKind::ProbeUp {
                endpoint,
                down_for_ms,
            } => self.probe_up(e, endpoint, *down_for_ms),
            EntryKind::NodeNotReady { reason } => {
                self.not_ready_open
                    .entry(e.subject.clone())
                    .or_insert((reason.clone(), e.at));
            }
            EntryKind::NodeReady | EntryKind::NodeDeleted => self.node_back(e),
            EntryKind::AnnouncerMove { from, to } => {
                self.moves
                    .push((e.at, e.subject.clone(), from.clone(), to.clone()));
            }
            EntryKind::Version { from, to } => {
                self.versions
                    .push((e.at, e.subject.clone(), from.clone(), to.clone()));
            }
            EntryKind::UpgradePhase { node, phase } => self.phase(e, node, phase),
            EntryKind::Operator { action } => {
                self.operator
                    .push((e.at, e.subject.clone(), action.clone()));
            }
            _ => {}
        }
    }

    /// Only an unreachable or silent server is an outage; journals from
    /// before failures were named say so by severity.
    fn api(&mut self, e: &Entry, failure: Option<&str>) {
        let outage = match failure {
            Some(kind) => kind == "unreachable" || kind == "silent",
            None => e.severity == Severity::Error,
        };
        if outage {
            self.api_open.get_or_insert(e.at);
        } else if let Some(start) = self.api_open.take() {
            self.api_outages.push(Window {
                start,
                end: Some(e.at),
            });
        }
    }

    fn probe_failed(&mut self, e: &Entry, endpoint: &str, streak: u32) {
        let run = self
            .failing
            .entry((e.subject.clone(), endpoint.to_string()))
            .or_default();
        // A new run: the last one recovered short of DOWN.
        if streak <= 1 && *run > 0 {
            *self.flaps.entry(e.subject.clone()).or_default() += std::mem::take(run);
        }
        *run += 1;
    }

    /// Services with failures that never became an outage, and how many.
    fn flaps(&mut self) -> Vec<(String, u32)> {
        for ((service, _), run) in std::mem::take(&mut self.failing) {
            *self.flaps.entry(service).or_default() += run;
        }
        std::mem::take(&mut self.flaps)
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    fn probe_up(&mut self, e: &Entry, endpoint: &str, down_for_ms: u64) {
        // Without its DOWN line (a torn journal), the UP line still says
        // how long the outage was.
        let start = self
            .down
            .remove(&(e.subject.clone(), endpoint.to_string()))
            .unwrap_or_else(|| {
                e.at - jiff::SignedDuration::from_millis(
                    i64::try_from(down_for_ms).unwrap_or(i64::MAX),
                )
            });
        self.windows.entry(e.subject.clone()).or_default().push((
            endpoint.to_string(),
            Window {
                start,
                end: Some(e.at),
            },
        ));
    }

    /// A node Ready again, or gone: its NotReady window, if open, ends.
    fn node_back(&mut self, e: &Entry) {
        if let Some((reason, start)) = self.not_ready_open.remove(&e.subject) {
            self.not_ready.push((
                e.subject.clone(),
                reason,
                Window {
                    start,
                    end: Some(e.at),
                },
            ));
        }
    }

    /// A node's next phase: it ends the node's previous one.
    fn phase(&mut self, e: &Entry, node: &Option<String>, phase: &str) {
        if let Some(i) = self.phase_open.remove(node) {
            self.phases[i].window.end = Some(e.at);
        }
        self.phase_open.insert(node.clone(), self.phases.len());
        self.phases.push(Phase {
            node: node.clone(),
            phase: phase.to_string(),
            window: Window {
                start: e.at,
                end: None,
            },
        });
    }

    /// Outages and NotReady windows still open when the journal ends stay
    /// open (no end), listed with the closed ones.
    fn close_at_journal_end(&mut self) {
        if let Some(start) = self.api_open.take() {
            self.api_outages.push(Window { start, end: None });
        }
        for ((service, endpoint), start) in std::mem::take(&mut self.down) {
            self.windows
                .entry(service)
                .or_default()
                .push((endpoint, Window { start, end: None }));
        }
        for (node, (reason, start)) in std::mem::take(&mut self.not_ready_open) {
            self.not_ready
                .push((node, reason, Window { start, end: None }));
        }
        self.not_ready.sort_by_key(|(n, _, w)| (w.start, n.clone()));
    }
}

/// Each service's outage windows by start, with its total downtime
/// (overlaps counted once; open windows run to `journal_end`).
fn outages(
    windows: BTreeMap<String, Vec<(String, Window)>>,
    journal_end: Timestamp,
) -> Vec<ServiceOutages> {
    windows
        .into_iter()
        .map(|(service, mut windows)| {
            windows.sort_by_key(|(ep, w)| (w.start, ep.clone()));
            let total = union_length(windows.iter().map(|(_, w)| w), journal_end);
            ServiceOutages {
                service,
                windows,
                total,
            }
        })
        .collect()
}

fn union_length<'a>(windows: impl Iterator<Item = &'a Window>, journal_end: Timestamp) -> Duration {
    let mut spans: Vec<(Timestamp, Timestamp)> = windows
        .map(|w| (w.start, w.end.unwrap_or(journal_end).max(w.start)))
        .collect();
    spans.sort();
    let mut total = Duration::ZERO;
    let mut current: Option<(Timestamp, Timestamp)> = None;
    for (s, e) in spans {
        match &mut current {
            Some((_, ce)) if s <= *ce => *ce = (*ce).max(e),
            _ => {
                if let Some((cs, ce)) = current.replace((s, e)) {
                    total += Duration::try_from(ce.duration_since(cs)).unwrap_or_default();
                }
            }
        }
    }
    if let Some((cs, ce)) = current {
        total += Duration::try_from(ce.duration_since(cs)).unwrap_or_default();
    }
    total
}

/// Outage-grade precision: tenths of a second under a minute.
fn precise(d: Duration) -> String {
    if d < Duration::from_secs(60) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format_duration(d)
    }
}

/// How times are written: in one zone, with the date only when the
/// session spans more than one day there.
struct Clock {
    tz: TimeZone,
    with_date: bool,
}

impl Clock {
    fn new(tz: TimeZone, report: &Report) -> Clock {
        let day = |t: Timestamp| t.to_zoned(tz.clone()).date();
        let with_date = match (report.start, report.end) {
            (Some(s), Some(e)) => day(s) != day(e),
            _ => false,
        };
        Clock { tz, with_date }
    }

    fn time(&self, t: Timestamp) -> String {
        let z = t.to_zoned(self.tz.clone());
        if self.with_date {
            z.strftime("%Y-%m-%d %H:%M:%S").to_string()
        } else {
            z.strftime("%H:%M:%S").to_string()
        }
    }

    fn full(&self, t: Timestamp) -> String {
        t.to_zoned(self.tz.clone())
            .strftime("%Y-%m-%d %H:%M:%S %Z")
            .to_string()
    }

    /// The zone's abbreviation at `t` (PST, CET, UTC, or an offset).
    fn zone(&self, t: Option<Timestamp>) -> String {
        let t = t.unwrap_or(Timestamp::UNIX_EPOCH);
        t.to_zoned(self.tz.clone()).strftime("%Z").to_string()
    }

    fn zone_name(&self, at: Option<Timestamp>) -> String {
        let abbrev = self.zone(at);
        match self.tz.iana_name() {
            Some(name) if name != abbrev && name != "UTC" => format!("{name} ({abbrev})"),
            _ => abbrev,
        }
    }
}

/// A journal string as Markdown inline text (a table cell or a list item):
/// on one line, with no terminal controls (the strings come from the
/// cluster, and the report is read with `cat` as often as rendered), pipes
/// escaped.
fn cell(text: &str) -> String {
    printable(text).replace('|', "\\|")
}

fn window_end(clock: &Clock, w: &Window) -> String {
    match w.end {
        Some(t) => clock.time(t),
        None => "(still at end of journal)".into(),
    }
}

fn window_length(report: &Report, w: &Window) -> String {
    let d = precise(w.length(report.journal_end()));
    if w.end.is_some() {
        d
    } else {
        format!("≥ {d}")
    }
}

/// The report as Markdown, times in `tz`.
pub fn markdown(report: &Report, tz: TimeZone) -> String {
    let clock = Clock::new(tz, report);
    let mut md = String::new();
    push_heading(&mut md, report, &clock);
    push_timeline(&mut md, report, &clock);
    md.push_str("\n## Summary\n\n");
    push_outages(&mut md, report, &clock);
    user_outage::push_markdown(&mut md, report);
    push_flaps(&mut md, report);
    push_api_outages(&mut md, report, &clock);
    push_not_ready(&mut md, report, &clock);
    push_section(
        &mut md,
        "Announcer moves",
        "No announcer moved.",
        "| Time | Service | From | To |\n|---|---|---|---|\n",
        report.moves.iter().map(|(at, svc, from, to)| {
            format!(
                "| {} | {} | {} | {} |\n",
                clock.time(*at),
                cell(svc),
                cell(from),
                cell(to)
            )
        }),
    );
    push_section(
        &mut md,
        "Version changes",
        "No node changed version.",
        "| Time | Node | From | To |\n|---|---|---|---|\n",
        report.versions.iter().map(|(at, node, from, to)| {
            format!(
                "| {} | {} | {} | {} |\n",
                clock.time(*at),
                cell(node),
                cell(from),
                cell(to)
            )
        }),
    );
    push_phases(&mut md, report, &clock);
    push_section(
        &mut md,
        "Operator interventions",
        "None.",
        "| Time | Subject | Action |\n|---|---|---|\n",
        report.operator.iter().map(|(at, subject, action)| {
            format!(
                "| {} | {} | {} |\n",
                clock.time(*at),
                cell(subject),
                cell(action)
            )
        }),
    );
    push_warnings(&mut md, report);
    md
}

/// A summary section: its `title`, then its table (`head` and `rows`), or
/// the sentence that says there is nothing to list.
fn push_section(
    md: &mut String,
    title: &str,
    none: &str,
    head: &str,
    rows: impl Iterator<Item = String>,
) {
    md.push_str(&format!("\n### {title}\n\n"));
    let mut rows = rows.peekable();
    if rows.peek().is_none() {
        md.push_str(none);
        md.push('\n');
        return;
    }
    md.push_str(head);
    rows.for_each(|row| md.push_str(&row));
}

/// The title and the session's facts: what ran where, from when to when,
/// whether it ended, which journal, which zone.
fn push_heading(md: &mut String, report: &Report, clock: &Clock) {
    let day = report
        .start
        .map(|t| {
            t.to_zoned(clock.tz.clone())
                .strftime("%Y-%m-%d")
                .to_string()
        })
        .unwrap_or_else(|| "(empty journal)".into());
    md.push_str(&format!("# Incident timeline, {day}\n\n"));
    if let Some((mode, context, server)) = &report.session {
        md.push_str(&format!(
            "- Session: `k3s-cockpit {}` on context `{}` ({})\n",
            cell(mode),
            cell(context),
            cell(server)
        ));
    }
    if let (Some(s), Some(e)) = (report.start, report.end) {
        let length = format_duration(Duration::try_from(e.duration_since(s)).unwrap_or_default());
        let how = if report.ended_cleanly {
            "the session ended normally"
        } else {
            "no session end recorded: the cockpit crashed, was killed or is still running"
        };
        md.push_str(&format!(
            "- From {} to {} ({length}); {how}\n",
            clock.full(s),
            clock.full(e)
        ));
    }
    md.push_str(&format!("- Journal: `{}`\n", cell(&report.journal_name())));
    md.push_str(&format!("- Times: {}\n\n", clock.zone_name(report.start)));
}

/// Every journal entry in order, errors in bold.
fn push_timeline(md: &mut String, report: &Report, clock: &Clock) {
    let zone = clock.zone(report.start);
    md.push_str("## Timeline\n\n");
    md.push_str(&format!("| Time ({zone}) | Event |\n|---|---|\n"));
    for e in &report.journal.entries {
        let text = format!("{}: {}", e.subject, e.text);
        let text = if e.severity == Severity::Error {
            format!("**{}**", cell(&text))
        } else {
            cell(&text)
        };
        md.push_str(&format!("| {} | {text} |\n", clock.time(e.at)));
    }
}

/// Each probe outage, then the downtime per service (overlapping
/// endpoints' windows counted once).
fn push_outages(md: &mut String, report: &Report, clock: &Clock) {
    md.push_str("### Service outages (measured by probes)\n\n");
    if report.outages.is_empty() {
        md.push_str("No probe outage recorded.\n");
        return;
    }
    md.push_str("| Service | Endpoint | Down | Up | Outage |\n|---|---|---|---|---|\n");
    for s in &report.outages {
        for (endpoint, w) in &s.windows {
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                cell(&s.service),
                cell(endpoint),
                clock.time(w.start),
                window_end(clock, w),
                window_length(report, w)
            ));
        }
    }
    md.push_str("\nTotal downtime per service:\n\n");
    for s in &report.outages {
        md.push_str(&format!(
            "- {}: {} in {} window{}\n",
            cell(&s.service),
            precise(s.total),
            s.windows.len(),
            if s.windows.len() == 1 { "" } else { "s" }
        ));
    }
}

/// Services whose probes failed without reaching DOWN.
fn push_flaps(md: &mut String, report: &Report) {
    if report.flaps.is_empty() {
        return;
    }
    md.push_str("\nProbe flaps (failures that did not reach DOWN):\n\n");
    for (service, n) in &report.flaps {
        md.push_str(&format!(
            "- {}: {n} failed probe{}\n",
            cell(service),
            if *n == 1 { "" } else { "s" }
        ));
    }
}

/// Windows when the API server was unreachable or silent (credentials or
/// permissions refused are not outages).
fn push_api_outages(md: &mut String, report: &Report, clock: &Clock) {
    if report.api_outages.is_empty() {
        return;
    }
    md.push_str("\n### API server outages (unreachable or silent)\n\n");
    md.push_str("| Down | Back | Outage |\n|---|---|---|\n");
    for w in &report.api_outages {
        md.push_str(&format!(
            "| {} | {} | {} |\n",
            clock.time(w.start),
            window_end(clock, w),
            window_length(report, w)
        ));
    }
}

fn push_not_ready(md: &mut String, report: &Report, clock: &Clock) {
    push_section(
        md,
        "Nodes NotReady",
        "No node went NotReady.",
        "| Node | NotReady | Ready again | Duration | Reason |\n|---|---|---|---|---|\n",
        report.not_ready.iter().map(|(node, reason, w)| {
            format!(
                "| {} | {} | {} | {} | {} |\n",
                cell(node),
                clock.time(w.start),
                window_end(clock, w),
                window_length(report, w),
                cell(reason)
            )
        }),
    );
}

/// Each phase's duration runs to the next phase of its node; the last one
/// has no end to measure to.
fn push_phases(md: &mut String, report: &Report, clock: &Clock) {
    push_section(
        md,
        "Upgrade phases",
        "No upgrade ran in this session.",
        "| Node | Phase | Started | Duration |\n|---|---|---|---|\n",
        report.phases.iter().map(|p| {
            format!(
                "| {} | {} | {} | {} |\n",
                cell(p.node.as_deref().unwrap_or("(rollout)")),
                cell(&p.phase),
                clock.time(p.window.start),
                if p.window.end.is_some() {
                    format_duration(p.window.length(report.journal_end()))
                } else {
                    "(last)".into()
                }
            )
        }),
    );
}

fn push_warnings(md: &mut String, report: &Report) {
    if report.journal.warnings.is_empty() {
        return;
    }
    md.push_str("\n## Journal warnings\n\n");
    for w in &report.journal.warnings {
        md.push_str(&format!("- {}\n", cell(w)));
    }
}

/// `json` as text safe on a terminal: serde escapes the C0 controls, but
/// JSON lets DEL and the C1 controls (U+0080..U+009F, CSI among them) through
/// raw. Outside strings pretty JSON holds only newlines and spaces, so every
/// other control is inside a string, where `\u00XX` means the same.
pub fn json_text(json: &Value) -> Result<String> {
    let text = serde_json::to_string_pretty(json).wrap_err("encoding the report")?;
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

fn secs(d: Duration) -> Value {
    json!((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// The report as JSON: instants as RFC 3339 UTC (`at`, `start`, `end`) plus
/// `time` strings in `tz`; durations in seconds.
pub fn json(report: &Report, tz: TimeZone) -> Value {
    let clock = Clock::new(tz, report);
    let journal_end = report.journal_end();
    let window = |w: &Window| {
        json!({
            "start": w.start.to_string(),
            "end": w.end.map(|t| t.to_string()),
            "start_time": clock.time(w.start),
            "end_time": w.end.map(|t| clock.time(t)),
            "secs": secs(w.length(journal_end)),
            "ongoing": w.end.is_none(),
        })
    };
    json!({
        "journal": report.journal.path.display().to_string(),
        "zone": clock.zone(report.start),
        "session": report.session.as_ref().map(|(mode, context, server)| json!({
            "mode": mode, "context": context, "server": server,
        })),
        "start": report.start.map(|t| t.to_string()),
        "end": report.end.map(|t| t.to_string()),
        "ended_cleanly": report.ended_cleanly,
        "entries": report.journal.entries.iter().map(|e| json!({
            "at": e.at.to_string(),
            "time": clock.time(e.at),
            "severity": e.severity,
            "subject": e.subject,
            "kind": e.kind,
            "text": e.text,
        })).collect::<Vec<_>>(),
        "outages": report.outages.iter().map(|s| json!({
            "service": s.service,
            "total_secs": secs(s.total),
            "windows": s.windows.iter().map(|(ep, w)| {
                let mut v = window(w);
                v["endpoint"] = json!(ep);
                v
            }).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "user_outage": user_outage::json(report),
        "api_outages": report.api_outages.iter().map(window).collect::<Vec<_>>(),
        "probe_flaps": report.flaps.iter().map(|(service, n)| json!({
            "service": service, "failed_probes": n,
        })).collect::<Vec<_>>(),
        "not_ready": report.not_ready.iter().map(|(node, reason, w)| {
            let mut v = window(w);
            v["node"] = json!(node);
            v["reason"] = json!(reason);
            v
        }).collect::<Vec<_>>(),
        "announcer_moves": report.moves.iter().map(|(at, svc, from, to)| json!({
            "at": at.to_string(), "time": clock.time(*at), "service": svc, "from": from, "to": to,
        })).collect::<Vec<_>>(),
        "versions": report.versions.iter().map(|(at, node, from, to)| json!({
            "at": at.to_string(), "time": clock.time(*at), "node": node, "from": from, "to": to,
        })).collect::<Vec<_>>(),
        "upgrade_phases": report.phases.iter().map(|p| {
            let mut v = window(&p.window);
            v["node"] = json!(p.node);
            v["phase"] = json!(p.phase);
            v
        }).collect::<Vec<_>>(),
        "operator": report.operator.iter().map(|(at, subject, action)| json!({
            "at": at.to_string(), "time": clock.time(*at), "subject": subject, "action": action,
        })).collect::<Vec<_>>(),
        "warnings": report.journal.warnings,
    })
}

/// Refuses to write the report over its own journal: `out` naming the same
/// file as `journal` (by device and inode, so `./x`, a symlink or a hard link
/// to it count too) would destroy the record the report is made from.
pub fn refuse_to_overwrite(journal: &Path, out: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let same = match (std::fs::metadata(journal), std::fs::metadata(out)) {
        (Ok(j), Ok(o)) => j.dev() == o.dev() && j.ino() == o.ino(),
        _ => false,
    };
    if same {
        bail!(
            "--out {} is the session journal {} itself: refusing to overwrite it (nothing written)",
            out.display(),
            journal.display()
        );
    }
    Ok(())
}

/// What the cockpit's report key does: the Markdown report of the session
/// journal `journal`, written next to it as `.md`. Returns the path.
pub fn write_session_report(journal: &Path, tz: TimeZone) -> Result<PathBuf> {
    let out = journal.with_extension("md");
    refuse_to_overwrite(journal, &out)?;
    let report = Report::build(read_journal(journal)?);
    std::fs::write(&out, markdown(&report, tz))
        .wrap_err_with(|| format!("cannot write the report {}", out.display()))?;
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn entry(secs: i64, subject: &str, kind: EntryKind, text: &str) -> String {
        let e = Entry {
            at: Timestamp::from_second(1_769_376_780 + secs).unwrap(),
            severity: Severity::Info,
            subject: subject.into(),
            kind,
            text: text.into(),
        };
        serde_json::to_string(&e).unwrap()
    }

    #[test]
    fn garbage_and_a_torn_last_line_are_skipped_with_file_line_warnings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        let good1 = entry(
            0,
            "f/f",
            EntryKind::ProbeDown {
                endpoint: "e".into(),
                error: "refused".into(),
                since: None,
            },
            "down",
        );
        let good2 = entry(
            12,
            "f/f",
            EntryKind::ProbeUp {
                endpoint: "e".into(),
                down_for_ms: 12_000,
            },
            "up",
        );
        let torn = &good1[..good1.len() / 2];
        std::fs::write(
            &path,
            format!("{good1}\nnot json at all\n\n{good2}\n{{\"at\":1}}\n{torn}"),
        )
        .unwrap();
        let journal = read_journal(&path).unwrap();
        assert_eq!(journal.entries.len(), 2);
        assert_eq!(journal.warnings.len(), 3, "{:?}", journal.warnings);
        assert!(
            journal.warnings[0].ends_with("s.jsonl:2: skipped: expected ident at line 1 column 2"),
            "{:?}",
            journal.warnings
        );
        assert!(journal.warnings[2].contains("s.jsonl:6: truncated last line"));
        let report = Report::build(journal);
        assert_eq!(report.outages[0].total, Duration::from_secs(12));
        assert!(!report.ended_cleanly);
    }

    #[test]
    fn windows_union_and_open_windows_count_to_the_journal_end() {
        let t = |s| Timestamp::from_second(s).unwrap();
        let w = [
            Window {
                start: t(0),
                end: Some(t(10)),
            },
            Window {
                start: t(5),
                end: Some(t(12)),
            },
            Window {
                start: t(20),
                end: None,
            },
        ];
        assert_eq!(union_length(w.iter(), t(25)), Duration::from_secs(17));
    }

    #[test]
    fn an_up_line_without_its_down_line_still_gives_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        let up = entry(
            30,
            "f/f",
            EntryKind::ProbeUp {
                endpoint: "e".into(),
                down_for_ms: 4_500,
            },
            "up",
        );
        std::fs::write(&path, format!("{up}\n")).unwrap();
        let report = Report::build(read_journal(&path).unwrap());
        assert_eq!(report.outages[0].total, Duration::from_millis(4_500));
    }

    /// A flap (one failure, then success), then a run of three that went
    /// DOWN: one flap counted, and the outage starts at the run's first
    /// failure, not at the entry that declared it.
    #[test]
    fn failures_short_of_down_are_flaps_and_an_outage_starts_at_its_first_failure() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        let failed = |at, streak| {
            entry(
                at,
                "f/f",
                EntryKind::ProbeFailed {
                    endpoint: "e".into(),
                    error: "no answer within 800ms".into(),
                    streak,
                    of: 3,
                },
                &format!("probe failed ({streak}/3)"),
            )
        };
        let since = Timestamp::from_second(1_769_376_780 + 20).unwrap();
        let lines = [
            failed(5, 1),
            failed(20, 1),
            failed(21, 2),
            entry(
                22,
                "f/f",
                EntryKind::ProbeDown {
                    endpoint: "e".into(),
                    error: "refused".into(),
                    since: Some(since),
                },
                "probe DOWN after 3 failures in a row",
            ),
            entry(
                30,
                "f/f",
                EntryKind::ProbeUp {
                    endpoint: "e".into(),
                    down_for_ms: 10_000,
                },
                "up",
            ),
            failed(40, 1),
            failed(41, 2),
        ];
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let report = Report::build(read_journal(&path).unwrap());
        assert_eq!(report.outages[0].windows[0].1.start, since);
        assert_eq!(report.outages[0].total, Duration::from_secs(10));
        // One lone failure, and the run of two still short at the end.
        assert_eq!(report.flaps, vec![("f/f".to_string(), 3)]);
        let md = markdown(&report, TimeZone::UTC);
        assert!(md.contains("- f/f: 3 failed probes"), "{md}");
        assert!(md.contains("probe failed (1/3)"), "{md}");
    }

    /// A 401 and a 403 are not outages; an unreachable spell and a silent
    /// one are, each until the next non-outage entry; an old journal's
    /// unnamed Error entry still counts.
    #[test]
    fn api_outage_windows_count_only_unreachable_and_silent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        let api = |at, failure: Option<&str>, severity| {
            let mut e: Entry = serde_json::from_str(&entry(
                at,
                "api",
                EntryKind::Api {
                    failure: failure.map(str::to_string),
                },
                "api",
            ))
            .unwrap();
            e.severity = severity;
            serde_json::to_string(&e).unwrap()
        };
        let lines = [
            api(0, Some("unauthorized"), Severity::Error),
            api(10, None, Severity::Info),
            api(20, Some("unreachable"), Severity::Error),
            api(25, Some("forbidden"), Severity::Error),
            api(30, Some("silent"), Severity::Error),
            api(34, None, Severity::Info),
            api(40, Some("server_error"), Severity::Error),
            api(41, None, Severity::Info),
            api(50, None, Severity::Error),
            api(53, None, Severity::Info),
        ];
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let report = Report::build(read_journal(&path).unwrap());
        let lengths: Vec<_> = report
            .api_outages
            .iter()
            .map(|w| w.length(report.journal_end()).as_secs())
            .collect();
        assert_eq!(lengths, [5, 4, 3]);
        let md = markdown(&report, TimeZone::UTC);
        assert!(
            md.contains("### API server outages (unreachable or silent)"),
            "{md}"
        );
    }
}
