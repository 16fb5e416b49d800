//! The five measurements of issue #5. Each returns a Markdown section.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use rand::Rng;
use serde_json::{Value, json};

use crate::lab::{LabProc, LabSpec};
use crate::procfs::{Usage, Window};
use crate::procs::{self, Cockpit, KubectlWatch, ROWS};
use crate::stats::{fmt, percentile, ratio};
use crate::{Opts, Result, now_ns};

const RENEW_SECS: f64 = 10.0;

/// A cluster in real Kubernetes time (10 s renewals, 4 % jitter, 40 s
/// leases); `extra` is appended (faults).
fn cluster_toml(nodes: &[String], status_report: &str, extra: &str) -> String {
    let mut t = format!(
        "name = \"bench\"\ntime_scale = 1.0\n[timing]\nstatus_report = \"{status_report}\"\n"
    );
    for (i, n) in nodes.iter().enumerate() {
        let role = if i < 2 { "server" } else { "agent" };
        let _ = write!(
            t,
            "[[nodes]]\nname = \"{n}\"\nrole = \"{role}\"\nversion = \"v1.33.6+k3s1\"\n"
        );
    }
    let _ = write!(
        t,
        "[[services]]\nnamespace = \"web\"\nname = \"web\"\nip = \"127.77.0.20\"\nport = 8080\npod_node = \"{}\"\n{extra}",
        nodes.last().map_or("", String::as_str)
    );
    t
}

fn secs(ns: i128) -> f64 {
    ns as f64 / 1e9
}

fn ms(ns: i128) -> f64 {
    ns as f64 / 1e6
}

/// Waits for the cockpit's first frame that shows `nodes` nodes, a lease
/// age on `first` and an announcer for web/web: seconds since spawn.
fn first_complete_frame(c: &Cockpit, nodes: usize, first: &str) -> Result<f64> {
    let (title, first) = (format!("Nodes {nodes} "), first.to_string());
    let at = c
        .pty
        .wait_for(Duration::from_secs(120), move |s| {
            s.contents().contains(&title)
                && procs::node_row(s, &first)
                    .is_some_and(|(_, hb)| hb.chars().next().is_some_and(|c| c.is_ascii_digit()))
                && procs::announcer(s, "web/web").is_some_and(|a| a != "NONE")
        })
        .ok_or_else(|| {
            format!(
                "no complete frame within 120 s; screen:\n{}",
                c.pty.contents()
            )
        })?;
    Ok(secs(at as i128 - c.spawned_ns as i128))
}

// ---------------------------------------------------------------- 1 --

/// Stale-heartbeat detection: kubelets stop renewing (lab faults); from
/// each one's last renewal to the model's LATE and to the frame showing it.
pub fn heartbeat(opts: &Opts, dir: &Path) -> Result<String> {
    let victims = opts.victims.clamp(1, 20);
    let nodes: Vec<String> = (1..=victims + 4).map(|i| format!("hb-{i:02}")).collect();
    let victim_names: Vec<String> = nodes[4..].to_vec();
    let mut faults = String::new();
    for (i, v) in victim_names.iter().enumerate() {
        // Spread over time so each stop meets the cockpit's clock at a different phase.
        let delay_ms = 20_000 + i * 3_100;
        let _ = write!(
            faults,
            "[[faults]]\nnode = \"{v}\"\nkind = \"kubelet-stop\"\ndelay = \"{delay_ms}ms\"\n"
        );
    }
    let lab = LabProc::start(
        dir,
        &LabSpec {
            scenario: &cluster_toml(&nodes, "5m", &faults),
            builtin: false,
            nodes: None,
            commit_log: true,
            plan_out: false,
        },
    )?;
    let cockpit = Cockpit::start(dir, &lab, "heartbeat", ROWS)?;
    let mut frame_waits = Vec::new();
    for v in &victim_names {
        let node = v.clone();
        let e = cockpit
            .pty
            .screen
            .expect(move |p| {
                procs::node_row(p.screen(), &node).is_some_and(|(_, hb)| hb.contains("LATE"))
            })
            .ok_or("victim LATE before the run started")?;
        frame_waits.push(e);
    }
    let last_fault = Duration::from_millis(20_000 + victim_names.len() as u64 * 3_100);
    let deadline = Instant::now() + last_fault + Duration::from_secs(25);
    let mut frame_at: Vec<Option<u128>> = vec![None; victim_names.len()];
    while Instant::now() < deadline && frame_at.iter().any(Option::is_none) {
        for (i, e) in frame_waits.iter().enumerate() {
            if frame_at[i].is_none() {
                frame_at[i] = e.try_get();
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cockpit.pty.screen.clear();
    let flags = cockpit.late_flags()?;
    let commits = lab.commits()?;
    let mut model = Vec::new();
    let mut frame = Vec::new();
    let mut rows = String::new();
    for (i, v) in victim_names.iter().enumerate() {
        let last = commits
            .last
            .get(&format!("Lease kube-node-lease/{v}"))
            .copied()
            .ok_or("no renewal of the victim's lease in the commit log")?;
        let m = flags
            .iter()
            .find(|(at, n)| n == v && *at > last)
            .map(|(at, _)| secs(*at as i128 - last as i128));
        let f = frame_at[i].map(|at| secs(at as i128 - last as i128));
        model.extend(m);
        frame.extend(f);
        let _ = writeln!(
            rows,
            "| {v} | {} | {} |",
            m.map_or("missed".into(), |x| format!("{x:.3}")),
            f.map_or("missed".into(), |x| format!("{x:.3}"))
        );
    }
    let false_late = flags
        .iter()
        .filter(|(_, n)| !victim_names.contains(n))
        .count();
    cockpit.quit();
    let target = RENEW_SECS + 2.0;
    let worst = frame.iter().chain(&model).copied().fold(0.0_f64, f64::max);
    let all = model.len() == victim_names.len() && frame.len() == victim_names.len();
    Ok(format!(
        "## 1. Stale-heartbeat detection\n\n\
         {} nodes, 10 s renewals with 4 % jitter, 40 s leases; the lab stops {} kubelets \
         (20 s after start, then one every 3.1 s). Seconds from each kubelet's last lease \
         renewal (lab commit) to the cockpit's model flagging it LATE (timeline log) and \
         to the PTY receiving the frame that shows LATE on its row. Target ≤ {target:.0} s \
         (renew interval + 2 s).\n\n\
         | | model LATE (s) | frame LATE (s) |\n|---|---|---|\n\
         | median (min–max) | {} | {} |\n\n\
         <details><summary>per node</summary>\n\n| node | model | frame |\n|---|---|---|\n{rows}\n</details>\n\n\
         False LATE flags on the {} healthy nodes: {false_late}. \
         Target {}: worst {worst:.2} s.\n",
        nodes.len(),
        victim_names.len(),
        fmt(&model, 3),
        fmt(&frame, 3),
        nodes.len() - victim_names.len(),
        if all && worst <= target {
            "met"
        } else {
            "MISSED"
        },
    ))
}

// ---------------------------------------------------------------- 2 --

fn l2_api(client: &kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("metallb.io", "v1beta1", "ServiceL2Status");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "servicel2statuses");
    Api::all_with(client.clone(), &resource)
}

fn rv_of(meta: &kube::api::ObjectMeta) -> Result<u64> {
    Ok(meta
        .resource_version
        .as_deref()
        .ok_or("no resourceVersion")?
        .parse()?)
}

struct Driven {
    node_change: bool,
    rv: u64,
    cockpit: Option<u128>,
    kubectl: Option<u128>,
}

/// Event to screen: the benchmark commits changes through the API (Ready
/// flips on nodes, announcer moves on ServiceL2Status) and times the lab's
/// commit to the cockpit's screen and to `kubectl get nodes -w`'s output.
pub fn events(opts: &Opts, dir: &Path, rt: &tokio::runtime::Runtime) -> Result<String> {
    let nodes: Vec<String> = ["ev-a", "ev-b", "ev-c"].map(String::from).to_vec();
    // Kubelet status posts every hour: the benchmark owns the Ready condition.
    let lab = LabProc::start(
        dir,
        &LabSpec {
            scenario: &cluster_toml(&nodes, "1h", ""),
            builtin: false,
            nodes: None,
            commit_log: true,
            plan_out: false,
        },
    )?;
    let cockpit = Cockpit::start(dir, &lab, "events", ROWS)?;
    first_complete_frame(&cockpit, nodes.len(), &nodes[0])?;
    let kubectl = match &opts.kubectl {
        Some(k) => {
            let w = KubectlWatch::start(k, dir, &lab)?;
            let last = nodes.last().cloned().unwrap_or_default();
            let shown = match w.lines().expect(move |l| l.starts_with(&last)) {
                Some(e) => e.wait(Duration::from_secs(30)),
                None => Some(now_ns()),
            };
            shown.ok_or("kubectl get nodes -w printed nothing within 30 s")?;
            Some(w)
        }
        None => None,
    };
    let target = k3s_cockpit::cluster::ClusterTarget {
        kubeconfig: Some(lab.kubeconfig.clone()),
        context: None,
    };
    let client = rt
        .block_on(k3s_cockpit::cluster::connect(&target, false))?
        .client;
    let node_api: Api<Node> = Api::all(client.clone());
    let l2 = l2_api(&client);
    let mut conditions: BTreeMap<String, Value> = BTreeMap::new();
    let mut ready: BTreeMap<String, bool> = BTreeMap::new();
    for n in &nodes {
        let node = rt.block_on(node_api.get(n))?;
        let conds = node
            .status
            .and_then(|s| s.conditions)
            .ok_or("node without conditions")?;
        conditions.insert(n.clone(), serde_json::to_value(conds)?);
        ready.insert(n.clone(), true);
    }
    let l2_obj = rt
        .block_on(l2.list(&Default::default()))?
        .items
        .into_iter()
        .find(|o| o.data["status"]["serviceName"] == "web")
        .ok_or("no ServiceL2Status for web/web")?;
    let l2_name = l2_obj.metadata.name.clone().ok_or("unnamed L2 status")?;
    let l2_api_ns: Api<DynamicObject> = {
        let gvk = GroupVersionKind::gvk("metallb.io", "v1beta1", "ServiceL2Status");
        let resource = ApiResource::from_gvk_with_plural(&gvk, "servicel2statuses");
        Api::namespaced_with(
            client.clone(),
            l2_obj
                .metadata
                .namespace
                .as_deref()
                .unwrap_or("metallb-system"),
            &resource,
        )
    };
    let mut announcer = l2_obj.data["status"]["node"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    let usage = Window::start(&[
        cockpit.pid(),
        lab.pid(),
        kubectl.as_ref().map_or(0, KubectlWatch::pid),
    ]);
    let started = Instant::now();
    let mut driven = Vec::with_capacity(opts.events);
    let mut rng = rand::rng();
    let mut flips = 0usize;
    for k in 0..opts.events {
        let timeout = Duration::from_secs(5);
        if k % 5 == 4 {
            // Announcer move.
            let to = nodes
                .iter()
                .cycle()
                .skip_while(|n| **n != announcer)
                .nth(1)
                .cloned()
                .unwrap_or_else(|| nodes[0].clone());
            let want = to.clone();
            let screen = cockpit.pty.screen.expect(move |p| {
                procs::announcer(p.screen(), "web/web").is_some_and(|a| a == want)
            });
            let patched = rt.block_on(l2_api_ns.patch_status(
                &l2_name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"node": to}})),
            ))?;
            announcer = to;
            driven.push(Driven {
                node_change: false,
                rv: rv_of(&patched.metadata)?,
                cockpit: screen.and_then(|e| e.wait(timeout)),
                kubectl: None,
            });
        } else {
            // Ready flip on the next node in turn.
            let node = nodes[flips % nodes.len()].clone();
            flips += 1;
            let now_ready = !ready[&node];
            ready.insert(node.clone(), now_ready);
            let word = if now_ready { "Ready" } else { "NotReady" };
            let (n1, w1) = (node.clone(), word.to_string());
            let screen = cockpit
                .pty
                .screen
                .expect(move |p| procs::node_row(p.screen(), &n1).is_some_and(|(r, _)| r == w1));
            let (n2, w2) = (node.clone(), word.to_string());
            let printed = kubectl.as_ref().and_then(|w| {
                w.lines().expect(move |l| {
                    let mut f = l.split_whitespace();
                    f.next() == Some(n2.as_str()) && f.next() == Some(w2.as_str())
                })
            });
            let conds = conditions.get_mut(&node).ok_or("node conditions")?;
            if let Some(list) = conds.as_array_mut() {
                for c in list.iter_mut().filter(|c| c["type"] == "Ready") {
                    c["status"] = json!(if now_ready { "True" } else { "False" });
                    c["reason"] = json!(if now_ready {
                        "KubeletReady"
                    } else {
                        "KubeletNotReady"
                    });
                    c["lastTransitionTime"] = json!(
                        jiff::Timestamp::now()
                            .strftime("%Y-%m-%dT%H:%M:%SZ")
                            .to_string()
                    );
                }
            }
            let patched = rt.block_on(node_api.patch_status(
                &node,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"conditions": conds}})),
            ))?;
            driven.push(Driven {
                node_change: true,
                rv: rv_of(&patched.metadata)?,
                cockpit: screen.and_then(|e| e.wait(timeout)),
                kubectl: printed.and_then(|e| e.wait(timeout)),
            });
        }
        // A random gap, so changes meet the cockpit's 1 s tick at every phase.
        std::thread::sleep(Duration::from_millis(rng.random_range(5..30)));
        if k % 200 == 199 {
            eprintln!("  {} events", k + 1);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let usage = usage.finish();
    cockpit.pty.screen.clear();
    if let Some(w) = &kubectl {
        w.lines().clear();
    }
    let frames = cockpit.frames()?;
    cockpit.quit();
    drop(kubectl);
    let commits = lab.commits()?;
    let lat = |pick: &dyn Fn(&Driven) -> Option<u128>, nodes_only: bool| -> (Vec<f64>, usize) {
        let mut v = Vec::new();
        let mut missed = 0;
        for d in driven.iter().filter(|d| !nodes_only || d.node_change) {
            match (pick(d), commits.by_rv.get(&d.rv)) {
                (Some(at), Some(c)) => v.push(ms(at as i128 - *c as i128)),
                _ => missed += 1,
            }
        }
        (v, missed)
    };
    let (all, missed_all) = lat(&|d| d.cockpit, false);
    let (cockpit_nodes, missed_nodes) = lat(&|d| d.cockpit, true);
    let (kubectl_nodes, missed_kubectl) = lat(&|d| d.kubectl, true);
    let p = |v: &[f64], q: f64| percentile(v, q);
    let cell = |v: Option<f64>| v.map_or("-".into(), |x| format!("{x:.2}"));
    let mut t = String::from(
        "| measured | events | p50 ms | p99 ms | max ms | missed |\n|---|---|---|---|---|---|\n",
    );
    let mut line = |name: &str, v: &[f64], missed: usize| {
        let _ = writeln!(
            t,
            "| {name} | {} | {} | {} | {} | {missed} |",
            v.len(),
            cell(p(v, 50.0)),
            cell(p(v, 99.0)),
            cell(p(v, 100.0)),
        );
    };
    line("cockpit, all changes", &all, missed_all);
    line("cockpit, node Ready flips", &cockpit_nodes, missed_nodes);
    if opts.kubectl.is_some() {
        line(
            "`kubectl get nodes -w`, same flips",
            &kubectl_nodes,
            missed_kubectl,
        );
    }
    let (announce, _) = {
        let v: Vec<f64> = driven
            .iter()
            .filter(|d| !d.node_change)
            .filter_map(|d| Some(ms(d.cockpit? as i128 - *commits.by_rv.get(&d.rv)? as i128)))
            .collect();
        (v, 0)
    };
    line("cockpit, announcer moves", &announce, 0);
    let frame_ms: Vec<f64> = frames
        .iter()
        .filter(|f| f.reason == "cluster")
        .map(|f| f.draw_ns as f64 / 1e6)
        .collect();
    // Every event, for a closer look: events.csv in the working directory.
    let mut csv = String::from("kind,rv,commit_ns,cockpit_ns,kubectl_ns\n");
    for d in &driven {
        let _ = writeln!(
            csv,
            "{},{},{},{},{}",
            if d.node_change { "node" } else { "l2" },
            d.rv,
            commits.by_rv.get(&d.rv).copied().unwrap_or_default(),
            d.cockpit.unwrap_or_default(),
            d.kubectl.unwrap_or_default()
        );
    }
    std::fs::write(dir.join("events.csv"), csv)?;
    // Where the time goes: commit → start of the frame that showed it (the
    // last frame started before the PTY got it), and frame start → PTY.
    let (mut to_frame, mut frame_to_pty) = (Vec::new(), Vec::new());
    for d in &driven {
        let (Some(at), Some(c)) = (d.cockpit, commits.by_rv.get(&d.rv)) else {
            continue;
        };
        let i = frames.partition_point(|f| f.start_ns <= at);
        if let Some(f) = i.checked_sub(1).and_then(|i| frames.get(i))
            && f.start_ns >= *c
        {
            to_frame.push(ms(f.start_ns as i128 - *c as i128));
            frame_to_pty.push(ms(at as i128 - f.start_ns as i128));
        }
    }
    let p99 = p(&all, 99.0);
    let verdict_kubectl = if opts.kubectl.is_some() {
        format!(
            "cockpit / kubectl: p50 {}, p99 {}; ",
            ratio(p(&cockpit_nodes, 50.0), p(&kubectl_nodes, 50.0)),
            ratio(p(&cockpit_nodes, 99.0), p(&kubectl_nodes, 99.0)),
        )
    } else {
        String::new()
    };
    let kubectl_cpu = if opts.kubectl.is_some() {
        format!(", kubectl {:.1} %", usage[2].cpu_percent)
    } else {
        String::new()
    };
    Ok(format!(
        "## 2. Event to screen\n\n\
         3 nodes, 10 s renewals. {} changes committed through the API ({} node Ready flips, \
         the rest ServiceL2Status announcer moves), 5–30 ms apart, in {elapsed:.0} s. \
         Latency from the lab's commit (`--commit-log`) to the PTY receiving the bytes that \
         show the change on the node's row / the service's row (cockpit, parsed with vt100) \
         or to `kubectl get nodes -w` printing the row (on a PTY of its own, like the cockpit).\n\n{t}\n\
         {verdict_kubectl}cockpit frame draw (render + diff + write) for cluster changes: \
         p50 {} ms, p99 {} ms over {} frames. Cockpit latency split at the frame that showed \
         the change (frame log): commit → frame start p50 {} ms (watch, decode, model), \
         frame start → PTY p50 {} ms (render, diff, write). \
         CPU while driving: cockpit {:.1} %, lab {:.1} %{kubectl_cpu}.\n\
         Target p99 < 50 ms: {}.\n",
        driven.len(),
        flips,
        cell(p(&frame_ms, 50.0)),
        cell(p(&frame_ms, 99.0)),
        frame_ms.len(),
        cell(p(&to_frame, 50.0)),
        cell(p(&frame_to_pty, 50.0)),
        usage[0].cpu_percent,
        usage[1].cpu_percent,
        if p99.is_some_and(|x| x < 50.0) && missed_all == 0 {
            "met"
        } else {
            "MISSED"
        },
    ))
}

// ---------------------------------------------------------------- 3 --

#[derive(Default)]
struct ScaleRun {
    lab_startup: f64,
    lab_alone: Usage,
    first_frame: f64,
    cockpit: Usage,
    lab_with_cockpit: Usage,
    frames_per_s: f64,
    render_us: Vec<f64>,
    draw_us: Vec<f64>,
    pty_kib_per_s: f64,
    late_flags: usize,
    /// kdash's usage, the lab's meanwhile, kdash's time to show the nodes.
    kdash: Option<(Usage, Usage, f64)>,
}

fn scale_run(opts: &Opts, dir: &Path, nodes: usize) -> Result<ScaleRun> {
    let mut run = ScaleRun::default();
    let lab = LabProc::start(
        dir,
        &LabSpec {
            scenario: "healthy",
            builtin: true,
            nodes: Some(nodes),
            commit_log: false,
            plan_out: false,
        },
    )?;
    run.lab_startup = lab.startup.as_secs_f64();
    std::thread::sleep(Duration::from_secs(3));
    let mut w = Window::start(&[lab.pid()]);
    w.run(opts.window.min(8.0));
    run.lab_alone = w.finish()[0];

    let cockpit = Cockpit::start(dir, &lab, &format!("scale-{nodes}"), ROWS)?;
    run.first_frame = first_complete_frame(&cockpit, nodes, "lab-node-0000")?;
    std::thread::sleep(Duration::from_secs(4));
    let m = measure(&cockpit, &lab, opts.window)?;
    (run.cockpit, run.lab_with_cockpit) = (m.cockpit, m.lab);
    run.pty_kib_per_s = m.pty_bytes_per_s() / 1024.0;
    run.frames_per_s = m.frames_per_s();
    (run.render_us, run.draw_us) = (m.render_us(), m.draw_us());

    if let Some(kdash) = &opts.kdash {
        let (k, first) = procs::start_kdash(kdash, dir, &lab, nodes)?;
        std::thread::sleep(Duration::from_secs(4));
        let mut w = Window::start(&[k.pid(), lab.pid()]);
        w.run(opts.window);
        let u = w.finish();
        run.kdash = Some((u[0], u[1], first));
        k.quit("q", Duration::from_secs(2));
    }
    run.late_flags = cockpit.late_flags()?.len();
    cockpit.quit();
    Ok(run)
}

/// A measurement window: what it cost the cockpit and the lab, and the
/// frames drawn and bytes written to the terminal meanwhile.
struct Measured {
    cockpit: Usage,
    lab: Usage,
    /// The window, Unix ns.
    from: u128,
    to: u128,
    frames: Vec<procs::Frame>,
    pty_bytes: u64,
}

impl Measured {
    fn span(&self) -> f64 {
        secs(self.to as i128 - self.from as i128)
    }

    fn frames_per_s(&self) -> f64 {
        self.frames.len() as f64 / self.span()
    }

    fn pty_bytes_per_s(&self) -> f64 {
        self.pty_bytes as f64 / self.span()
    }

    fn render_us(&self) -> Vec<f64> {
        self.frames
            .iter()
            .map(|f| f.render_ns as f64 / 1e3)
            .collect()
    }

    fn draw_us(&self) -> Vec<f64> {
        self.frames.iter().map(|f| f.draw_ns as f64 / 1e3).collect()
    }
}

fn measure(cockpit: &Cockpit, lab: &LabProc, secs_window: f64) -> Result<Measured> {
    let (from, bytes0) = (now_ns(), cockpit.pty.bytes.load(Ordering::Relaxed));
    let mut w = Window::start(&[cockpit.pid(), lab.pid()]);
    w.run(secs_window);
    let u = w.finish();
    let (to, bytes1) = (now_ns(), cockpit.pty.bytes.load(Ordering::Relaxed));
    let frames = cockpit
        .frames()?
        .into_iter()
        .filter(|f| f.start_ns >= from && f.start_ns < to)
        .collect();
    Ok(Measured {
        cockpit: u[0],
        lab: u[1],
        from,
        to,
        frames,
        pty_bytes: bytes1 - bytes0,
    })
}

/// Scale: 100, 1,000 and 5,000 nodes at 10 s renewals.
pub fn scale(opts: &Opts, dir: &Path) -> Result<String> {
    let mut t = String::from(
        "| nodes | lab start s | first complete frame s | cockpit CPU % | cockpit RSS MB (window peak / HWM) | frames/s | render µs p50 / p99 / max | draw µs p50 / p99 / max | PTY KiB/s | lab CPU % alone / watched | lab RSS MB | false LATE |",
    );
    t.push_str("\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    let mut peers = String::from(
        "| nodes | cockpit CPU % | kdash CPU % | CPU ratio | cockpit RSS MB | kdash RSS MB | RSS ratio | cockpit / kdash first frame s | lab CPU % under kdash |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut verdicts = Vec::new();
    for &n in &opts.sizes {
        let mut runs = Vec::new();
        for r in 0..opts.repeat.max(1) {
            eprintln!("  {n} nodes, run {}", r + 1);
            let d = dir.join(format!("{n}-{r}"));
            std::fs::create_dir_all(&d)?;
            runs.push(scale_run(opts, &d, n)?);
        }
        let col = |f: &dyn Fn(&ScaleRun) -> f64, digits| {
            fmt(&runs.iter().map(f).collect::<Vec<_>>(), digits)
        };
        let pooled = |f: &dyn Fn(&ScaleRun) -> &Vec<f64>| {
            let all: Vec<f64> = runs.iter().flat_map(|r| f(r).iter().copied()).collect();
            format!(
                "{:.0} / {:.0} / {:.0}",
                percentile(&all, 50.0).unwrap_or(0.0),
                percentile(&all, 99.0).unwrap_or(0.0),
                percentile(&all, 100.0).unwrap_or(0.0)
            )
        };
        let _ = writeln!(
            t,
            "| {n} | {} | {} | {} | {} / {} | {} | {} | {} | {} | {} / {} | {} | {} |",
            col(&|r| r.lab_startup, 2),
            col(&|r| r.first_frame, 2),
            col(&|r| r.cockpit.cpu_percent, 1),
            col(&|r| r.cockpit.peak_rss_mb, 0),
            col(&|r| r.cockpit.hwm_mb, 0),
            col(&|r| r.frames_per_s, 1),
            pooled(&|r| &r.render_us),
            pooled(&|r| &r.draw_us),
            col(&|r| r.pty_kib_per_s, 1),
            col(&|r| r.lab_alone.cpu_percent, 1),
            col(&|r| r.lab_with_cockpit.cpu_percent, 1),
            col(&|r| r.lab_alone.peak_rss_mb, 0),
            runs.iter().map(|r| r.late_flags).sum::<usize>(),
        );
        let kd: Vec<&ScaleRun> = runs.iter().filter(|r| r.kdash.is_some()).collect();
        if !kd.is_empty() {
            let med = |v: Vec<f64>| percentile(&v, 50.0);
            let cc = med(kd.iter().map(|r| r.cockpit.cpu_percent).collect());
            let kc = med(kd
                .iter()
                .filter_map(|r| r.kdash.map(|k| k.0.cpu_percent))
                .collect());
            let cm = med(kd.iter().map(|r| r.cockpit.peak_rss_mb).collect());
            let km = med(kd
                .iter()
                .filter_map(|r| r.kdash.map(|k| k.0.peak_rss_mb))
                .collect());
            let _ = writeln!(
                peers,
                "| {n} | {} | {} | {} | {} | {} | {} | {} / {} | {} |",
                col(&|r| r.cockpit.cpu_percent, 1),
                fmt(
                    &kd.iter()
                        .filter_map(|r| r.kdash.map(|k| k.0.cpu_percent))
                        .collect::<Vec<_>>(),
                    1
                ),
                ratio(cc, kc),
                col(&|r| r.cockpit.peak_rss_mb, 0),
                fmt(
                    &kd.iter()
                        .filter_map(|r| r.kdash.map(|k| k.0.peak_rss_mb))
                        .collect::<Vec<_>>(),
                    0
                ),
                ratio(cm, km),
                fmt(&kd.iter().map(|r| r.first_frame).collect::<Vec<_>>(), 2),
                fmt(
                    &kd.iter()
                        .filter_map(|r| r.kdash.map(|k| k.2))
                        .collect::<Vec<_>>(),
                    2
                ),
                fmt(
                    &kd.iter()
                        .filter_map(|r| r.kdash.map(|k| k.1.cpu_percent))
                        .collect::<Vec<_>>(),
                    1
                ),
            );
        }
        if n == 5000 {
            let worst = |f: &dyn Fn(&ScaleRun) -> f64| runs.iter().map(f).fold(0.0, f64::max);
            let rss = |r: &ScaleRun| r.cockpit.peak_rss_mb.max(r.cockpit.hwm_mb);
            let render_p99 = percentile(
                &runs
                    .iter()
                    .flat_map(|r| r.render_us.iter().copied())
                    .collect::<Vec<_>>(),
                99.0,
            )
            .unwrap_or(0.0);
            let check = |ok: bool| if ok { "met" } else { "MISSED" };
            verdicts.push(format!(
                "At 5,000 nodes: frame build+render p99 {:.2} ms (< 10 ms: {}), cockpit RSS ≤ {:.0} MB (< 150 MB: {}), \
                 cockpit CPU ≤ {:.1} % (< 5 %: {}); lab alone CPU ≤ {:.1} % (< 50 %: {}), lab RSS ≤ {:.0} MB (< 500 MB: {}).",
                render_p99 / 1e3,
                check(render_p99 < 10_000.0),
                worst(&rss),
                check(worst(&rss) < 150.0),
                worst(&|r| r.cockpit.cpu_percent),
                check(worst(&|r| r.cockpit.cpu_percent) < 5.0),
                worst(&|r| r.lab_alone.cpu_percent),
                check(worst(&|r| r.lab_alone.cpu_percent) < 50.0),
                worst(&|r| r.lab_alone.peak_rss_mb),
                check(worst(&|r| r.lab_alone.peak_rss_mb) < 500.0),
            ));
        }
    }
    let peers = if opts.kdash.is_some() {
        format!(
            "\nkdash ({}), started after the cockpit's window on the same lab, measured over the same window length while the cockpit keeps running:\n\n{peers}",
            opts.kdash
                .as_ref()
                .map_or(String::new(), |p| p.display().to_string())
        )
    } else {
        "\nkdash: not available, peer columns skipped.\n".into()
    };
    Ok(format!(
        "## 3. Scale\n\n\
         `lab --scenario healthy --nodes N` (10 s renewals, 40 s leases), cockpit on a {}x{} PTY. \
         Median (min–max) over {} runs; frame times pooled over all frames of all runs. \
         CPU and RSS over a {:.0} s window after a 4 s settle (lab alone: an {:.0} s window before the \
         cockpit starts). RSS is the peak resident set sampled each second in the window. \
         \"first complete frame\": from spawning the cockpit to the PTY showing `Nodes N`, a lease \
         age on the first row and the service's announcer.\n\n{t}{peers}\n{}\n",
        procs::COLS,
        ROWS,
        opts.repeat.max(1),
        opts.window,
        opts.window.min(8.0),
        verdicts.join("\n")
    ))
}

// ---------------------------------------------------------------- 4 --

/// Idle: the healthy 3-node cluster; CPU, frames and their causes.
pub fn idle(opts: &Opts, dir: &Path) -> Result<String> {
    let lab = LabProc::start(
        dir,
        &LabSpec {
            scenario: "healthy",
            builtin: true,
            nodes: None,
            commit_log: true,
            plan_out: false,
        },
    )?;
    let cockpit = Cockpit::start(dir, &lab, "idle", ROWS)?;
    first_complete_frame(&cockpit, 3, "k3s-server-1")?;
    std::thread::sleep(Duration::from_secs(3));
    let m = measure(&cockpit, &lab, opts.idle_secs)?;
    let (from, to, span) = (m.from, m.to, m.span());
    let u = [m.cockpit, m.lab];
    let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
    for f in &m.frames {
        *by_reason.entry(f.reason.clone()).or_default() += 1;
    }
    let text = std::fs::read_to_string(lab.commit_log.as_ref().ok_or("no commit log")?)?;
    let mut commits: BTreeMap<String, usize> = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let [_, ns, kind, ..] = f.as_slice()
            && ns.parse::<u128>().is_ok_and(|ns| ns >= from && ns < to)
        {
            *commits.entry(kind.to_string()).or_default() += 1;
        }
    }
    let kdash = match &opts.kdash {
        Some(k) => {
            let (p, _) = procs::start_kdash(k, dir, &lab, 3)?;
            std::thread::sleep(Duration::from_secs(4));
            let mut w = Window::start(&[p.pid()]);
            w.run(opts.idle_secs.min(30.0));
            let ku = w.finish()[0];
            p.quit("q", Duration::from_secs(2));
            Some(ku)
        }
        None => None,
    };
    cockpit.quit();
    let reasons: Vec<String> = by_reason.iter().map(|(r, n)| format!("{r} {n}")).collect();
    let commits: Vec<String> = commits.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let peer = match kdash {
        Some(k) => format!(
            "\n\nkdash on the same lab, {:.0} s window after the cockpit's: CPU {:.2} % of one core, RSS {:.0} MB \
             (cockpit / kdash: CPU {}, RSS {}).",
            opts.idle_secs.min(30.0),
            k.cpu_percent,
            k.peak_rss_mb,
            ratio(Some(u[0].cpu_percent), Some(k.cpu_percent)),
            ratio(Some(u[0].peak_rss_mb), Some(k.peak_rss_mb)),
        ),
        None => String::new(),
    };
    Ok(format!(
        "## 4. Idle\n\n\
         Built-in `healthy` scenario (3 nodes, 10 s renewals), {span:.0} s window.\n\n\
         | | value |\n|---|---|\n\
         | cockpit CPU, % of one core | {:.2} |\n| cockpit RSS MB | {:.0} |\n\
         | frames drawn (per s) | {} ({:.2}) |\n| frames by cause | {} |\n\
         | lab commits in the window | {} |\n| bytes to the terminal per s | {:.0} |\n\
         | lab CPU % | {:.2} |{peer}\n\n\
         Frames caused by cluster changes should not outnumber the lease renewals (each one \
         resets a visible heartbeat age); every other frame is the 1 s tick. \
         Target CPU < 0.5 %: {}.\n",
        u[0].cpu_percent,
        u[0].peak_rss_mb,
        m.frames.len(),
        m.frames_per_s(),
        reasons.join(", "),
        commits.join(", "),
        m.pty_bytes_per_s(),
        u[1].cpu_percent,
        if u[0].cpu_percent < 0.5 {
            "met"
        } else {
            "MISSED"
        },
    ))
}

// ---------------------------------------------------------------- soak --

/// False LATE flags on a healthy cluster with realistic jitter.
pub fn soak(opts: &Opts, dir: &Path) -> Result<String> {
    let n = opts.soak_nodes.max(3);
    let lab = LabProc::start(
        dir,
        &LabSpec {
            scenario: "healthy",
            builtin: true,
            nodes: Some(n),
            commit_log: true,
            plan_out: false,
        },
    )?;
    let cockpit = Cockpit::start(dir, &lab, "soak", ROWS)?;
    first_complete_frame(&cockpit, n, "lab-node-0000")?;
    let mut w = Window::start(&[cockpit.pid()]);
    w.run(opts.soak_secs);
    let u = w.finish()[0];
    let flags = cockpit.late_flags()?;
    cockpit.quit();
    // The lab's own view: renewals and the longest gap between two of them.
    let text = std::fs::read_to_string(lab.commit_log.as_ref().ok_or("no commit log")?)?;
    let mut last: BTreeMap<&str, u128> = BTreeMap::new();
    let (mut renewals, mut max_gap) = (0usize, 0u128);
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let [_, ns, "Lease", object, "MODIFIED"] = f.as_slice() {
            let ns: u128 = ns.parse()?;
            if let Some(prev) = last.insert(object, ns) {
                max_gap = max_gap.max(ns - prev);
                renewals += 1;
            }
        }
    }
    Ok(format!(
        "## Soak: false LATE\n\n\
         `healthy --nodes {n}`, 10 s renewals with the kubelet's 4 % jitter, {:.0} s: \
         {renewals} renewals, longest gap between two renewals of one node {:.2} s (lab side). \
         False LATE flags in the cockpit: **{}** (target 0). Cockpit CPU {:.2} %.\n",
        opts.soak_secs,
        max_gap as f64 / 1e9,
        flags.len(),
        u.cpu_percent
    ))
}

// ---------------------------------------------------------------- C --

/// Control mode: `upgrade --plan` on the lab's own plan for N nodes, the
/// rollout ready but not started. The engine watches every node (its
/// health gate), and the rollout panel and PHASE column are on screen.
pub fn control(opts: &Opts, dir: &Path) -> Result<String> {
    let mut t = String::from(
        "| nodes | first complete frame s | cockpit CPU % | cockpit RSS MB (window peak / HWM) | frames/s | render µs p50 / p99 | draw µs p50 / p99 | false LATE |\n|---|---|---|---|---|---|---|---|\n",
    );
    for &n in &opts.sizes {
        let mut runs = Vec::new();
        for r in 0..opts.repeat.max(1) {
            eprintln!("  {n} nodes, run {}", r + 1);
            let d = dir.join(format!("{n}-{r}"));
            std::fs::create_dir_all(&d)?;
            let lab = LabProc::start(
                &d,
                &LabSpec {
                    scenario: "healthy",
                    builtin: true,
                    nodes: Some(n),
                    commit_log: false,
                    plan_out: true,
                },
            )?;
            let cockpit = Cockpit::start_control(&d, &lab, &format!("control-{n}"), ROWS)?;
            let first = first_complete_frame(&cockpit, n, "lab-node-0000")?;
            std::thread::sleep(Duration::from_secs(4));
            let m = measure(&cockpit, &lab, opts.window)?;
            let late = cockpit.late_flags()?.len();
            cockpit.quit();
            runs.push((first, m, late));
        }
        let col = |f: &dyn Fn(&(f64, Measured, usize)) -> f64, digits| {
            fmt(&runs.iter().map(f).collect::<Vec<_>>(), digits)
        };
        let pooled = |f: &dyn Fn(&Measured) -> Vec<f64>| {
            let all: Vec<f64> = runs.iter().flat_map(|r| f(&r.1)).collect();
            format!(
                "{:.0} / {:.0}",
                percentile(&all, 50.0).unwrap_or(0.0),
                percentile(&all, 99.0).unwrap_or(0.0)
            )
        };
        let _ = writeln!(
            t,
            "| {n} | {} | {} | {} / {} | {} | {} | {} | {} |",
            col(&|r| r.0, 2),
            col(&|r| r.1.cockpit.cpu_percent, 1),
            col(&|r| r.1.cockpit.peak_rss_mb, 0),
            col(&|r| r.1.cockpit.hwm_mb, 0),
            col(&|r| r.1.frames_per_s(), 1),
            pooled(&Measured::render_us),
            pooled(&Measured::draw_us),
            runs.iter().map(|r| r.2).sum::<usize>(),
        );
    }
    Ok(format!(
        "## C. Control mode\n\n\
         `lab --scenario healthy --nodes N --plan-out plan.toml`, then `upgrade --plan plan.toml` on a \
         {}x{} PTY, the rollout not started: the engine's health gate watches every node, the \
         rollout panel and the PHASE column are drawn. Median (min–max) over {} runs, same window \
         and settle as the scale runs (compare with watch mode there).\n\n{t}",
        procs::COLS,
        ROWS,
        opts.repeat.max(1),
    ))
}
