//! End to end: the real binary in tmux, watching the real lab binary over
//! HTTP. What an operator sees, and proof that watch mode only reads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;

/// `watch` on `kubeconfig` in a shell that prints its exit status, with
/// the session journal and the log in `dir`, not the tester's state dir.
fn watch_command(dir: &std::path::Path, kubeconfig: &std::path::Path) -> String {
    format!(
        "XDG_STATE_HOME={0}/state {BIN} --log-file {0}/cockpit.log watch --kubeconfig {1}; echo EXIT=$?; sleep 30",
        dir.display(),
        kubeconfig.display()
    )
}

#[test]
fn watch_shows_heartbeats_failure_and_announcer_move_and_only_reads() {
    if !common::require(
        "watch_shows_heartbeats_failure_and_announcer_move_and_only_reads",
        &["tmux"],
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let victim = first_announcer();
    let audit = dir.path().join("audit.jsonl");
    let lab = start_lab(
        dir.path(),
        &fast_scenario(victim, "8s"),
        &["--audit-log", audit.to_str().unwrap()],
    );
    let cmd = watch_command(dir.path(), &lab.kubeconfig);
    let tmux = Tmux::start("watch", 120, 32, &cmd);

    // Nodes and the announcer arrive from separate watches: wait for both.
    let screen = tmux
        .wait_until(Duration::from_secs(20), |s| {
            s.contains("node-c") && s.contains("127.77.0.10")
        })
        .unwrap();
    for node in ["node-a", "node-b", "node-c"] {
        assert!(screen.contains(node), "{node} missing:\n{screen}");
    }
    assert!(screen.contains("READ-ONLY"), "{screen}");
    assert!(screen.contains("v1.33.6+k3s1"), "{screen}");
    assert!(
        screen.contains("127.77.0.10"),
        "announced IP shown:\n{screen}"
    );

    // The victim stops renewing: late, then expired, then the node
    // lifecycle controller marks it NotReady; MetalLB moves the IP.
    tmux.wait_for("LATE", Duration::from_secs(15)).unwrap();
    tmux.wait_for("EXPIRED", Duration::from_secs(15)).unwrap();
    let screen = tmux.wait_for("Unknown", Duration::from_secs(15)).unwrap();
    let victim_row = screen.lines().find(|l| l.contains(victim)).unwrap();
    assert!(
        victim_row.contains("EXPIRED") && victim_row.contains("Unknown"),
        "{victim_row}"
    );
    let screen = tmux
        .wait_for("announcer moved", Duration::from_secs(15))
        .unwrap();
    assert!(
        screen.contains(&format!("announcer moved {victim}")),
        "{screen}"
    );

    // Ages tick on healthy nodes too: a healthy row's heartbeat stays fresh.
    let healthy = ["node-a", "node-b", "node-c"]
        .into_iter()
        .find(|n| *n != victim)
        .unwrap();
    let row = screen
        .lines()
        .find(|l| l.contains(healthy) && l.contains("Ready"))
        .unwrap()
        .to_string();
    assert!(!row.contains("LATE") && !row.contains("EXPIRED"), "{row}");

    // A mutating key is refused with a clear message.
    tmux.keys("c");
    tmux.wait_for("read-only", Duration::from_secs(5)).unwrap();

    // Node detail: conditions and the lease.
    tmux.keys("Enter");
    tmux.wait_for("Conditions", Duration::from_secs(5)).unwrap();
    tmux.keys("Escape");

    tmux.keys("q");
    let screen = tmux.wait_for("EXIT=", Duration::from_secs(10)).unwrap();
    assert!(screen.contains("EXIT=0"), "{screen}");
    // Terminal restored: the cockpit's frame is gone from the screen.
    assert!(!screen.contains("Timeline"), "{screen}");
    drop(lab);

    // Read-only proof: every request the cockpit made was get/list/watch.
    let log = std::fs::read_to_string(&audit).unwrap();
    let verbs: Vec<String> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["verb"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(verbs.len() > 5, "the cockpit made requests: {verbs:?}");
    assert!(verbs.iter().any(|v| v == "watch"));
    let mutating: Vec<&String> = verbs
        .iter()
        .filter(|v| !matches!(v.as_str(), "get" | "list" | "watch"))
        .collect();
    assert!(
        mutating.is_empty(),
        "mutating requests in watch mode: {mutating:?}"
    );
}

/// A hung API server (the lab stopped with SIGSTOP) is not a cluster of
/// dead kubelets: the cockpit says the server is silent, marks no node
/// LATE while it is, and after it answers again lists everything afresh.
#[test]
fn a_silent_api_server_is_named_and_no_kubelet_is_blamed() {
    if !common::require(
        "a_silent_api_server_is_named_and_no_kubelet_is_blamed",
        &["tmux"],
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Kubernetes' default timings: renewals every 10 s, 40 s leases, so a
    // heartbeat would read LATE about 11 s after the last renewal.
    let scenario = fast_scenario("node-c", "1h")
        .replace("lease_duration = \"4s\"", "lease_duration = \"40s\"")
        .replace("renew_interval = \"1s\"", "renew_interval = \"10s\"")
        .replace("grace_period = \"6s\"", "grace_period = \"40s\"");
    let lab = start_lab(dir.path(), &scenario, &[]);
    let cmd = watch_command(dir.path(), &lab.kubeconfig);
    let tmux = Tmux::start("silent", 120, 32, &cmd);
    tmux.wait_for("● connected", Duration::from_secs(20))
        .unwrap();
    tmux.wait_for("node-c", Duration::from_secs(20)).unwrap();

    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &lab.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    };
    signal("-STOP");
    let stopped = std::time::Instant::now();
    // Named within a lease period.
    let screen = tmux
        .wait_for("API SILENT", Duration::from_secs(40))
        .unwrap();
    assert!(stopped.elapsed() < Duration::from_secs(40));
    assert!(
        !screen.contains("LATE") && !screen.contains("EXPIRED"),
        "{screen}"
    );
    // Twenty seconds of silence: long past a late heartbeat, and no node
    // is blamed for it.
    while stopped.elapsed() < Duration::from_secs(20) {
        let screen = tmux.screen();
        assert!(
            !screen.contains("LATE") && !screen.contains("EXPIRED"),
            "{screen}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    signal("-CONT");
    let screen = tmux
        .wait_for("● connected", Duration::from_secs(20))
        .unwrap();
    assert!(screen.contains("reachable again"), "{screen}");
    // Ages come from what the server says now, not from before the silence.
    let fresh = tmux.wait_until(Duration::from_secs(20), |screen| {
        ["node-a", "node-b", "node-c"].iter().all(|n| {
            screen.lines().find(|l| l.contains(n)).is_some_and(|row| {
                row.split_whitespace()
                    .filter_map(|w| w.strip_suffix('s')?.parse::<u64>().ok())
                    .any(|age| age < 12)
                    && !row.contains("LATE")
            })
        })
    });
    assert!(fresh.is_ok(), "{fresh:?}");
}

/// A kubelet whose clock runs 30 s behind stamps every renewal 30 s in the
/// past. Judged by renewTime it would be EXPIRED at once (4 s leases here);
/// judged by when the cockpit sees each renewal it is fresh, and the node
/// detail names the skew. A kubelet that stops is LATE as before.
#[test]
fn a_node_clock_30s_behind_is_not_late_and_its_skew_is_shown() {
    if !common::require(
        "a_node_clock_30s_behind_is_not_late_and_its_skew_is_shown",
        &["tmux"],
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let victim = first_announcer();
    let names = ["node-a", "node-b", "node-c"];
    let (row, skewed) = names
        .iter()
        .enumerate()
        .find(|(_, n)| **n != victim)
        .unwrap();
    let scenario = fast_scenario(victim, "6s").replace(
        &format!("name = \"{skewed}\"\n"),
        &format!("name = \"{skewed}\"\nclock_offset = \"-30s\"\n"),
    );
    assert!(scenario.contains("clock_offset"), "{scenario}");
    let lab = start_lab(dir.path(), &scenario, &[]);
    let cmd = watch_command(dir.path(), &lab.kubeconfig);
    let tmux = Tmux::start("skew", 160, 32, &cmd);
    tmux.wait_for("node-c", Duration::from_secs(20)).unwrap();

    // Until the victim's kubelet stops and turns LATE, the skewed node's
    // row never says LATE or EXPIRED.
    let late = tmux.wait_until(Duration::from_secs(30), |screen| {
        let skewed_row = screen
            .lines()
            .find(|l| l.contains(skewed) && l.contains("Ready"))
            .unwrap_or_default();
        assert!(
            !skewed_row.contains("LATE") && !skewed_row.contains("EXPIRED"),
            "{skewed} judged by its own clock:\n{screen}"
        );
        screen
            .lines()
            .any(|l| l.contains(victim) && (l.contains("LATE") || l.contains("EXPIRED")))
    });
    assert!(
        late.is_ok(),
        "the stopped kubelet was not flagged: {late:?}"
    );

    for _ in 0..row {
        tmux.keys("j");
    }
    tmux.keys("Enter");
    let screen = tmux
        .wait_until(Duration::from_secs(10), |s| s.contains("clock skew"))
        .unwrap_or_else(|e| panic!("skew not shown in {skewed}'s detail: {e}"));
    let line = screen.lines().find(|l| l.contains("clock skew")).unwrap();
    assert!(line.contains("node clock 3"), "{line}");
    assert!(line.contains("s behind"), "{line}");
    assert!(screen.contains(skewed), "{screen}");
    tmux.keys("Escape");
    tmux.keys("q");
    tmux.wait_for("EXIT=0", Duration::from_secs(10)).unwrap();
}

/// A token that expires mid-watch is not an outage: the banner says the
/// credentials expired and how to renew them, never that the server is
/// unreachable. A role without `nodes` gets a 403 that names the verb and
/// the resource.
#[test]
fn expired_credentials_and_a_forbidden_resource_are_named_not_called_outages() {
    if !common::require(
        "expired_credentials_and_a_forbidden_resource_are_named_not_called_outages",
        &["tmux"],
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lab = start_lab(
        dir.path(),
        &fast_scenario("node-c", "1h"),
        &["--token-ttl", "6s"],
    );
    let kubeconfig = std::fs::read_to_string(&lab.kubeconfig).unwrap();
    assert!(kubeconfig.contains("token: "), "{kubeconfig}");
    let cmd = watch_command(dir.path(), &lab.kubeconfig);
    let tmux = Tmux::start("expired", 160, 32, &cmd);
    tmux.wait_for("● connected", Duration::from_secs(20))
        .unwrap();
    let screen = tmux
        .wait_for("● UNAUTHORIZED", Duration::from_secs(30))
        .unwrap();
    assert!(
        screen.contains("credentials expired or rejected"),
        "{screen}"
    );
    assert!(screen.contains("kubectl create token"), "{screen}");
    for outage in ["unreachable", "API DOWN", "API SILENT"] {
        assert!(!screen.contains(outage), "{outage}:\n{screen}");
    }
    tmux.keys("q");
    tmux.wait_for("EXIT=0", Duration::from_secs(10)).unwrap();
    drop(tmux);
    drop(lab);

    let dir = tempfile::tempdir().unwrap();
    let lab = start_lab(
        dir.path(),
        &fast_scenario("node-c", "1h"),
        &["--forbid", "nodes"],
    );
    let cmd = watch_command(dir.path(), &lab.kubeconfig);
    let tmux = Tmux::start("forbidden", 160, 32, &cmd);
    let screen = tmux
        .wait_for("● FORBIDDEN", Duration::from_secs(20))
        .unwrap();
    assert!(screen.contains("nodes"), "the resource is named:\n{screen}");
    assert!(screen.contains("(403)"), "{screen}");
    assert!(!screen.contains("unreachable"), "{screen}");
    tmux.keys("q");
    tmux.wait_for("EXIT=0", Duration::from_secs(10)).unwrap();
}
