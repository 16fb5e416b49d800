//! Rollbacks end to end, headless, on the 3-server etcd lab: the
//! cluster-wide restore after crossing a minor (refused without
//! `--allow-cluster-restore`, carried out with it, resumed after `kill -9`),
//! and the binary method putting the kept binary back, also after two hops
//! (one kept binary per version, hop by hop or straight to the start). The lab's node log
//! records every command the nodes ran, so the tests see what was (not)
//! done on the machines.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const INCIDENT: &str = include_str!("../assets/scenarios/incident-2026-01-25.toml");
const OLD: &str = "v1.33.6+k3s1";
const SNAPSHOTS: &str = "/var/lib/rancher/k3s/server/db/snapshots/";

struct Lab {
    _lab: LabProcess,
    dir: tempfile::TempDir,
    plan: PathBuf,
    kubeconfig: PathBuf,
}

/// Three healthy servers on v1.33.6 without the incident's faults, at ten
/// times the demo's speed, with the lab's node log.
fn lab() -> Lab {
    let faults_at = INCIDENT.find("# 13:46").unwrap();
    let replay_at = INCIDENT.find("# The old automation").unwrap();
    lab_of(&format!(
        "{}{}",
        &INCIDENT[..faults_at],
        &INCIDENT[replay_at..]
    ))
}

/// One server on SQLite, no services, the incident's two hops: a rolling
/// rollback across minors is allowed without etcd, so it goes back hop by
/// hop, one reinstate per hop.
const SQLITE_TWO_HOPS: &str = r#"
name = "sqlite-two-hops"
time_scale = 1.0
sqlite = true
[timing]
install = "1s"
restart_down = "500ms"
kubelet_startup = "500ms"
[[nodes]]
name = "k3s-server"
role = "server"
version = "v1.33.6+k3s1"
args = ["--disable", "servicelb", "--disable", "traefik"]
[replay]
start = "20s"
versions = ["v1.34.3+k3s1", "v1.35.0+k3s1"]
settle = "30s"
"#;

/// `scenario` at ten times its speed, with the lab's node log and plan.
fn lab_of(scenario: &str) -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    let node_log = dir.path().join("nodes.jsonl");
    let lab = start_lab(
        dir.path(),
        scenario,
        &[
            "--time-scale",
            "10",
            "--plan-out",
            plan.to_str().unwrap(),
            "--node-log",
            node_log.to_str().unwrap(),
        ],
    );
    let kubeconfig = lab.kubeconfig.clone();
    Lab {
        _lab: lab,
        dir,
        plan,
        kubeconfig,
    }
}

struct Run {
    code: i32,
    lines: Vec<Value>,
}

impl Run {
    fn of(&self, kind: &str) -> Vec<&Value> {
        self.lines.iter().filter(|l| l["type"] == kind).collect()
    }

    /// The kinds of the actions issued, with their nodes.
    fn actions(&self) -> Vec<(String, String)> {
        self.of("action")
            .iter()
            .map(|a| {
                let s = |k: &str| a["action"][k].as_str().unwrap_or_default().to_string();
                (s("action"), s("node"))
            })
            .collect()
    }

    fn explain(&self) -> String {
        format!("exit {}; lines: {:#?}", self.code, self.lines)
    }
}

impl Lab {
    fn command(&self, extra: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("--log-file")
            .arg(self.dir.path().join("upgrade.log"))
            .args(["upgrade", "--headless", "--plan"])
            .arg(&self.plan)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(extra)
            .env("XDG_STATE_HOME", self.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        cmd
    }

    fn upgrade(&self, extra: &[&str]) -> Run {
        let mut child = self.command(extra).spawn().unwrap();
        let lines = read_lines(&mut child, |_| false);
        let code = wait_exit(child, Duration::from_secs(180));
        Run { code, lines }
    }

    /// Every command the nodes' shells ran so far: (node, command).
    fn node_log(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(self.dir.path().join("nodes.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .map(|v| {
                let s = |k: &str| v[k].as_str().unwrap().to_string();
                (s("node"), s("command"))
            })
            .collect()
    }

    fn count(&self, fragment: &str) -> usize {
        self.node_log()
            .iter()
            .filter(|(_, c)| c.contains(fragment))
            .count()
    }

    /// Every node's (name, Ready, kubelet version).
    fn nodes(&self) -> Vec<(String, bool, String)> {
        api_nodes(&self.kubeconfig)
            .into_iter()
            .map(|n| {
                let ready = n
                    .conditions
                    .iter()
                    .any(|c| c.kind == "Ready" && c.status == k3s_cockpit::model::fleet::Tri::True);
                (n.name, ready, n.version)
            })
            .collect()
    }

    /// Messages of the lab's restore events: the snapshot's data.
    fn restored(&self) -> Vec<String> {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let target = k3s_cockpit::cluster::ClusterTarget {
                kubeconfig: Some(self.kubeconfig.clone()),
                context: None,
            };
            let conn = k3s_cockpit::cluster::connect(&target, true).await.unwrap();
            let events: kube::Api<k8s_openapi::api::core::v1::Event> = kube::Api::all(conn.client);
            let list = events.list(&Default::default()).await.unwrap();
            list.items
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some("LabDatastoreRestored"))
                .filter_map(|e| e.message)
                .collect()
        })
    }

    /// A canary of the first server to v1.34: it crossed a minor.
    fn canary_across_a_minor(&self) {
        let run = self.upgrade(&["--canary", "--canary-soak", "2s", "--soak", "2s"]);
        assert_eq!(run.code, 1, "{}", run.explain());
        assert_eq!(
            run.actions().iter().filter(|(a, _)| a == "install").count(),
            1
        );
    }

    fn assert_restored(&self) {
        let nodes = self.nodes();
        assert!(
            nodes.iter().all(|(_, ready, v)| *ready && v == OLD),
            "{nodes:?}"
        );
        let restored = self.restored();
        assert_eq!(restored.len(), 1, "{restored:?}");
        // The snapshot was taken before the first server was touched.
        let data = &restored[0];
        assert!(data.contains(SNAPSHOTS), "{data}");
        for (name, _, _) in &nodes {
            assert!(data.contains(&format!("{name}={OLD}")), "{data}");
        }
    }
}

/// Reads the child's JSON lines until `stop` holds for one (then returns
/// at once) or its output ends.
fn read_lines(child: &mut Child, stop: impl Fn(&Value) -> bool) -> Vec<Value> {
    let stdout = child.stdout.as_mut().unwrap();
    let mut lines = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let v: Value = serde_json::from_str(&line.unwrap()).unwrap();
        let hit = stop(&v);
        lines.push(v);
        if hit {
            break;
        }
    }
    lines
}

fn wait_exit(mut child: Child, timeout: Duration) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        assert!(start.elapsed() < timeout, "no exit within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Without the opt-in the rollback is refused and names the flag; with it
/// the cockpit restores the snapshot cluster-wide: every server ends Ready
/// on the old version with the snapshot's data, each step ran once, the
/// old binaries came back without a download.
#[test]
fn a_rollback_across_a_minor_needs_the_opt_in_and_then_restores_the_snapshot() {
    let lab = lab();
    lab.canary_across_a_minor();
    let refused = lab.upgrade(&["--resume", "--rollback"]);
    assert_eq!(refused.code, 1, "{}", refused.explain());
    assert!(refused.actions().is_empty(), "{}", refused.explain());
    let why = refused.of("refused")[0]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(why.contains("--allow-cluster-restore"), "{why}");
    assert_eq!(lab.count("systemctl stop"), 0);

    let back = lab.upgrade(&["--resume", "--rollback", "--allow-cluster-restore"]);
    assert_eq!(back.code, 0, "{}", back.explain());
    assert_eq!(back.of("state").last().unwrap()["state"], "rolled back");
    lab.assert_restored();
    assert_eq!(lab.count("systemctl stop k3s"), 3);
    assert_eq!(lab.count("--cluster-reset"), 1);
    assert_eq!(lab.count("rm -rf /var/lib/rancher/k3s/server/db"), 2);
    // Only the canary's server had a new binary to take back.
    assert_eq!(lab.count("# k3s-cockpit binary reinstate"), 1);
    // One binary upgrade script: the canary's. None in the rollback.
    assert_eq!(lab.count("# k3s-cockpit binary upgrade"), 1);
}

/// `kill -9` while the reset runs, then `--resume --rollback
/// --allow-cluster-restore`: the run goes on at the reset, which it finds
/// done (K3s's reset-flag) and does not run again; the stops and the
/// reinstall already done are not repeated; the snapshot is restored once.
#[test]
fn kill_9_mid_restore_then_resume_continues_at_the_reset() {
    let lab = lab();
    lab.canary_across_a_minor();
    let mut child = lab
        .command(&["--resume", "--rollback", "--allow-cluster-restore"])
        .spawn()
        .unwrap();
    let seen = read_lines(&mut child, |v| {
        v["type"] == "action" && v["action"]["action"] == "cluster_reset"
    });
    assert!(
        seen.last().is_some_and(|v| v["type"] == "action"),
        "never reached the reset: {seen:#?}"
    );
    // Killed once the node began the reset (it takes the lab's 0.5 s): the
    // node finishes it alone, so the resumed run meets a reset that
    // happened but was never recorded, and must not reset again.
    assert!(
        wait_for(Duration::from_secs(30), || lab.count("--cluster-reset")
            == 1),
        "the reset never began on the node"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        wait_for(Duration::from_secs(30), || lab.restored().len() == 1),
        "the reset never completed on the node"
    );
    let (stops, installs) = (lab.count("systemctl stop"), lab.count("reinstate"));
    assert_eq!((stops, installs), (3, 1));

    let resumed = lab.upgrade(&[
        "--resume",
        "--break-lock",
        "--rollback",
        "--allow-cluster-restore",
    ]);
    assert_eq!(resumed.code, 0, "{}", resumed.explain());
    let actions = resumed.actions();
    assert_eq!(actions[0].0, "cluster_reset", "{actions:?}");
    assert!(
        actions
            .iter()
            .all(|(a, _)| a != "stop_k3s" && a != "install"),
        "{actions:?}"
    );
    assert_eq!(lab.count("systemctl stop"), 3);
    assert_eq!(lab.count("reinstate"), 1);
    assert_eq!(lab.count("--cluster-reset"), 1, "reset twice");
    assert_eq!(
        lab.count("test -e /var/lib/rancher/k3s/server/db/reset-flag"),
        2
    );
    lab.assert_restored();
}

/// A patch canary rolls back node by node, and the binary method puts the
/// kept binary back: the node runs the reinstate script, never a second
/// binary upgrade (which would download the release again).
#[test]
fn a_binary_rollback_puts_the_kept_binary_back_without_a_download() {
    let lab = lab();
    let mut plan: toml::Table =
        toml::from_str(&std::fs::read_to_string(&lab.plan).unwrap()).unwrap();
    plan.insert("target".into(), toml::Value::String("v1.33.7+k3s1".into()));
    plan.remove("hops");
    std::fs::write(&lab.plan, toml::to_string(&plan).unwrap()).unwrap();
    let run = lab.upgrade(&["--canary", "--canary-soak", "2s", "--soak", "2s"]);
    assert_eq!(run.code, 1, "{}", run.explain());
    assert_eq!(lab.count("# k3s-cockpit binary upgrade"), 1);
    let fetches = lab.count("curl");
    let back = lab.upgrade(&["--resume", "--rollback"]);
    assert_eq!(back.code, 0, "{}", back.explain());
    assert_eq!(
        lab.count("# k3s-cockpit binary upgrade"),
        1,
        "{:?}",
        lab.node_log()
    );
    assert_eq!(lab.count("# k3s-cockpit binary reinstate"), 1);
    assert_eq!(lab.count("curl"), fetches, "the rollback fetched something");
    let nodes = lab.nodes();
    assert!(
        nodes.iter().all(|(_, ready, v)| *ready && v == OLD),
        "{nodes:?}"
    );
}

/// The incident's path, v1.33 → v1.34 → v1.35, with the binary method,
/// then the rollback: each hop goes back from the binary kept for its
/// version, the last one to the start version, with no download.
#[test]
fn a_two_hop_binary_rollback_puts_back_the_start_version_without_a_download() {
    let lab = lab_of(SQLITE_TWO_HOPS);
    let run = lab.upgrade(&["--soak", "1s", "--final-soak", "0s"]);
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(lab.count("# k3s-cockpit binary upgrade"), 2);
    let fetches = lab.count("curl");
    let back = lab.upgrade(&["--resume", "--rollback"]);
    assert_eq!(back.code, 0, "{}", back.explain());
    let versions: Vec<&str> = back
        .of("action")
        .iter()
        .filter(|a| a["action"]["action"] == "install")
        .map(|a| a["action"]["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["v1.34.3+k3s1", OLD]);
    assert_eq!(lab.count("# k3s-cockpit binary reinstate"), 2);
    assert_eq!(lab.count("# k3s-cockpit binary upgrade"), 2);
    assert_eq!(lab.count("curl"), fetches, "the rollback fetched something");
    assert_eq!(lab.count("get.k3s.io"), 0, "{:?}", lab.node_log());
    let nodes = lab.nodes();
    assert_eq!(nodes, [("k3s-server".to_string(), true, OLD.to_string())]);
}

/// The incident's rollout, every server through v1.34 to v1.35, then the
/// cluster restore: each server gets v1.33.6 back straight from the binary
/// it kept for that version, with no download.
#[test]
fn a_two_hop_cluster_restore_puts_back_the_start_binaries_without_a_download() {
    let lab = lab();
    let run = lab.upgrade(&["--soak", "1s", "--final-soak", "0s"]);
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(lab.count("# k3s-cockpit binary upgrade"), 6);
    let fetches = lab.count("curl");
    let back = lab.upgrade(&["--resume", "--rollback", "--allow-cluster-restore"]);
    assert_eq!(back.code, 0, "{}", back.explain());
    lab.assert_restored();
    assert_eq!(lab.count("# k3s-cockpit binary reinstate"), 3);
    assert_eq!(lab.count("# k3s-cockpit binary upgrade"), 6);
    assert_eq!(lab.count("curl"), fetches, "the restore fetched something");
}
