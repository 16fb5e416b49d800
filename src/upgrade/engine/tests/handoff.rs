use super::*;

/// A, B, C with the gated service web/web announced from A.
fn announced() -> EngineConfig {
    let mut cfg = abc();
    cfg.gates.services = vec!["web/web".into()];
    cfg
}

fn done(e: &Engine, _: &FakeCluster) -> bool {
    *e.state() == RolloutState::Done
}

fn position(kinds: &[&str], k: &str) -> usize {
    kinds.iter().position(|x| *x == k).unwrap()
}

#[test]
fn an_announcing_node_hands_its_ip_off_before_cordon_and_unlabels_after_uncordon() {
    let (mut e, mut s) = started(announced(), &[]);
    assert!(s.run_until(&mut e, secs(1), mins(60), done));
    let a = s.kinds_for("A");
    assert!(position(&a, "label") < position(&a, "cordon"), "{a:?}");
    assert!(position(&a, "uncordon") < position(&a, "unlabel"), "{a:?}");
    assert_eq!(s.label_ops("A"), ["label", "unlabel"]);
    // C never announced anything: nothing to hand off.
    assert!(s.label_ops("C").is_empty(), "{:?}", s.kinds_for("C"));
    assert!(s.labels.is_empty(), "every label removed: {:?}", s.labels);
    let texts: Vec<&str> = e.events().iter().map(|ev| ev.text.as_str()).collect();
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("A: handoff moved web/web → B")),
        "{texts:#?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("A: exclude label removed; announced now: web/web → B")),
        "{texts:#?}"
    );
}

#[test]
fn cordon_waits_until_the_probes_stayed_green_for_the_settle_time() {
    let (mut e, mut s) = started(announced(), &[]);
    assert!(s.run_until(&mut e, secs(1), mins(5), |_, s| s.labels.contains("A")));
    // The IP moved, but the new announcer does not answer yet.
    s.services[0].probe_ok = Some(false);
    s.advance(&mut e, mins(1));
    assert_eq!(phase_of(&e, "A", s.now), Phase::Handoff);
    assert!(!s.kinds_for("A").contains(&"cordon"));
    s.services[0].probe_ok = Some(true);
    let green = s.now;
    assert!(s.run_until(&mut e, secs(1), mins(5), |_, s| {
        s.kinds_for("A").contains(&"cordon")
    }));
    let settle = e.config().timings.handoff_settle;
    let cordoned = s.log.iter().find(|(_, a)| kind(a) == "cordon").unwrap().0;
    assert!(
        cordoned.duration_since(green) >= settle,
        "cordoned at {cordoned}, green at {green}"
    );
}

#[test]
fn an_ip_that_never_moves_halts_the_handoff_with_the_reason() {
    let (mut e, mut s) = started(announced(), &[]);
    s.label_ignored = true;
    assert!(s.run_until(&mut e, secs(5), mins(10), |e, _| halted(e).is_some()));
    let h = halted(&e).unwrap();
    assert_eq!(h.phase, Some(Phase::Handoff));
    assert!(
        h.reason.contains("handoff of A did not finish within 2m")
            && h.reason
                .contains("service web/web is still announced from A"),
        "{}",
        h.reason
    );
    assert!(!s.kinds_for("A").contains(&"cordon"));
    assert!(
        s.labels.contains("A"),
        "kept while halted: retry may still work"
    );
}

#[test]
fn abort_during_the_handoff_removes_the_label_exactly_once() {
    let (mut e, mut s) = started(announced(), &[]);
    s.label_ignored = true;
    assert!(s.run_until(&mut e, secs(1), mins(1), |_, s| s.labels.contains("A")));
    let actions = s.command(&mut e, Command::Abort);
    assert_eq!(actions.iter().map(kind).collect::<Vec<_>>(), ["unlabel"]);
    assert!(
        e.releasing_labels(),
        "a headless run waits for it before exiting"
    );
    s.advance(&mut e, mins(5));
    assert!(s.labels.is_empty());
    assert_eq!(s.label_ops("A"), ["label", "unlabel"]);
    assert!(last_event(&e).text.contains("A: exclude label removed"));

    // Aborted while the label action itself runs: removed once it lands.
    let (mut e, mut s) = started(announced(), &[]);
    s.hold.insert("label");
    s.settle(&mut e);
    assert!(s.command(&mut e, Command::Abort).is_empty());
    s.release(&mut e, "label");
    s.advance(&mut e, mins(1));
    assert!(s.labels.is_empty());
    assert_eq!(s.label_ops("A"), ["label", "unlabel"]);
}

#[test]
fn skip_and_rollback_after_a_handoff_halt_remove_the_label() {
    let (mut e, mut s) = started(announced(), &[]);
    s.label_ignored = true;
    assert!(s.run_until(&mut e, secs(5), mins(10), |e, _| halted(e).is_some()));
    s.command(&mut e, Command::Skip("A".into()));
    s.advance(&mut e, secs(1));
    assert!(!s.labels.contains("A"));
    assert_eq!(s.label_ops("A"), ["label", "unlabel"]);

    let (mut e, mut s) = started(announced(), &[]);
    s.label_ignored = true;
    assert!(s.run_until(&mut e, secs(5), mins(10), |e, _| halted(e).is_some()));
    s.command(&mut e, Command::Rollback);
    s.advance(&mut e, mins(1));
    assert!(!s.labels.contains("A"));
    assert_eq!(s.label_ops("A"), ["label", "unlabel"]);
}

#[test]
fn a_cockpit_restart_during_the_handoff_removes_the_label_once_and_completes() {
    let (mut e, mut s) = started(announced(), &[]);
    s.hold.insert("label");
    s.settle(&mut e);
    // The label landed, but the cockpit died before hearing it.
    s.pending.clear();
    s.labels.insert("A".into());
    s.reannounce();
    s.hold.clear();
    let actions = s.feed(&mut e, Input::Reattach);
    assert_eq!(
        actions.iter().map(kind).collect::<Vec<_>>(),
        Vec::<&str>::new()
    );
    assert!(s.run_until(&mut e, secs(1), mins(60), done));
    assert_eq!(s.label_ops("A"), ["label", "label", "unlabel"]);
    assert!(s.labels.is_empty());
}

#[test]
fn the_view_shows_the_label_and_handoff_off_never_labels() {
    let (mut e, mut s) = started(announced(), &[]);
    s.label_ignored = true;
    assert!(s.run_until(&mut e, secs(1), mins(1), |_, s| s.labels.contains("A")));
    let view = e.view(s.now);
    assert!(view.nodes[0].labelled && view.nodes[0].phase == Phase::Handoff);
    assert!(!view.nodes[1].labelled);

    let mut cfg = announced();
    cfg.handoff = HandoffMode::Off;
    let (mut e, mut s) = started(cfg, &[]);
    assert!(s.run_until(&mut e, secs(1), mins(60), done));
    assert!(s.label_ops("A").is_empty(), "{:?}", s.kinds_for("A"));
}
