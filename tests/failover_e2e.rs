//! End to end: the cockpit in control mode, its kubeconfig pointing at the
//! first K3s server (as one copied from /etc/rancher/k3s/k3s.yaml does),
//! upgrading that very server. The lab serves the API on each server's own
//! address and cuts it while that server's K3s restarts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;

#[test]
fn the_cockpit_moves_off_the_api_server_it_upgrades_and_says_so() {
    if !common::require(
        "the_cockpit_moves_off_the_api_server_it_upgrades_and_says_so",
        &["tmux"],
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    let scenario = format!(
        "{}\n[replay]\nstart = \"1h\"\nversions = [\"v1.34.3+k3s1\"]\nsettle = \"30s\"\n",
        fast_scenario("node-c", "1h")
    );
    let lab = start_lab(
        dir.path(),
        &scenario,
        &["--api-per-server", "--plan-out", plan.to_str().unwrap()],
    );
    let kubeconfig = std::fs::read_to_string(&lab.kubeconfig).unwrap();
    assert!(
        kubeconfig.contains("server: http://127.78.0.1:"),
        "{kubeconfig}"
    );
    let cmd = format!(
        "XDG_STATE_HOME={0}/state {BIN} --log-file {0}/cockpit.log upgrade --plan {1} --kubeconfig {2} --soak 2s --final-soak 0s; echo EXIT=$?; sleep 30",
        dir.path().display(),
        plan.display(),
        lab.kubeconfig.display()
    );
    let tmux = Tmux::start("failover", 200, 40, &cmd);
    tmux.wait_for("s start", Duration::from_secs(30)).unwrap();
    tmux.keys("s");
    tmux.wait_for("start? y", Duration::from_secs(10)).unwrap();
    tmux.keys("y");

    // node-a, the first server, goes first: the cockpit leaves its API
    // before the install restarts it, and names the endpoint it uses now.
    let screen = tmux
        .wait_for("(switched)", Duration::from_secs(60))
        .unwrap();
    let status = screen.lines().find(|l| l.contains("(switched)")).unwrap();
    assert!(status.contains("via http://127.78.0."), "{status}");
    let screen = tmux
        .wait_until(Duration::from_secs(120), |s| {
            s.contains("rollout complete") || s.contains("HALTED")
        })
        .unwrap();
    assert!(screen.contains("rollout complete"), "{screen}");
    // The whole way through, the cockpit never lost the API.
    let log = std::fs::read_to_string(dir.path().join("cockpit.log")).unwrap();
    assert!(log.contains("API endpoint now"), "no switch logged:\n{log}");
    // It moved before the restart, not after losing the server.
    assert!(log.contains("127.78.0.1 is about to restart"), "{log}");
    assert!(!log.contains("API server unreachable"), "{log}");
    tmux.keys("q");
    tmux.wait_for("EXIT=", Duration::from_secs(10)).unwrap();
}
