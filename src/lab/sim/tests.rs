//! The simulation's timing, on tokio's paused clock: the timers are fired
//! one by one at their due instants, exactly as [`SimHandle::run`] does,
//! so minutes of cluster time take microseconds and every bound is exact.

use super::*;
use crate::lab::scenario::Scenario;

const NODES: [&str; 3] = ["k3s-a", "k3s-b", "k3s-c"];

/// Three nodes on Kubernetes' default timings, plus `extra` TOML (faults,
/// services).
fn scenario(extra: &str) -> Scenario {
    let mut text = String::from("name = \"test\"\n");
    for n in NODES {
        text.push_str(&format!(
            "[[nodes]]\nname = \"{n}\"\nrole = \"server\"\nversion = \"v1.33.6+k3s1\"\n"
        ));
    }
    text.push_str(extra);
    Scenario::parse(&text, "test.toml").unwrap()
}

pub(super) fn start(extra: &str) -> (Arc<Store>, SimHandle) {
    let store = Arc::new(Store::new(1024));
    let handle = Sim::start(store.clone(), &scenario(extra));
    (store, handle)
}

/// Moves the paused clock forward by `d`, stopping at every due timer to
/// fire it; `each` sees the sim after every firing.
pub(super) async fn run_for(handle: &SimHandle, d: Duration, mut each: impl FnMut(&Sim)) {
    let end = Instant::now() + d;
    loop {
        let next = handle.lock().timers.peek().map(|Reverse(t)| t.at);
        match next {
            Some(at) if at <= end => {
                tokio::time::advance(at.saturating_duration_since(Instant::now())).await;
                let mut sim = handle.lock();
                sim.fire_due(Instant::now());
                each(&sim);
            }
            _ => {
                tokio::time::advance(end.saturating_duration_since(Instant::now())).await;
                return;
            }
        }
    }
}

fn ready_status(store: &Store, node: &str) -> String {
    let obj = store.get(Kind::Node, "", node).unwrap();
    obj["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()["status"]
        .as_str()
        .unwrap()
        .to_string()
}

fn has_unreachable_taint(store: &Store, node: &str) -> bool {
    let obj = store.get(Kind::Node, "", node).unwrap();
    obj["spec"]["taints"]
        .as_array()
        .is_some_and(|ts| ts.iter().any(|t| t["key"] == UNREACHABLE))
}

#[tokio::test(start_paused = true)]
async fn lease_renewals_stay_within_the_jittered_interval() {
    let (_store, handle) = start("");
    let t0 = Instant::now();
    let (interval, jitter) = {
        let sim = handle.lock();
        (sim.timing.renew_interval, sim.timing.renew_jitter)
    };
    let mut renewals: Vec<Vec<Instant>> = vec![Vec::new(); NODES.len()];
    run_for(&handle, Duration::from_secs(600), |sim| {
        for (i, n) in sim.nodes.iter().enumerate() {
            if n.last_renew > t0 && renewals[i].last() != Some(&n.last_renew) {
                renewals[i].push(n.last_renew);
            }
        }
    })
    .await;
    let longest = interval.mul_f64(1.0 + jitter);
    let mut gaps = Vec::new();
    for (node, times) in NODES.iter().zip(&renewals) {
        // The first renewal is spread over one interval from the start...
        let first = times[0] - t0;
        assert!(first < interval, "{node}: first renewal after {first:?}");
        // ...then every gap is the interval plus at most `jitter` of it.
        for pair in times.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                gap >= interval && gap <= longest,
                "{node}: renewal gap {gap:?} outside [{interval:?}, {longest:?}]"
            );
            gaps.push(gap);
        }
        assert!(
            times.len() >= 57,
            "{node}: {} renewals in 10 min",
            times.len()
        );
    }
    // The jitter is applied, not a fixed interval.
    assert!(gaps.iter().any(|g| *g != gaps[0]));
}

#[tokio::test(start_paused = true)]
async fn a_stopped_kubelet_turns_ready_unknown_only_after_the_grace_period() {
    let (store, handle) =
        start("[[faults]]\nnode = \"k3s-a\"\nkind = \"kubelet-stop\"\ndelay = \"30s\"\n");
    let (grace, monitor) = {
        let sim = handle.lock();
        (sim.timing.grace_period, sim.timing.monitor_period)
    };
    run_for(&handle, Duration::from_secs(30), |_| {}).await;
    let last_renew = {
        let sim = handle.lock();
        assert_eq!(sim.nodes[0].kubelet, Kubelet::Hung);
        sim.nodes[0].last_renew
    };
    assert_eq!(ready_status(&store, "k3s-a"), "True");

    // Up to the end of the grace period, the controller leaves it alone.
    let until_grace = (last_renew + grace).saturating_duration_since(Instant::now());
    run_for(&handle, until_grace, |_| {}).await;
    assert_eq!(ready_status(&store, "k3s-a"), "True");
    assert!(!has_unreachable_taint(&store, "k3s-a"));
    assert_eq!(
        handle.lock().nodes[0].last_renew,
        last_renew,
        "no renewal while hung"
    );

    // The first controller pass after it marks the node Unknown and taints it.
    run_for(&handle, monitor, |_| {}).await;
    assert_eq!(ready_status(&store, "k3s-a"), "Unknown");
    assert!(has_unreachable_taint(&store, "k3s-a"));
    // The healthy nodes keep renewing and stay Ready.
    for n in &NODES[1..] {
        assert_eq!(ready_status(&store, n), "True", "{n}");
        assert!(!has_unreachable_taint(&store, n), "{n}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_announcement_moves_only_after_the_speaker_failover_delay() {
    let ip = "127.0.0.1";
    let mut ranked: Vec<&str> = NODES.to_vec();
    ranked.sort_by_key(|n| objects::l2_rank(n, ip));
    let (first, second) = (ranked[0], ranked[1]);
    // Port 0: each listener gets a free port, so parallel tests never collide.
    let (_store, handle) = start(&format!(
        "[[services]]\nnamespace = \"web\"\nname = \"web\"\nip = \"{ip}\"\nport = 0\npod_node = \"k3s-c\"\n\
         [[faults]]\nnode = \"{first}\"\nkind = \"speaker-stop\"\ndelay = \"10s\"\n"
    ));
    let failover = handle.lock().timing.speaker_failover;
    assert_eq!(handle.announcer("web", "web").as_deref(), Some(first));
    assert!(handle.outages().is_empty());

    run_for(&handle, Duration::from_secs(10), |_| {}).await;
    {
        let sim = handle.lock();
        assert!(!sim.nodes[sim.index(first).unwrap()].speaker_alive);
    }
    // The dead speaker still holds the announcement: the IP is dark.
    run_for(&handle, failover - Duration::from_millis(1), |_| {}).await;
    assert_eq!(handle.announcer("web", "web").as_deref(), Some(first));
    let outages = handle.outages();
    assert_eq!(outages.len(), 1);
    assert!(outages[0].end.is_none());

    // Once memberlist notices, the next speaker in rank order takes over.
    run_for(&handle, Duration::from_millis(1), |_| {}).await;
    assert_eq!(handle.announcer("web", "web").as_deref(), Some(second));
    let outages = handle.outages();
    assert_eq!(outages.len(), 1);
    assert!(outages[0].end.is_some(), "serving again from {second}");
}

fn web_on_loopback() -> (String, [&'static str; 3]) {
    let ip = "127.0.0.1";
    let mut ranked = NODES;
    ranked.sort_by_key(|n| objects::l2_rank(n, ip));
    (
        format!(
            "[[services]]\nnamespace = \"web\"\nname = \"web\"\nip = \"{ip}\"\nport = 0\npod_node = \"k3s-c\"\n"
        ),
        ranked,
    )
}

/// A K3s restart on the announcing node: the IP refuses connections while
/// K3s is down and until the service rules are programmed again, and the
/// lab's outage log says so; the announcement itself never moves.
#[tokio::test(start_paused = true)]
async fn a_restart_of_the_announcer_darkens_its_ip_until_the_rules_are_reprogrammed() {
    let (services, ranked) = web_on_loopback();
    let (_store, handle) = start(&services);
    let first = ranked[0];
    let (down, reprogram) = {
        let sim = handle.lock();
        (sim.timing.restart_down, sim.timing.reprogram)
    };
    handle.restart(first).unwrap();
    let outages = handle.outages();
    assert_eq!(outages.len(), 1, "dark from the restart on");
    assert!(outages[0].cause.contains(first), "{}", outages[0].cause);
    run_for(&handle, down + reprogram - Duration::from_millis(1), |_| {}).await;
    assert!(handle.outages()[0].end.is_none(), "still reprogramming");
    assert_eq!(handle.announcer("web", "web").as_deref(), Some(first));
    run_for(&handle, Duration::from_millis(2), |_| {}).await;
    assert!(handle.outages()[0].end.is_some(), "serving again");
    // A restart of a node that announces nothing darkens nothing.
    handle.restart(ranked[2]).unwrap();
    run_for(&handle, down, |_| {}).await;
    assert_eq!(handle.outages().len(), 1);
}

fn label(store: &Store, node: &str, on: bool) -> Value {
    let value = if on { json!("true") } else { Value::Null };
    store.update(Kind::Node, "", node, |n| {
        n["metadata"]["labels"][crate::model::metallb::EXCLUDE_LABEL] = value.clone();
        if !on && let Some(l) = n["metadata"]["labels"].as_object_mut() {
            l.remove(crate::model::metallb::EXCLUDE_LABEL);
        }
    });
    (*store.get(Kind::Node, "", node).unwrap()).clone()
}

fn l2_nodes(store: &Store) -> Vec<String> {
    store
        .list(Kind::ServiceL2Status, None)
        .1
        .iter()
        .map(|o| o["status"]["node"].as_str().unwrap().to_string())
        .collect()
}

fn assigned_events(store: &Store) -> Vec<String> {
    store
        .list(Kind::Event, None)
        .1
        .iter()
        .filter(|e| e["reason"] == "nodeAssigned")
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect()
}

/// The exclude label moves the announcement to the next node in hash order
/// once the speakers see it, with no dark moment; removing it moves it back.
#[tokio::test(start_paused = true)]
async fn the_exclude_label_moves_the_announcement_without_an_outage() {
    let (services, ranked) = web_on_loopback();
    let (store, handle) = start(&services);
    let (first, second) = (ranked[0], ranked[1]);
    let sync = handle.lock().timing.label_sync;
    handle.node_changed(&label(&store, first, true));
    run_for(&handle, sync - Duration::from_millis(1), |_| {}).await;
    assert_eq!(handle.announcer("web", "web").as_deref(), Some(first));
    run_for(&handle, Duration::from_millis(2), |_| {}).await;
    assert_eq!(handle.announcer("web", "web").as_deref(), Some(second));
    assert_eq!(l2_nodes(&store), vec![second.to_string()]);
    assert!(
        assigned_events(&store).contains(&format!(
            "announcing from node \"{second}\" with protocol \"layer2\""
        )),
        "{:?}",
        assigned_events(&store)
    );
    // Restarting the labelled node now costs users nothing.
    handle.restart(first).unwrap();
    run_for(&handle, Duration::from_secs(30), |_| {}).await;
    handle.node_changed(&label(&store, first, false));
    run_for(&handle, sync + Duration::from_millis(1), |_| {}).await;
    assert_eq!(handle.announcer("web", "web").as_deref(), Some(first));
    assert_eq!(l2_nodes(&store), vec![first.to_string()]);
    assert!(handle.outages().is_empty(), "{:?}", handle.outages());
}

/// A speaker started with `--ignore-exclude-lb` keeps announcing from a
/// labelled node.
#[tokio::test(start_paused = true)]
async fn speakers_told_to_ignore_the_label_keep_announcing() {
    let (services, ranked) = web_on_loopback();
    let extra = format!("[metallb]\nversion = \"v0.15.2\"\nignore_exclude_lb = true\n{services}");
    let (store, handle) = start(&extra);
    handle.node_changed(&label(&store, ranked[0], true));
    run_for(&handle, Duration::from_secs(5), |_| {}).await;
    assert_eq!(handle.announcer("web", "web").as_deref(), Some(ranked[0]));
}
