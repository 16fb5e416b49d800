//! The lab as real clients see it: kube-rs watchers, kubectl, an SSH client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher;

use k3s_cockpit::lab::scenario::Scenario;
use k3s_cockpit::lab::{Lab, LabConfig};
use k3s_cockpit::remote::SshTarget;

async fn lab(scenario: &str) -> (Lab, kube::Client, tempfile::TempDir) {
    let scenario = Scenario::parse(scenario, "test.toml").unwrap();
    let lab = Lab::start(LabConfig::new(scenario)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kc");
    lab.write_kubeconfig(&kc).unwrap();
    let target = k3s_cockpit::cluster::ClusterTarget {
        kubeconfig: Some(kc),
        context: None,
    };
    let conn = k3s_cockpit::cluster::connect(&target, false).await.unwrap();
    (lab, conn.client, dir)
}

fn ready(n: &Node) -> String {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn kube_rs_sees_renewals_not_ready_and_announcer_move() {
    let victim = common::first_announcer();
    let (lab, client, _dir) = lab(&common::fast_scenario(victim, "2s")).await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let mut stream = watcher::watcher(leases, watcher::Config::default()).boxed();
    let mut renewals = 0;
    while renewals < 4 {
        if let Ok(watcher::Event::Apply(_)) =
            tokio::time::timeout(Duration::from_secs(5), stream.next())
                .await
                .unwrap()
                .unwrap()
        {
            renewals += 1;
        }
    }
    assert_eq!(
        lab.sim.announcer("frigate", "frigate").as_deref(),
        Some(victim)
    );

    let nodes: Api<Node> = Api::all(client.clone());
    let mut node_stream = watcher::watcher(nodes, watcher::Config::default()).boxed();
    let became_unknown = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(Ok(ev)) = node_stream.next().await {
            if let watcher::Event::Apply(n) = ev {
                let taints = n.spec.clone().and_then(|s| s.taints).unwrap_or_default();
                let tainted = taints
                    .iter()
                    .any(|t| t.key == "node.kubernetes.io/unreachable" && t.effect == "NoExecute");
                if n.metadata.name.as_deref() == Some(victim) && ready(&n) == "Unknown" && tainted {
                    return true;
                }
            }
        }
        false
    })
    .await
    .unwrap();
    assert!(
        became_unknown,
        "victim became Ready=Unknown with the unreachable taint"
    );
    let moved = common::wait_for(Duration::from_secs(10), || {
        lab.sim
            .announcer("frigate", "frigate")
            .is_some_and(|n| n != victim)
    });
    assert!(moved, "MetalLB moved the IP off the dead speaker");
}

/// A fault armed by an upgrade belongs to the K3s process the upgrade
/// started: it fires if nothing happens, and a `systemctl restart k3s`
/// before it fires replaces that process and cancels it.
#[tokio::test]
async fn an_upgrade_fault_fires_unless_k3s_restarts_first() {
    use k3s_cockpit::lab::sim::Kubelet;
    let scenario = common::fast_scenario("node-c", "1h").replace(
        "[[faults]]",
        "[[faults]]\nnode = \"node-a\"\nkind = \"kubelet-stop\"\nafter_upgrade_to = \"v1.34.3+k3s1\"\ndelay = \"1500ms\"\n\n[[faults]]\nnode = \"node-b\"\nkind = \"kubelet-stop\"\nafter_upgrade_to = \"v1.34.3+k3s1\"\ndelay = \"1500ms\"\n\n[[faults]]",
    );
    let (lab, _client, _dir) = lab(&scenario).await;
    for node in ["node-a", "node-b"] {
        lab.sim.install(node, "v1.34.3+k3s1").await.unwrap();
    }
    // Both kubelets come back on v1.34, each with a fault 1.5 s away;
    // node-b's operator restarts K3s before it fires.
    let running = |n: &str| lab.sim.kubelet_state(n).unwrap() == Kubelet::Running;
    for _ in 0..50 {
        if running("node-a") && running("node-b") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        running("node-a") && running("node-b"),
        "kubelets back after the install"
    );
    lab.sim.restart("node-b").unwrap();
    let hung = |n: &str| lab.sim.kubelet_state(n).unwrap() == Kubelet::Hung;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !hung("node-a") && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(hung("node-a"), "node-a's fault never fired");
    // node-b's fault was due at the same instant: it stays cancelled.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(lab.sim.kubelet_state("node-b").unwrap(), Kubelet::Running);
}

#[tokio::test]
async fn ssh_install_changes_the_version_seen_through_the_api_and_cordon_works() {
    let (lab, client, dir) = lab(&common::fast_scenario("node-c", "1h")).await;
    let ssh = k3s_cockpit::lab::shell::start_ssh(&lab.sim, dir.path(), false)
        .await
        .unwrap();
    let addr = ssh.nodes["node-b"];
    let target = SshTarget::new(
        "127.0.0.1",
        addr.port(),
        "root",
        Some(ssh.keys.client_key_path.clone()),
        ssh.keys.known_hosts_path.clone(),
    );
    let out = target
        .exec(
            "curl -sfL https://get.k3s.io | INSTALL_K3S_VERSION=v1.34.3+k3s1 sh -s -",
            Duration::from_secs(20),
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(out.exit_status, Some(0));
    let version = target
        .exec("k3s --version", Duration::from_secs(5), |_| {})
        .await
        .unwrap();
    assert!(
        version.stdout.contains("v1.34.3+k3s1"),
        "{}",
        version.stdout
    );
    let unknown = target
        .exec("rm -rf /", Duration::from_secs(5), |_| {})
        .await
        .unwrap();
    assert_eq!(unknown.exit_status, Some(127));

    let nodes: Api<Node> = Api::all(client.clone());
    let mut seen = String::new();
    for _ in 0..50 {
        let n = nodes.get("node-b").await.unwrap();
        seen = n
            .status
            .as_ref()
            .unwrap()
            .node_info
            .as_ref()
            .unwrap()
            .kubelet_version
            .clone();
        if seen == "v1.34.3+k3s1" && ready(&n) == "True" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, "v1.34.3+k3s1");

    nodes
        .patch(
            "node-a",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"unschedulable": true}})),
        )
        .await
        .unwrap();
    assert_eq!(
        nodes
            .get("node-a")
            .await
            .unwrap()
            .spec
            .unwrap()
            .unschedulable,
        Some(true)
    );
}

#[tokio::test]
async fn bad_requests_get_kubernetes_status_errors_and_the_lab_keeps_serving() {
    let (lab, _client, _dir) = lab(&common::fast_scenario("node-c", "1h")).await;
    let url = lab.server_url();
    let get = |path: &str| {
        let url = format!("{url}{path}");
        async move {
            let out = tokio::process::Command::new("curl")
                .args(["-s", "-w", "\n%{http_code}", &url])
                .output()
                .await
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    if !common::require("lab_api curl test", &["curl"]) {
        return;
    }
    let body = get("/api/v1/widgets").await;
    assert!(
        body.contains("\"kind\":\"Status\"") && body.ends_with("404"),
        "{body}"
    );
    let body = get("/api/v1/nodes?resourceVersion=banana").await;
    assert!(body.ends_with("400"), "{body}");
    let patch = tokio::process::Command::new("curl")
        .args([
            "-s",
            "-w",
            "\n%{http_code}",
            "-X",
            "PATCH",
            "-H",
            "Content-Type: application/merge-patch+json",
            "-d",
            "{not json",
            &format!("{url}/api/v1/nodes/node-a"),
        ])
        .output()
        .await
        .unwrap();
    let body = String::from_utf8_lossy(&patch.stdout);
    assert!(
        body.contains("malformed patch body") && body.ends_with("400"),
        "{body}"
    );
    assert!(get("/api/v1/nodes").await.ends_with("200"));
    // Port in use: a clear error, not a panic.
    let mut config = LabConfig::new(Scenario::load("healthy").unwrap());
    config.listen = lab.addr;
    let err = Lab::start(config).await.err().unwrap().to_string();
    assert!(err.contains("already in use"), "{err}");
}

/// `curl` against the lab: (HTTP status, parsed body).
async fn curl(args: &[&str]) -> (u16, serde_json::Value) {
    let out = tokio::process::Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), serde_json::from_str(body).unwrap())
}

#[tokio::test]
async fn type_invalid_writes_are_422_and_bad_selectors_400_as_on_a_real_api_server() {
    if !common::have("curl") {
        eprintln!("SKIP: curl missing");
        return;
    }
    let (lab, client, _dir) = lab(&common::fast_scenario("node-c", "1h")).await;
    let url = lab.server_url();
    let node_url = format!("{url}/api/v1/nodes/node-a");
    let patch = |body: &'static str| {
        let node_url = node_url.clone();
        async move {
            curl(&[
                "-X",
                "PATCH",
                "-H",
                "Content-Type: application/merge-patch+json",
                "-d",
                body,
                &node_url,
            ])
            .await
        }
    };
    let nodes: Api<Node> = Api::all(client);
    let before = nodes.get("node-a").await.unwrap();

    let (code, status) = patch(r#"{"spec":{"unschedulable":"yes"}}"#).await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        (
            &status["kind"],
            &status["status"],
            &status["reason"],
            &status["code"]
        ),
        (
            &"Status".into(),
            &"Failure".into(),
            &"Invalid".into(),
            &422.into()
        ),
        "{status}"
    );
    assert_eq!(
        status["message"],
        "Node \"node-a\" is invalid: spec.unschedulable: Invalid value: \"string\": spec.unschedulable in body must be of type boolean",
    );
    assert_eq!(
        status["details"]["causes"][0]["field"],
        "spec.unschedulable"
    );
    for (body, field) in [
        (
            r#"{"metadata":{"labels":{"tier":1}}}"#,
            "metadata.labels.tier",
        ),
        (r#"{"metadata":{"labels":["a"]}}"#, "metadata.labels"),
        (r#"{"spec":{"taints":{"key":"x"}}}"#, "spec.taints"),
        (r#"{"spec":5}"#, "spec"),
    ] {
        let (code, status) = patch(body).await;
        assert_eq!(code, 422, "{body}: {status}");
        assert_eq!(status["details"]["causes"][0]["field"], field, "{body}");
    }
    // Nothing was stored: same object, same version.
    let after = nodes.get("node-a").await.unwrap();
    assert_eq!(
        after.metadata.resource_version,
        before.metadata.resource_version
    );
    assert_eq!(
        after.spec.as_ref().and_then(|s| s.unschedulable),
        before.spec.as_ref().and_then(|s| s.unschedulable)
    );

    // A lease body with a string for an integer.
    let (code, status) = curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"metadata":{"name":"lock"},"spec":{"leaseDurationSeconds":"15"}}"#,
        &format!("{url}/apis/coordination.k8s.io/v1/namespaces/kube-system/leases"),
    ])
    .await;
    assert_eq!(
        (code, &status["reason"]),
        (422, &"Invalid".into()),
        "{status}"
    );
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("spec.leaseDurationSeconds in body must be of type integer"),
        "{status}"
    );

    // Selectors and versions a real server refuses.
    for (query, want) in [
        ("labelSelector=app%20x%3Dy", "invalid label key"),
        ("labelSelector=app%3Dnot%20valid", "invalid label value"),
        (
            "fieldSelector=spec.nodeName%3Dnode-a",
            "field label not supported: spec.nodeName",
        ),
        ("resourceVersion=banana", "invalid resourceVersion"),
        (
            "watch=true&resourceVersion=banana",
            "invalid resourceVersion",
        ),
    ] {
        let (code, status) = curl(&[&format!("{url}/api/v1/nodes?{query}")]).await;
        assert_eq!(
            (code, &status["reason"]),
            (400, &"BadRequest".into()),
            "{query}: {status}"
        );
        assert!(
            status["message"].as_str().unwrap().contains(want),
            "{query}: {status}"
        );
    }
}

/// A node no client can decode, stored behind the API's validation (as a
/// buggy controller on a lax server might): the cockpit's watchers still
/// list every other node, and the bad one is skipped.
#[tokio::test]
async fn the_cockpit_lists_the_other_nodes_past_an_undecodable_one() {
    use k3s_cockpit::lab::store::Kind;
    use k3s_cockpit::model::ClusterEvent;
    use k3s_cockpit::model::fleet::ResourceKind;
    let (lab, client, _dir) = lab(&common::fast_scenario("node-c", "1h")).await;
    lab.store.upsert(
        Kind::Node,
        serde_json::json!({"metadata": {"name": "node-bad"}, "spec": {"unschedulable": "yes"}}),
    );
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    k3s_cockpit::cluster::liveness::spawn_all(&client, &tx);
    let mut names = std::collections::BTreeSet::new();
    let listed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = rx.recv().await {
            match event {
                ClusterEvent::Node(n) => {
                    names.insert(n.name);
                }
                ClusterEvent::ResyncDone(ResourceKind::Nodes) => return,
                _ => {}
            }
        }
    })
    .await;
    assert!(
        listed.is_ok(),
        "the node list never completed; saw {names:?}"
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["node-a", "node-b", "node-c"]
    );
}

#[test]
fn kubectl_works_against_the_lab() {
    if !common::require("kubectl_works_against_the_lab", &["kubectl"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lab = common::start_lab(dir.path(), &common::fast_scenario("node-c", "1h"), &[]);
    let kubectl = |args: &[&str]| {
        let out = std::process::Command::new("kubectl")
            .env("HOME", dir.path())
            .arg("--kubeconfig")
            .arg(&lab.kubeconfig)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let nodes = kubectl(&["get", "nodes", "-o", "wide"]);
    assert!(
        nodes.contains("node-a") && nodes.contains("v1.33.6+k3s1") && nodes.contains("INTERNAL-IP"),
        "{nodes}"
    );
    assert!(kubectl(&["get", "leases", "-n", "kube-node-lease"]).contains("node-b"));
    assert!(kubectl(&["get", "svc", "-A"]).contains("127.77.0.10"));
    assert!(kubectl(&["get", "servicel2statuses", "-A"]).contains("frigate"));
    assert!(kubectl(&["get", "events", "-A"]).contains("nodeAssigned"));
    kubectl(&["cordon", "node-c"]);
    assert!(kubectl(&["get", "nodes"]).contains("SchedulingDisabled"));
    let drained = kubectl(&[
        "drain",
        "node-c",
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout",
        "30s",
    ]);
    assert!(drained.contains("evicted"), "{drained}");
    kubectl(&["uncordon", "node-c"]);
    assert!(!kubectl(&["get", "nodes"]).contains("SchedulingDisabled"));
}

/// kubectl's child process, killed however the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn kubectl_get_nodes_watch_prints_changed_rows() {
    use std::io::BufRead;
    if !common::require("kubectl_get_nodes_watch_prints_changed_rows", &["kubectl"]) {
        return;
    }
    let kubectl = "kubectl";
    let dir = tempfile::tempdir().unwrap();
    // node-c's kubelet stops after 4 s; the lab marks it NotReady after the 6 s grace.
    let lab = common::start_lab(dir.path(), &common::fast_scenario("node-c", "4s"), &[]);
    let mut child = KillOnDrop(
        std::process::Command::new(kubectl)
            .env("HOME", dir.path())
            .arg("--kubeconfig")
            .arg(&lab.kubeconfig)
            .args(["get", "nodes", "-w"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    // Waits for a row of `node` whose STATUS column is `status`.
    let mut wait_row = |node: &str, status: &str, within: Duration| -> bool {
        let deadline = std::time::Instant::now() + within;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            let Ok(line) = rx.recv_timeout(left) else {
                return false;
            };
            seen.push(line.clone());
            let mut cols = line.split_whitespace();
            if cols.next() == Some(node) && cols.next() == Some(status) {
                return true;
            }
        }
        false
    };
    assert!(
        wait_row("node-a", "Ready", Duration::from_secs(20)),
        "initial rows: {seen:?}"
    );
    let cordon = std::process::Command::new(kubectl)
        .env("HOME", dir.path())
        .arg("--kubeconfig")
        .arg(&lab.kubeconfig)
        .args(["cordon", "node-b"])
        .output()
        .unwrap();
    assert!(
        cordon.status.success(),
        "{}",
        String::from_utf8_lossy(&cordon.stderr)
    );
    assert!(
        wait_row("node-b", "Ready,SchedulingDisabled", Duration::from_secs(5)),
        "the watch did not print the cordoned row: {seen:?}"
    );
    assert!(
        wait_row("node-c", "NotReady", Duration::from_secs(20)),
        "the watch did not print node-c NotReady: {seen:?}"
    );
}

/// `systemctl restart k3s` returns only once K3s has started (the unit has
/// no start timeout). A restart that outlives the plan's `restart_timeout`
/// fails; retried while the unit is still `activating`, it waits for that
/// start instead of restarting K3s a second time.
#[tokio::test]
async fn a_retried_restart_waits_for_the_unit_that_is_still_starting() {
    use k3s_cockpit::rollout::executor::Executor;
    use k3s_cockpit::upgrade::{Action, Input, Plan};
    let scenario = common::fast_scenario("node-c", "1h")
        .replace("restart_down = \"500ms\"", "restart_down = \"4s\"");
    let (lab, client, dir) = lab(&scenario).await;
    let ssh = k3s_cockpit::lab::shell::start_ssh(&lab.sim, dir.path(), false)
        .await
        .unwrap();
    let text = k3s_cockpit::lab::plan_out::plan_toml(&lab.scenario, &ssh)
        .replace("restart_timeout = \"2m\"", "restart_timeout = \"3s\"");
    assert!(text.contains("restart_timeout = \"3s\""), "{text}");
    let plan = Plan::from_str(&text, "lab-plan.toml").unwrap();
    let conn = k3s_cockpit::cluster::Connection {
        client: client.clone(),
        context: "lab".into(),
        server: lab.server_url(),
        endpoints: None,
    };
    let nodes = k3s_cockpit::rollout::cluster_nodes(&conn).await.unwrap();
    let resolved = k3s_cockpit::upgrade::resolve(&plan, &nodes).unwrap();
    let executor = Executor::new(client, std::sync::Arc::new(resolved));
    let restarts = || {
        let sim = lab.sim.lock();
        sim.nodes
            .iter()
            .find(|n| n.name == "node-b")
            .unwrap()
            .restarts
    };
    let restart = |id| Action::Restart {
        id,
        node: "node-b".into(),
    };

    let started = std::time::Instant::now();
    let Input::ActionFinished { result, .. } = executor.run(restart(1)).await else {
        panic!("not a finished action")
    };
    let err = result.unwrap_err();
    assert!(err.contains("timed out"), "{err}");
    assert_eq!(restarts(), 1);

    let Input::ActionFinished { result, .. } = executor.run(restart(2)).await else {
        panic!("not a finished action")
    };
    result.unwrap();
    assert_eq!(restarts(), 1, "the retry restarted K3s again");
    // It returned once the first start finished (4 s), not at once.
    assert!(
        started.elapsed() >= Duration::from_millis(3500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        lab.sim.kubelet_state("node-b").unwrap(),
        k3s_cockpit::lab::sim::Kubelet::Running
    );

    // A failed step carries its output's last lines, for the timeline and
    // the node detail.
    let failing = Plan::from_str(
        &format!("{text}\n[commands]\ninstall = \"k3s-fetch-release {{version}}\"\n"),
        "lab-plan.toml",
    )
    .unwrap();
    let failing = Executor::new(
        conn.client.clone(),
        std::sync::Arc::new(k3s_cockpit::upgrade::resolve(&failing, &nodes).unwrap()),
    );
    let install = Action::Install {
        id: 9,
        node: "node-b".into(),
        version: "v1.34.3+k3s1".parse().unwrap(),
        reinstate: false,
    };
    let Input::ActionFinished { result, output, .. } = failing.run(install).await else {
        panic!("not a finished action")
    };
    assert!(result.is_err());
    let evidence = output.expect("the failed install's output");
    assert!(
        evidence.contains("k3s-fetch-release: not found"),
        "{evidence}"
    );

    // Once K3s runs, a restart restarts it again.
    let Input::ActionFinished { result, .. } = executor.run(restart(3)).await else {
        panic!("not a finished action")
    };
    assert!(result.is_err(), "4 s start, 3 s timeout");
    assert_eq!(restarts(), 2);
}

/// The kubeconfig points at the first server, as one copied from a K3s
/// server does. While that server's K3s restarts its endpoint refuses
/// connections and its watches are cut; the cockpit's client moves to
/// another server and the lease watch goes on, with no gap over 2 s.
#[tokio::test]
async fn a_watch_follows_the_api_to_another_server_while_the_first_restarts() {
    let scenario = common::fast_scenario("node-c", "1h")
        .replace("restart_down = \"500ms\"", "restart_down = \"3s\"");
    let scenario = Scenario::parse(&scenario, "test.toml").unwrap();
    let mut config = LabConfig::new(scenario);
    config.api_per_server = true;
    let lab = Lab::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kc");
    lab.write_kubeconfig(&kc).unwrap();
    let servers = lab.api_servers.clone().unwrap();
    let first = servers.endpoints[0].clone();
    let target = k3s_cockpit::cluster::ClusterTarget {
        kubeconfig: Some(kc),
        context: None,
    };
    let conn = k3s_cockpit::cluster::connect(&target, true).await.unwrap();
    assert!(
        conn.server.contains(&first.addr.to_string()),
        "{}",
        conn.server
    );
    let endpoints = conn.endpoints.clone().unwrap();
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    conn.follow_endpoints(&tx);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while endpoints.known().len() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        endpoints.known().len(),
        2,
        "two servers: {:?}",
        endpoints.known()
    );

    let leases: Api<Lease> = Api::namespaced(conn.client.clone(), "kube-node-lease");
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = watcher(leases, watcher::Config::default()).boxed();
        while let Some(ev) = stream.next().await {
            if ev.is_ok() && seen_tx.send(std::time::Instant::now()).is_err() {
                return;
            }
        }
    });
    seen.recv().await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let restarted = std::time::Instant::now();
    lab.sim.restart(&first.node).unwrap();
    let mut last = restarted;
    let mut gap = Duration::ZERO;
    while restarted.elapsed() < Duration::from_secs(6) {
        match tokio::time::timeout(Duration::from_secs(3), seen.recv()).await {
            Ok(Some(at)) => {
                gap = gap.max(at.saturating_duration_since(last));
                last = at;
            }
            _ => panic!("no lease event for 3 s after {:?}", last - restarted),
        }
    }
    eprintln!("longest gap between lease events through the restart: {gap:?}");
    assert!(gap <= Duration::from_secs(2), "longest gap {gap:?}");
    assert!(
        !endpoints.current().contains(&first.addr.to_string()),
        "still on {}",
        endpoints.current()
    );
    let switch = events.try_recv().unwrap();
    let k3s_cockpit::model::ClusterEvent::ApiEndpoint { url, left, .. } = switch else {
        panic!("{switch:?}")
    };
    assert!(left.contains(&first.addr.to_string()), "{left}");
    assert_eq!(url, endpoints.current());
}
