//! `check-plan` against the lab: prints the resolved order and hops, and
//! rejects a bad plan with file:line:column and exit status 2.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

#[test]
fn check_plan_resolves_against_the_lab_and_rejects_bad_plans() {
    let dir = tempfile::tempdir().unwrap();
    let lab = common::start_lab(dir.path(), &common::fast_scenario("node-c", "1h"), &[]);
    let plan = dir.path().join("plan.toml");
    std::fs::write(
        &plan,
        "target = \"v1.35.0+k3s1\"\nhops = [\"v1.34.3+k3s1\"]\n",
    )
    .unwrap();
    let check = || {
        Command::new(common::BIN)
            .arg("check-plan")
            .arg("--offline")
            .arg(&plan)
            .arg("--kubeconfig")
            .arg(&lab.kubeconfig)
            .output()
            .unwrap()
    };
    let out = check();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (a, c) = (text.find("node-a").unwrap(), text.find("node-c").unwrap());
    assert!(a < c, "servers before agents:\n{text}");
    assert!(
        text.contains("v1.34.3+k3s1") && text.contains("v1.35.0+k3s1"),
        "{text}"
    );

    std::fs::write(&plan, "target = \"v1.35.0+k3s1\"\nhops = [\"v1.34.3+k3s1\"]\nsoak = 5\n[timings]\nsoak = \"5 parsecs\"\n").unwrap();
    let out = check();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("plan.toml:3:") || err.contains("plan.toml:5:"),
        "{err}"
    );

    // An absurd soak is refused where it is written.
    std::fs::write(
        &plan,
        "target = \"v1.35.0+k3s1\"\nhops = [\"v1.34.3+k3s1\"]\n[timings]\nsoak = \"5000000000h\"\n",
    )
    .unwrap();
    let out = check();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "plan.toml:4:8: invalid duration \"5000000000h\": longer than the 168h (7 days) maximum"
        ),
        "{err}"
    );

    // An unclosed placeholder is refused at load, pointing at the `{` of the
    // restart template and quoting it.
    std::fs::write(
        &plan,
        "target = \"v1.35.0+k3s1\"\nhops = [\"v1.34.3+k3s1\"]\n[commands]\nrestart = \"systemctl restart {service\"\n",
    )
    .unwrap();
    let out = check();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("plan.toml:4:30:"), "{err}");
    assert!(
        err.contains(r#""{service" is never closed in "systemctl restart {service""#),
        "{err}"
    );
}

/// Without `--offline`, check-plan also checks every node over SSH, the
/// same read-only checks the upgrade runs before anything changes.
#[test]
fn check_plan_checks_every_node_over_ssh() {
    let run = |scenario: &str| {
        let dir = tempfile::tempdir().unwrap();
        let plan = dir.path().join("plan.toml");
        let lab = common::start_lab(
            dir.path(),
            scenario,
            &["--plan-out", plan.to_str().unwrap()],
        );
        let out = Command::new(common::BIN)
            .arg("check-plan")
            .arg(&plan)
            .arg("--kubeconfig")
            .arg(&lab.kubeconfig)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The two servers were installed for MetalLB.
    let scenario = common::fast_scenario("node-c", "1h").replacen(
        "version = \"v1.33.6+k3s1\"\n",
        "version = \"v1.33.6+k3s1\"\nargs = [\"--disable\", \"servicelb\"]\n",
        2,
    );
    let with_target = format!(
        "{scenario}[replay]\nstart = \"1h\"\nversions = [\"v1.34.3+k3s1\"]\nsettle = \"1s\"\n"
    );
    let (code, out, err) = run(&with_target);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("node checks: all 3 nodes pass"), "{out}");
    let airgapped = with_target.replace("time_scale = 1.0\n", "time_scale = 1.0\nairgap = true\n");
    let (code, out, err) = run(&airgapped);
    assert_eq!(code, Some(2), "{out}\n{err}");
    assert!(
        err.contains("node node-a: target binary: the node cannot download"),
        "{err}"
    );
}
