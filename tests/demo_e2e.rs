//! `k3s-cockpit demo` in a real terminal (tmux), driven from the keyboard:
//! a canary catches the delayed kubelet failure, restart-K3s heals the
//! node, resume and confirm finish the rollout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;

const INCIDENT: &str = include_str!("../assets/scenarios/incident-2026-01-25.toml");

/// The incident reduced to its last hop at 10x the demo's speed: every node
/// on v1.34, fun-bedbug's kubelet dies 14 s after its v1.35 upgrade, within
/// the 24 s canary soak.
fn last_hop_scenario() -> String {
    let cut = INCIDENT.find("# 13:52").unwrap();
    let replay = INCIDENT.find("# The old automation").unwrap();
    format!("{}{}", &INCIDENT[..cut], &INCIDENT[replay..])
        .replace("time_scale = 4.0", "time_scale = 10.0")
        .replace("version = \"v1.33.6+k3s1\"", "version = \"v1.34.3+k3s1\"")
        .replace(
            "versions = [\"v1.34.3+k3s1\", \"v1.35.0+k3s1\"]",
            "versions = [\"v1.35.0+k3s1\"]",
        )
}

#[test]
fn demo_canary_halts_restart_heals_resume_completes() {
    if !common::require(
        "demo_canary_halts_restart_heals_resume_completes",
        &["tmux"],
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("last-hop.toml");
    std::fs::write(&scenario, last_hop_scenario()).unwrap();
    let cmd = format!(
        "XDG_STATE_HOME={0} {BIN} --log-file {0}/cockpit.log demo --scenario {1}; echo EXIT=$?; sleep 30",
        dir.path().display(),
        scenario.display()
    );
    let tmux = Tmux::start("demo", 130, 42, &cmd);
    // The operator looks at another window: tmux flags a bell only there.
    tmux.run(&["set", "-g", "monitor-bell", "on"]);
    tmux.run(&["new-window", "sleep 600"]);
    let screen = tmux.wait_for(" IDLE ", Duration::from_secs(30)).unwrap();
    assert!(screen.contains("v1.35.0+k3s1"), "{screen}");
    assert!(!screen.contains("READ-ONLY"), "control mode:\n{screen}");
    // The drain report of the first node is in the rollout panel.
    assert!(
        screen.contains(" drain k3s-vm-fun-bedbug: evicts 0 · listed "),
        "{screen}"
    );

    // Canary, confirmed.
    tmux.keys("C");
    tmux.wait_for("? y = yes", Duration::from_secs(5)).unwrap();
    tmux.keys("y");
    tmux.wait_for(" RUNNING ", Duration::from_secs(10)).unwrap();

    // The kubelet dies inside the canary soak: halted, cause named, on
    // the screen, in the pane title and in `k3s-cockpit status`.
    let screen = tmux.wait_for(" HALTED ", Duration::from_secs(60)).unwrap();
    assert!(
        screen.contains("HALTED: soak of k3s-vm-fun-bedbug"),
        "{screen}"
    );
    assert_eq!(
        tmux.show(":0", "#{window_bell_flag}"),
        "1",
        "the halt rings"
    );
    let title = tmux.show(":0", "#{pane_title}");
    assert!(
        title.starts_with("k3s-cockpit HALTED k3s-vm-fun-bedbug"),
        "{title}"
    );
    let status = std::process::Command::new(BIN)
        .arg("status")
        .env("XDG_STATE_HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&status.stdout).trim(), title);

    // fun-bedbug is the first row, selected: restart K3s on it.
    tmux.keys("R");
    tmux.wait_for("restart K3s k3s-vm-fun-bedbug?", Duration::from_secs(5))
        .unwrap();
    tmux.keys("y");
    tmux.wait_for(
        "restart K3s k3s-vm-fun-bedbug: done",
        Duration::from_secs(20),
    )
    .unwrap();
    // Its kubelet came back (Ready again since the restart's blip, a few
    // seconds ago) and heartbeats before the rollout resumes.
    tmux.wait_until(Duration::from_secs(30), |screen| {
        screen.lines().any(|l| {
            let mut words = l.split_whitespace();
            l.contains("k3s-vm-fun-bedbug")
                && !l.contains("LATE")
                && !l.contains("EXPIRED")
                && words.any(|w| w == "Ready")
                && words
                    .next()
                    .and_then(|since| since.strip_suffix('s')?.parse::<u64>().ok())
                    .is_some_and(|secs| secs < 10)
        })
    })
    .unwrap();

    // Resume: the canary soaks again, then waits for confirmation.
    tmux.keys("p");
    let screen = tmux
        .wait_for(" CANARY AWAITING CONFIRMATION ", Duration::from_secs(60))
        .unwrap();
    assert!(!screen.contains(" HALTED "), "{screen}");
    tmux.keys("A");
    tmux.wait_for("? y = yes", Duration::from_secs(5)).unwrap();
    tmux.keys("y");
    let screen = tmux.wait_for(" DONE ", Duration::from_secs(120)).unwrap();
    for node in [
        "k3s-vm-fun-bedbug",
        "k3s-vm-pumped-piglet-gpu",
        "k3s-vm-still-fawn",
    ] {
        let row = screen
            .lines()
            .find(|l| l.contains(node) && l.contains("Ready"))
            .unwrap_or_else(|| panic!("no row for {node}:\n{screen}"));
        assert!(row.contains("v1.35.0+k3s1"), "{row}");
    }
    tmux.keys("q");
    tmux.wait_for("EXIT=0", Duration::from_secs(10)).unwrap();
    frigate_was_handed_off_before_its_announcer_was_cordoned(dir.path());
}

/// The session journal: MetalLB moved frigate off still-fawn during the
/// handoff, before still-fawn was cordoned, and frigate's probe never went
/// DOWN (its announcer's restarts would darken it otherwise).
fn frigate_was_handed_off_before_its_announcer_was_cordoned(state: &std::path::Path) {
    let sessions = state.join("k3s-cockpit/sessions");
    let entries: Vec<serde_json::Value> = std::fs::read_dir(&sessions)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .flat_map(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            text.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    let kind = |e: &serde_json::Value| e["kind"]["type"].as_str().unwrap_or_default().to_string();
    let first_at = |what: &dyn Fn(&serde_json::Value) -> bool| {
        entries
            .iter()
            .find(|e| what(e))
            .map(|e| {
                e["at"]
                    .as_str()
                    .unwrap()
                    .parse::<jiff::Timestamp>()
                    .unwrap()
            })
            .unwrap_or_else(|| panic!("not in the journal: {entries:#?}"))
    };
    let fawn = "k3s-vm-still-fawn";
    let phase = |p: &'static str| {
        move |e: &serde_json::Value| {
            kind(e) == "upgrade_phase" && e["kind"]["node"] == fawn && e["kind"]["phase"] == p
        }
    };
    let handoff = first_at(&phase("handoff"));
    let cordon = first_at(&phase("cordon"));
    let moved = first_at(&|e| {
        kind(e) == "announcer_move"
            && e["subject"] == "frigate/frigate"
            && e["kind"]["from"] == fawn
    });
    assert!(
        handoff <= moved && moved < cordon,
        "{handoff} {moved} {cordon}"
    );
    // still-fawn's pods were listed again as its turn came, before its
    // cordon: frigate's only replica is named.
    let listed = first_at(&|e| {
        e["text"].as_str().is_some_and(|t| {
            t.starts_with(
                "drain k3s-vm-still-fawn as its turn comes: evicts 1 · 1 warn: frigate/frigate-",
            )
        })
    });
    assert!(listed < cordon, "{listed} {cordon}");
    let downs: Vec<_> = entries
        .iter()
        .filter(|e| kind(e) == "probe_down" && e["subject"] == "frigate/frigate")
        .collect();
    assert!(downs.is_empty(), "frigate went DOWN: {downs:#?}");
}
