use super::*;

#[test]
fn results_for_unknown_actions_are_ignored() {
    let (mut e, mut s) = started(abc(), &[]);
    s.hold.insert("cordon");
    s.settle(&mut e);
    let before = e.clone();
    s.feed(
        &mut e,
        Input::ActionFinished {
            id: 999,
            result: Err("x".into()),
            output: None,
        },
    );
    assert_eq!(e.state(), before.state());
    assert_eq!(e.in_flight(), before.in_flight());
    assert_eq!(last_event(&e).kind, EventKind::Warn);
}

#[test]
fn reattach_restarts_after_an_interrupted_install_instead_of_redoing_it() {
    // The install finished on the node but the cockpit died before hearing it.
    let (mut e, mut s) = started(abc(), &[]);
    s.hold.insert("install");
    assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Install)));
    s.pending.clear();
    s.installed.insert("A".into(), "v1.34.3+k3s1".into());
    s.node("A").version = "v1.34.3+k3s1".into();
    s.hold.clear();
    s.now += mins(2);
    let actions = s.feed(&mut e, Input::Reattach);
    assert_eq!(actions.iter().map(kind).collect::<Vec<_>>(), ["restart"]);
    assert_eq!(phase_of(&e, "A", s.now), Phase::Restart);
    assert!(s.run_until(&mut e, secs(10), mins(60), |e, _| *e.state()
        == RolloutState::Done));
    assert_eq!(s.installs().iter().filter(|(n, _)| n == "A").count(), 1);

    // The install never happened: after the version timeout, install again.
    let (mut e, mut s) = started(abc(), &[]);
    s.hold.insert("install");
    assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Install)));
    s.pending.clear();
    s.hold.clear();
    s.feed(&mut e, Input::Reattach);
    s.settle(&mut e);
    assert_eq!(s.kinds_for("A").last(), Some(&"restart"));
    s.advance(&mut e, mins(9));
    assert_eq!(s.installs().len(), 1);
    s.advance(&mut e, mins(1));
    assert_eq!(s.installs().len(), 2);
    assert!(s.run_until(&mut e, secs(10), mins(60), |e, _| *e.state()
        == RolloutState::Done));
}

#[test]
fn reattach_reissues_idempotent_actions_and_restarts_the_soak() {
    let (mut e, mut s) = started(abc(), &[]);
    s.hold.insert("drain");
    assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Drain)));
    s.pending.clear();
    let actions = s.feed(&mut e, Input::Reattach);
    assert_eq!(actions.iter().map(kind).collect::<Vec<_>>(), ["drain"]);
    s.hold.clear();
    assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Soak)));
    s.advance(&mut e, mins(4));
    let restarted = s.now;
    s.feed(&mut e, Input::Reattach);
    s.observe(&mut e);
    s.advance(&mut e, mins(2));
    assert_eq!(
        phase_of(&e, "A", s.now),
        Phase::Soak,
        "soak starts over after a restart"
    );
    assert!(s.run_until(&mut e, secs(10), mins(4), in_phase("A", Phase::Done)));
    assert!(s.now.duration_since(restarted) >= mins(5));
}
