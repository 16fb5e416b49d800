use super::*;

fn service() -> ClusterEvent {
    ClusterEvent::Service(ServiceInfo {
        namespace: "frigate".into(),
        name: "frigate".into(),
        ips: vec!["127.77.0.10".into()],
        ports: vec![5000],
        selector: Default::default(),
    })
}

fn l2(object: &str, node: &str) -> ClusterEvent {
    ClusterEvent::L2(L2Info {
        object: object.into(),
        node: node.into(),
        service: ("frigate".into(), "frigate".into()),
    })
}

fn announcer(fleet: &Fleet) -> Option<&str> {
    fleet.services[&("frigate".into(), "frigate".into())]
        .announcer
        .as_deref()
}

fn probe(at: i64, ok: bool) -> ClusterEvent {
    ClusterEvent::Probe(crate::model::probe::ProbeResult {
        service: ("frigate".into(), "frigate".into()),
        endpoint: "127.77.0.10:5000".into(),
        check: "tcp".into(),
        ok,
        latency: Duration::from_millis(2),
        error: (!ok).then(|| "connection refused".into()),
        at: Timestamp::from_second(1_800_000_000 + at).unwrap(),
    })
}

#[test]
fn probe_outage_after_three_failures_is_typed_entries_stamped_with_the_probe_instants() {
    let now = Timestamp::from_second(1_900_000_000).unwrap();
    let mut fleet = Fleet::new();
    // A result for an unknown service is ignored.
    assert!(!fleet.apply(probe(0, true), now));
    fleet.apply(service(), now);
    assert_eq!(
        fleet.services[&("frigate".into(), "frigate".into())].probe_ok(),
        None
    );
    for (at, ok) in [(0, true), (1, false), (2, false)] {
        assert!(fleet.apply(probe(at, ok), now));
    }
    let svc = &fleet.services[&("frigate".into(), "frigate".into())];
    assert_eq!(svc.probe_ok(), Some(true), "two failures are not an outage");
    for (at, ok) in [(3, false), (4, true)] {
        assert!(fleet.apply(probe(at, ok), now));
    }
    let svc = &fleet.services[&("frigate".into(), "frigate".into())];
    assert_eq!(svc.probe_ok(), Some(true));
    assert_eq!(svc.flaps(), 0, "the failures were an outage, not flaps");
    let probes: Vec<_> = fleet
        .timeline
        .entries()
        .filter(|e| {
            matches!(
                e.kind,
                EntryKind::ProbeFailed { .. }
                    | EntryKind::ProbeDown { .. }
                    | EntryKind::ProbeUp { .. }
            )
        })
        .collect();
    assert_eq!(probes.len(), 4);
    assert_eq!(
        probes[0].text,
        "probe failed (1/3) (tcp 127.77.0.10:5000): connection refused"
    );
    assert_eq!(probes[0].severity, Severity::Warn);
    assert_eq!(
        probes[1].kind,
        EntryKind::ProbeFailed {
            endpoint: "127.77.0.10:5000".into(),
            error: "connection refused".into(),
            streak: 2,
            of: 3
        }
    );
    assert_eq!(probes[2].at, Timestamp::from_second(1_800_000_003).unwrap());
    assert_eq!(probes[2].severity, Severity::Error);
    assert_eq!(
        probes[2].kind,
        EntryKind::ProbeDown {
            endpoint: "127.77.0.10:5000".into(),
            error: "connection refused".into(),
            since: Some(Timestamp::from_second(1_800_000_001).unwrap()),
        }
    );
    assert_eq!(
        probes[2].text,
        "probe DOWN (tcp 127.77.0.10:5000): connection refused (3 failures in a row)"
    );
    // The outage is measured from the first failure of the run.
    assert_eq!(
        probes[3].kind,
        EntryKind::ProbeUp {
            endpoint: "127.77.0.10:5000".into(),
            down_for_ms: 3000
        }
    );
    assert_eq!(
        probes[3].text,
        "probe up again after 3s (tcp 127.77.0.10:5000)"
    );
}

/// The probe edge's threshold reaches the model: with 1, a single failure
/// is DOWN at once (and says so as before).
#[test]
fn the_probe_edge_sets_the_threshold_and_one_means_every_failure_is_down() {
    let now = Timestamp::from_second(1_900_000_000).unwrap();
    let mut fleet = Fleet::new();
    fleet.apply(ClusterEvent::ProbeFailures(1), now);
    fleet.apply(service(), now);
    fleet.apply(probe(0, true), now);
    fleet.apply(probe(1, false), now);
    let svc = &fleet.services[&("frigate".into(), "frigate".into())];
    assert_eq!(svc.probe_ok(), Some(false));
    let last = fleet.timeline.entries().last().unwrap();
    assert_eq!(
        last.text,
        "probe DOWN (tcp 127.77.0.10:5000): connection refused"
    );
    assert!(matches!(
        last.kind,
        EntryKind::ProbeDown { since: None, .. }
    ));
}

/// Wi-Fi: one probe in ten times out for ten minutes. Never DOWN, every
/// failure a Warn entry, and all of them flaps on the services panel.
#[test]
fn one_failure_in_ten_is_never_down_and_counts_as_flaps() {
    let now = Timestamp::from_second(1_900_000_000).unwrap();
    let mut fleet = Fleet::new();
    fleet.apply(service(), now);
    for i in 0..600 {
        fleet.apply(probe(i, i % 10 != 3), now);
        let svc = &fleet.services[&("frigate".into(), "frigate".into())];
        assert_eq!(svc.probe_ok(), Some(true), "DOWN at {i}");
    }
    let svc = &fleet.services[&("frigate".into(), "frigate".into())];
    assert_eq!(svc.flaps(), 60);
    let failed = fleet
        .timeline
        .entries()
        .filter(|e| {
            matches!(
                e.kind,
                EntryKind::ProbeFailed {
                    streak: 1,
                    of: 3,
                    ..
                }
            )
        })
        .inspect(|e| assert_eq!(e.severity, Severity::Warn))
        .count();
    assert_eq!(failed, 60);
    assert!(
        !fleet
            .timeline
            .entries()
            .any(|e| matches!(e.kind, EntryKind::ProbeDown { .. }))
    );
}

#[test]
fn announcer_seen_before_its_service_is_kept_and_a_later_move_counts() {
    let now = Timestamp::UNIX_EPOCH;
    let mut fleet = Fleet::new();
    fleet.apply(l2("metallb-system/l2-a", "node-b"), now);
    fleet.apply(service(), now);
    assert_eq!(announcer(&fleet), Some("node-b"));

    fleet.apply(ClusterEvent::L2Deleted("metallb-system/l2-a".into()), now);
    fleet.apply(l2("metallb-system/l2-b", "node-c"), now);
    assert_eq!(announcer(&fleet), Some("node-c"));
    let svc = &fleet.services[&("frigate".into(), "frigate".into())];
    assert_eq!(svc.moves, 1);
    assert!(
        fleet
            .timeline
            .entries()
            .any(|e| e.text == "announcer moved node-b → node-c")
    );
}

// ------------------------------------------------ resync (relist)

fn t(sec: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + sec).unwrap()
}

fn node(name: &str) -> ClusterEvent {
    ClusterEvent::Node(NodeInfo::bare(name, "v1.33.6+k3s1"))
}

fn lease(node: &str, renewed: Timestamp) -> ClusterEvent {
    ClusterEvent::Lease(LeaseInfo::renewed_at(node, renewed))
}

fn pod(name: &str, node: &str) -> ClusterEvent {
    ClusterEvent::Pod(PodInfo {
        namespace: "frigate".into(),
        name: name.into(),
        node: node.into(),
        labels: [("app".to_string(), "frigate".to_string())].into(),
        ready: true,
        speaker: None,
    })
}

fn selected_service() -> ClusterEvent {
    ClusterEvent::Service(ServiceInfo {
        namespace: "frigate".into(),
        name: "frigate".into(),
        ips: vec!["127.77.0.10".into()],
        ports: vec![5000],
        selector: [("app".to_string(), "frigate".to_string())].into(),
    })
}

fn names(fleet: &Fleet) -> Vec<&str> {
    fleet.nodes.keys().map(String::as_str).collect()
}

fn texts(fleet: &Fleet) -> Vec<&str> {
    fleet.timeline.entries().map(|e| e.text.as_str()).collect()
}

#[test]
fn node_relist_replaces_the_node_set_and_drops_stale_nodes() {
    let mut fleet = Fleet::new();
    for n in ["a", "b", "c"] {
        fleet.apply(node(n), t(0));
    }
    assert!(!fleet.apply(ClusterEvent::ResyncStart(ResourceKind::Nodes), t(1)));
    // During the relist nothing is dropped yet.
    fleet.apply(node("a"), t(1));
    fleet.apply(node("c"), t(1));
    assert_eq!(names(&fleet), ["a", "b", "c"]);
    assert!(fleet.apply(ClusterEvent::ResyncDone(ResourceKind::Nodes), t(2)));
    assert_eq!(names(&fleet), ["a", "c"]);
    // Dropped silently: a relist is not a deletion the user should read about.
    assert!(!texts(&fleet).contains(&"node deleted"));
}

#[test]
fn node_relist_keeps_a_lease_whose_node_object_was_never_seen() {
    let mut fleet = Fleet::new();
    fleet.apply(node("a"), t(0));
    fleet.apply(lease("ghost", t(0)), t(0));
    fleet.apply(ClusterEvent::ResyncStart(ResourceKind::Nodes), t(1));
    fleet.apply(ClusterEvent::ResyncDone(ResourceKind::Nodes), t(1));
    // "a" was not relisted; "ghost" has no Node object, only a lease,
    // so the node relist has no say about it.
    assert_eq!(names(&fleet), ["ghost"]);
    assert!(fleet.nodes["ghost"].lease.is_some());
}

#[test]
fn lease_relist_clears_leases_not_relisted_but_keeps_their_nodes() {
    let mut fleet = Fleet::new();
    for n in ["a", "b"] {
        fleet.apply(node(n), t(0));
        fleet.apply(lease(n, t(0)), t(0));
    }
    fleet.apply(ClusterEvent::ResyncStart(ResourceKind::Leases), t(5));
    assert!(
        !fleet.apply(lease("a", t(0)), t(5)),
        "same lease: no change"
    );
    fleet.apply(ClusterEvent::ResyncDone(ResourceKind::Leases), t(5));
    assert_eq!(names(&fleet), ["a", "b"]);
    assert_eq!(fleet.nodes["a"].heartbeat_at(), Some(t(0)));
    assert!(fleet.nodes["b"].lease.is_none());
    // Without a lease (and no Ready condition) there is no heartbeat.
    assert_eq!(fleet.nodes["b"].heartbeat_at(), None);
}

#[test]
fn service_and_pod_relists_drop_stale_entries_and_rebuild_services_on_nodes() {
    let mut fleet = Fleet::new();
    fleet.apply(selected_service(), t(0));
    fleet.apply(pod("frigate-1", "node-a"), t(0));
    fleet.apply(pod("frigate-2", "node-b"), t(0));
    assert_eq!(fleet.services_on("node-b"), ["frigate"]);

    fleet.apply(ClusterEvent::ResyncStart(ResourceKind::Pods), t(1));
    fleet.apply(pod("frigate-1", "node-a"), t(1));
    fleet.apply(ClusterEvent::ResyncDone(ResourceKind::Pods), t(1));
    assert_eq!(fleet.pods().count(), 1);
    assert_eq!(fleet.services_on("node-a"), ["frigate"]);
    assert!(fleet.services_on("node-b").is_empty());

    fleet.apply(ClusterEvent::ResyncStart(ResourceKind::Services), t(2));
    fleet.apply(ClusterEvent::ResyncDone(ResourceKind::Services), t(2));
    assert!(fleet.services.is_empty());
    assert!(fleet.services_on("node-a").is_empty());
}

#[test]
fn l2_relist_without_the_announcing_status_leaves_the_service_unannounced() {
    let mut fleet = Fleet::new();
    fleet.apply(service(), t(0));
    fleet.apply(l2("metallb-system/l2-a", "node-b"), t(0));
    assert_eq!(fleet.announced_from("node-b"), ["127.77.0.10"]);

    fleet.apply(ClusterEvent::ResyncStart(ResourceKind::L2Statuses), t(3));
    fleet.apply(ClusterEvent::ResyncDone(ResourceKind::L2Statuses), t(3));
    assert_eq!(announcer(&fleet), None);
    assert!(fleet.announced_from("node-b").is_empty());
    let svc = &fleet.services[&("frigate".into(), "frigate".into())];
    assert_eq!(svc.unannounced_since, Some(t(3)));

    // When a status comes back on the same node, the gap is reported.
    fleet.apply(l2("metallb-system/l2-a", "node-b"), t(8));
    assert!(texts(&fleet).contains(&"announced again after 5s"));
}

#[test]
fn resync_done_without_a_start_changes_nothing() {
    let mut fleet = Fleet::new();
    fleet.apply(node("a"), t(0));
    assert!(!fleet.apply(ClusterEvent::ResyncDone(ResourceKind::Nodes), t(1)));
    assert_eq!(names(&fleet), ["a"]);
}

// ------------------------------------------------ degrade

#[test]
fn unreadable_leases_fall_back_to_the_ready_heartbeat_and_say_so_once() {
    let mut fleet = Fleet::new();
    let mut info = NodeInfo::bare("a", "v1.33.6+k3s1");
    info.conditions.push(Condition {
        kind: "Ready".into(),
        status: Tri::True,
        reason: "KubeletReady".into(),
        message: String::new(),
        last_transition: Some(t(0)),
        last_heartbeat: Some(t(30)),
    });
    fleet.apply(ClusterEvent::Node(info), t(30));
    let why = "leases.coordination.k8s.io is forbidden".to_string();
    assert!(fleet.apply(
        ClusterEvent::Unavailable(ResourceKind::Leases, why.clone()),
        t(31)
    ));
    assert!(!fleet.leases_readable);
    assert_eq!(fleet.nodes["a"].heartbeat_at(), Some(t(30)));
    assert_eq!(fleet.nodes["a"].lease_duration(), Duration::from_secs(40));
    let warned = |f: &Fleet| {
        f.timeline
            .entries()
            .filter(|e| e.text.starts_with("cannot read node leases"))
            .count()
    };
    assert_eq!(warned(&fleet), 1);
    assert!(!fleet.apply(ClusterEvent::Unavailable(ResourceKind::Leases, why), t(40)));
    assert_eq!(warned(&fleet), 1);
}

#[test]
fn missing_l2_status_switches_announcers_to_node_assigned_events() {
    let assigned = |at: i64, node: &str| {
        ClusterEvent::Event(EventInfo {
            kind: "Service".into(),
            namespace: "frigate".into(),
            name: "frigate".into(),
            reason: "nodeAssigned".into(),
            message: format!("announcing from node \"{node}\" with protocol \"layer2\""),
            event_type: "Normal".into(),
            component: "metallb-speaker".into(),
            at: Some(t(at)),
        })
    };
    let mut fleet = Fleet::new();
    fleet.apply(service(), t(0));
    // While ServiceL2Status is the source, events do not set announcers.
    assert!(!fleet.apply(assigned(1, "node-a"), t(1)));
    assert_eq!(announcer(&fleet), None);

    let why = "the server could not find the requested resource".to_string();
    assert!(fleet.apply(
        ClusterEvent::Unavailable(ResourceKind::L2Statuses, why.clone()),
        t(2)
    ));
    assert_eq!(fleet.announce_source, AnnounceSource::Events);
    assert_eq!(fleet.announce_source.label(), "nodeAssigned events");
    assert!(
        texts(&fleet)
            .iter()
            .any(|t| t.starts_with("no ServiceL2Status ("))
    );
    assert!(!fleet.apply(
        ClusterEvent::Unavailable(ResourceKind::L2Statuses, why),
        t(2)
    ));

    assert!(fleet.apply(assigned(3, "node-a"), t(3)));
    assert_eq!(announcer(&fleet), Some("node-a"));
    fleet.apply(assigned(4, "node-b"), t(4));
    assert_eq!(announcer(&fleet), Some("node-b"));
    assert!(texts(&fleet).contains(&"announcer moved node-a → node-b"));
}

#[test]
fn other_unavailable_resources_change_nothing() {
    let mut fleet = Fleet::new();
    for kind in [
        ResourceKind::Pods,
        ResourceKind::Events,
        ResourceKind::Nodes,
    ] {
        assert!(!fleet.apply(ClusterEvent::Unavailable(kind, "forbidden".into()), t(0)));
    }
    assert!(fleet.leases_readable);
    assert_eq!(fleet.announce_source, AnnounceSource::L2Status);
    assert_eq!(fleet.timeline.entries().count(), 0);
}

#[test]
fn api_outage_counts_failures_logs_once_and_reports_its_length() {
    let mut fleet = Fleet::new();
    assert_eq!(fleet.api, ApiStatus::Connecting);
    assert!(fleet.apply(unreachable("connection refused"), t(0)));
    assert!(fleet.apply(unreachable("timed out"), t(2)));
    assert_eq!(
        fleet.api,
        ApiStatus::Down {
            since: t(0),
            error: "timed out".into(),
            failures: 2,
            kind: ApiFailureKind::Unreachable,
        }
    );
    assert!(fleet.api.is_outage());
    assert_eq!(fleet.api.label(), "● API DOWN");
    assert_eq!(
        texts(&fleet),
        ["API server unreachable: connection refused"]
    );
    assert!(fleet.apply(ClusterEvent::ApiOk, t(303)));
    assert_eq!(fleet.api, ApiStatus::Up);
    assert_eq!(
        texts(&fleet).last(),
        Some(&"API server reachable again after 5m03s")
    );
    assert!(!fleet.apply(ClusterEvent::ApiOk, t(304)), "already up");
}

#[test]
fn first_data_after_connecting_is_up_without_a_timeline_entry() {
    let mut fleet = Fleet::new();
    assert!(fleet.apply(ClusterEvent::ApiOk, t(0)));
    assert_eq!(fleet.api, ApiStatus::Up);
    assert_eq!(fleet.timeline.entries().count(), 0);
}

fn unreachable(text: &str) -> ClusterEvent {
    ClusterEvent::ApiError(ApiFailure::new(ApiFailureKind::Unreachable, text))
}

fn api_entries(fleet: &Fleet) -> Vec<(EntryKind, String)> {
    fleet
        .timeline
        .entries()
        .filter(|e| matches!(e.kind, EntryKind::Api { .. }))
        .map(|e| (e.kind.clone(), e.text.clone()))
        .collect()
}

/// A 401 is not "unreachable": the timeline, the banner and the status bar
/// say the credentials were rejected and how to renew them, and it is not
/// an outage.
#[test]
fn a_401_says_credentials_expired_or_rejected_and_how_to_renew() {
    let mut fleet = Fleet::new();
    fleet.apply(ClusterEvent::ApiOk, t(0));
    let failure = ApiFailure::new(
        ApiFailureKind::Unauthorized,
        "credentials expired or rejected",
    );
    assert!(fleet.apply(ClusterEvent::ApiError(failure.clone()), t(1)));
    assert!(fleet.apply(ClusterEvent::ApiError(failure), t(3)));
    let entries = api_entries(&fleet);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        entries[0].0,
        EntryKind::Api {
            failure: Some("unauthorized".into())
        }
    );
    assert!(
        entries[0]
            .1
            .starts_with("API credentials expired or rejected (401)"),
        "{}",
        entries[0].1
    );
    assert!(
        entries[0]
            .1
            .contains("kubectl create token NAME --duration=24h")
    );
    assert!(!entries[0].1.contains("unreachable"));
    assert!(!fleet.api.is_outage());
    assert_eq!(fleet.api.label(), "● UNAUTHORIZED");
    let banner = fleet.api.describe(t(61)).unwrap();
    assert!(
        banner.starts_with("API credentials expired or rejected for 1m00s (401)"),
        "{banner}"
    );
    assert!(banner.contains("a fresh kubeconfig"), "{banner}");
    fleet.apply(ClusterEvent::ApiOk, t(70));
    assert_eq!(
        api_entries(&fleet)[1].1,
        "API requests succeed again after 1m09s (unauthorized)"
    );
}

/// A 403 names what was refused; it is not an outage either.
#[test]
fn a_403_names_the_verb_and_resource() {
    let mut fleet = Fleet::new();
    fleet.apply(ClusterEvent::ApiOk, t(0));
    fleet.apply(
        ClusterEvent::ApiError(ApiFailure::new(
            ApiFailureKind::Forbidden,
            "forbidden: list nodes",
        )),
        t(1),
    );
    assert_eq!(api_entries(&fleet)[0].1, "API forbidden: list nodes (403)");
    assert_eq!(fleet.api.label(), "● FORBIDDEN");
    assert!(!fleet.api.is_outage());
    let banner = fleet.api.describe(t(2)).unwrap();
    assert!(
        banner.starts_with("API forbidden: list nodes for 1s (403)"),
        "{banner}"
    );
}

/// A 410 Gone is a watcher relisting: the status stays Up, no entry.
#[test]
fn a_410_gone_leaves_the_status_up_and_the_timeline_alone() {
    let mut fleet = Fleet::new();
    fleet.apply(ClusterEvent::ApiOk, t(0));
    let gone = ApiFailure::new(
        ApiFailureKind::Resync,
        "too old resource version: listing afresh",
    );
    assert!(!fleet.apply(ClusterEvent::ApiError(gone), t(1)));
    assert_eq!(fleet.api, ApiStatus::Up);
    assert_eq!(fleet.api.describe(t(2)), None);
    assert!(api_entries(&fleet).is_empty());
}

/// The kind of an outage changes: each new kind is an entry naming it.
#[test]
fn a_change_of_failure_kind_is_a_new_entry_and_silent_keeps_its_flag() {
    let mut fleet = Fleet::new();
    fleet.apply(ClusterEvent::ApiOk, t(0));
    fleet.apply(
        ClusterEvent::ApiError(ApiFailure::new(
            ApiFailureKind::ServerError,
            "503 etcd leader changed",
        )),
        t(1),
    );
    fleet.apply(unreachable("connection refused"), t(2));
    let entries = api_entries(&fleet);
    assert_eq!(entries[0].1, "API server error: 503 etcd leader changed");
    assert_eq!(entries[1].1, "API server unreachable: connection refused");
    assert!(matches!(fleet.api, ApiStatus::Down { since, failures: 2, .. } if since == t(1)));
    fleet.apply(ClusterEvent::ApiOk, t(3));
    fleet.apply(ClusterEvent::ApiSilent("no answer".into()), t(4));
    assert!(matches!(
        fleet.api,
        ApiStatus::Down {
            kind: ApiFailureKind::Silent,
            ..
        }
    ));
    assert_eq!(fleet.api.label(), "● API SILENT");
    assert!(fleet.api.is_outage());
}

fn assigned(at: i64, node: &str) -> EventInfo {
    EventInfo {
        kind: "Service".into(),
        namespace: "frigate".into(),
        name: "frigate".into(),
        reason: "nodeAssigned".into(),
        message: format!("announcing from node \"{node}\" with protocol \"layer2\""),
        event_type: "Normal".into(),
        component: "metallb-speaker".into(),
        at: Some(t(at)),
    }
}

fn speaker(node: &str, ready: bool) -> ClusterEvent {
    ClusterEvent::Pod(PodInfo {
        namespace: "metallb-system".into(),
        name: format!("speaker-{node}"),
        node: node.into(),
        labels: [("component".to_string(), "speaker".to_string())].into(),
        ready,
        speaker: None,
    })
}

fn unknown(fleet: &Fleet) -> Option<&str> {
    fleet.services[&("frigate".into(), "frigate".into())]
        .unknown
        .as_deref()
}

/// Events-only MetalLB with frigate last assigned to node-a.
fn events_only() -> Fleet {
    let mut fleet = Fleet::new();
    fleet.apply(service(), t(0));
    for n in ["node-a", "node-b"] {
        fleet.apply(node(n), t(0));
        fleet.apply(speaker(n, true), t(0));
    }
    fleet.apply(
        ClusterEvent::Unavailable(ResourceKind::L2Statuses, "not found".into()),
        t(0),
    );
    fleet.apply(ClusterEvent::Event(assigned(1, "node-a")), t(1));
    assert_eq!(announcer(&fleet), Some("node-a"));
    fleet
}

/// The announcing node's speaker dies: the event's name is stale at once
/// (memberlist moves the IP within its detection delay, and the new
/// announcer's event may never come), so the announcer turns unknown.
#[test]
fn events_only_an_announcer_whose_speaker_dies_turns_unknown() {
    let mut fleet = events_only();
    fleet.apply(
        ClusterEvent::PodDeleted("metallb-system".into(), "speaker-node-a".into()),
        t(2),
    );
    assert_eq!(announcer(&fleet), None);
    assert_eq!(unknown(&fleet), Some("speaker on node-a gone"));
    assert!(texts(&fleet).contains(&"announcer unknown (speaker on node-a gone)"));
    // A new event from the node that took over names it again.
    fleet.apply(ClusterEvent::Event(assigned(5, "node-b")), t(5));
    assert_eq!((announcer(&fleet), unknown(&fleet)), (Some("node-b"), None));
}

#[test]
fn events_only_a_node_notready_past_the_detection_delay_and_an_expired_event_are_unknown() {
    let mut fleet = events_only();
    let mut down = NodeInfo::bare("node-a", "v1.33.6+k3s1");
    down.conditions = vec![Condition {
        kind: "Ready".into(),
        status: Tri::Unknown,
        reason: "NodeStatusUnknown".into(),
        message: String::new(),
        last_transition: Some(t(10)),
        last_heartbeat: Some(t(0)),
    }];
    fleet.apply(ClusterEvent::Node(down), t(10));
    fleet.tick(t(13));
    assert_eq!(
        announcer(&fleet),
        Some("node-a"),
        "within the detection delay"
    );
    fleet.tick(t(15));
    assert_eq!(unknown(&fleet), Some("node-a NotReady for 5s"));

    let mut fleet = events_only();
    fleet.apply(ClusterEvent::EventDeleted(assigned(1, "node-a")), t(3600));
    assert_eq!(announcer(&fleet), None);
    assert_eq!(unknown(&fleet), Some("no recent event"));
}
