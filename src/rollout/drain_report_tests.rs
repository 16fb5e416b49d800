use super::*;
use serde_json::json;

fn pod(name: &str, node: &str, owner: Option<(&str, &str)>, extra: serde_json::Value) -> Pod {
    let mut p = json!({"metadata": {"name": name, "namespace": "apps", "uid": name,
                                    "labels": {"app": name.split('-').next().unwrap()}},
                       "spec": {"nodeName": node, "containers": [{"name": "c"}]},
                       "status": {"phase": "Running"}});
    if let Some((kind, owner)) = owner {
        p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": kind,
            "name": owner, "uid": "u", "controller": true}]);
    }
    if let Some(vols) = extra.get("volumes") {
        p["spec"]["volumes"] = vols.clone();
    }
    if let Some(ann) = extra.get("annotations") {
        p["metadata"]["annotations"] = ann.clone();
    }
    serde_json::from_value(p).unwrap()
}

fn web(name: &str, node: &str) -> Pod {
    pod(name, node, Some(("ReplicaSet", "web-5f")), json!({}))
}

fn findings_of(r: &DrainReport, pod: &str) -> Vec<(Finding, Level)> {
    r.lines
        .iter()
        .filter(|l| l.pod == format!("apps/{pod}"))
        .map(|l| (l.finding.clone(), l.level))
        .collect()
}

#[test]
fn unmanaged_pod_blocks_unless_forced_and_then_will_not_come_back() {
    let cluster = ClusterPods {
        pods: vec![
            pod("debug-shell", "a", None, json!({})),
            web("web-1", "a"),
            web("web-2", "b"),
        ],
        ..Default::default()
    };
    let strict = DrainSpec::default();
    let r = report("a", &cluster, &strict);
    assert_eq!(
        findings_of(&r, "debug-shell"),
        vec![(Finding::Unmanaged, Level::Block)]
    );
    let why = r.refusal(&strict).unwrap();
    assert!(
        why.contains("apps/debug-shell") && why.contains("drain.force"),
        "{why}"
    );
    let forced = DrainSpec {
        force: true,
        ..DrainSpec::default()
    };
    let r = report("a", &cluster, &forced);
    assert_eq!(r.refusal(&forced), None);
    let line = &r.lines[0];
    assert_eq!(line.level, Level::Warn);
    assert!(
        line.text(&forced).contains("will not come back"),
        "{}",
        line.text(&forced)
    );
    assert!(
        r.evict
            .iter()
            .any(|p| p.name == "debug-shell" && p.unmanaged)
    );
}

#[test]
fn daemonset_mirror_and_finished_pods_are_skipped() {
    let mut done = web("web-9", "a");
    done.status.as_mut().unwrap().phase = Some("Succeeded".into());
    let cluster = ClusterPods {
        pods: vec![
            pod("speaker-x", "a", Some(("DaemonSet", "speaker")), json!({})),
            pod(
                "etcd-a",
                "a",
                None,
                json!({"annotations": {"kubernetes.io/config.mirror": "h"}}),
            ),
            done,
        ],
        ..Default::default()
    };
    let r = report("a", &cluster, &DrainSpec::default());
    assert!(r.lines.is_empty() && r.evict.is_empty(), "{r:?}");
    let why: Vec<&str> = r.skipped.iter().map(|s| s.1).collect();
    assert_eq!(why, vec!["DaemonSet pod", "mirror pod", "finished"]);
}

#[test]
fn emptydir_local_volume_and_single_replica_are_reported() {
    let vols = json!({"volumes": [{"name": "s", "emptyDir": {}},
                                  {"name": "d", "persistentVolumeClaim": {"claimName": "db-data"}}]});
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "db-data", "namespace": "apps"},
        "spec": {"storageClassName": "local-path"}}))
    .unwrap();
    let cluster = ClusterPods {
        pods: vec![pod("db-0", "a", Some(("StatefulSet", "db")), vols)],
        pvcs: vec![pvc],
        ..Default::default()
    };
    let r = report("a", &cluster, &DrainSpec::default());
    assert_eq!(
        findings_of(&r, "db-0"),
        vec![
            (
                Finding::SingleReplica {
                    owner: "StatefulSet apps/db".into()
                },
                Level::Warn
            ),
            (Finding::EmptyDir, Level::Block),
            (
                Finding::LocalVolume {
                    claim: "db-data".into(),
                    class: "local-path".into()
                },
                Level::Warn
            ),
        ]
    );
    let ok = DrainSpec {
        delete_emptydir_data: true,
        ..DrainSpec::default()
    };
    assert_eq!(report("a", &cluster, &ok).blocks().count(), 0);
}

#[test]
fn a_budget_allowing_no_disruption_blocks_and_names_the_fix() {
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "apps"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
        "status": {"disruptionsAllowed": 0, "currentHealthy": 2, "desiredHealthy": 2, "expectedPods": 2}
    })).unwrap();
    let cluster = ClusterPods {
        pods: vec![web("web-1", "a"), web("web-2", "b")],
        pdbs: vec![pdb],
        ..Default::default()
    };
    let r = report("a", &cluster, &DrainSpec::default());
    let block: Vec<&Line> = r.blocks().collect();
    assert_eq!(block.len(), 1, "{r:?}");
    let text = block[0].text(&DrainSpec::default());
    assert!(
        text.contains("PodDisruptionBudget apps/web allows no disruption"),
        "{text}"
    );
    assert!(block[0].fix().contains("drain.pdb_blocking"));
    // A budget block is the report's, not the drain's: the drain waits on it.
    assert_eq!(r.refusal(&DrainSpec::default()), None);
}
