//! The incident report: golden output for a fixed journal, bad journals,
//! and end to end against the lab's incident scenario: the cockpit probes
//! real sockets, and the outage it measures matches the one the lab
//! recorded within one probe interval.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use serde_json::Value;

const FIXTURE: &str = "tests/fixtures/incident-session.jsonl";

fn report(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("report").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "report failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn report_of_the_incident_journal_is_golden() {
    let md = stdout(&report(&[FIXTURE, "--utc"], &[]));
    insta::assert_snapshot!("incident_markdown_utc", md);
    let json = stdout(&report(&[FIXTURE, "--utc", "--format", "json"], &[]));
    let mut v: Value = serde_json::from_str(&json).unwrap();
    v["journal"] = Value::from("<fixture>");
    insta::assert_snapshot!(
        "incident_json_utc",
        serde_json::to_string_pretty(&v).unwrap()
    );
}

#[test]
fn local_zone_is_shown_and_utc_on_request() {
    // A POSIX TZ string: no tz database needed.
    let tz = [("TZ", "PST8PDT,M3.2.0,M11.1.0")];
    let md = stdout(&report(&[FIXTURE], &tz));
    assert!(md.contains("| Time (PST) | Event |"), "{md}");
    assert!(
        md.contains("| 13:52:00 | **k3s-vm-still-fawn: NotReady: Ready=Unknown"),
        "{md}"
    );
    let md = stdout(&report(&[FIXTURE, "--utc"], &tz));
    assert!(md.contains("| Time (UTC) | Event |"), "{md}");
    assert!(md.contains("| 21:52:00 |"), "{md}");
}

#[test]
fn garbage_and_a_torn_last_line_are_skipped_with_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("torn.jsonl");
    let good = std::fs::read_to_string(FIXTURE).unwrap();
    let lines: Vec<&str> = good.lines().collect();
    let torn = &lines[10][..lines[10].len() / 2];
    let text = format!(
        "{}\n\u{0}\u{7f}binary junk\n{}\n{torn}",
        lines[..10].join("\n"),
        lines[11..20].join("\n"),
    );
    std::fs::write(&path, text).unwrap();
    let out = report(&[path.to_str().unwrap(), "--utc"], &[]);
    let md = stdout(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:11: skipped", path.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{}:21: truncated last line", path.display())),
        "{stderr}"
    );
    // Everything before and after the junk is there.
    assert!(md.contains("upgrade to v1.35.0+k3s1"), "{md}");
    assert!(md.contains("k3s-vm-fun-bedbug | 21:46:45 | (still at end of journal)"));
    assert!(md.contains("## Journal warnings"), "{md}");
    assert!(md.contains("no session end recorded"), "{md}");

    // Not a journal at all, and an empty one: warnings or an empty
    // report, never a crash.
    std::fs::write(&path, "hello\n").unwrap();
    let md = stdout(&report(&[path.to_str().unwrap()], &[]));
    assert!(md.contains("(empty journal)"), "{md}");
    let missing = report(&[dir.path().join("nope.jsonl").to_str().unwrap()], &[]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope.jsonl"));
}

#[test]
fn default_journal_is_the_newest_session_and_out_writes_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let sessions = dir.path().join("k3s-cockpit/sessions");
    std::fs::create_dir_all(&sessions).unwrap();
    std::fs::write(sessions.join("20260101T000000Z-watch.jsonl"), "").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    std::fs::copy(FIXTURE, sessions.join("20260125T213250Z-upgrade.jsonl")).unwrap();
    let out_file = dir.path().join("r.md");
    let state = dir.path().to_str().unwrap();
    let out = report(
        &["--utc", "--out", out_file.to_str().unwrap()],
        &[("XDG_STATE_HOME", state)],
    );
    assert!(out.status.success(), "{out:?}");
    let md = std::fs::read_to_string(&out_file).unwrap();
    assert!(md.contains("20260125T213250Z-upgrade.jsonl"), "{md}");
}

#[test]
fn out_refuses_to_overwrite_its_own_journal() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j.jsonl");
    std::fs::copy(FIXTURE, &journal).unwrap();
    let before = std::fs::read(&journal).unwrap();
    let link = dir.path().join("link.jsonl");
    std::os::unix::fs::symlink(&journal, &link).unwrap();
    let hard = dir.path().join("hard.jsonl");
    std::fs::hard_link(&journal, &hard).unwrap();
    // The same file spelled as given, relative with `./`, through a symlink
    // and through a hard link.
    for out in ["j.jsonl", "./j.jsonl", "link.jsonl", "hard.jsonl"] {
        let run = Command::new(BIN)
            .current_dir(dir.path())
            .args(["report", "j.jsonl", "--out", out])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "--out {out}: {err}");
        assert!(err.contains("refusing to overwrite"), "{err}");
        assert!(err.contains(out), "{err}");
        assert_eq!(std::fs::read(&journal).unwrap(), before, "--out {out}");
    }
}

/// The fixture with terminal controls (an OSC title sequence, a C1 CSI, a
/// CR) added to every string the journal carries.
fn journal_with_controls() -> String {
    fn poison(v: &mut Value) {
        match v {
            Value::String(s) => s.push_str("\u{1b}]0;evil\u{7}\u{9b}2J\rX"),
            Value::Array(items) => items.iter_mut().for_each(poison),
            Value::Object(fields) => fields
                .iter_mut()
                // The instant and the enum tags must still parse.
                .filter(|(k, _)| !matches!(k.as_str(), "at" | "severity" | "type"))
                .for_each(|(_, v)| poison(v)),
            _ => {}
        }
    }
    let fixture = std::fs::read_to_string(FIXTURE).unwrap();
    let mut out = String::new();
    for line in fixture.lines() {
        let mut v: Value = serde_json::from_str(line).unwrap();
        poison(&mut v);
        out.push_str(&v.to_string());
        out.push('\n');
    }
    out
}

fn assert_no_controls(what: &str, text: &str) {
    let bad: Vec<char> = text
        .chars()
        .filter(|c| c.is_control() && *c != '\n')
        .collect();
    assert!(bad.is_empty(), "{what} carries controls {bad:?}:\n{text}");
}

#[test]
fn markdown_never_carries_terminal_controls_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("evil.jsonl");
    std::fs::write(&journal, journal_with_controls()).unwrap();
    let journal = journal.to_str().unwrap();
    let md = stdout(&report(&[journal, "--utc"], &[]));
    assert!(md.contains("]0;evil"), "the text itself is kept:\n{md}");
    assert_no_controls("stdout", &md);
    let file = dir.path().join("evil.md");
    let out = report(&[journal, "--utc", "--out", file.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{out:?}");
    assert_no_controls("--out", &std::fs::read_to_string(&file).unwrap());
    // JSON keeps the exact strings, escaped by the encoder.
    let json = stdout(&report(&[journal, "--format", "json"], &[]));
    assert_no_controls("json", &json);
    let v: Value = serde_json::from_str(&json).unwrap();
    assert!(
        v["session"]["context"]
            .as_str()
            .unwrap()
            .ends_with("\u{1b}]0;evil\u{7}\u{9b}2J\rX")
    );
}

/// The lab's recorded outages of `service` whose cause contains `cause`.
fn lab_outages(path: &Path, service: &str, cause: &str) -> Vec<(jiff::Timestamp, jiff::Timestamp)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| {
            v["service"] == service && v["cause"].as_str().unwrap_or_default().contains(cause)
        })
        .map(|v| {
            (
                v["start"].as_str().unwrap().parse().unwrap(),
                v["end"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn incident_session_report_matches_the_lab_outage() {
    if !common::require("incident_session_report_matches_the_lab_outage", &["tmux"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The built-in incident, 20x faster, on ports of our own (another lab
    // may be serving the scenario's), the old automation starting 6 s in
    // so the cockpit is watching before the first upgrade.
    let mut scenario = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/scenarios/incident-2026-01-25.toml"
    ))
    .unwrap();
    for (from, to) in [
        ("port = 5000".to_string(), format!("port = {}", free_port())),
        ("port = 8123".to_string(), format!("port = {}", free_port())),
        (
            "start = \"20s\"".to_string(),
            "start = \"120s\"".to_string(),
        ),
        (
            "settle = \"30s\"".to_string(),
            "settle = \"10s\"".to_string(),
        ),
    ] {
        assert!(scenario.contains(&from), "{from} not in the scenario");
        scenario = scenario.replace(&from, &to);
    }
    let outage_log = dir.path().join("lab-outages.jsonl");
    let lab = start_lab(
        dir.path(),
        &scenario,
        &[
            "--time-scale",
            "20",
            "--outage-log",
            outage_log.to_str().unwrap(),
        ],
    );
    let state = dir.path().join("state");
    let cmd = format!(
        "XDG_STATE_HOME={} {BIN} --log-file {}/cockpit.log watch --kubeconfig {} --probe-all=http --probe-failures 1; echo EXIT=$?; sleep 30",
        state.display(),
        dir.path().display(),
        lab.kubeconfig.display()
    );
    // The lab's outage lasts about 2 s (time runs four-fold), and its
    // loopback sockets never flap: every failure is the outage.
    let tmux = Tmux::start("report", 120, 40, &cmd);
    // The probe column appears with the first probe result.
    tmux.wait_until(Duration::from_secs(20), |s| {
        s.contains("k3s-vm-still-fawn") && s.contains("PROBE")
    })
    .unwrap();
    tmux.wait_for("UP ", Duration::from_secs(10)).unwrap();
    // The old automation restarts each announcer in place (short dark
    // windows), then still-fawn's speaker dies: wait for that outage to
    // end in the lab, and for the cockpit's probe to see frigate again.
    assert!(wait_for(Duration::from_secs(120), || {
        !lab_outages(&outage_log, "frigate/frigate", "speaker dead").is_empty()
    }));
    tmux.wait_for("announcer moved", Duration::from_secs(10))
        .unwrap();
    let journal_dir = state.join("k3s-cockpit/sessions");
    assert!(wait_for(Duration::from_secs(10), || {
        let text: String = std::fs::read_dir(&journal_dir)
            .map(|d| {
                d.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                    .collect()
            })
            .unwrap_or_default();
        let moved = text.find("\"announcer_move\"");
        let up = text.rfind("\"probe_up\"");
        matches!((moved, up), (Some(m), Some(u)) if u > m)
    }));

    // The report key writes the session's report beside its journal.
    tmux.keys("W");
    tmux.wait_for("report written", Duration::from_secs(5))
        .unwrap();
    tmux.keys("q");
    let screen = tmux.wait_for("EXIT=", Duration::from_secs(10)).unwrap();
    assert!(screen.contains("EXIT=0"), "{screen}");
    drop(lab);

    let sessions = state.join("k3s-cockpit/sessions");
    let written: Vec<_> = std::fs::read_dir(&sessions)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let md_path = written
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "md"))
        .expect("the W key wrote a report");
    assert!(
        std::fs::read_to_string(md_path)
            .unwrap()
            .contains("probe DOWN")
    );

    let env = [("XDG_STATE_HOME", state.to_str().unwrap())];
    let v: Value =
        serde_json::from_str(&stdout(&report(&["--utc", "--format", "json"], &env))).unwrap();
    let entries = v["entries"].as_array().unwrap();
    let find = |what: &dyn Fn(&Value) -> bool| -> Vec<usize> {
        entries
            .iter()
            .enumerate()
            .filter(|(_, e)| what(e))
            .map(|(i, _)| i)
            .collect()
    };
    let kind = |e: &Value| e["kind"]["type"].as_str().unwrap_or_default().to_string();
    let upgrades = find(&|e| kind(e) == "version" && e["kind"]["to"] == "v1.35.0+k3s1");
    assert_eq!(upgrades.len(), 3, "three nodes upgraded to v1.35.0");
    let last_upgrade = *upgrades.iter().max().unwrap();
    let lost = |node: &str| {
        *find(&|e| {
            kind(e) == "node_not_ready"
                && e["subject"] == node
                && e["kind"]["reason"] == "NodeStatusUnknown"
        })
        .first()
        .unwrap_or_else(|| panic!("{node} never went NotReady: {entries:#?}"))
    };
    let (fun_bedbug, still_fawn) = (lost("k3s-vm-fun-bedbug"), lost("k3s-vm-still-fawn"));
    let moves = find(&|e| kind(e) == "announcer_move" && e["subject"] == "frigate/frigate");
    let downs = find(&|e| kind(e) == "probe_down" && e["subject"] == "frigate/frigate");
    let ups = find(&|e| kind(e) == "probe_up" && e["subject"] == "frigate/frigate");
    assert_eq!(moves.len(), 1, "{entries:#?}");
    assert_eq!(downs.len(), ups.len(), "{entries:#?}");
    // In order: the upgrade, the delayed NotReady of two nodes, then the
    // outage (starting when the speaker dies) and the announcer move. The
    // restarts before it may have darkened frigate briefly too.
    assert!(
        last_upgrade < fun_bedbug && fun_bedbug < still_fawn,
        "{entries:#?}"
    );
    assert!(still_fawn < moves[0], "{entries:#?}");
    let speaker_down = *downs.last().unwrap();
    assert!(last_upgrade < speaker_down && speaker_down < moves[0]);
    assert!(speaker_down < *ups.last().unwrap());
    // home-assistant's announcer never lost its speaker: it was dark only
    // while the old automation restarted K3s under it.
    assert!(
        lab_outages(&outage_log, "home/home-assistant", "speaker").is_empty(),
        "{entries:#?}"
    );

    // The speaker outage measured against the lab's own record: within
    // one probe interval.
    let lab = lab_outages(&outage_log, "frigate/frigate", "speaker dead");
    assert_eq!(lab.len(), 1, "lab outages: {lab:?}");
    let lab_secs = lab[0].1.duration_since(lab[0].0).as_secs_f64();
    let outage = v["outages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["service"] == "frigate/frigate")
        .unwrap();
    let window = outage["windows"].as_array().unwrap().last().unwrap();
    let measured = window["secs"].as_f64().unwrap();
    eprintln!("lab outage {lab_secs:.3}s, measured by probes {measured:.3}s");
    assert!(
        (measured - lab_secs).abs() <= 1.0,
        "measured {measured}s vs lab {lab_secs}s"
    );
    let start: jiff::Timestamp = window["start"].as_str().unwrap().parse().unwrap();
    let late = start.duration_since(lab[0].0).as_secs_f64();
    // The probe's instant is when it was sent: a probe sent a hair before
    // the socket closed may fail after it did.
    assert!(
        (-0.2..=1.2).contains(&late),
        "probe saw the outage {late}s after it began"
    );

    // The Markdown table carries the same story.
    let md = stdout(&report(&["--utc"], &env));
    assert!(md.contains("| Time (UTC) | Event |"), "{md}");
    let pos = |needle: &str| {
        md.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} missing:\n{md}"))
    };
    assert!(
        pos("k3s-vm-still-fawn: version v1.34.3+k3s1 → v1.35.0+k3s1")
            < pos("k3s-vm-fun-bedbug: NotReady: Ready=Unknown")
    );
    assert!(
        pos("k3s-vm-still-fawn: NotReady: Ready=Unknown") < pos("frigate/frigate: announcer moved")
    );
    assert!(pos("frigate/frigate: probe DOWN") < pos("frigate/frigate: probe up again"));
}

/// A file that is no journal and never ends (`/dev/zero`) is read up to
/// one over-long line and reported, not read into memory without bound.
#[test]
fn an_endless_file_is_refused_within_a_bounded_read() {
    let out = std::process::Command::new(common::BIN)
        .args(["report", "/dev/zero"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("longer than 1024 KiB")
            || String::from_utf8_lossy(&out.stdout).contains("longer than 1024 KiB"),
        "{err}"
    );
}
