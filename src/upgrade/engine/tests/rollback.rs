use super::*;

/// Rollback after a halt in the first agent's soak: every install is
/// undone, newest first, with the same phases and soak.
#[test]
fn rollback_reinstalls_previous_versions_in_reverse_order() {
    let cfg = config(
        &[("A", Role::Server), ("B", Role::Agent), ("C", Role::Agent)],
        "v1.33.6+k3s1",
        &["v1.34.3+k3s1", "v1.35.0+k3s1"],
    );
    let (mut e, mut s) = started(cfg, &[]);
    let b_soak = |e: &Engine, s: &FakeCluster| {
        s.installs().len() == 3 && phase_of(e, "B", s.now) == Phase::Soak
    };
    assert!(s.run_until(&mut e, secs(10), mins(120), b_soak));
    s.node("B").ready = false;
    s.advance(&mut e, secs(10));
    assert!(halted(&e).is_some());
    assert!(e.needs_datastore_restore());
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
    assert!(view.needs_datastore_restore);
    let cmd = view.restore_command.unwrap();
    assert!(
        cmd.contains("--cluster-reset-restore-path=/var/lib/rancher/k3s/server/db/snapshots/k3s-cockpit-20260125-213300-A-1769376780"),
        "{cmd}"
    );
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
