use super::*;

/// The post-mortem: A is upgraded, Ready, and would pass the old 30 s
/// check; two minutes into its soak its kubelet stops posting
/// heartbeats. The engine halts naming A and never touches B.
#[test]
fn incident_delayed_heartbeat_failure_halts_before_next_node() {
    let (mut e, mut s) = started(abc(), &[]);
    assert!(s.run_until(&mut e, secs(5), mins(30), in_phase("A", Phase::Soak)));
    let soak_start = s.now;
    s.advance(&mut e, secs(30));
    assert_eq!(
        *e.state(),
        RolloutState::Running,
        "A passes the old 30s check"
    );
    assert!(s.nodes.iter().find(|n| n.name == "A").unwrap().ready);
    s.run_until(&mut e, secs(10), mins(2), |_, s| {
        s.now.duration_since(soak_start) >= mins(2)
    });
    assert_eq!(*e.state(), RolloutState::Running);
    s.node("A").heartbeat_late = true;
    s.advance(&mut e, secs(1));
    let h = halted(&e).expect("halted");
    assert_eq!(h.node.as_deref(), Some("A"));
    assert_eq!(h.phase, Some(Phase::Soak));
    assert!(
        h.reason.contains("node A heartbeat is late"),
        "{}",
        h.reason
    );
    assert!(h.reason.contains("after 2m01s of 5m00s"), "{}", h.reason);
    // Time passes, nothing else happens to the cluster.
    s.advance(&mut e, mins(30));
    assert!(s.kinds_for("B").is_empty(), "{:?}", s.kinds_for("B"));
    assert!(halted(&e).is_some());
    let view = e.view(s.now);
    let a = view.nodes.iter().find(|n| n.name == "A").unwrap();
    assert!(a.last_error.as_deref().unwrap().contains("heartbeat"));
    assert_eq!(a.phase, Phase::Soak);
}

/// The same failure with the old automation's settings: only the
/// upgraded node is checked, for 30 s. B is drained and upgraded while A
/// is failing, as on 2026-01-25.
#[test]
fn legacy_gate_reproduces_the_incident() {
    let mut cfg = abc();
    cfg.gates.global_gate = false;
    cfg.timings.soak = secs(30);
    let (mut e, mut s) = started(cfg, &[]);
    assert!(s.run_until(&mut e, secs(5), mins(30), in_phase("A", Phase::Soak)));
    let soak_start = s.now;
    assert!(s.run_until(&mut e, secs(5), mins(5), |_, s| {
        !s.kinds_for("B").is_empty()
    }));
    assert!(s.now.duration_since(soak_start) <= secs(35));
    s.run_until(&mut e, secs(5), mins(3), |_, s| {
        s.now.duration_since(soak_start) >= mins(2)
    });
    s.node("A").heartbeat_late = true;
    s.node("A").ready = false;
    assert!(s.run_until(&mut e, secs(5), mins(30), |_, s| {
        s.kinds_for("B").contains(&"uncordon")
    }));
    assert!(halted(&e).is_none(), "{:?}", e.state());
    assert!(s.kinds_for("B").contains(&"install"));
}

/// Node C is not part of the rollout. It goes NotReady while A is being
/// uncordoned (not during a soak): the gate halts before B starts and
/// names C; once C is back, resume starts B.
#[test]
fn global_gate_halts_before_the_next_node() {
    let cfg = config(
        &[("A", Role::Server), ("B", Role::Agent)],
        "v1.33.6+k3s1",
        &["v1.34.3+k3s1"],
    );
    let (mut e, mut s) = started(cfg, &["C"]);
    s.hold.insert("uncordon");
    assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Uncordon)));
    s.node("C").ready = false;
    s.advance(&mut e, secs(1));
    assert_eq!(*e.state(), RolloutState::Running, "no halt mid-uncordon");
    s.release(&mut e, "uncordon");
    let h = halted(&e).expect("halted");
    assert_eq!(h.node.as_deref(), Some("B"));
    assert_eq!(h.phase, Some(Phase::Pending));
    assert!(h.reason.contains("node C is NotReady"), "{}", h.reason);
    assert!(s.kinds_for("B").is_empty());
    assert_eq!(phase_of(&e, "A", s.now), Phase::Done);

    s.command(&mut e, Command::Resume);
    assert_eq!(last_event(&e).kind, EventKind::Refused);
    assert!(last_event(&e).text.contains("node C is NotReady"));
    s.node("C").ready = true;
    s.advance(&mut e, secs(1));
    let actions = s.command(&mut e, Command::Resume);
    assert_eq!(actions.iter().map(kind).collect::<Vec<_>>(), ["cordon"]);
    assert_eq!(actions[0].node(), "B");
}

#[test]
fn global_gate_halts_at_once_during_soak() {
    let (mut e, mut s) = started(abc(), &["C2"]);
    assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Soak)));
    s.advance(&mut e, mins(1));
    s.node("C2").heartbeat_late = true;
    s.observe(&mut e);
    let h = halted(&e).expect("halted");
    assert_eq!(h.node.as_deref(), Some("A"));
    assert!(
        h.reason.contains("node C2 heartbeat is late"),
        "{}",
        h.reason
    );
}

#[test]
fn flap_between_observations_fails_the_soak() {
    let (mut e, mut s) = started(abc(), &[]);
    assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Soak)));
    s.advance(&mut e, mins(3));
    // NotReady and back between two observations: only the counter shows it.
    s.node("A").ready_transitions += 1;
    s.advance(&mut e, secs(10));
    let h = halted(&e).expect("halted");
    assert!(
        h.reason.contains("node A went NotReady and back"),
        "{}",
        h.reason
    );
}

#[test]
fn service_gates_lost_announcer_and_failing_probe() {
    let mut cfg = abc();
    cfg.gates.services = vec!["nvr/frigate".into()];
    let (mut e, mut s) = started(cfg.clone(), &[]);
    assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Soak)));
    s.services[0].announced_by = None;
    s.advance(&mut e, secs(10));
    let h = halted(&e).expect("halted");
    assert!(
        h.reason.contains("service nvr/frigate is not announced"),
        "{}",
        h.reason
    );

    let (mut e, mut s) = started(cfg.clone(), &[]);
    assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Soak)));
    s.services[0].probe_ok = Some(false);
    s.advance(&mut e, secs(10));
    assert!(halted(&e).unwrap().reason.contains("probe is failing"));

    // A probe that has not reported yet is not a failure.
    let (mut e, mut s) = started(cfg, &[]);
    s.services[0].probe_ok = None;
    assert!(s.run_until(&mut e, secs(10), mins(60), |e, _| *e.state()
        == RolloutState::Done));
}

#[test]
fn gate_refuses_to_start_on_an_unhealthy_cluster() {
    let cfg = abc();
    let mut e = Engine::new(cfg.clone());
    let mut s = FakeCluster::new(&cfg, &[]);
    s.node("C").ready = false;
    s.observe(&mut e);
    let actions = s.command(&mut e, Command::Start);
    assert!(actions.is_empty());
    let h = halted(&e).expect("halted");
    assert_eq!(h.node.as_deref(), Some("A"));
    assert!(h.reason.contains("node C is NotReady"), "{}", h.reason);
}

/// A K3s server restart takes the API down. That time neither fails the
/// soak nor counts towards it; timeouts keep running.
#[test]
fn api_outage_pauses_judgement_not_timeouts() {
    let (mut e, mut s) = started(abc(), &[]);
    assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Soak)));
    let soak_start = s.now;
    s.advance(&mut e, mins(1));
    s.api = false;
    // Stale data from a failing API must not count as a node failure.
    s.node("A").ready = false;
    s.node("B").heartbeat_late = true;
    s.advance(&mut e, secs(0));
    s.advance(&mut e, mins(2));
    s.advance(&mut e, secs(30));
    assert_eq!(*e.state(), RolloutState::Running);
    s.node("A").ready = true;
    s.node("B").heartbeat_late = false;
    s.api = true;
    s.advance(&mut e, secs(0));
    let soak = e.view(s.now).nodes[0].soak.clone().unwrap();
    assert_eq!(soak.elapsed, mins(1));
    // 5m soak + 2m30s blind = A may not finish before 7m30s.
    s.run_until(&mut e, secs(10), mins(7), |_, s| {
        s.now.duration_since(soak_start) >= mins(7)
    });
    assert_eq!(phase_of(&e, "A", s.now), Phase::Soak);
    assert!(
        s.run_until(&mut e, secs(10), mins(1), |e, s| phase_of(e, "A", s.now)
            == Phase::Done)
    );
    assert!(s.now.duration_since(soak_start) >= secs(450));

    // Timeouts run on wall time: the version never shows while the API is down.
    let (mut e, mut s) = started(abc(), &[]);
    s.hold.insert("restart");
    assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Restart)));
    s.api = false;
    s.release(&mut e, "restart");
    assert_eq!(phase_of(&e, "A", s.now), Phase::WaitVersion);
    s.advance(&mut e, mins(10));
    let h = halted(&e).expect("halted");
    assert_eq!(h.phase, Some(Phase::WaitVersion));
    assert!(
        h.reason.contains("did not finish within 10m00s"),
        "{}",
        h.reason
    );
}
