//! Server-side printing: `meta.k8s.io/v1` Tables, which kubectl asks for so
//! that `kubectl get` shows the usual columns instead of only NAME and AGE.

use serde_json::{Value, json};

use super::store::Kind;

/// (name, priority): priority 0 is always shown, 1 only with `-o wide`.
type Column = (&'static str, u8);

fn columns(kind: Kind) -> &'static [Column] {
    match kind {
        Kind::Node => &[
            ("Name", 0),
            ("Status", 0),
            ("Roles", 0),
            ("Age", 0),
            ("Version", 0),
            ("Internal-IP", 1),
            ("External-IP", 1),
            ("OS-Image", 1),
            ("Kernel-Version", 1),
            ("Container-Runtime", 1),
        ],
        Kind::Lease => &[("Name", 0), ("Holder", 0), ("Age", 0)],
        Kind::Service => &[
            ("Name", 0),
            ("Type", 0),
            ("Cluster-IP", 0),
            ("External-IP", 0),
            ("Port(s)", 0),
            ("Age", 0),
        ],
        Kind::Pod => &[
            ("Name", 0),
            ("Ready", 0),
            ("Status", 0),
            ("Restarts", 0),
            ("Age", 0),
            ("Node", 1),
        ],
        Kind::Event => &[
            ("Last Seen", 0),
            ("Type", 0),
            ("Reason", 0),
            ("Object", 0),
            ("Message", 0),
        ],
        Kind::DaemonSet => &[("Name", 0), ("Desired", 0), ("Age", 0)],
        Kind::ServiceL2Status => &[
            ("Name", 0),
            ("Allocated Node", 0),
            ("Service Name", 0),
            ("Service Namespace", 0),
            ("Age", 0),
        ],
        Kind::PodDisruptionBudget => &[
            ("Name", 0),
            ("Min Available", 0),
            ("Max Unavailable", 0),
            ("Allowed Disruptions", 0),
            ("Age", 0),
        ],
        Kind::PersistentVolumeClaim => &[
            ("Name", 0),
            ("Status", 0),
            ("Volume", 0),
            ("StorageClass", 0),
            ("Age", 0),
        ],
    }
}

/// A PDB bound as kubectl prints it: the number or percentage, else N/A.
fn or_na(v: &Value) -> String {
    match v {
        Value::Null => "N/A".into(),
        Value::String(t) => t.clone(),
        other => other.to_string(),
    }
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn age(ts: &Value) -> String {
    let Some(t) = ts.as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok()) else {
        return "<unknown>".into();
    };
    let secs = (jiff::Timestamp::now() - t).get_seconds().max(0);
    short_duration(secs)
}

/// `kubectl`-style short duration: 45s, 12m, 3h, 2d.
pub fn short_duration(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn node_roles(node: &Value) -> String {
    let mut roles: Vec<&str> = node["metadata"]["labels"]
        .as_object()
        .map(|labels| {
            labels
                .keys()
                .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                .collect()
        })
        .unwrap_or_default();
    roles.sort_unstable();
    if roles.is_empty() {
        "<none>".into()
    } else {
        roles.join(",")
    }
}

fn node_status(node: &Value) -> String {
    let ready = node["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .map(|c| c["status"] == "True")
        .unwrap_or(false);
    let mut status = if ready { "Ready" } else { "NotReady" }.to_string();
    if node["spec"]["unschedulable"] == true {
        status.push_str(",SchedulingDisabled");
    }
    status
}

fn address(node: &Value, kind: &str) -> String {
    node["status"]["addresses"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["type"] == kind))
        .map_or("<none>".into(), |x| s(&x["address"]))
}

/// A service's EXTERNAL-IP: its LoadBalancer addresses, or `<pending>`.
fn external_ips(svc: &Value) -> String {
    let ingress: Vec<String> = svc["status"]["loadBalancer"]["ingress"]
        .as_array()
        .map(|a| a.iter().map(|i| s(&i["ip"])).collect())
        .unwrap_or_default();
    if ingress.is_empty() {
        "<pending>".into()
    } else {
        ingress.join(",")
    }
}

/// A service's PORT(S): `80/TCP,443/TCP`.
fn service_ports(svc: &Value) -> String {
    let ports: Vec<String> = svc["spec"]["ports"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| format!("{}/{}", p["port"], s(&p["protocol"])))
                .collect()
        })
        .unwrap_or_default();
    ports.join(",")
}

/// A pod's READY, as if it had one container: the lab's pods do.
fn pod_ready(pod: &Value) -> &'static str {
    let ready = pod["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .is_some_and(|c| c["status"] == "True");
    if ready { "1/1" } else { "0/1" }
}

fn cells(kind: Kind, o: &Value) -> Vec<Value> {
    let name = s(&o["metadata"]["name"]);
    let created = &o["metadata"]["creationTimestamp"];
    let cells: Vec<String> = match kind {
        Kind::Node => {
            let info = &o["status"]["nodeInfo"];
            vec![
                name,
                node_status(o),
                node_roles(o),
                age(created),
                s(&info["kubeletVersion"]),
                address(o, "InternalIP"),
                address(o, "ExternalIP"),
                s(&info["osImage"]),
                s(&info["kernelVersion"]),
                s(&info["containerRuntimeVersion"]),
            ]
        }
        Kind::Lease => vec![name, s(&o["spec"]["holderIdentity"]), age(created)],
        Kind::Service => vec![
            name,
            s(&o["spec"]["type"]),
            s(&o["spec"]["clusterIP"]),
            external_ips(o),
            service_ports(o),
            age(created),
        ],
        Kind::Pod => vec![
            name,
            pod_ready(o).into(),
            s(&o["status"]["phase"]),
            "0".into(),
            age(created),
            s(&o["spec"]["nodeName"]),
        ],
        Kind::Event => {
            let obj = &o["involvedObject"];
            vec![
                age(&o["lastTimestamp"]),
                s(&o["type"]),
                s(&o["reason"]),
                format!("{}/{}", s(&obj["kind"]).to_lowercase(), s(&obj["name"])),
                s(&o["message"]),
            ]
        }
        Kind::DaemonSet => vec![
            name,
            o["status"]["desiredNumberScheduled"].to_string(),
            age(created),
        ],
        Kind::ServiceL2Status => vec![
            name,
            s(&o["status"]["node"]),
            s(&o["status"]["serviceName"]),
            s(&o["status"]["serviceNamespace"]),
            age(created),
        ],
        Kind::PodDisruptionBudget => vec![
            name,
            or_na(&o["spec"]["minAvailable"]),
            or_na(&o["spec"]["maxUnavailable"]),
            o["status"]["disruptionsAllowed"].to_string(),
            age(created),
        ],
        Kind::PersistentVolumeClaim => vec![
            name,
            s(&o["status"]["phase"]),
            s(&o["spec"]["volumeName"]),
            s(&o["spec"]["storageClassName"]),
            age(created),
        ],
    };
    cells.into_iter().map(Value::String).collect()
}

/// A Table of `objects`, at list version `rv`.
pub fn table<'a>(kind: Kind, objects: impl IntoIterator<Item = &'a Value>, rv: u64) -> Value {
    let defs: Vec<Value> = columns(kind)
        .iter()
        .map(|(name, priority)| {
            json!({"name": name, "type": "string", "format": if *name == "Name" {"name"} else {""},
                   "description": "", "priority": priority})
        })
        .collect();
    let rows: Vec<Value> = objects
        .into_iter()
        .map(|o| {
            json!({"cells": cells(kind, o), "object": {
                "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                "metadata": o["metadata"]}})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1",
           "metadata": {"resourceVersion": rv.to_string()},
           "columnDefinitions": defs, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_row_has_kubectl_columns() {
        let node = json!({"metadata": {"name": "n1", "labels": {
            "node-role.kubernetes.io/master": "true", "node-role.kubernetes.io/control-plane": "true"}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "nodeInfo": {"kubeletVersion": "v1.33.6+k3s1"}}});
        let t = table(Kind::Node, [&node], 7);
        let row = &t["rows"][0]["cells"];
        assert_eq!(row[0], "n1");
        assert_eq!(row[1], "Ready,SchedulingDisabled");
        assert_eq!(row[2], "control-plane,master");
        assert_eq!(row[4], "v1.33.6+k3s1");
    }

    #[test]
    fn short_durations() {
        assert_eq!(short_duration(5), "5s");
        assert_eq!(short_duration(600), "10m");
        assert_eq!(short_duration(3 * 86_400), "3d");
    }
}
