//! The upgrade engine end to end, headless: the real binary drives the
//! real lab over kube-rs and SSH (one node through the simulated Proxmox
//! host), with the lab's own `--plan-out` plan.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const INCIDENT: &str = include_str!("../assets/scenarios/incident-2026-01-25.toml");
/// The incident at 10x the demo's speed: renewals every second, install
/// 2 s, fun-bedbug's and still-fawn's kubelets die 14 s and 15 s after
/// their v1.35 upgrades, the plan soaks 20 s. The old 30 s wait of the demo's scale is 12 s here.
const SCALE: &str = "10";
const LEGACY_SOAK: &str = "12s";

struct Rollout {
    lab: LabProcess,
    dir: tempfile::TempDir,
    plan: PathBuf,
    kubeconfig: PathBuf,
}

fn lab_with_plan(scenario: &str) -> Rollout {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    let lab = start_lab(
        dir.path(),
        scenario,
        &[
            "--time-scale",
            SCALE,
            "--plan-out",
            plan.to_str().unwrap(),
            "--audit-log",
            dir.path().join("audit.jsonl").to_str().unwrap(),
        ],
    );
    assert!(plan.exists(), "lab --plan-out wrote no plan");
    let kubeconfig = lab.kubeconfig.clone();
    Rollout {
        lab,
        dir,
        plan,
        kubeconfig,
    }
}

/// Exit status and JSON lines of one `upgrade --headless` run.
struct Run {
    code: i32,
    lines: Vec<Value>,
    stderr: String,
}

impl Run {
    fn of(&self, kind: &str) -> Vec<&Value> {
        self.lines.iter().filter(|l| l["type"] == kind).collect()
    }

    /// The outcome first (a truncated CI log still shows why), then every line.
    fn explain(&self) -> String {
        let outcome: Vec<String> = self
            .lines
            .iter()
            .filter(|l| l["type"] == "state" || l["type"] == "exit")
            .rev()
            .take(2)
            .map(Value::to_string)
            .collect();
        format!(
            "exit {}; last: {}\nall lines: {:#?}",
            self.code,
            outcome.join(" | "),
            self.lines
        )
    }

    fn last_state(&self) -> &Value {
        self.of("state").last().copied().unwrap()
    }

    /// `(node, version)` of every install action, in order.
    fn installs(&self) -> Vec<(String, String)> {
        self.of("action")
            .iter()
            .filter(|a| a["action"]["action"] == "install")
            .map(|a| {
                (
                    a["action"]["node"].as_str().unwrap().to_string(),
                    a["action"]["version"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

impl Rollout {
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
            .stderr(Stdio::piped());
        cmd
    }

    fn upgrade(&self, extra: &[&str], timeout: Duration) -> Run {
        let child = self.command(extra).spawn().unwrap();
        finish(child, timeout)
    }

    /// How the plan reaches `node`: SSH, or the Proxmox host and its VM.
    fn transport(&self, node: &str) -> k3s_cockpit::remote::Transport {
        let plan: toml::Value =
            toml::from_str(&std::fs::read_to_string(&self.plan).unwrap()).unwrap();
        let t = &plan["node"][node]["transport"];
        let ssh = k3s_cockpit::remote::SshTarget::new(
            "127.0.0.1",
            t["port"].as_integer().unwrap() as u16,
            "root",
            Some(self.dir.path().join("lab_ssh_ed25519")),
            self.dir.path().join("lab_known_hosts"),
        );
        match t.get("vmid").and_then(toml::Value::as_integer) {
            Some(vmid) => k3s_cockpit::remote::Transport::Proxmox {
                host: ssh,
                vmid: vmid as u32,
                escalate: None,
            },
            None => k3s_cockpit::remote::Transport::Ssh(ssh),
        }
    }

    /// What the post-mortem's operators did by hand: restart K3s.
    fn restart_k3s(&self, node: &str) {
        self.by_hand(node, "systemctl restart k3s");
    }

    /// Runs `command` on `node` over the plan's transport, as an operator would.
    fn by_hand(&self, node: &str, command: &str) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let result = rt
            .block_on(
                self.transport(node)
                    .exec(command, Duration::from_secs(10), |_| {}),
            )
            .unwrap();
        assert!(result.success(), "{command} on {node}: {result:?}");
    }

    /// Every node as the API shows it now.
    fn nodes(&self) -> Vec<k3s_cockpit::model::fleet::NodeInfo> {
        api_nodes(&self.kubeconfig)
    }

    /// Each node's kubelet version, from the API.
    fn versions(&self) -> Vec<(String, String)> {
        self.nodes()
            .into_iter()
            .map(|n| (n.name, n.version))
            .collect()
    }

    /// Every API request that was not a read, from the lab's audit log.
    fn writes(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("audit.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| v["method"] != "GET")
            .collect()
    }

    /// Waits until `node`'s kubelet renewed its Lease after `since` and
    /// the node is Ready: K3s is back after a restart.
    fn wait_back(&self, node: &str, since: jiff::Timestamp) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let back = rt.block_on(async {
            let target = k3s_cockpit::cluster::ClusterTarget {
                kubeconfig: Some(self.kubeconfig.clone()),
                context: None,
            };
            let conn = k3s_cockpit::cluster::connect(&target, true).await.unwrap();
            let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
                kube::Api::namespaced(conn.client, "kube-node-lease");
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                let renewed = leases
                    .get(node)
                    .await
                    .ok()
                    .and_then(|l| l.spec?.renew_time)
                    .is_some_and(|t| t.0 > since);
                if renewed {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        });
        assert!(
            back,
            "{node}'s kubelet did not renew its lease within 30 s of the restart"
        );
        let ready = || {
            self.readiness()
                .iter()
                .any(|(n, r)| n == node && r == "True")
        };
        assert!(
            wait_for(Duration::from_secs(30), ready),
            "{node} is not Ready after its restart"
        );
    }

    /// Ready condition status of each node, from the API.
    fn readiness(&self) -> Vec<(String, String)> {
        self.nodes()
            .into_iter()
            .map(|n| {
                let ready = n
                    .ready()
                    .map(|c| format!("{:?}", c.status))
                    .unwrap_or_default();
                (n.name, ready)
            })
            .collect()
    }
}

/// Waits for the child (killing it after `timeout`) and parses its lines.
fn finish(mut child: Child, timeout: Duration) -> Run {
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "upgrade did not finish within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    eprintln!("stderr: {}", String::from_utf8_lossy(&out.stderr));
    Run {
        code: status.code().unwrap_or(-1),
        lines,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn fun_bedbug() -> &'static str {
    "k3s-vm-fun-bedbug"
}

#[test]
fn incident_is_caught_in_soak_healed_by_a_restart_and_resumed() {
    let r = lab_with_plan(INCIDENT);
    let run = r.upgrade(&[], Duration::from_secs(240));
    assert_eq!(run.code, 1, "{}", run.explain());
    let halt = run.last_state();
    assert_eq!(halt["state"], "halted", "{halt}");
    assert_eq!(halt["node"], fun_bedbug(), "{halt}");
    assert_eq!(halt["phase"], "soak", "{halt}");
    assert!(
        halt["reason"]
            .as_str()
            .unwrap()
            .contains("heartbeat is late"),
        "{halt}"
    );
    // The whole cluster reached v1.34 first; fun-bedbug was the first on
    // v1.35, and nothing started after it.
    let installs = run.installs();
    assert_eq!(installs.len(), 4, "{installs:?}");
    assert_eq!(
        installs.last().unwrap(),
        &(fun_bedbug().to_string(), "v1.35.0+k3s1".to_string())
    );
    // Before anything changed: an etcd snapshot on the first server.
    let first_action = &run.of("action")[0]["action"];
    assert_eq!(first_action["action"], "etcd_snapshot", "{first_action}");
    // The Proxmox transport carried still-fawn's install.
    assert!(
        installs.iter().any(|(n, _)| n == "k3s-vm-still-fawn"),
        "{installs:?}"
    );

    // The run's session journal turns into the incident report.
    let exit = run.of("exit")[0].clone();
    let session = exit["session"].as_str().expect("a session journal");
    let report = Command::new(BIN)
        .args(["report", session, "--utc"])
        .output()
        .unwrap();
    assert!(report.status.success());
    let md = String::from_utf8_lossy(&report.stdout);
    assert!(md.contains("HALTED: soak of k3s-vm-fun-bedbug"), "{md}");
    assert!(md.contains("soak"), "{md}");

    let since = jiff::Timestamp::now();
    r.restart_k3s(fun_bedbug());
    r.wait_back(fun_bedbug(), since);
    // Resumed: fun-bedbug finishes its soak, pumped-piglet passes, and
    // still-fawn's kubelet dies inside its own soak, as in the incident.
    let resumed = r.upgrade(&["--resume"], Duration::from_secs(240));
    assert_eq!(resumed.code, 1, "{}", resumed.explain());
    let halt = resumed.last_state();
    assert_eq!(halt["node"], "k3s-vm-still-fawn", "{halt}");
    assert_eq!(halt["phase"], "soak", "{halt}");
    // A finished node is never upgraded again: only the remaining two.
    assert_eq!(
        resumed.installs(),
        vec![
            (
                "k3s-vm-pumped-piglet-gpu".to_string(),
                "v1.35.0+k3s1".to_string()
            ),
            ("k3s-vm-still-fawn".to_string(), "v1.35.0+k3s1".to_string()),
        ]
    );

    // The same fix heals it (and cancels its pending speaker failure).
    let since = jiff::Timestamp::now();
    r.restart_k3s("k3s-vm-still-fawn");
    r.wait_back("k3s-vm-still-fawn", since);
    let done = r.upgrade(&["--resume"], Duration::from_secs(120));
    assert_eq!(done.code, 0, "{}", done.explain());
    assert_eq!(done.last_state()["state"], "done");
    assert_eq!(done.installs(), vec![]);
}

#[test]
fn the_old_thirty_second_wait_without_the_global_gate_misses_two_failures() {
    let r = lab_with_plan(INCIDENT);
    let run = r.upgrade(
        &["--soak", LEGACY_SOAK, "--no-global-gate"],
        Duration::from_secs(240),
    );
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(run.last_state()["state"], "done");
    assert_eq!(run.installs().len(), 6);
    // Minutes later (seconds here) two kubelets have stopped and the node
    // lifecycle controller marks both nodes NotReady.
    let start = Instant::now();
    let mut last = Vec::new();
    while start.elapsed() < Duration::from_secs(60) {
        last = r.readiness();
        let down: Vec<&str> = last
            .iter()
            .filter(|(_, ready)| ready != "True")
            .map(|(n, _)| n.as_str())
            .collect();
        if down == ["k3s-vm-fun-bedbug", "k3s-vm-still-fawn"] {
            return;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    panic!("two nodes never went NotReady: {last:?}");
}

/// Three healthy nodes on v1.33.6, the post-mortem's two hops, no faults.
fn healthy_two_hops() -> String {
    let faults_at = INCIDENT.find("# 13:46").unwrap();
    let replay_at = INCIDENT.find("# The old automation").unwrap();
    format!("{}{}", &INCIDENT[..faults_at], &INCIDENT[replay_at..])
}

/// A canary that crossed a minor on the 3-server etcd lab: the rolling
/// rollback is refused (no install at all) and the refusal spells out the
/// cluster-wide restore with the snapshot the rollout took.
#[test]
fn canary_across_a_minor_refuses_the_rolling_rollback_and_names_the_restore() {
    let r = lab_with_plan(&healthy_two_hops());
    let run = r.upgrade(&["--canary"], Duration::from_secs(120));
    assert_eq!(run.code, 1, "{}", run.explain());
    assert_eq!(run.last_state()["state"], "canary awaiting confirmation");
    assert_eq!(
        run.installs(),
        vec![(fun_bedbug().to_string(), "v1.34.3+k3s1".to_string())]
    );
    let back = r.upgrade(&["--resume", "--rollback"], Duration::from_secs(120));
    assert_eq!(back.code, 1, "{}", back.explain());
    assert_eq!(back.installs(), vec![], "{}", back.explain());
    let refused = back.of("refused");
    let why = refused[0]["reason"].as_str().unwrap();
    assert!(why.contains("crossed a minor"), "{why}");
    // The binary method kept each server's old binary: the procedure puts
    // that back rather than downloading the install script.
    assert!(
        why.contains(
            "check that `/usr/local/bin/k3s.cockpit-v1.33.6+k3s1 --version` says v1.33.6+k3s1"
        ),
        "{why}"
    );
    assert!(!why.contains("get.k3s.io"), "{why}");
    assert!(
        why.contains("k3s server --cluster-reset --cluster-reset-restore-path=/var/lib/rancher/k3s/server/db/snapshots/k3s-cockpit-"),
        "{why}"
    );
    assert!(
        r.versions()
            .iter()
            .any(|(n, v)| n == fun_bedbug() && v == "v1.34.3+k3s1"),
        "{:?}",
        r.versions()
    );
}

/// A pod without a controller and a PodDisruptionBudget allowing no
/// disruption: preflight's drain report blocks, naming both and their fix,
/// and nothing is cordoned or evicted.
#[test]
fn the_drain_report_blocks_a_fresh_rollout_before_anything_is_cordoned() {
    let pods = format!(
        "{}\n[[pods]]\nnamespace = \"tools\"\nname = \"debug-shell\"\nnode = \"{bedbug}\"\nowner = \"none\"\n\
         [[pods]]\nnamespace = \"shop\"\nname = \"web-1\"\nnode = \"{bedbug}\"\napp = \"web\"\n\
         [[pdbs]]\nnamespace = \"shop\"\nname = \"web\"\napp = \"web\"\nmin_available = 1\n",
        healthy_two_hops(),
        bedbug = fun_bedbug()
    );
    let r = lab_with_plan(&pods);
    let run = r.upgrade(&[], Duration::from_secs(60));
    assert_eq!(run.code, 1, "{}", run.explain());
    let blocks: Vec<&str> = run
        .of("preflight")
        .iter()
        .filter(|l| l["level"] == "block")
        .map(|l| l["text"].as_str().unwrap())
        .collect();
    assert!(
        blocks
            .iter()
            .any(|b| b.contains("tools/debug-shell: no controller") && b.contains("drain.force")),
        "{blocks:#?}"
    );
    assert!(
        blocks.iter().any(
            |b| b.contains("PodDisruptionBudget shop/web allows no disruption now")
                && b.contains("drain.pdb_blocking")
        ),
        "{blocks:#?}"
    );
    let touched: Vec<Value> = r
        .writes()
        .into_iter()
        .filter(|w| {
            let path = w["path"].as_str().unwrap();
            path.starts_with("/api/v1/nodes") || path.contains("/pods/")
        })
        .collect();
    assert!(touched.is_empty(), "{touched:?}");
    assert!(run.installs().is_empty());
}

/// A patch canary (within a minor) rolls back node by node, as it came.
#[test]
fn a_patch_canary_rolls_back_node_by_node() {
    let r = lab_with_plan(&healthy_two_hops());
    r.set_target("v1.33.7+k3s1");
    let run = r.upgrade(&["--canary"], Duration::from_secs(120));
    assert_eq!(run.code, 1, "{}", run.explain());
    assert_eq!(run.last_state()["state"], "canary awaiting confirmation");
    assert_eq!(
        run.installs(),
        vec![(fun_bedbug().to_string(), "v1.33.7+k3s1".to_string())]
    );
    let back = r.upgrade(&["--resume", "--rollback"], Duration::from_secs(120));
    assert_eq!(back.code, 0, "{}", back.explain());
    assert_eq!(back.last_state()["state"], "rolled back");
    assert_eq!(
        back.installs(),
        vec![(fun_bedbug().to_string(), "v1.33.6+k3s1".to_string())]
    );
}

#[test]
fn kill_9_mid_install_then_resume_finishes_without_redoing_a_node() {
    let r = lab_with_plan(&healthy_two_hops());
    let mut child = r.command(&["--soak", "1s"]).spawn().unwrap();
    // Kill the cockpit while the second node's install runs.
    let stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    use std::io::BufRead;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        let second_install = v["type"] == "action"
            && v["action"]["action"] == "install"
            && v["action"]["node"] == "k3s-vm-pumped-piglet-gpu";
        seen.push(v);
        if second_install {
            child.kill().unwrap();
            break;
        }
    }
    child.wait().unwrap();
    assert!(
        seen.iter()
            .any(|v| v["action"]["node"] == "k3s-vm-pumped-piglet-gpu"),
        "never reached the second install"
    );
    let resumed = r.upgrade(&["--resume", "--break-lock"], Duration::from_secs(180));
    assert_eq!(resumed.code, 0, "{}", resumed.explain());
    // The interrupted node is restarted first (the post-mortem's fix), not
    // merely checked.
    let first = resumed.of("action")[0]["action"].clone();
    assert_eq!(
        (first["action"].as_str(), first["node"].as_str()),
        (Some("restart"), Some("k3s-vm-pumped-piglet-gpu")),
        "{}",
        resumed.explain()
    );
    let installs = resumed.installs();
    assert!(
        !installs.contains(&(fun_bedbug().to_string(), "v1.34.3+k3s1".to_string())),
        "a finished node was upgraded again: {installs:?}"
    );
    assert_eq!(
        installs.iter().filter(|(_, v)| v == "v1.35.0+k3s1").count(),
        3,
        "{installs:?}"
    );
}

#[test]
fn dry_run_prints_the_commands_and_changes_nothing() {
    let r = lab_with_plan(&healthy_two_hops());
    let out = Command::new(BIN)
        .args(["upgrade", "--dry-run", "--plan"])
        .arg(&r.plan)
        .arg("--kubeconfig")
        .arg(&r.kubeconfig)
        .env("XDG_STATE_HOME", r.dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("qm guest exec 107"), "{text}");
    // The binary method's script, with the version it installs.
    assert!(text.contains("version=v1.35.0+k3s1"), "{text}");
    assert!(text.contains("final state: done"), "{text}");
    assert!(!Path::new(&format!("{}.journal.jsonl", r.plan.display())).exists());
    // Not one request that could change the cluster reached the API.
    let writes = r.writes();
    assert!(
        writes.is_empty(),
        "the dry run wrote to the cluster: {writes:#?}"
    );
}

#[test]
fn a_second_cockpit_is_refused_while_the_first_holds_the_lock() {
    let r = lab_with_plan(&healthy_two_hops());
    let mut first = r.command(&["--soak", "30s"]).spawn().unwrap();
    // The first cockpit prints its first state only after it holds the lock.
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = first.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if line.contains(r#""type":"state""#) {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(60)).is_err() {
        let _ = first.kill();
        panic!("the first cockpit never started its rollout");
    }
    let other_journal = r.dir.path().join("other.jsonl");
    let second = finish(
        r.command(&["--journal", other_journal.to_str().unwrap()])
            .spawn()
            .unwrap(),
        Duration::from_secs(60),
    );
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(second.code, 1);
    let err = &second.stderr;
    assert!(
        err.contains("another cockpit drives this cluster")
            && err.contains("kube-system/k3s-cockpit-rollout"),
        "{err}"
    );
}

/// The worst resume: the journal says a node finished v1.34, but someone
/// put it back on v1.33 since. Continuing would take the other nodes (or
/// this one) across two minors at once; the resume is refused instead,
/// naming the node, and nothing is sent.
#[test]
fn a_resume_on_a_node_reset_behind_the_journal_is_refused() {
    let r = lab_with_plan(&healthy_two_hops());
    let run = r.upgrade(
        &["--canary", "--canary-soak", "1s"],
        Duration::from_secs(120),
    );
    assert_eq!(
        run.last_state()["state"],
        "canary awaiting confirmation",
        "{}",
        run.explain()
    );
    assert_eq!(
        run.installs(),
        vec![(fun_bedbug().to_string(), "v1.34.3+k3s1".to_string())]
    );
    r.by_hand(
        fun_bedbug(),
        "curl -sfL https://get.k3s.io | INSTALL_K3S_VERSION=v1.33.6+k3s1 sh -s - server",
    );
    r.restart_k3s(fun_bedbug());
    let reset = || {
        r.versions()
            .iter()
            .any(|(n, v)| n == fun_bedbug() && v == "v1.33.6+k3s1")
    };
    assert!(
        wait_for(Duration::from_secs(30), reset),
        "{:?}",
        r.versions()
    );

    let resumed = r.upgrade(&["--resume"], Duration::from_secs(60));
    assert_eq!(resumed.code, 2, "{}\n{}", resumed.stderr, resumed.explain());
    assert!(resumed.installs().is_empty(), "{}", resumed.explain());
    assert!(
        resumed
            .stderr
            .contains("node k3s-vm-fun-bedbug runs v1.33.6+k3s1; the journal left it"),
        "{}",
        resumed.stderr
    );
    assert!(
        r.writes()
            .iter()
            .all(|w| w["path"] != "/api/v1/nodes/k3s-vm-pumped-piglet-gpu")
    );
}

impl Rollout {
    /// Sets `KEY = VALUE` at `table` (`""` for the top level) in the plan.
    fn set_plan(&self, table: &[&str], key: &str, value: &str) {
        self.set_plan_value(table, key, toml::Value::String(value.into()));
    }

    /// Sets `KEY = VALUE` (any TOML value) at `table` in the plan.
    fn set_plan_value(&self, table: &[&str], key: &str, value: toml::Value) {
        let mut plan: toml::Table =
            toml::from_str(&std::fs::read_to_string(&self.plan).unwrap()).unwrap();
        let mut t = &mut plan;
        for name in table {
            t = t
                .entry(*name)
                .or_insert_with(|| toml::Value::Table(Default::default()))
                .as_table_mut()
                .unwrap();
        }
        t.insert(key.into(), value);
        std::fs::write(&self.plan, toml::to_string(&plan).unwrap()).unwrap();
    }

    /// Runs the upgrade expecting the node checks to refuse it: exit 2,
    /// nothing written to the cluster; returns the reason.
    fn refused(&self) -> String {
        let run = self.upgrade(&[], Duration::from_secs(60));
        assert_eq!(run.code, 2, "{}", run.explain());
        let writes = self.writes();
        assert!(writes.is_empty(), "refused, yet wrote: {writes:#?}");
        run.of("exit")[0]["reason"].as_str().unwrap().to_string()
    }

    /// `(node, k3s.io/node-args)` of every node, from the API.
    fn node_args(&self) -> Vec<(String, Option<Vec<String>>)> {
        self.nodes()
            .into_iter()
            .map(|n| (n.name, n.node_args))
            .collect()
    }

    /// Messages of K3s's service LB taking a LoadBalancer service.
    fn servicelb_events(&self) -> Vec<String> {
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
                .filter(|e| e.reason.as_deref() == Some("AppliedDaemonSet"))
                .filter_map(|e| e.message)
                .collect()
        })
    }

    /// Targets `version` directly, without hops.
    fn set_target(&self, version: &str) {
        let mut plan: toml::Table =
            toml::from_str(&std::fs::read_to_string(&self.plan).unwrap()).unwrap();
        plan.insert("target".into(), toml::Value::String(version.into()));
        plan.remove("hops");
        std::fs::write(&self.plan, toml::to_string(&plan).unwrap()).unwrap();
    }

    /// Sets `[timings] KEY = VALUE` in the plan.
    fn set_timing(&self, key: &str, value: &str) {
        let mut plan: toml::Table =
            toml::from_str(&std::fs::read_to_string(&self.plan).unwrap()).unwrap();
        let timings = plan
            .entry("timings")
            .or_insert_with(|| toml::Value::Table(Default::default()));
        timings
            .as_table_mut()
            .unwrap()
            .insert(key.into(), toml::Value::String(value.into()));
        std::fs::write(&self.plan, toml::to_string(&plan).unwrap()).unwrap();
    }
}

/// Starts a headless run and reads its lines until `until` holds for one;
/// returns the child and a channel with the rest of its lines.
fn run_until(
    r: &Rollout,
    extra: &[&str],
    until: impl Fn(&Value) -> bool + Send + 'static,
) -> (Child, std::sync::mpsc::Receiver<Value>) {
    let mut child = r.command(extra).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (hit_tx, hit_rx) = std::sync::mpsc::channel();
    let (rest_tx, rest_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut hit = false;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            let v: Value = serde_json::from_str(&line).unwrap();
            if !hit && until(&v) {
                hit = true;
                let _ = hit_tx.send(());
            }
            let _ = rest_tx.send(v);
        }
    });
    if hit_rx.recv_timeout(Duration::from_secs(90)).is_err() {
        let _ = child.kill();
        panic!("the run never reached the expected line");
    }
    (child, rest_rx)
}

/// The exit line among `lines`, waiting up to `timeout` for it.
fn exit_line(lines: &std::sync::mpsc::Receiver<Value>, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(v) if v["type"] == "exit" => return v,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    panic!("no exit line within {timeout:?}");
}

/// A script waiting on a headless run gets an answer when the API server
/// goes away mid-soak: exit 1 within the plan's deadline, the cause named.
#[test]
fn headless_gives_up_when_the_api_server_is_gone_past_its_deadline() {
    let mut r = lab_with_plan(&healthy_two_hops());
    r.set_timing("api_lost_timeout", "3s");
    let (mut child, lines) = run_until(&r, &["--soak", "60s"], |v| {
        v["type"] == "event" && v["text"].as_str().is_some_and(|t| t.contains("): soak"))
    });
    let killed = Instant::now();
    let _ = r.lab.kill();
    let exit = exit_line(&lines, Duration::from_secs(30));
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{exit}");
    assert_eq!(exit["code"], 1, "{exit}");
    let reason = exit["reason"].as_str().unwrap();
    assert!(reason.contains("API server unreachable for"), "{exit}");
    // Three seconds of deadline, plus the watchers' first failed retry.
    assert!(
        killed.elapsed() < Duration::from_secs(20),
        "{:?}",
        killed.elapsed()
    );
}

/// SIGTERM stops a headless run cleanly: an exit line naming it, the lock
/// released (a resume needs no --break-lock), and the resume finishes.
#[test]
fn sigterm_gives_an_exit_line_and_releases_the_lock() {
    let r = lab_with_plan(&healthy_two_hops());
    let (child, lines) = run_until(&r, &["--soak", "1s"], |v| v["type"] == "state");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = exit_line(&lines, Duration::from_secs(30));
    let mut child = child;
    assert_eq!(child.wait().unwrap().code(), Some(1), "{exit}");
    assert!(
        exit["reason"].as_str().unwrap().starts_with("SIGTERM"),
        "{exit}"
    );
    let resumed = r.upgrade(&["--resume", "--soak", "1s"], Duration::from_secs(180));
    assert_eq!(resumed.code, 0, "{}\n{}", resumed.stderr, resumed.explain());
    assert_eq!(resumed.last_state()["state"], "done");
}

/// The incident's kubelets failed minutes after looking Ready. Here the
/// last node's kubelet stops about six minutes of cluster time (the fast
/// lab runs ten times faster than Kubernetes' defaults) after its own soak
/// passed: the final stability watch catches it and the rollout halts
/// instead of calling itself done.
#[test]
fn a_failure_minutes_after_the_last_soak_is_caught_by_the_final_watch() {
    let scenario = format!(
        "{}\n[[faults]]\nnode = \"node-c\"\nkind = \"kubelet-stop\"\nafter_upgrade_to = \"v1.34.3+k3s1\"\ndelay = \"39s\"\n\n[replay]\nstart = \"1h\"\nversions = [\"v1.34.3+k3s1\"]\nsettle = \"30s\"\n",
        common::fast_scenario("node-c", "1h")
    );
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    let lab = start_lab(
        dir.path(),
        &scenario,
        &["--plan-out", plan.to_str().unwrap()],
    );
    let r = Rollout {
        kubeconfig: lab.kubeconfig.clone(),
        lab,
        dir,
        plan,
    };
    let run = r.upgrade(
        &["--soak", "3s", "--final-soak", "60s"],
        Duration::from_secs(180),
    );
    assert_eq!(run.code, 1, "{}", run.explain());
    let last = run.last_state();
    assert_eq!(last["state"], "halted", "{}", run.explain());
    let reason = last["reason"].as_str().unwrap_or_default().to_string();
    assert!(
        reason.starts_with("final stability watch failed after") && reason.contains("node-c"),
        "{reason}\n{}",
        run.explain()
    );
    // Every node was upgraded before the watch began.
    let upgraded: Vec<String> = run.installs().into_iter().map(|(n, _)| n).collect();
    assert_eq!(upgraded, ["node-a", "node-b", "node-c"]);
}

/// The post-mortem's cluster, healthy, with short soaks: every node's
/// unit arguments must come through two hops unchanged.
fn upgrade_keeping_flags(r: &Rollout) {
    let before = r.node_args();
    assert!(
        before.iter().all(|(_, a)| a
            .as_ref()
            .is_some_and(|a| a.windows(2).any(|w| w == ["--disable", "servicelb"]))),
        "{before:?}"
    );
    let run = r.upgrade(
        &["--soak", "1s", "--final-soak", "1s"],
        Duration::from_secs(180),
    );
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(run.installs().len(), 6, "{}", run.explain());
    assert_eq!(r.node_args(), before);
    assert_eq!(r.servicelb_events(), Vec::<String>::new());
}

#[test]
fn the_default_binary_method_keeps_every_nodes_arguments() {
    let r = lab_with_plan(&healthy_two_hops());
    upgrade_keeping_flags(&r);
}

#[test]
fn the_install_script_method_with_rebuilt_arguments_keeps_them() {
    let r = lab_with_plan(&healthy_two_hops());
    r.set_plan(&[], "method", "install-script");
    upgrade_keeping_flags(&r);
}

#[test]
fn the_role_only_install_command_halts_at_the_first_node_naming_the_lost_flags() {
    let r = lab_with_plan(&healthy_two_hops());
    r.set_plan(
        &["commands"],
        "install",
        "nohup sh -c 'curl -sfL https://get.k3s.io -o /tmp/k3s-cockpit-install.sh && INSTALL_K3S_VERSION=\"{version}\" sh /tmp/k3s-cockpit-install.sh {role}' >>/var/log/k3s-cockpit-install.log 2>&1 </dev/null",
    );
    let run = r.upgrade(&["--soak", "1s"], Duration::from_secs(120));
    assert_eq!(run.code, 1, "{}", run.explain());
    let halt = run.last_state();
    assert_eq!(halt["state"], "halted", "{halt}");
    assert_eq!(halt["node"], fun_bedbug(), "{halt}");
    let reason = halt["reason"].as_str().unwrap();
    assert!(
        reason.contains("lost --server https://10.0.0.105:6443, --disable servicelb, --disable traefik, --tls-san k3s.home.lan"),
        "{reason}"
    );
    assert!(reason.contains("rewrote k3s's ExecStart"), "{reason}");
    // Caught right after the install, before the restart would have run
    // K3s without them: its own service LB never took the services.
    assert_eq!(halt["phase"], "install", "{halt}");
    assert_eq!(run.installs().len(), 1, "{}", run.explain());
    assert_eq!(r.servicelb_events(), Vec::<String>::new());
}

/// The healthy incident cluster with `node_extra` on every node and
/// `top` at the scenario's top level.
fn healthy_with(node_extra: &str, top: &str) -> String {
    healthy_two_hops()
        .replace(
            "version = \"v1.33.6+k3s1\"\n",
            &format!("version = \"v1.33.6+k3s1\"\n{node_extra}\n"),
        )
        .replace(
            "proxmox_host = true\n",
            &format!("proxmox_host = true\n{top}\n"),
        )
}

#[test]
fn sudo_nodes_upgrade_with_become_and_without_it_the_check_says_what_to_set() {
    let r = lab_with_plan(&healthy_with("root_login = false", ""));
    r.set_plan(&["transport"], "user", "ops");
    let why = r.refused();
    assert!(
        why.contains("node k3s-vm-fun-bedbug: privilege: logged in as ops, not root, and no become is set: set become = \"sudo -n\""),
        "{why}"
    );
    r.set_plan(&["transport"], "become", "sudo -n");
    let run = r.upgrade(
        &["--soak", "1s", "--final-soak", "1s"],
        Duration::from_secs(180),
    );
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(run.installs().len(), 6);
}

#[test]
fn unknown_host_keys_dead_ssh_and_missing_artifacts_are_refused_before_any_cordon() {
    let r = lab_with_plan(&healthy_two_hops());
    let plan = std::fs::read_to_string(&r.plan).unwrap();
    let empty = r.dir.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    r.set_plan(&["transport"], "known_hosts", empty.to_str().unwrap());
    let why = r.refused();
    assert!(why.contains("node k3s-vm-fun-bedbug: ssh:"), "{why}");
    assert!(why.to_lowercase().contains("host key"), "{why}");

    std::fs::write(&r.plan, &plan).unwrap();
    let closed = free_port();
    r.set_plan_value(
        &["node", fun_bedbug(), "transport"],
        "port",
        toml::Value::Integer(closed.into()),
    );
    let why = r.refused();
    assert!(why.contains("node k3s-vm-fun-bedbug: ssh:"), "{why}");
    assert!(!why.contains("node k3s-vm-pumped-piglet-gpu"), "{why}");

    std::fs::write(&r.plan, &plan).unwrap();
    r.set_plan(&[], "release", "/var/lib/k3s-cockpit/artifacts");
    let why = r.refused();
    assert!(
        why.contains("node k3s-vm-fun-bedbug: target binary:"),
        "{why}"
    );
    assert!(
        why.contains(
            "cat: /var/lib/k3s-cockpit/artifacts/v1.34.3+k3s1/sha256sum-amd64.txt: No such file"
        ),
        "{why}"
    );
}

#[test]
fn airgapped_nodes_and_sudo_with_a_password_are_refused_before_any_cordon() {
    let r = lab_with_plan(&healthy_with("sudo = \"password\"", "airgap = true"));
    let why = r.refused();
    assert!(
        why.contains("node k3s-vm-fun-bedbug: target binary: the node cannot download https://github.com/k3s-io/k3s/releases/download/v1.34.3+k3s1/sha256sum-amd64.txt"),
        "{why}"
    );
    r.set_plan(&["transport"], "user", "ops");
    r.set_plan(&["transport"], "become", "sudo -n");
    let why = r.refused();
    assert!(
        why.contains("node k3s-vm-fun-bedbug: privilege: `sudo -n true` as ops failed"),
        "{why}"
    );
    assert!(why.contains("sudo: a password is required"), "{why}");
    assert!(why.contains("NOPASSWD"), "{why}");
}

/// One SQLite server and an agent two minors behind it; one hop to v1.34.
const SQLITE_WITH_AGENT: &str = r#"
name = "sqlite-with-agent"
time_scale = 1.0
sqlite = true
[timing]
install = "20s"
restart_down = "4s"
kubelet_startup = "6s"
[[nodes]]
name = "k3s-server"
role = "server"
version = "v1.33.6+k3s1"
args = ["--disable", "servicelb", "--disable", "traefik"]
[[nodes]]
name = "k3s-agent-old"
role = "agent"
version = "v1.31.9+k3s1"
args = ["--server", "https://10.0.0.105:6443", "--node-ip", "10.0.0.120"]
env = { K3S_URL = "https://10.0.0.105:6443", K3S_TOKEN = "K10lab::node:sqlite" }
[[services]]
namespace = "home"
name = "home-assistant"
ip = "127.77.0.31"
port = 8123
pod_node = "k3s-server"
[replay]
start = "20s"
versions = ["v1.34.3+k3s1"]
settle = "30s"
"#;

#[test]
fn sqlite_server_then_an_old_agent_straight_to_the_target_with_no_snapshot() {
    let r = lab_with_plan(SQLITE_WITH_AGENT);
    r.set_plan(&[], "datastore", "etcd");
    let run = r.upgrade(&[], Duration::from_secs(60));
    assert_eq!(run.code, 2, "{}", run.explain());
    let why = run.of("exit")[0]["reason"].as_str().unwrap().to_string();
    assert!(
        why.contains("datastore = \"etcd\" but the cluster's datastore is sqlite: the only server, k3s-server, is no etcd member"),
        "{why}"
    );
    let plan: String = std::fs::read_to_string(&r.plan)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("datastore"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&r.plan, plan).unwrap();
    let before = r.node_args();
    let run = r.upgrade(
        &["--soak", "1s", "--final-soak", "1s"],
        Duration::from_secs(120),
    );
    assert_eq!(run.code, 0, "{}", run.explain());
    assert_eq!(
        run.installs(),
        [
            ("k3s-server".to_string(), "v1.34.3+k3s1".to_string()),
            ("k3s-agent-old".to_string(), "v1.34.3+k3s1".to_string())
        ]
    );
    assert!(
        run.of("action")
            .iter()
            .all(|a| a["action"]["action"] != "etcd_snapshot")
    );
    let agent_restart = run
        .of("action")
        .into_iter()
        .find(|a| a["action"]["action"] == "restart" && a["action"]["node"] == "k3s-agent-old")
        .unwrap()
        .clone();
    assert_eq!(agent_restart["command"], "systemctl restart k3s-agent");
    assert_eq!(r.node_args(), before);
}

#[test]
fn airgapped_nodes_upgrade_from_verified_staged_releases_and_a_corrupted_one_is_refused() {
    let staged = "staged_releases = [\"v1.34.3+k3s1\", \"v1.35.0+k3s1\"]\nairgap = true";
    let scenario = healthy_with("", staged).replacen(
        "name = \"k3s-vm-still-fawn\"\n",
        "name = \"k3s-vm-still-fawn\"\ncorrupt_staged = true\n",
        1,
    );
    let r = lab_with_plan(&scenario);
    r.set_plan(&[], "release", "/var/lib/k3s-cockpit/releases");
    let why = r.refused();
    assert!(
        why.contains("node k3s-vm-still-fawn: target binary: /var/lib/k3s-cockpit/releases/v1.34.3+k3s1/k3s has sha256"),
        "{why}"
    );
    assert!(why.contains("the artifact is corrupted"), "{why}");
    assert!(!why.contains("node k3s-vm-fun-bedbug"), "{why}");

    let r = lab_with_plan(&healthy_with("", staged));
    r.set_plan(&[], "release", "/var/lib/k3s-cockpit/releases");
    upgrade_keeping_flags(&r);
}

/// The healthy cluster, airgapped, every node over SSH (no Proxmox host),
/// with `extra` appended to the scenario.
fn airgapped_over_ssh(extra: &str) -> String {
    format!(
        "{}{extra}",
        healthy_two_hops().replace("proxmox_host = true\n", "airgap = true\n")
    )
}

impl Rollout {
    /// A local artifacts directory with the lab's release files of both
    /// hops for amd64 (the lab nodes' arch), named in the plan.
    fn with_artifacts(&self) -> PathBuf {
        let dir = self.dir.path().join("artifacts");
        for v in ["v1.34.3+k3s1", "v1.35.0+k3s1"] {
            std::fs::create_dir_all(dir.join(v)).unwrap();
            for file in ["k3s", "sha256sum-amd64.txt"] {
                let data = k3s_cockpit::lab::host::release_file(v, file).unwrap();
                std::fs::write(dir.join(v).join(file), data).unwrap();
            }
        }
        self.set_plan(&[], "artifacts", dir.to_str().unwrap());
        dir
    }

    /// Stdout of `command` on `node`, run as an operator would.
    fn output(&self, node: &str, command: &str) -> String {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let r = rt
            .block_on(
                self.transport(node)
                    .exec(command, Duration::from_secs(10), |_| {}),
            )
            .unwrap();
        r.stdout
    }

    /// Every write to `node` (its object or anything under it) in the audit log.
    fn writes_to(&self, node: &str) -> Vec<Value> {
        let path = format!("/api/v1/nodes/{node}");
        self.writes()
            .into_iter()
            .filter(|w| w["path"].as_str().is_some_and(|p| p.starts_with(&path)))
            .collect()
    }
}

#[test]
fn airgapped_nodes_upgrade_from_a_local_artifacts_directory_copied_over_ssh() {
    let r = lab_with_plan(&healthy_with("", "airgap = true"));
    r.with_artifacts();
    // The VM behind the Proxmox host cannot receive a stream: refused, with why.
    let why = r.refused();
    assert!(
        why.contains(
            "node k3s-vm-still-fawn: artifacts cannot be copied to VM 107 through its Proxmox host"
        ),
        "{why}"
    );
    assert!(why.contains("--pass-stdin"), "{why}");

    let r = lab_with_plan(&airgapped_over_ssh(""));
    let dir = r.with_artifacts();
    let dry = Command::new(BIN)
        .args(["upgrade", "--dry-run", "--plan"])
        .arg(&r.plan)
        .arg("--kubeconfig")
        .arg(&r.kubeconfig)
        .env("XDG_STATE_HOME", r.dir.path())
        .output()
        .unwrap();
    let dry = String::from_utf8_lossy(&dry.stdout);
    let copy = format!(
        "copy {}/v1.34.3+k3s1/ASSET and sha256sum-ARCH.txt (by the node's uname -m) into /var/lib/k3s-cockpit/artifacts/v1.34.3+k3s1 over SSH",
        dir.display()
    );
    assert!(dry.contains(&copy), "{dry}");
    upgrade_keeping_flags(&r);
    for (node, version) in r.versions() {
        assert_eq!(version, "v1.35.0+k3s1", "{node}");
        let binary = r.output(&node, "k3s --version");
        assert!(
            binary.starts_with("k3s version v1.35.0+k3s1"),
            "{node}: {binary}"
        );
        // The staged copies are gone once installed.
        let staged = r.output(
            &node,
            "cat /var/lib/k3s-cockpit/artifacts/v1.35.0+k3s1/k3s || true",
        );
        assert_eq!(staged, "", "{node}");
    }
    let log = std::fs::read_to_string(r.dir.path().join("upgrade.log")).unwrap();
    let size = k3s_cockpit::lab::host::release_file("v1.35.0+k3s1", "k3s")
        .unwrap()
        .len();
    assert!(
        log.contains(&format!(
            "/var/lib/k3s-cockpit/artifacts/v1.35.0+k3s1/k3s: {size} of {size} bytes sent"
        )),
        "{log}"
    );
}

/// The first server's drain is held up by a throttled eviction, long
/// enough to corrupt the local artifact after its last check and before
/// its copy: the node's own sha256 check refuses it before the swap.
#[test]
fn a_corrupted_artifact_is_refused_on_the_node_before_the_swap() {
    let pod = format!(
        "\n[[pods]]\nnamespace = \"tools\"\nname = \"slow-evict\"\nnode = \"{}\"\n\n[throttle]\nfirst_evictions = 1\nretry_after_seconds = 5\n",
        fun_bedbug()
    );
    let r = lab_with_plan(&airgapped_over_ssh(&pod));
    let dir = r.with_artifacts();
    let node = fun_bedbug();
    let (child, lines) = run_until(&r, &["--soak", "1s"], move |v| {
        v["type"] == "action" && v["action"]["action"] == "drain" && v["action"]["node"] == node
    });
    let mut bad = std::fs::read(dir.join("v1.34.3+k3s1/k3s")).unwrap();
    bad.extend_from_slice(b"# tampered\n");
    std::fs::write(dir.join("v1.34.3+k3s1/k3s"), bad).unwrap();
    let exit = exit_line(&lines, Duration::from_secs(90));
    let _ = finish(child, Duration::from_secs(30));
    assert_eq!(exit["code"], 1, "{exit}");
    let reason = exit["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("sha256 mismatch for k3s v1.34.3+k3s1"),
        "{exit}"
    );
    assert!(reason.contains("left as it was"), "{exit}");
    let binary = r.output(fun_bedbug(), "k3s --version");
    assert!(binary.starts_with("k3s version v1.33.6+k3s1"), "{binary}");
}

/// The node checks run again right before each node. After the first
/// node is done, the artifact the second needs goes bad: the rollout halts
/// at the second node's check, naming it, before anything touches it.
#[test]
fn the_check_before_the_next_node_halts_when_its_artifact_went_bad() {
    let r = lab_with_plan(&airgapped_over_ssh(""));
    let dir = r.with_artifacts();
    let first = fun_bedbug();
    let (child, lines) = run_until(&r, &["--soak", "1s"], move |v| {
        v["type"] == "action" && v["action"]["action"] == "uncordon" && v["action"]["node"] == first
    });
    std::fs::write(dir.join("v1.34.3+k3s1/k3s"), b"not k3s").unwrap();
    let exit = exit_line(&lines, Duration::from_secs(90));
    let _ = finish(child, Duration::from_secs(30));
    let second = "k3s-vm-pumped-piglet-gpu";
    let reason = exit["reason"].as_str().unwrap_or_default();
    assert_eq!(exit["code"], 1, "{exit}");
    assert!(
        reason.contains(&format!(
            "node {second}: target binary: {}",
            dir.join("v1.34.3+k3s1/k3s").display()
        )),
        "{exit}"
    );
    assert!(reason.contains("the artifact is corrupted"), "{exit}");
    assert_eq!(r.writes_to(second), Vec::<Value>::new());
    assert!(!r.writes_to(fun_bedbug()).is_empty());
}

#[test]
fn a_proxmox_host_login_other_than_root_needs_become_for_qm() {
    let r = lab_with_plan(&healthy_two_hops());
    let vm = ["node", "k3s-vm-still-fawn", "transport"];
    r.set_plan(&vm, "user", "ops");
    let why = r.refused();
    assert!(
        why.contains("node k3s-vm-still-fawn: privilege: logged in as ops on the Proxmox host (qm needs root), not root, and no become is set: set become = \"sudo -n\""),
        "{why}"
    );
    r.set_plan(&vm, "become", "sudo -n");
    let out = Command::new(BIN)
        .arg("check-plan")
        .arg(&r.plan)
        .arg("--kubeconfig")
        .arg(&r.kubeconfig)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}");
}
