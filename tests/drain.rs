//! Draining lab nodes as `kubectl drain` would: pods without a controller,
//! PodDisruptionBudgets answering 429 with their name, and an API server
//! that throttles evictions with 429 + Retry-After.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use k3s_cockpit::lab::scenario::Scenario;
use k3s_cockpit::lab::{Lab, LabConfig};
use k3s_cockpit::rollout::node_ops;
use k3s_cockpit::upgrade::plan::{DrainSpec, Level};

struct Running {
    _lab: Lab,
    client: kube::Client,
    audit: PathBuf,
    _dir: tempfile::TempDir,
}

/// The fast three-node lab plus `extra` scenario text, with an audit log.
async fn lab(extra: &str) -> Running {
    let text = format!("{}\n{extra}", common::fast_scenario("node-a", "1h"));
    let mut config = LabConfig::new(Scenario::parse(&text, "drain.toml").unwrap());
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    config.audit_log = Some(audit.clone());
    let lab = Lab::start(config).await.unwrap();
    let kc = dir.path().join("kc");
    lab.write_kubeconfig(&kc).unwrap();
    let target = k3s_cockpit::cluster::ClusterTarget {
        kubeconfig: Some(kc),
        context: None,
    };
    let conn = k3s_cockpit::cluster::connect(&target, false).await.unwrap();
    Running {
        _lab: lab,
        client: conn.client,
        audit,
        _dir: dir,
    }
}

fn audit_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn writes(path: &Path) -> Vec<String> {
    audit_lines(path)
        .into_iter()
        .filter(|l| !["get", "list", "watch"].contains(&l["verb"].as_str().unwrap()))
        .map(|l| format!("{} {} {}", l["method"], l["path"], l["status"]))
        .collect()
}

/// Collects progress lines.
fn recorder() -> (Arc<Mutex<Vec<String>>>, impl Fn(String) + Send + Sync) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    (lines, move |l: String| sink.lock().unwrap().push(l))
}

async fn pod_names(client: &kube::Client) -> Vec<String> {
    let pods: Api<Pod> = Api::all(client.clone());
    pods.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.metadata.name.unwrap())
        .collect()
}

const UNMANAGED: &str = r#"
[[pods]]
namespace = "tools"
name = "debug-shell"
node = "node-c"
owner = "none"
"#;

#[tokio::test]
async fn a_pod_without_controller_is_refused_before_cordon_and_nothing_is_written() {
    let lab = lab(UNMANAGED).await;
    let strict = DrainSpec::default();
    // The executor's cordon step asks this first.
    let err = node_ops::check_drainable(&lab.client, "node-c", &strict)
        .await
        .unwrap_err();
    assert!(err.contains("tools/debug-shell"), "{err}");
    assert!(err.contains("drain.force"), "names the fix: {err}");
    let (_, log) = recorder();
    let err = node_ops::drain(&lab.client, "node-c", &strict, Duration::from_secs(5), &log)
        .await
        .unwrap_err();
    assert!(err.contains("tools/debug-shell"), "{err}");
    assert_eq!(writes(&lab.audit), Vec::<String>::new(), "no write at all");
    assert!(
        pod_names(&lab.client)
            .await
            .contains(&"debug-shell".to_string())
    );
}

#[tokio::test]
async fn with_force_the_unmanaged_pod_is_evicted_and_reported_as_not_coming_back() {
    let lab = lab(UNMANAGED).await;
    let forced = DrainSpec {
        force: true,
        ..DrainSpec::default()
    };
    let report = node_ops::inspect(&lab.client, "node-c", &forced)
        .await
        .unwrap();
    let line = report
        .lines
        .iter()
        .find(|l| l.pod == "tools/debug-shell")
        .unwrap();
    assert_eq!(line.level, Level::Warn);
    assert!(
        line.text(&forced).contains("will not come back"),
        "{}",
        line.text(&forced)
    );
    let (lines, log) = recorder();
    node_ops::drain(
        &lab.client,
        "node-c",
        &forced,
        Duration::from_secs(10),
        &log,
    )
    .await
    .unwrap();
    let lines = lines.lock().unwrap().clone();
    assert!(
        lines.iter().any(|l| l.contains("evicted tools/debug-shell (no controller: it will not come back)")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("leaving metallb-system/speaker")),
        "{lines:?}"
    );
    // The frigate pod's ReplicaSet replaces it elsewhere; nothing replaces
    // the debug shell.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let names = pod_names(&lab.client).await;
        let frigates = names.iter().filter(|n| n.starts_with("frigate-")).count();
        if frigates == 1 {
            assert!(!names.iter().any(|n| n.starts_with("debug")), "{names:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "frigate never came back: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn eviction_calls(path: &Path) -> Vec<(jiff::Timestamp, u64)> {
    audit_lines(path)
        .into_iter()
        .filter(|l| l["path"].as_str().unwrap().ends_with("/eviction"))
        .map(|l| {
            (
                l["ts"].as_str().unwrap().parse().unwrap(),
                l["status"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_throttling_429_is_retried_after_its_retry_after_and_the_drain_completes() {
    let lab = lab("[throttle]\nfirst_evictions = 2\nretry_after_seconds = 2\n").await;
    let (lines, log) = recorder();
    node_ops::drain(
        &lab.client,
        "node-c",
        &DrainSpec::default(),
        Duration::from_secs(20),
        &log,
    )
    .await
    .unwrap();
    let lines = lines.lock().unwrap().clone();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("throttling (429); retrying after 2s")),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("Budget")),
        "not a budget: {lines:?}"
    );
    let calls = eviction_calls(&lab.audit);
    let codes: Vec<u64> = calls.iter().map(|c| c.1).collect();
    assert_eq!(codes, vec![429, 429, 201], "{calls:?}");
    for pair in calls.windows(2) {
        let gap = pair[1].0.duration_since(pair[0].0);
        assert!(
            gap >= jiff::SignedDuration::from_millis(1900),
            "retried after {gap:?}"
        );
    }
}

const GUARDED: &str = r#"
[[pods]]
namespace = "shop"
name = "web-1"
node = "node-c"
app = "web"

[[pdbs]]
namespace = "shop"
name = "web-budget"
app = "web"
min_available = 1
"#;

#[tokio::test]
async fn a_budget_allowing_no_disruption_blocks_the_report_and_its_429_names_it() {
    let lab = lab(GUARDED).await;
    let settings = DrainSpec {
        single_replica: Level::Warn,
        ..DrainSpec::default()
    };
    let report = node_ops::inspect(&lab.client, "node-c", &settings)
        .await
        .unwrap();
    let blocks: Vec<String> = report.blocks().map(|l| l.text(&settings)).collect();
    assert_eq!(
        blocks,
        vec![
            "shop/web-1: PodDisruptionBudget shop/web-budget allows no disruption now (needs 1 healthy pods, has 1)"
        ]
    );
    let (lines, log) = recorder();
    let err = node_ops::drain(
        &lab.client,
        "node-c",
        &settings,
        Duration::from_secs(2),
        &log,
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("still on the node: shop/web-1 (blocked by PodDisruptionBudget web-budget: needs 1 healthy pods and has 1 currently)"),
        "{err}"
    );
    let lines = lines.lock().unwrap().clone();
    assert!(lines.iter().any(|l| l.contains("web-budget")), "{lines:?}");
}
