//! Discovery documents (`/version`, `/api`, `/apis`, resource lists): what
//! kubectl reads before it sends any real request.

use serde_json::{Value, json};

use super::store::Kind;

pub fn version() -> Value {
    json!({
        "major": "1", "minor": "33", "gitVersion": "v1.33.6+k3s1",
        "gitCommit": "k3s-cockpit-lab", "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24.9",
        "compiler": "gc", "platform": "linux/amd64"
    })
}

pub fn core_versions() -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
           "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
}

const GROUPS: [(&str, &str); 4] = [
    ("apps", "v1"),
    ("coordination.k8s.io", "v1"),
    ("policy", "v1"),
    ("metallb.io", "v1beta1"),
];

pub fn group_list() -> Value {
    let groups: Vec<Value> = GROUPS
        .iter()
        .map(|(g, v)| {
            let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource(kind: Kind, verbs: &[&str], short: &[&str]) -> Value {
    json!({
        "name": kind.plural(), "singularName": kind.kind_name().to_lowercase(),
        "namespaced": kind.namespaced(), "kind": kind.kind_name(),
        "verbs": verbs, "shortNames": short
    })
}

const READ: [&str; 3] = ["get", "list", "watch"];

/// The resource list for one group/version, or None when the lab does not
/// serve it.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let resources = match (group, version) {
        ("", "v1") => vec![
            resource(Kind::Node, &["get", "list", "watch", "patch"], &["no"]),
            json!({"name": "nodes/status", "namespaced": false, "kind": "Node", "verbs": ["get"]}),
            resource(Kind::Service, &READ, &["svc"]),
            resource(Kind::Pod, &["get", "list", "watch", "delete"], &["po"]),
            json!({"name": "pods/eviction", "namespaced": true, "kind": "Eviction",
                   "group": "policy", "version": "v1", "verbs": ["create"]}),
            resource(Kind::Event, &READ, &["ev"]),
            resource(Kind::PersistentVolumeClaim, &READ, &["pvc"]),
            json!({"name": "namespaces", "singularName": "namespace", "namespaced": false,
                   "kind": "Namespace", "verbs": READ, "shortNames": ["ns"]}),
        ],
        ("coordination.k8s.io", "v1") => vec![resource(Kind::Lease, &READ, &[])],
        ("apps", "v1") => vec![resource(Kind::DaemonSet, &READ, &["ds"])],
        ("policy", "v1") => vec![resource(Kind::PodDisruptionBudget, &READ, &["pdb"])],
        ("metallb.io", "v1beta1") => vec![resource(Kind::ServiceL2Status, &READ, &[])],
        _ => return None,
    };
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": group_version, "resources": resources}))
}
