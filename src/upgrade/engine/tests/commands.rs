use super::*;

#[test]
fn retry_after_soak_failure_waits_for_ready_then_soaks_a_full_window() {
    let (mut e, mut s) = started(abc(), &[]);
    assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Soak)));
    s.advance(&mut e, mins(4));
    s.node("A").ready = false;
    s.advance(&mut e, secs(10));
    assert!(halted(&e).is_some());
    // Resume is refused while A is unhealthy; retry is allowed and waits.
    s.command(&mut e, Command::Resume);
    assert_eq!(last_event(&e).kind, EventKind::Refused);
    assert!(s.command(&mut e, Command::Retry).is_empty());
    assert_eq!(phase_of(&e, "A", s.now), Phase::WaitReady);
    s.advance(&mut e, mins(1));
    s.node("A").ready = true;
    s.advance(&mut e, secs(10));
    assert_eq!(phase_of(&e, "A", s.now), Phase::Soak);
    s.advance(&mut e, mins(4));
    assert_eq!(
        phase_of(&e, "A", s.now),
        Phase::Soak,
        "a fresh window, not the rest of the old one"
    );
    assert!(s.run_until(&mut e, secs(10), mins(2), in_phase("A", Phase::Done)));
}

#[test]
fn canary_soaks_longer_and_waits_for_confirmation() {
    let cfg = abc();
    let mut e = Engine::new(cfg.clone());
    let mut s = FakeCluster::new(&cfg, &[]);
    s.observe(&mut e);
    s.command(&mut e, Command::Canary);
    assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Soak)));
    let soak_start = s.now;
    assert_eq!(
        e.view(s.now).nodes[0].soak.as_ref().unwrap().window,
        mins(10)
    );
    s.advance(&mut e, mins(6));
    assert_eq!(
        phase_of(&e, "A", s.now),
        Phase::Soak,
        "canary soak is 10m, not 5m"
    );
    assert!(s.run_until(&mut e, secs(10), mins(10), |e, _| *e.state()
        == RolloutState::CanaryAwaitingConfirm));
    assert!(s.now.duration_since(soak_start) >= mins(10));
    s.advance(&mut e, mins(60));
    assert!(s.kinds_for("B").is_empty());
    assert_eq!(*e.state(), RolloutState::CanaryAwaitingConfirm);
    let actions = s.command(&mut e, Command::ConfirmCanary);
    assert_eq!(actions[0].node(), "B");
    assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("B", Phase::Soak)));
    assert_eq!(
        e.view(s.now).nodes[1].soak.as_ref().unwrap().window,
        mins(5)
    );
    assert!(s.run_until(&mut e, secs(10), mins(60), |e, _| *e.state()
        == RolloutState::Done));
}

#[test]
fn step_runs_exactly_one_node_then_pauses() {
    let cfg = abc();
    let mut e = Engine::new(cfg.clone());
    let mut s = FakeCluster::new(&cfg, &[]);
    s.observe(&mut e);
    s.command(&mut e, Command::Step);
    assert!(s.run_until(&mut e, secs(10), mins(30), |e, _| *e.state()
        == RolloutState::Paused));
    assert_eq!(phase_of(&e, "A", s.now), Phase::Done);
    s.advance(&mut e, mins(30));
    assert!(s.kinds_for("B").is_empty());
    s.command(&mut e, Command::Step);
    assert!(s.run_until(&mut e, secs(10), mins(30), |e, _| *e.state()
        == RolloutState::Paused));
    assert_eq!(phase_of(&e, "B", s.now), Phase::Done);
    assert!(s.kinds_for("C").is_empty());
    s.command(&mut e, Command::Resume);
    assert!(s.run_until(&mut e, secs(10), mins(30), |e, _| *e.state()
        == RolloutState::Done));
}

#[test]
fn pause_never_lands_between_install_and_restart() {
    let (mut e, mut s) = started(abc(), &[]);
    s.hold.insert("install");
    assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Install)));
    s.command(&mut e, Command::Pause);
    assert_eq!(*e.state(), RolloutState::Pausing);
    s.release(&mut e, "install");
    assert_eq!(
        s.kinds_for("A").last(),
        Some(&"restart"),
        "restart follows install even when pausing"
    );
    assert!(s.run_until(&mut e, secs(10), mins(30), |e, _| *e.state()
        == RolloutState::Paused));
    // A finished completely (verified, soaked, uncordoned) before pausing.
    assert_eq!(phase_of(&e, "A", s.now), Phase::Done);
    assert!(s.kinds_for("A").contains(&"uncordon"));
    assert!(s.now.duration_since(t0()) >= mins(5));
    s.advance(&mut e, mins(30));
    assert!(s.kinds_for("B").is_empty());
    let actions = s.command(&mut e, Command::Resume);
    assert_eq!(
        actions
            .iter()
            .map(|a| (kind(a), a.node()))
            .collect::<Vec<_>>(),
        [("cordon", "B")]
    );
}

#[test]
fn pause_during_drain_stops_before_install() {
    let (mut e, mut s) = started(abc(), &[]);
    assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Soak)));
    s.hold.insert("drain");
    assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("B", Phase::Drain)));
    s.command(&mut e, Command::Pause);
    s.release(&mut e, "drain");
    assert_eq!(*e.state(), RolloutState::Paused);
    assert!(!s.kinds_for("B").contains(&"install"));
    assert!(last_event(&e).text.contains("paused before install of B"));
    let actions = s.command(&mut e, Command::Resume);
    assert_eq!(actions.iter().map(kind).collect::<Vec<_>>(), ["install"]);
}

#[test]
fn pause_between_nodes_waits() {
    let mut cfg = abc();
    cfg.timings.pause_between = mins(3);
    let (mut e, mut s) = started(cfg, &[]);
    assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Done)));
    let done = s.now;
    assert!(s.run_until(&mut e, secs(10), mins(10), |_, s| {
        !s.kinds_for("B").is_empty()
    }));
    let started_b = s.log.iter().find(|(_, a)| a.node() == "B").unwrap().0;
    assert!(started_b.duration_since(done) >= mins(3));
    assert!(started_b.duration_since(done) < mins(3) + secs(11));
}

#[test]
fn skip_the_halted_node_then_continue() {
    let (mut e, mut s) = started(abc(), &[]);
    s.fail
        .insert(("install", "B".into()), "ssh: connection refused".into());
    assert!(s.run_until(&mut e, secs(10), mins(30), |e, _| halted(e).is_some()));
    s.node("B").ready = false; // whatever is wrong with B, the operator gives up on it
    s.command(&mut e, Command::Skip("B".into()));
    assert_eq!(*e.state(), RolloutState::Paused);
    assert!(
        e.events()
            .iter()
            .any(|ev| ev.text.contains("B is left cordoned"))
    );
    s.command(&mut e, Command::Resume);
    assert!(s.run_until(&mut e, secs(10), mins(30), |e, _| *e.state()
        == RolloutState::Done));
    assert_eq!(
        s.kinds_for("C"),
        ["cordon", "drain", "install", "restart", "uncordon"]
    );
    assert_eq!(e.view(s.now).nodes[1].phase, Phase::Skipped);
}

#[test]
fn skipping_a_server_that_would_fall_two_minors_behind_is_refused() {
    let cfg = config(
        &[
            ("A", Role::Server),
            ("S2", Role::Server),
            ("B", Role::Agent),
        ],
        "v1.33.6+k3s1",
        &["v1.34.3+k3s1", "v1.35.0+k3s1"],
    );
    let e = Engine::new(cfg);
    let err = e.check_command(&Command::Skip("S2".into())).unwrap_err();
    assert!(err.contains("more than one minor version behind"), "{err}");
    assert!(e.check_command(&Command::Skip("B".into())).is_ok());
}

#[test]
fn abort_stops_issuing_actions() {
    let (mut e, mut s) = started(abc(), &[]);
    s.hold.insert("install");
    assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Install)));
    s.command(&mut e, Command::Abort);
    assert_eq!(*e.state(), RolloutState::Aborted);
    let text = &last_event(&e).text;
    assert!(
        text.contains("install of A") && text.contains("left cordoned: A"),
        "{text}"
    );
    s.release(&mut e, "install");
    s.advance(&mut e, mins(30));
    assert_eq!(s.kinds_for("A").last(), Some(&"install"));
    assert!(e.in_flight().is_none());
    assert!(e.events().iter().any(|ev| {
        ev.text
            .contains("install of A succeeded after the rollout stopped")
    }));
}

const Y: bool = true;
const N: bool = false;

fn commands() -> Vec<Command> {
    vec![
        Command::Start,
        Command::Canary,
        Command::ConfirmCanary,
        Command::Pause,
        Command::Resume,
        Command::Step,
        Command::Abort,
        Command::Retry,
        Command::Skip("C".into()),
        Command::Skip("ghost".into()),
        Command::Rollback,
    ]
}

/// Builds an engine in the named state (and the sim that got it there).
/// A patch hop, so that rollback is the rolling one (across a minor it is
/// refused; `tests/rollback.rs` covers that).
fn engine_in(state: &str) -> (Engine, FakeCluster) {
    let cfg = config(
        &[("A", Role::Server), ("B", Role::Agent), ("C", Role::Agent)],
        "v1.33.6+k3s1",
        &["v1.33.7+k3s1"],
    );
    let mut e = Engine::new(cfg.clone());
    let mut s = FakeCluster::new(&cfg, &[]);
    s.observe(&mut e);
    let done = |e: &Engine, _: &FakeCluster| *e.state() == RolloutState::Done;
    match state {
        "idle" => {}
        "running" => {
            s.hold.insert("install");
            s.command(&mut e, Command::Start);
            assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Install)));
        }
        "pausing" => {
            s.hold.insert("install");
            s.command(&mut e, Command::Start);
            assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Install)));
            s.command(&mut e, Command::Pause);
        }
        "paused" => {
            s.command(&mut e, Command::Step);
            assert!(s.run_until(&mut e, secs(10), mins(30), |e, _| *e.state()
                == RolloutState::Paused));
        }
        "canary awaiting confirmation" => {
            s.command(&mut e, Command::Canary);
            assert!(s.run_until(&mut e, secs(10), mins(30), |e, _| *e.state()
                == RolloutState::CanaryAwaitingConfirm));
        }
        "halted" => {
            s.command(&mut e, Command::Start);
            assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Soak)));
            s.node("A").heartbeat_late = true;
            s.advance(&mut e, secs(10));
        }
        "aborted" => {
            s.hold.insert("install");
            s.command(&mut e, Command::Start);
            assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Install)));
            s.command(&mut e, Command::Abort);
        }
        "rolling back" => {
            s.command(&mut e, Command::Start);
            assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Soak)));
            s.node("A").heartbeat_late = true;
            s.advance(&mut e, secs(10));
            s.hold.insert("install");
            s.command(&mut e, Command::Rollback);
            s.settle(&mut e);
        }
        "done" => {
            s.command(&mut e, Command::Start);
            assert!(s.run_until(&mut e, secs(10), mins(60), done));
        }
        "rolled back" => {
            s.command(&mut e, Command::Step);
            assert!(s.run_until(&mut e, secs(10), mins(30), |e, _| *e.state()
                == RolloutState::Paused));
            s.command(&mut e, Command::Rollback);
            assert!(s.run_until(&mut e, secs(10), mins(30), |e, _| *e.state()
                == RolloutState::RolledBack));
        }
        other => panic!("unknown state {other}"),
    }
    assert_eq!(e.state().label(), state);
    (e, s)
}

#[test]
fn every_command_in_every_state() {
    // Start Canary Confirm Pause Resume Step Abort Retry SkipC Skip? Rollback
    let table: [(&str, [bool; 11]); 10] = [
        ("idle", [Y, Y, N, N, N, Y, Y, N, Y, N, N]),
        ("running", [N, N, N, Y, N, Y, Y, N, Y, N, N]),
        ("pausing", [N, N, N, N, Y, N, Y, N, Y, N, N]),
        ("paused", [N, N, N, N, Y, Y, Y, N, Y, N, Y]),
        (
            "canary awaiting confirmation",
            [N, N, Y, N, N, N, Y, N, Y, N, Y],
        ),
        ("halted", [N, N, N, N, N, N, Y, Y, Y, N, Y]),
        ("aborted", [N, N, N, N, N, N, N, N, N, N, N]),
        ("rolling back", [N, N, N, Y, N, Y, Y, N, N, N, N]),
        ("done", [N, N, N, N, N, N, N, N, N, N, Y]),
        ("rolled back", [N, N, N, N, N, N, N, N, N, N, N]),
    ];
    for (state, expected) in table {
        for (cmd, accept) in commands().into_iter().zip(expected) {
            let (e0, _) = engine_in(state);
            let mut e = e0.clone();
            assert_eq!(
                e.check_command(&cmd).is_ok(),
                accept,
                "{state} / {}: {:?}",
                cmd.label(),
                e.check_command(&cmd)
            );
            let now = e0.events().last().map_or(t0(), |ev| ev.at) + secs(1);
            let actions = e.step(Input::Command(cmd.clone()), now);
            let ev = e.events().last().unwrap();
            if accept {
                assert!(
                    e.events()[e0.events().len()..]
                        .iter()
                        .all(|ev| ev.kind != EventKind::Refused),
                    "{state} / {}: refused",
                    cmd.label()
                );
                assert!(
                    e != e0,
                    "{state} / {}: accepted but nothing changed",
                    cmd.label()
                );
            } else {
                assert_eq!(ev.kind, EventKind::Refused, "{state} / {}", cmd.label());
                assert!(
                    ev.text.starts_with(&format!("refused {}: ", cmd.label())),
                    "{}",
                    ev.text
                );
                assert!(actions.is_empty());
                // Nothing but the refusal changed.
                let mut back = e.clone();
                back.events.pop();
                assert_eq!(back, e0, "{state} / {}", cmd.label());
            }
        }
    }
}
