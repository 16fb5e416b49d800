use super::*;

#[test]
fn every_node_restarts_after_install_and_etcd_snapshot_comes_first() {
    let (mut e, mut s) = started(abc(), &[]);
    assert!(s.run_until(&mut e, secs(10), mins(60), |e, _| *e.state()
        == RolloutState::Done));
    assert_eq!(
        s.kinds_for("A"),
        [
            "snapshot", "cordon", "drain", "install", "restart", "uncordon"
        ]
    );
    for n in ["B", "C"] {
        assert_eq!(
            s.kinds_for(n),
            ["cordon", "drain", "install", "restart", "uncordon"]
        );
    }
    let snap = e.snapshot().unwrap();
    assert_eq!(snap.node, "A");
    assert_eq!(snap.name, "k3s-cockpit-20260125-213300");
    assert_eq!(
        snap.reported.as_deref(),
        Some("k3s-cockpit-20260125-213300-A-1769376780")
    );
    // Each node soaked a full 5 minutes: three nodes take at least 15.
    assert!(s.now.duration_since(t0()) >= mins(15));
    let view = e.view(s.now);
    assert!(
        view.nodes
            .iter()
            .all(|n| n.phase == Phase::Done && n.progress == 1.0)
    );
    assert!(view.nodes.iter().all(|n| n.version == v("v1.34.3+k3s1")));
}

#[test]
fn no_snapshot_without_embedded_etcd() {
    let mut cfg = abc();
    cfg.datastore = Datastore::Sqlite;
    let (mut e, mut s) = started(cfg, &[]);
    assert!(s.run_until(&mut e, secs(10), mins(60), |e, _| *e.state()
        == RolloutState::Done));
    assert!(!s.kinds_for("A").contains(&"snapshot"));
    assert!(!e.needs_datastore_restore());
}

#[test]
fn wait_version_timeout_names_versions_and_retry_reinstalls() {
    let (mut e, mut s) = started(abc(), &[]);
    s.hold.insert("install");
    assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Install)));
    // The install "succeeds" but installs nothing.
    s.pending.clear();
    let id = e.in_flight().unwrap().0;
    s.feed(
        &mut e,
        Input::ActionFinished {
            id,
            result: Ok(()),
            output: None,
        },
    );
    s.hold.clear();
    s.settle(&mut e);
    s.advance(&mut e, mins(10));
    let h = halted(&e).expect("halted");
    assert!(
        h.reason
            .contains("kubelet reports v1.33.6+k3s1, expected v1.34.3+k3s1"),
        "{}",
        h.reason
    );
    let actions = s.command(&mut e, Command::Retry);
    assert_eq!(actions.iter().map(kind).collect::<Vec<_>>(), ["install"]);
    assert!(s.run_until(&mut e, secs(10), mins(60), |e, _| *e.state()
        == RolloutState::Done));
}

#[test]
fn failed_action_halts_and_retry_runs_it_again() {
    let (mut e, mut s) = started(abc(), &[]);
    s.fail.insert(
        ("drain", "B".into()),
        "PDB nvr/frigate allows no disruption".into(),
    );
    assert!(s.run_until(&mut e, secs(10), mins(30), |e, _| halted(e).is_some()));
    let h = halted(&e).unwrap();
    assert_eq!(
        (h.node.as_deref(), h.phase),
        (Some("B"), Some(Phase::Drain))
    );
    assert!(h.reason.contains("PDB nvr/frigate"), "{}", h.reason);
    assert!(!s.kinds_for("B").contains(&"install"));
    let actions = s.command(&mut e, Command::Retry);
    assert_eq!(actions.iter().map(kind).collect::<Vec<_>>(), ["drain"]);
    assert!(s.run_until(&mut e, secs(10), mins(60), |e, _| *e.state()
        == RolloutState::Done));
}

#[test]
fn drain_timeout_halts_and_ignores_the_late_result() {
    let (mut e, mut s) = started(abc(), &[]);
    s.hold.insert("drain");
    assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Drain)));
    let id = e.in_flight().unwrap().0;
    s.advance(&mut e, mins(5));
    let h = halted(&e).expect("halted");
    assert!(
        h.reason.contains("drain of A did not finish within 5m00s"),
        "{}",
        h.reason
    );
    let before = e.clone();
    s.pending.clear();
    s.feed(
        &mut e,
        Input::ActionFinished {
            id,
            result: Ok(()),
            output: None,
        },
    );
    assert_eq!(e.state(), before.state());
    assert!(last_event(&e).text.contains("no longer waited for"));
}

#[test]
fn servers_walk_every_hop_then_agents_go_straight_to_the_target() {
    let cfg = config(
        &[("A", Role::Server), ("B", Role::Agent), ("C", Role::Agent)],
        "v1.33.6+k3s1",
        &["v1.34.3+k3s1", "v1.35.0+k3s1"],
    );
    let (mut e, mut s) = started(cfg, &[]);
    assert!(s.run_until(&mut e, secs(10), mins(120), |e, _| *e.state()
        == RolloutState::Done));
    let got: Vec<String> = s
        .installs()
        .iter()
        .map(|(n, v)| format!("{n}@{v}"))
        .collect();
    assert_eq!(
        got,
        [
            "A@v1.34.3+k3s1",
            "A@v1.35.0+k3s1",
            "B@v1.35.0+k3s1",
            "C@v1.35.0+k3s1"
        ]
    );
    assert_eq!(
        s.kinds_for("A")
            .iter()
            .filter(|k| **k == "snapshot")
            .count(),
        1
    );
}

#[test]
fn nodes_already_at_a_hop_are_not_touched() {
    let mut cfg = abc();
    cfg.nodes[1].version = v("v1.34.3+k3s1");
    let (mut e, mut s) = started(cfg, &[]);
    assert!(s.run_until(&mut e, secs(10), mins(60), |e, _| *e.state()
        == RolloutState::Done));
    assert!(s.kinds_for("B").is_empty());
    assert_eq!(e.view(s.now).nodes[1].phase, Phase::Done);
}

#[test]
fn a_server_two_minors_behind_its_install_halts_instead_of_skipping() {
    // The journal (or plan) believed A runs v1.34; it runs v1.33.
    let cfg = config(
        &[("A", Role::Server), ("B", Role::Agent)],
        "v1.34.3+k3s1",
        &["v1.35.0+k3s1"],
    );
    let mut e = Engine::new(cfg.clone());
    let mut s = FakeCluster::new(&cfg, &[]);
    s.node("A").version = "v1.33.6+k3s1".into();
    s.observe(&mut e);
    s.command(&mut e, Command::Start);
    assert!(s.run_until(&mut e, secs(10), mins(30), |e, _| halted(e).is_some()));
    let halt = halted(&e).unwrap();
    assert!(
        halt.reason
            .contains("A runs v1.33.6+k3s1: installing v1.35.0+k3s1 would skip a minor"),
        "{}",
        halt.reason
    );
    assert!(s.installs().is_empty(), "{:?}", s.installs());
}

fn with_final_watch() -> EngineConfig {
    let mut cfg = abc();
    cfg.timings.final_soak = mins(10);
    cfg
}

#[test]
fn the_last_node_is_followed_by_a_final_watch_of_the_whole_cluster() {
    let (mut e, mut s) = started(with_final_watch(), &[]);
    assert!(s.run_until(&mut e, secs(10), mins(60), |e, _| *e.state()
        == RolloutState::Verifying));
    let began = s.now;
    assert!(
        e.events()
            .iter()
            .any(|ev| ev.text.contains("watching the whole cluster for 10m00s")),
        "{:?}",
        e.events().last()
    );
    // Six minutes later (the incident's kubelets failed 5-10 minutes after
    // looking Ready) agent B's kubelet stops: the watch halts.
    s.advance(&mut e, mins(6));
    assert_eq!(*e.state(), RolloutState::Verifying);
    s.node("B").heartbeat_late = true;
    s.observe(&mut e);
    let halt = halted(&e).expect("halted by the final watch");
    assert!(
        halt.reason
            .starts_with("final stability watch failed after 6m")
            && halt.reason.contains("node B heartbeat is late"),
        "{}",
        halt.reason
    );
    assert!(s.now.duration_since(began) < mins(10));

    // Healed and resumed: a full new window, then done.
    s.node("B").heartbeat_late = false;
    s.observe(&mut e);
    s.command(&mut e, Command::Resume);
    assert_eq!(*e.state(), RolloutState::Verifying);
    let resumed = s.now;
    assert!(s.run_until(&mut e, secs(10), mins(30), |e, _| *e.state()
        == RolloutState::Done));
    assert!(s.now.duration_since(resumed) >= mins(10));
}

#[test]
fn the_operator_can_end_the_final_watch_early() {
    let (mut e, mut s) = started(with_final_watch(), &[]);
    assert!(s.run_until(&mut e, secs(10), mins(60), |e, _| *e.state()
        == RolloutState::Verifying));
    assert!(e.check_command(&Command::Pause).is_err());
    s.advance(&mut e, mins(2));
    s.command(&mut e, Command::EndFinalWatch);
    assert_eq!(*e.state(), RolloutState::Done);
    assert!(last_event(&e).text.contains("rollout done"));
    assert!(
        e.events()
            .iter()
            .any(|ev| ev.text.contains("ended early by the operator after 2m")),
        "{:?}",
        e.events()
    );
}

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_node_that_comes_back_with_other_arguments_halts_naming_the_lost_flags() {
    let (mut e, mut s) = started(abc(), &[]);
    let metallb = args(&["server", "--disable", "servicelb", "--tls-san", "k3s.lan"]);
    for n in ["A", "B", "C"] {
        s.node(n).node_args = Some(metallb.clone());
    }
    s.observe(&mut e);
    s.relaunch_args.insert("A".into(), args(&["server"]));
    assert!(s.run_until(&mut e, secs(10), mins(30), |e, _| matches!(
        e.state(),
        RolloutState::Halted(_)
    )));
    let RolloutState::Halted(h) = e.state().clone() else {
        unreachable!()
    };
    assert_eq!(h.node.as_deref(), Some("A"));
    assert_eq!(h.phase, Some(Phase::WaitReady));
    assert!(
        h.reason
            .contains("lost --disable servicelb, --tls-san k3s.lan"),
        "{}",
        h.reason
    );
    // A is still cordoned and nothing else was touched.
    assert!(!s.kinds_for("A").contains(&"uncordon"));
    assert!(s.kinds_for("B").is_empty());
}

#[test]
fn same_arguments_after_the_restart_pass_the_flag_check() {
    let (mut e, mut s) = started(abc(), &[]);
    let metallb = args(&["server", "--disable", "servicelb"]);
    for n in ["A", "B", "C"] {
        s.node(n).node_args = Some(metallb.clone());
        s.relaunch_args.insert(n.into(), metallb.clone());
    }
    assert!(s.run_until(&mut e, secs(10), mins(60), |e, _| *e.state()
        == RolloutState::Done));
}

#[test]
fn with_agent_hops_every_agents_walk_each_hop_after_the_servers() {
    let mut cfg = config(
        &[("A", Role::Server), ("B", Role::Agent), ("C", Role::Agent)],
        "v1.33.6+k3s1",
        &["v1.34.3+k3s1", "v1.35.0+k3s1"],
    );
    cfg.agent_hops = AgentHops::Every;
    let (mut e, mut s) = started(cfg, &[]);
    assert!(s.run_until(&mut e, secs(10), mins(180), |e, _| *e.state()
        == RolloutState::Done));
    let got: Vec<String> = s
        .installs()
        .iter()
        .map(|(n, v)| format!("{n}@{v}"))
        .collect();
    assert_eq!(
        got,
        [
            "A@v1.34.3+k3s1",
            "A@v1.35.0+k3s1",
            "B@v1.34.3+k3s1",
            "C@v1.34.3+k3s1",
            "B@v1.35.0+k3s1",
            "C@v1.35.0+k3s1"
        ]
    );
    assert!(
        e.view(s.now)
            .nodes
            .iter()
            .all(|n| n.version == v("v1.35.0+k3s1"))
    );
}
