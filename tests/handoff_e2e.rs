//! Zero-outage rollouts on MetalLB L2, end to end: the real binary upgrades
//! the lab headless while it probes two LoadBalancer services. With the
//! handoff, users lose nothing; without it, each restart of an announcer
//! darkens its IPs, and the cockpit's figures match the lab's own record.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// The probe interval (`probe::INTERVAL`).
const PROBE_INTERVAL: f64 = 1.0;

/// Three nodes, two services, one hop, time compressed ten-fold: K3s is
/// down 1 s per restart and re-programs its service rules 1 s after that,
/// well before the kubelet reports Ready.
fn scenario(ports: (u16, u16)) -> String {
    let mut s = String::from(
        "name = \"handoff\"\ntime_scale = 10.0\n[timing]\nrestart_down = \"10s\"\nreprogram = \"10s\"\n\
         kubelet_startup = \"25s\"\ninstall = \"10s\"\n",
    );
    for n in ["k3s-a", "k3s-b", "k3s-c"] {
        s.push_str(&format!(
            "[[nodes]]\nname = \"{n}\"\nrole = \"server\"\nversion = \"v1.34.3+k3s1\"\n"
        ));
    }
    for (name, ip, port) in [
        ("web", "127.77.0.31", ports.0),
        ("cam", "127.77.0.32", ports.1),
    ] {
        s.push_str(&format!(
            "[[services]]\nnamespace = \"{name}\"\nname = \"{name}\"\nip = \"{ip}\"\nport = {port}\npod_node = \"k3s-c\"\n"
        ));
    }
    s.push_str("[replay]\nstart = \"1h\"\nversions = [\"v1.35.0+k3s1\"]\nsettle = \"1s\"\n");
    s
}

struct Outcome {
    lines: Vec<Value>,
    /// The lab's own outage log: (service, start, end).
    lab: Vec<(String, jiff::Timestamp, jiff::Timestamp)>,
    session: PathBuf,
}

/// A lab for `scenario` and its plan with `handoff` set, both services
/// probed (one failure is DOWN: loopback never flaps) and short soaks.
fn lab_and_plan(dir: &Path, handoff: &str, settle: &str) -> (LabProcess, PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let ports = (free_port(), free_port());
    let plan = dir.join("plan.toml");
    let outage_log = dir.join("lab-outages.jsonl");
    let lab = start_lab(
        dir,
        &scenario(ports),
        &[
            "--plan-out",
            plan.to_str().unwrap(),
            "--outage-log",
            outage_log.to_str().unwrap(),
        ],
    );
    let text = std::fs::read_to_string(&plan).unwrap();
    let text = format!(
        "handoff = \"{handoff}\"\n{}\nprobe_failures = 1\n\
         [[gates.probes]]\nservice = \"web/web\"\nkind = \"http\"\nport = {}\n\
         [[gates.probes]]\nservice = \"cam/cam\"\nkind = \"http\"\nport = {}\n",
        text.replace("soak = \"20000ms\"", "soak = \"3s\"")
            .replace("final_soak = \"12000ms\"", "final_soak = \"1s\"")
            .replace(
                "handoff_settle = \"1000ms\"",
                &format!("handoff_settle = \"{settle}\"")
            ),
        ports.0,
        ports.1
    );
    std::fs::write(&plan, text).unwrap();
    (lab, plan, outage_log)
}

fn upgrade(dir: &Path, plan: &Path, lab: &LabProcess, extra: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--log-file")
        .arg(dir.join("upgrade.log"))
        .args(["upgrade", "--headless", "--plan"])
        .arg(plan)
        .arg("--kubeconfig")
        .arg(&lab.kubeconfig)
        .args(extra)
        .env("XDG_STATE_HOME", dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn lines_of(out: &std::process::Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn assert_exit_0(lines: &[Value], out: &std::process::Output) -> Value {
    let exit = lines
        .iter()
        .find(|l| l["type"] == "exit")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        exit["code"],
        0,
        "{lines:#?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exit
}

/// Runs the whole rollout on a fresh lab; `handoff` is the plan setting.
fn rollout(dir: &Path, handoff: &str) -> Outcome {
    let (mut lab, plan, outage_log) = lab_and_plan(dir, handoff, "1000ms");
    let out = upgrade(dir, &plan, &lab, &[]).output().unwrap();
    let lines = lines_of(&out);
    let exit = assert_exit_0(&lines, &out);
    lab.kill().unwrap();
    let lab_windows = std::fs::read_to_string(&outage_log)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let w: Value = serde_json::from_str(l).unwrap();
            (
                w["service"].as_str().unwrap().to_string(),
                w["start"].as_str().unwrap().parse().unwrap(),
                w["end"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    Outcome {
        session: exit["session"].as_str().unwrap().into(),
        lines,
        lab: lab_windows,
    }
}

/// Which nodes carry MetalLB's exclude label, as the API shows them.
fn labelled(lab: &LabProcess) -> Vec<String> {
    api_nodes(&lab.kubeconfig)
        .into_iter()
        .filter(|n| n.lb_excluded)
        .map(|n| n.name)
        .collect()
}

/// `kill -9` while the cockpit waits for the handoff to settle: the label
/// stays on the node; `--resume` finishes the handoff, and the label comes
/// off exactly once, after the node's uncordon.
#[test]
fn kill_9_during_the_handoff_then_resume_removes_the_label_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut lab, plan, _) = lab_and_plan(dir.path(), "auto", "8s");
    let mut child = upgrade(dir.path(), &plan, &lab, &[]).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut node = None;
    use std::io::BufRead;
    for line in std::io::BufReader::new(stdout).lines() {
        let v: Value = serde_json::from_str(&line.unwrap()).unwrap();
        if v["type"] == "action" && v["action"]["action"] == "label" {
            node = v["action"]["node"].as_str().map(str::to_string);
            break;
        }
    }
    let node = node.expect("a label action");
    assert!(wait_for(Duration::from_secs(10), || labelled(&lab) == [node.clone()]));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        labelled(&lab),
        std::slice::from_ref(&node),
        "the label outlives the cockpit"
    );

    let out = upgrade(dir.path(), &plan, &lab, &["--resume", "--break-lock"])
        .output()
        .unwrap();
    let lines = lines_of(&out);
    assert_exit_0(&lines, &out);
    let unlabels: Vec<&Value> = lines
        .iter()
        .filter(|l| l["type"] == "action" && l["action"]["action"] == "unlabel")
        .filter(|l| l["action"]["node"] == node.as_str())
        .collect();
    assert_eq!(unlabels.len(), 1, "{lines:#?}");
    let kinds: Vec<&str> = lines
        .iter()
        .filter(|l| l["type"] == "action" && l["action"]["node"] == node.as_str())
        .map(|l| l["action"]["action"].as_str().unwrap())
        .collect();
    let at = |k: &str| kinds.iter().position(|x| *x == k).unwrap();
    assert!(at("uncordon") < at("unlabel"), "{kinds:?}");
    assert!(labelled(&lab).is_empty(), "{:?}", labelled(&lab));
    lab.kill().unwrap();
}

fn exit_outage(o: &Outcome) -> Value {
    o.lines.iter().find(|l| l["type"] == "exit").unwrap()["outage"].clone()
}

fn report_json(session: &Path) -> Value {
    let out = Command::new(BIN)
        .args(["report", "--format", "json"])
        .arg(session)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn with_the_handoff_users_lose_nothing_without_it_each_restart_shows() {
    let dir = tempfile::tempdir().unwrap();
    let on = rollout(&dir.path().join("on"), "auto");
    let labels: Vec<&Value> = on
        .lines
        .iter()
        .filter(|l| l["type"] == "action" && l["action"]["action"] == "label")
        .collect();
    assert!(
        !labels.is_empty(),
        "the announcers were handed off: {:#?}",
        on.lines
    );
    let outage = exit_outage(&on);
    assert_eq!(outage["total_secs"], 0.0, "{outage}");
    assert!(on.lab.is_empty(), "the lab saw no dark IP: {:?}", on.lab);
    let per_node: Vec<&Value> = on.lines.iter().filter(|l| l["type"] == "outage").collect();
    assert_eq!(
        per_node.len(),
        3,
        "one line per upgraded node: {per_node:#?}"
    );
    assert!(per_node.iter().all(|l| l["secs"] == 0.0));

    let off = rollout(&dir.path().join("off"), "off");
    assert!(
        !off.lines.iter().any(|l| l["action"]["action"] == "label"),
        "handoff = off labels nothing"
    );
    let outage = exit_outage(&off);
    let cockpit = outage["total_secs"].as_f64().unwrap();
    assert!(cockpit > 0.0, "{outage}");
    assert!(!off.lab.is_empty());
    // Each dark period the lab recorded was seen by the probes within one
    // probe interval at both ends.
    let report = report_json(&off.session);
    let seen: Vec<(String, jiff::Timestamp, jiff::Timestamp)> = report["outages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            s["windows"].as_array().unwrap().iter().map(move |w| {
                (
                    s["service"].as_str().unwrap().to_string(),
                    w["start"].as_str().unwrap().parse().unwrap(),
                    w["end"].as_str().unwrap().parse().unwrap(),
                )
            })
        })
        .collect();
    let within = |a: jiff::Timestamp, b: jiff::Timestamp| {
        let d = b.duration_since(a).as_secs_f64();
        (-0.05..=PROBE_INTERVAL + 0.2).contains(&d)
    };
    for (svc, start, end) in &off.lab {
        assert!(
            seen.iter()
                .any(|(s, a, b)| s == svc && within(*start, *a) && within(*end, *b)),
            "lab window {svc} {start}..{end} not matched by a probe outage: {seen:?}"
        );
    }
    let lab_total: f64 = off
        .lab
        .iter()
        .map(|(_, a, b)| b.duration_since(*a).as_secs_f64())
        .sum();
    eprintln!("outage without handoff: cockpit {cockpit:.3}s, lab {lab_total:.3}s");
    // The report's per-node figures are the headless run's.
    assert_eq!(report["user_outage"]["total_secs"], outage["total_secs"]);
}

/// What a drain by hand (`d`) does first: the exclude label, then a wait
/// until no ServiceL2Status names the node; the IP answers throughout.
#[tokio::test]
async fn a_hand_drain_waits_until_the_node_announces_nothing() {
    use k3s_cockpit::lab::scenario::Scenario;
    use k3s_cockpit::lab::{Lab, LabConfig};
    use k3s_cockpit::rollout::node_ops;
    let port = free_port();
    let sc = Scenario::parse(&scenario((port, free_port())), "handoff.toml").unwrap();
    let lab = Lab::start(LabConfig::new(sc)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    lab.write_kubeconfig(&kubeconfig).unwrap();
    let target = k3s_cockpit::cluster::ClusterTarget {
        kubeconfig: Some(kubeconfig),
        context: None,
    };
    let client = k3s_cockpit::cluster::connect(&target, false)
        .await
        .unwrap()
        .client;
    let node = lab.sim.announcer("web", "web").unwrap();
    let short = node_ops::wait_moved(&client, &node, Duration::from_millis(300)).await;
    assert!(
        short
            .unwrap_err()
            .contains(&format!("handoff of {node}: still announced from it")),
        "nothing moves without the label"
    );
    node_ops::set_exclude_label(&client, &node, true)
        .await
        .unwrap();
    node_ops::wait_moved(&client, &node, Duration::from_secs(10))
        .await
        .unwrap();
    let now = lab.sim.announcer("web", "web").unwrap();
    assert_ne!(now, node);
    assert!(lab.sim.outages().is_empty(), "{:?}", lab.sim.outages());
    node_ops::set_exclude_label(&client, &node, false)
        .await
        .unwrap();
}
