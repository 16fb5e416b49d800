//! `k3s-cockpit status`: the running cockpit's line for tmux's status bar,
//! read from the file the cockpit keeps; nothing when no cockpit runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn status(state_home: &Path, args: &[&str]) -> String {
    let started = Instant::now();
    let out = Command::new(BIN)
        .arg("status")
        .args(args)
        .env("XDG_STATE_HOME", state_home)
        // A flag's environment form parses too.
        .env("K3S_COCKPIT_NO_BELL", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // tmux runs it every few seconds: no cluster, no runtime.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    String::from_utf8(out.stdout).unwrap()
}

fn write(dir: &Path, pid: u32, text: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let json = serde_json::json!({
        "state": "late",
        "text": text,
        "pid": pid,
        "updated": "2026-01-25T21:46:00Z",
    });
    std::fs::write(dir.join(format!("{pid}.json")), json.to_string()).unwrap();
}

#[test]
fn status_prints_the_live_cockpits_line_and_nothing_otherwise() {
    let home = tempfile::tempdir().unwrap();
    assert_eq!(status(home.path(), &[]), "", "no cockpit ever ran");
    let dir = home.path().join("k3s-cockpit/status");

    // A cockpit killed with -9 left its file: its pid is gone.
    let mut gone = Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    write(&dir, gone_pid, "k3s-cockpit watch EXPIRED old");
    assert_eq!(status(home.path(), &[]), "");
    assert_eq!(status(home.path(), &["--format", "json"]), "");

    // A live one (this test stands in for the cockpit's process).
    write(&dir, std::process::id(), "k3s-cockpit watch LATE node-b");
    assert_eq!(status(home.path(), &[]), "k3s-cockpit watch LATE node-b\n");
    let json: serde_json::Value =
        serde_json::from_str(&status(home.path(), &["--format", "json"])).unwrap();
    assert_eq!(json["state"], "late");
    assert_eq!(json["text"], "k3s-cockpit watch LATE node-b");
    assert_eq!(json["pid"], std::process::id());
    assert_eq!(json["updated"], "2026-01-25T21:46:00Z");
}
