//! Builders for the objects a K3s cluster with MetalLB shows: they carry the
//! labels, annotations and field shapes of the real thing so clients cannot
//! tell the lab from a small cluster.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::scenario::{MetallbSpec, Role};
use super::store::{now_rfc3339, now_rfc3339_micro};

pub const LEASE_NAMESPACE: &str = "kube-node-lease";
pub const METALLB_NAMESPACE: &str = "metallb-system";
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";

pub fn node(name: &str, role: Role, version: &str, index: usize) -> Value {
    let mut labels = json!({
        "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": "k3s", "beta.kubernetes.io/instance-type": "k3s",
    });
    if role == Role::Server {
        for r in ["control-plane", "master", "etcd"] {
            labels[format!("node-role.kubernetes.io/{r}")] = json!("true");
        }
    }
    // Display-only addresses: the lab never sends traffic to them.
    let ip = format!("10.77.{}.{}", index / 250, index % 250 + 2);
    json!({
        "metadata": {"name": name, "labels": labels, "annotations": {
            "k3s.io/hostname": name, "k3s.io/internal-ip": ip,
            "flannel.alpha.coreos.com/backend-type": "vxlan",
            "node.alpha.kubernetes.io/ttl": "0"}},
        "spec": {"podCIDR": format!("10.42.{index}.0/24"), "providerID": format!("k3s://{name}")},
        "status": {
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "nodeInfo": node_info(version, index),
            "capacity": {"cpu": "4", "memory": "8148008Ki", "pods": "110"},
            "allocatable": {"cpu": "4", "memory": "8148008Ki", "pods": "110"},
        }
    })
}

pub fn node_info(version: &str, boot: usize) -> Value {
    json!({
        "kubeletVersion": version, "kubeProxyVersion": "",
        "osImage": "Debian GNU/Linux 12 (bookworm)", "kernelVersion": "6.1.0-41-amd64",
        "containerRuntimeVersion": "containerd://2.1.5-k3s1", "operatingSystem": "linux",
        "architecture": "amd64", "bootID": format!("boot-{boot:08x}"),
        "machineID": format!("{boot:032x}"), "systemUUID": format!("{boot:032x}"),
    })
}

pub fn condition(kind: &str, status: &str, reason: &str, message: &str) -> Value {
    let now = now_rfc3339();
    json!({"type": kind, "status": status, "reason": reason, "message": message,
           "lastHeartbeatTime": now, "lastTransitionTime": now})
}

/// Sets one condition, keeping `lastTransitionTime` unless the status changed.
pub fn set_condition(node: &mut Value, kind: &str, status: &str, reason: &str, message: &str) {
    let now = now_rfc3339();
    let Some(conds) = node["status"]["conditions"].as_array_mut() else {
        return;
    };
    match conds.iter_mut().find(|c| c["type"] == kind) {
        Some(c) => {
            if c["status"] != status {
                c["lastTransitionTime"] = json!(now);
            }
            c["status"] = json!(status);
            c["reason"] = json!(reason);
            c["message"] = json!(message);
            c["lastHeartbeatTime"] = json!(now);
        }
        None => conds.push(condition(kind, status, reason, message)),
    }
}

pub fn lease(node: &str, duration_secs: u64) -> Value {
    json!({
        "metadata": {"name": node, "namespace": LEASE_NAMESPACE,
                     "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": ""}]},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": duration_secs,
                 "renewTime": now_rfc3339_micro()}
    })
}

pub fn service(namespace: &str, name: &str, ip: &str, port: u16, index: usize) -> Value {
    json!({
        "metadata": {"name": name, "namespace": namespace,
                     "annotations": {"metallb.io/ip-allocated-from-pool": "lab-pool"}},
        "spec": {"type": "LoadBalancer", "clusterIP": format!("10.43.0.{}", index + 10),
                 "selector": {"app": name}, "externalTrafficPolicy": "Cluster",
                 "ports": [{"name": "http", "port": port, "targetPort": port, "protocol": "TCP"}]},
        "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}
    })
}

pub fn workload_pod(namespace: &str, app: &str, suffix: &str, node: &str) -> Value {
    json!({
        "metadata": {"name": format!("{app}-7d8ff58b5d-{suffix}"), "namespace": namespace,
                     "labels": {"app": app, "pod-template-hash": "7d8ff58b5d"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                          "name": format!("{app}-7d8ff58b5d"), "uid": "", "controller": true}]},
        "spec": {"nodeName": node, "containers": [{"name": app, "image": format!("{app}:stable")}]},
        "status": {"phase": "Running", "conditions": [pod_ready_condition(true)]}
    })
}

pub fn speaker_pod(node: &str, suffix: &str, version: &str) -> Value {
    json!({
        "metadata": {"name": format!("speaker-{suffix}"), "namespace": METALLB_NAMESPACE,
                     "labels": {"app": "metallb", "component": "speaker"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet",
                                          "name": "speaker", "uid": "", "controller": true}]},
        "spec": {"nodeName": node, "containers": [{"name": "speaker", "image": format!("quay.io/metallb/speaker:{version}")}]},
        "status": {"phase": "Running", "conditions": [pod_ready_condition(true)]}
    })
}

pub fn speaker_daemonset(nodes: usize, metallb: &MetallbSpec) -> Value {
    let mut args = vec!["--port=7472".to_string(), "--log-level=info".to_string()];
    if metallb.ignore_exclude_lb {
        args.push(crate::model::metallb::IGNORE_FLAG.to_string());
    }
    json!({
        "metadata": {"name": "speaker", "namespace": METALLB_NAMESPACE, "labels": {"app": "metallb"}},
        "spec": {"selector": {"matchLabels": {"app": "metallb", "component": "speaker"}},
                 "template": {"metadata": {"labels": {"app": "metallb", "component": "speaker"}},
                              "spec": {"containers": [{"name": "speaker", "args": args,
                                  "image": format!("quay.io/metallb/speaker:{}", metallb.version)}]}}},
        "status": {"desiredNumberScheduled": nodes, "numberReady": nodes}
    })
}

pub fn pod_ready_condition(ready: bool) -> Value {
    json!({"type": "Ready", "status": if ready {"True"} else {"False"},
           "lastTransitionTime": now_rfc3339()})
}

pub fn l2_status(name: &str, node: &str, svc_namespace: &str, svc_name: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": METALLB_NAMESPACE,
                     "labels": {"metallb.io/node": node, "metallb.io/service-name": svc_name,
                                "metallb.io/service-namespace": svc_namespace}},
        "spec": {},
        "status": {"node": node, "serviceName": svc_name, "serviceNamespace": svc_namespace,
                   "interfaces": [{"name": "eth0"}]}
    })
}

/// A core/v1 Event about `(kind, namespace, name)`.
pub fn event(
    seq: u64,
    involved: (&str, &str, &str),
    event_type: &str,
    reason: &str,
    message: &str,
    component: &str,
) -> Value {
    let (kind, namespace, name) = involved;
    let ns = if namespace.is_empty() {
        "default"
    } else {
        namespace
    };
    let now = now_rfc3339();
    json!({
        "metadata": {"name": format!("{name}.{seq:016x}"), "namespace": ns},
        "involvedObject": {"kind": kind, "name": name, "namespace": namespace,
                           "apiVersion": if kind == "Service" || kind == "Node" || kind == "Pod" {"v1"} else {""}},
        "reason": reason, "message": message, "type": event_type,
        "source": {"component": component}, "reportingComponent": component,
        "firstTimestamp": now, "lastTimestamp": now, "count": 1
    })
}

/// MetalLB's L2 order: sha256(node + "#" + ip), ascending; first announces.
pub fn l2_rank(node: &str, ip: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(node.as_bytes());
    h.update(b"#");
    h.update(ip.as_bytes());
    h.finalize().into()
}

/// The status a K3s restart posts first ("container runtime status check may
/// not have completed yet"), before the kubelet reports Ready.
pub const KUBELET_STARTING: &str = "container runtime status check may not have completed yet";
