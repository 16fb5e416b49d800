use super::*;

#[test]
fn view_reports_phase_times_and_soak_progress() {
    let (mut e, mut s) = started(abc(), &[]);
    assert!(s.run_until(&mut e, secs(10), mins(30), in_phase("A", Phase::Soak)));
    let soak_start = s.now;
    s.now += secs(150);
    let view = e.view(s.now);
    assert_eq!(view.current.as_deref(), Some("A"));
    let a = &view.nodes[0];
    assert_eq!(a.phase_started, Some(soak_start));
    let soak = a.soak.as_ref().unwrap();
    assert_eq!(soak.elapsed, secs(150));
    assert!((soak.fraction() - 0.5).abs() < 1e-9);
    assert!((a.progress - 6.5 / 8.0).abs() < 1e-9, "{}", a.progress);
    assert_eq!(view.nodes[1].phase, Phase::Pending);
    assert_eq!(view.nodes[1].progress, 0.0);
    assert_eq!(view.nodes[1].target, Some(v("v1.34.3+k3s1")));
    assert!(
        view.events
            .iter()
            .any(|ev| ev.text == "A (v1.34.3+k3s1): soak for 5m00s")
    );
}
