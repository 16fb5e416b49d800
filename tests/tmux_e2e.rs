//! End to end in tmux: the cockpit as tmux users run it. Its pane title
//! names a node whose heartbeat turned LATE or EXPIRED, its bell flags its
//! (background) window, `k3s-cockpit status` prints the same line for the
//! status bar, and on quit the title is put back and the status is gone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn status(state_home: &Path, json: bool) -> String {
    let mut cmd = Command::new(BIN);
    cmd.arg("status").env("XDG_STATE_HOME", state_home);
    if json {
        cmd.args(["--format", "json"]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end()
        .to_string()
}

fn wait_title(tmux: &Tmux, target: &str, timeout: Duration, ok: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < timeout {
        last = tmux.show(target, "#{pane_title}");
        if ok(&last) {
            return last;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "pane {target}: title not as expected within {timeout:?}; last {last:?}; screen:\n{}",
        tmux.run(&["capture-pane", "-p", "-t", target])
    );
}

#[test]
fn title_bell_and_status_follow_a_failing_kubelet() {
    if !require("title_bell_and_status_follow_a_failing_kubelet", &["tmux"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let victim = first_announcer();
    let lab = start_lab(dir.path(), &fast_scenario(victim, "8s"), &[]);
    let state = dir.path().join("state");
    let quiet_state = dir.path().join("quiet-state");
    let cockpit = |state: &Path, env: &str, log: &str| {
        format!(
            "{env} XDG_STATE_HOME={} {BIN} --log-file {}/{log} watch --kubeconfig {}; echo EXIT=$?; sleep 30",
            state.display(),
            dir.path().display(),
            lab.kubeconfig.display()
        )
    };
    // Window 0: the cockpit. Window 1: a second one with the bell off.
    // Window 2, selected: the operator's shell. tmux flags a bell only in a
    // window that is not the current one.
    let tmux = Tmux::start("title", 120, 32, &cockpit(&state, "", "cockpit.log"));
    tmux.run(&["set", "-g", "monitor-bell", "on"]);
    tmux.run(&[
        "new-window",
        &cockpit(&quiet_state, "K3S_COCKPIT_NO_BELL=1", "quiet.log"),
    ]);
    tmux.run(&["new-window", "sleep 600"]);
    tmux.run(&["select-window", "-t", ":2"]);

    let ok = wait_title(&tmux, ":0", Duration::from_secs(20), |t| {
        t == "k3s-cockpit watch 3 nodes ok"
    });
    assert_eq!(status(&state, false), ok, "status says what the title says");
    assert_eq!(tmux.show(":0", "#{window_bell_flag}"), "0", "no bell yet");

    // The victim's kubelet stops ~8 s after the lab started.
    let names_victim =
        |t: &str| t.contains(victim) && (t.contains("LATE") || t.contains("EXPIRED"));
    let title = wait_title(&tmux, ":0", Duration::from_secs(20), names_victim);
    assert!(title.starts_with("k3s-cockpit watch "), "{title}");
    let quiet_title = wait_title(&tmux, ":1", Duration::from_secs(10), names_victim);
    assert!(
        quiet_title.starts_with("k3s-cockpit watch "),
        "{quiet_title}"
    );
    assert!(
        wait_for(Duration::from_secs(5), || tmux
            .show(":0", "#{window_bell_flag}")
            == "1"),
        "the cockpit's window has no bell flag"
    );
    assert_eq!(
        tmux.show(":1", "#{window_bell_flag}"),
        "0",
        "K3S_COCKPIT_NO_BELL=1 rang the bell"
    );

    // `status` prints the title's text (compared while the title holds
    // still: LATE turns EXPIRED a few seconds later).
    let same = wait_for(Duration::from_secs(10), || {
        let before = tmux.show(":0", "#{pane_title}");
        let said = status(&state, false);
        let after = tmux.show(":0", "#{pane_title}");
        before == after && said == before && names_victim(&said)
    });
    assert!(
        same,
        "status {:?} vs title {:?}",
        status(&state, false),
        tmux.show(":0", "#{pane_title}")
    );
    let json: serde_json::Value = serde_json::from_str(&status(&state, true)).unwrap();
    assert!(names_victim(json["text"].as_str().unwrap()), "{json}");
    assert!(
        ["late", "expired"].contains(&json["state"].as_str().unwrap()),
        "{json}"
    );
    let pid = json["pid"].as_u64().unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists(), "{json}");
    assert!(json["updated"].as_str().unwrap().ends_with('Z'), "{json}");

    // Quit: the title saved at start is back, the status is gone.
    tmux.run(&["send-keys", "-t", ":0", "q"]);
    let restored = wait_title(&tmux, ":0", Duration::from_secs(10), |t| {
        !t.starts_with("k3s-cockpit")
    });
    assert!(!restored.is_empty());
    // The title is restored before the process has exited.
    let screen = tmux.wait_for("EXIT=", Duration::from_secs(10)).unwrap();
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert_eq!(
        status(&state, false),
        "",
        "the status file outlived the cockpit"
    );
    let left: Vec<_> = std::fs::read_dir(state.join("k3s-cockpit/status"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
    tmux.run(&["send-keys", "-t", ":1", "q"]);
}
