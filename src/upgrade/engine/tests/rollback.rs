use super::*;

/// Rollback after a halt in the first agent's soak: every install is
/// undone, newest first, with the same phases and soak. The server walked
/// both hops on SQLite, so going back is rolling (no etcd to rejoin).
#[test]
fn rollback_reinstalls_previous_versions_in_reverse_order() {
    let mut cfg = config(
        &[("A", Role::Server), ("B", Role::Agent), ("C", Role::Agent)],
        "v1.33.6+k3s1",
        &["v1.34.3+k3s1", "v1.35.0+k3s1"],
    );
    cfg.datastore = crate::upgrade::plan::Datastore::Sqlite;
    let (mut e, mut s) = started(cfg, &[]);
    let b_soak = |e: &Engine, s: &FakeCluster| {
        s.installs().len() == 3 && phase_of(e, "B", s.now) == Phase::Soak
    };
    assert!(s.run_until(&mut e, secs(10), mins(120), b_soak));
    s.node("B").ready = false;
    s.advance(&mut e, secs(10));
    assert!(halted(&e).is_some());
    assert!(!e.needs_datastore_restore());
    let installs_before = s.installs().len();
    s.command(&mut e, Command::Rollback);
    assert_eq!(*e.state(), RolloutState::RollingBack);
    assert!(s.run_until(&mut e, secs(10), mins(120), |e, _| *e.state()
        == RolloutState::RolledBack));
    let back: Vec<String> = s.installs()[installs_before..]
        .iter()
        .map(|(n, v)| format!("{n}@{v}"))
        .collect();
    assert_eq!(back, ["B@v1.33.6+k3s1", "A@v1.34.3+k3s1", "A@v1.33.6+k3s1"]);
    assert!(
        s.nodes
            .iter()
            .all(|n| n.version == "v1.33.6+k3s1" && !n.unschedulable)
    );
    let view = e.view(s.now);
    assert!(
        view.nodes.iter().all(|n| n.version == v("v1.33.6+k3s1")),
        "{:?}",
        view.nodes
    );
    // Same soak per node: three units of 5 minutes at least.
    let rollback_started = s.log[s.log.len() - 3 * 5].0;
    assert!(s.now.duration_since(rollback_started) >= mins(10));
}

#[test]
fn rollback_within_a_minor_needs_no_restore_and_uncordons_untouched_nodes() {
    let cfg = config(
        &[("A", Role::Server), ("B", Role::Agent)],
        "v1.33.6+k3s1",
        &["v1.33.7+k3s1"],
    );
    let (mut e, mut s) = started(cfg, &[]);
    s.fail.insert(("drain", "B".into()), "timeout".into());
    assert!(s.run_until(&mut e, secs(10), mins(30), |e, _| halted(e).is_some()));
    assert!(!e.needs_datastore_restore());
    assert_eq!(e.restore_command(), None);
    let n = s.log.len();
    s.command(&mut e, Command::Rollback);
    assert!(s.run_until(&mut e, secs(10), mins(60), |e, _| *e.state()
        == RolloutState::RolledBack));
    let back: Vec<(&str, &str)> = s.log[n..]
        .iter()
        .map(|(_, a)| (kind(a), a.node()))
        .collect();
    assert_eq!(back[0], ("uncordon", "B"));
    assert_eq!(
        back[1..],
        [
            ("cordon", "A"),
            ("drain", "A"),
            ("install", "A"),
            ("restart", "A"),
            ("uncordon", "A")
        ]
    );
}

/// Servers on etcd that crossed a minor: the rolling path is refused (no
/// action at all), and the refusal and the view spell out the cluster-wide
/// restore with the exact snapshot and commands.
#[test]
fn rollback_of_etcd_servers_across_a_minor_is_refused_with_the_restore_procedure() {
    let cfg = config(
        &[("A", Role::Server), ("B", Role::Server), ("C", Role::Agent)],
        "v1.33.6+k3s1",
        &["v1.34.3+k3s1"],
    );
    let (mut e, mut s) = started(cfg, &[]);
    assert!(s.run_until(&mut e, secs(10), mins(60), in_phase("B", Phase::Soak)));
    s.node("B").ready = false;
    s.advance(&mut e, secs(10));
    assert!(halted(&e).is_some());
    let n = s.log.len();
    s.command(&mut e, Command::Rollback);
    s.advance(&mut e, secs(10));
    assert!(halted(&e).is_some(), "{:?}", e.state());
    assert_eq!(s.log.len(), n, "no rollback action: {:?}", &s.log[n..]);
    let refusal = &last_refusal(&e).text;
    assert!(
        refusal.contains("refused rollback: servers on embedded etcd crossed a minor (A, B)"),
        "{refusal}"
    );
    let steps = e.restore_procedure();
    assert_eq!(steps.len(), 6, "{steps:#?}");
    assert!(
        steps[0].contains("every server (A, B): systemctl stop k3s"),
        "{}",
        steps[0]
    );
    assert!(steps[1].contains("A: curl -sfL https://get.k3s.io | INSTALL_K3S_VERSION=v1.33.6+k3s1 INSTALL_K3S_SKIP_START=true"), "{}", steps[1]);
    assert!(steps[1].contains("B: curl"), "{}", steps[1]);
    assert_eq!(
        steps[2],
        "3. on A: k3s server --cluster-reset --cluster-reset-restore-path=/var/lib/rancher/k3s/server/db/snapshots/k3s-cockpit-20260125-213300-A-1769376780"
    );
    assert_eq!(
        steps[4],
        "5. on B: rm -rf /var/lib/rancher/k3s/server/db && systemctl start k3s"
    );
    for step in &steps {
        assert!(
            refusal.contains(step.as_str()),
            "{step} missing from {refusal}"
        );
    }
    let view = e.view(s.now);
    assert!(view.needs_datastore_restore);
    assert_eq!(
        view.restore_command.as_deref(),
        Some(steps.join(" ; ").as_str())
    );
}

/// Under the binary method each server's old binary was kept: the manual
/// restore puts that file back, checked, instead of re-running the install
/// script.
#[test]
fn the_restore_procedure_puts_back_the_kept_binary_under_the_binary_method() {
    let mut cfg = config(
        &[("A", Role::Server), ("B", Role::Server)],
        "v1.33.6+k3s1",
        &["v1.34.3+k3s1"],
    );
    for n in &mut cfg.nodes {
        n.kept_binaries = true;
    }
    let (mut e, mut s) = started(cfg, &[]);
    assert!(s.run_until(&mut e, secs(10), mins(60), in_phase("B", Phase::Soak)));
    let steps = e.restore_procedure();
    let kept = "/usr/local/bin/k3s.cockpit-v1.33.6+k3s1";
    for node in ["A", "B"] {
        assert!(
            steps[1].contains(&format!("{node}: check that `{kept} --version` says v1.33.6+k3s1, then cp -p {kept} /usr/local/bin/k3s.cockpit-new && mv -f /usr/local/bin/k3s.cockpit-new /usr/local/bin/k3s")),
            "{}",
            steps[1]
        );
    }
    assert!(!steps[1].contains("get.k3s.io"), "{}", steps[1]);
}

fn last_refusal(e: &Engine) -> &Event {
    e.events()
        .iter()
        .rev()
        .find(|ev| ev.kind == EventKind::Refused)
        .unwrap()
}

#[test]
fn the_snapshot_name_comes_out_of_the_log_line() {
    use crate::upgrade::engine::rollback::saved_name;
    let plain = "Snapshot k3s-cockpit-a-1795956583 saved.";
    assert_eq!(saved_name(plain), "k3s-cockpit-a-1795956583");
    let logrus =
        r#"time="2026-01-25T13:33:00Z" level=info msg="Snapshot on-demand-a-1700000000 saved.""#;
    assert_eq!(saved_name(logrus), "on-demand-a-1700000000");
    assert_eq!(saved_name("k3s-cockpit-x\n"), "k3s-cockpit-x");
}

/// Three servers on etcd crossed a minor and the last one halted: the
/// operator's explicit restore stops every server, puts the old version
/// back (reinstating, not downloading), resets on the snapshot's server,
/// clears the others' databases, and starts them one at a time, the
/// first one Ready before the next starts.
#[test]
fn the_cluster_restore_runs_k3s_steps_in_order_and_ends_rolled_back() {
    let cfg = config(
        &[
            ("A", Role::Server),
            ("B", Role::Server),
            ("C", Role::Server),
        ],
        "v1.33.6+k3s1",
        &["v1.34.3+k3s1"],
    );
    let (mut e, mut s) = started(cfg, &[]);
    assert!(s.run_until(&mut e, secs(10), mins(60), in_phase("C", Phase::Soak)));
    s.node("C").ready = false;
    s.advance(&mut e, secs(10));
    assert!(halted(&e).is_some());
    let n = s.log.len();
    s.command(&mut e, Command::ClusterRestore);
    assert_eq!(*e.state(), RolloutState::RollingBack);
    // While a node is down the restore neither pauses nor skips.
    s.command(&mut e, Command::Pause);
    assert!(last_refusal(&e).text.contains("runs to its end"));
    assert!(s.run_until(&mut e, secs(10), mins(60), |e, _| *e.state()
        == RolloutState::RolledBack));
    let steps: Vec<(&str, &str)> = s.log[n..]
        .iter()
        .map(|(_, a)| (kind(a), a.node()))
        .collect();
    let expected = [
        ("stop", "A"),
        ("stop", "B"),
        ("stop", "C"),
        ("install", "A"),
        ("install", "B"),
        ("install", "C"),
        ("reset", "A"),
        ("clear-db", "B"),
        ("clear-db", "C"),
        ("start", "A"),
        ("start", "B"),
        ("start", "C"),
        ("uncordon", "A"),
        ("uncordon", "B"),
        ("uncordon", "C"),
    ];
    assert_eq!(steps, expected);
    let reset = s.log[n..]
        .iter()
        .find_map(|(_, a)| match a {
            Action::ClusterReset { snapshot, .. } => Some(snapshot.clone()),
            _ => None,
        })
        .unwrap();
    assert!(reset.starts_with("/var/lib/rancher/k3s/server/db/snapshots/k3s-cockpit-"));
    assert!(s.log[n..].iter().all(|(_, a)| !matches!(
        a,
        Action::Install {
            reinstate: false,
            ..
        }
    )));
    assert!(s.nodes.iter().all(|n| n.version == "v1.33.6+k3s1"));
}

/// A started server that only looks Ready (the restored datastore says
/// Ready, its kubelet does not renew) holds the restore; the next server
/// starts only after a whole soak of live heartbeats.
#[test]
fn the_restore_starts_the_next_server_only_after_a_soak_of_live_heartbeats() {
    let cfg = config(
        &[("A", Role::Server), ("B", Role::Server)],
        "v1.33.6+k3s1",
        &["v1.34.3+k3s1"],
    );
    let (mut e, mut s) = started(cfg, &[]);
    assert!(s.run_until(&mut e, secs(10), mins(60), in_phase("B", Phase::Soak)));
    s.node("B").ready = false;
    s.advance(&mut e, secs(10));
    s.command(&mut e, Command::ClusterRestore);
    let started = |node: &'static str| {
        move |_: &Engine, s: &FakeCluster| {
            s.log
                .iter()
                .any(|(_, a)| matches!(a, Action::StartK3s { node: n, .. } if n == node))
        }
    };
    assert!(s.run_until(&mut e, secs(1), mins(10), started("A")));
    // Ready as restored, but nothing renews.
    s.node("A").heartbeat_late = true;
    s.advance(&mut e, secs(1));
    let at = e.view(s.now).restore_progress.unwrap();
    assert_eq!((at.step, at.total), (8, 12), "{at:?}");
    assert!(
        at.text.starts_with("A: wait until Ready on v1.33.6+k3s1"),
        "{at:?}"
    );
    s.advance(&mut e, mins(3));
    assert!(
        !started("B")(&e, &s),
        "B started beside a server that only looks Ready"
    );
    s.node("A").heartbeat_late = false;
    let healthy_again = s.now;
    assert!(!s.run_until(&mut e, secs(10), mins(4), started("B")));
    assert!(s.run_until(&mut e, secs(10), mins(2), started("B")));
    assert!(s.now.duration_since(healthy_again) >= mins(5));
    assert!(halted(&e).is_none());
}

/// Without a snapshot the cockpit cannot name the file: refused. A rolling
/// rollback refusal names the opt-in.
#[test]
fn the_rolling_rollback_refusal_names_the_opt_in_and_a_restore_needs_the_snapshot_name() {
    let cfg = config(
        &[("A", Role::Server), ("B", Role::Server)],
        "v1.33.6+k3s1",
        &["v1.34.3+k3s1"],
    );
    let (mut e, mut s) = started(cfg, &[]);
    assert!(s.run_until(&mut e, secs(10), mins(60), in_phase("A", Phase::Soak)));
    s.node("A").ready = false;
    s.advance(&mut e, secs(10));
    s.command(&mut e, Command::Rollback);
    assert!(last_refusal(&e).text.contains("--allow-cluster-restore"));
    let mut no_name = e.clone();
    no_name.snapshot.as_mut().unwrap().reported = None;
    no_name.step(Input::Command(Command::ClusterRestore), s.now);
    assert!(
        last_refusal(&no_name).text.contains("k3s etcd-snapshot ls"),
        "{}",
        last_refusal(&no_name).text
    );
}

/// A restart of the cockpit while a restore step runs issues that step
/// again, and the steps already done are not repeated.
#[test]
fn a_restart_mid_restore_issues_the_running_step_again_and_nothing_before_it() {
    let cfg = config(
        &[("A", Role::Server), ("B", Role::Server)],
        "v1.33.6+k3s1",
        &["v1.34.3+k3s1"],
    );
    let (mut e, mut s) = started(cfg, &[]);
    assert!(s.run_until(&mut e, secs(10), mins(60), in_phase("B", Phase::Soak)));
    s.node("B").ready = false;
    s.advance(&mut e, secs(10));
    s.hold.insert("reset");
    let n = s.log.len();
    s.command(&mut e, Command::ClusterRestore);
    s.advance(&mut e, secs(1));
    let before: Vec<&str> = s.log[n..].iter().map(|(_, a)| kind(a)).collect();
    assert_eq!(before.last(), Some(&"reset"), "{before:?}");
    s.pending.clear();
    let m = s.log.len();
    s.feed(&mut e, Input::Reattach);
    s.hold.clear();
    assert!(s.run_until(&mut e, secs(10), mins(60), |e, _| *e.state()
        == RolloutState::RolledBack));
    let after: Vec<&str> = s.log[m..].iter().map(|(_, a)| kind(a)).collect();
    assert_eq!(
        after,
        [
            "reset", "clear-db", "start", "start", "uncordon", "uncordon"
        ]
    );
}

/// An agent that was upgraded goes back rolling once the servers' restore
/// is done, with the usual phases and the kept binary.
#[test]
fn after_the_restore_upgraded_agents_go_back_rolling() {
    let cfg = config(
        &[("A", Role::Server), ("B", Role::Server), ("C", Role::Agent)],
        "v1.33.6+k3s1",
        &["v1.34.3+k3s1"],
    );
    let (mut e, mut s) = started(cfg, &[]);
    assert!(s.run_until(&mut e, secs(10), mins(60), in_phase("C", Phase::Soak)));
    s.node("C").ready = false;
    s.advance(&mut e, secs(10));
    assert!(halted(&e).is_some());
    s.node("C").ready = true;
    let n = s.log.len();
    s.command(&mut e, Command::ClusterRestore);
    assert!(s.run_until(&mut e, secs(10), mins(60), |e, _| *e.state()
        == RolloutState::RolledBack));
    let kinds: Vec<(&str, &str)> = s.log[n..]
        .iter()
        .map(|(_, a)| (kind(a), a.node()))
        .collect();
    let agent_from = kinds.iter().position(|(_, n)| *n == "C").unwrap();
    assert!(kinds[..agent_from].iter().all(|(_, n)| *n != "C"));
    assert_eq!(
        kinds[agent_from..],
        [
            ("cordon", "C"),
            ("drain", "C"),
            ("install", "C"),
            ("restart", "C"),
            ("uncordon", "C")
        ]
    );
    assert!(s.nodes.iter().all(|n| n.version == "v1.33.6+k3s1"));
}

/// A failed restore step halts with the node's error; resume runs that
/// step again although the gate still sees servers down, and the steps
/// before it are not repeated.
#[test]
fn a_failed_restore_step_halts_and_resume_runs_it_again() {
    let cfg = config(
        &[("A", Role::Server), ("B", Role::Server)],
        "v1.33.6+k3s1",
        &["v1.34.3+k3s1"],
    );
    let (mut e, mut s) = started(cfg, &[]);
    assert!(s.run_until(&mut e, secs(10), mins(60), in_phase("B", Phase::Soak)));
    s.node("B").ready = false;
    s.advance(&mut e, secs(10));
    s.fail
        .insert(("clear-db", "B".into()), "rm: Permission denied".into());
    s.command(&mut e, Command::ClusterRestore);
    assert!(s.run_until(&mut e, secs(10), mins(10), |e, _| halted(e).is_some()));
    let why = halted(&e).unwrap().reason.clone();
    assert!(
        why.contains("B: rm -rf /var/lib/rancher/k3s/server/db"),
        "{why}"
    );
    assert!(why.contains("Permission denied"), "{why}");
    let n = s.log.len();
    s.command(&mut e, Command::Resume);
    assert!(s.run_until(&mut e, secs(10), mins(60), |e, _| *e.state()
        == RolloutState::RolledBack));
    let after: Vec<(&str, &str)> = s.log[n..]
        .iter()
        .map(|(_, a)| (kind(a), a.node()))
        .collect();
    assert_eq!(after[0], ("clear-db", "B"), "{after:?}");
    assert!(
        after.iter().all(|(k, _)| *k != "stop" && *k != "reset"),
        "{after:?}"
    );
}
