//! What a (re)started K3s process publishes about its configuration: the
//! `k3s.io/node-args` annotation, and on a server whose arguments no longer
//! disable it, K3s's own service load balancer taking LoadBalancer services
//! (the harm a flag lost in an upgrade does to a MetalLB cluster).

use super::*;

impl Sim {
    pub(super) fn publish_node_config(&mut self, node: usize) {
        let name = self.nodes[node].name.clone();
        let args = self.nodes[node].host.node_args();
        let etcd = self.nodes[node].host.etcd;
        self.store.update(Kind::Node, "", &name, |n| {
            n["metadata"]["annotations"]["k3s.io/node-args"] = json!(args);
            if !etcd && let Some(labels) = n["metadata"]["labels"].as_object_mut() {
                labels.remove("node-role.kubernetes.io/etcd");
            }
        });
        let host = &self.nodes[node].host;
        if !host.servicelb_enabled() || host.servicelb_at_start {
            return;
        }
        let services: Vec<(String, String)> = self
            .services
            .iter()
            .map(|s| (s.namespace.clone(), s.name.clone()))
            .collect();
        for (namespace, svc) in services {
            let key = format!("{namespace}/{svc}");
            if self.servicelb_applied.contains(&key) {
                continue;
            }
            self.servicelb_applied.push(key);
            // K3s's servicelb controller records this on the Service
            // (k3s-io/k3s pkg/cloudprovider/servicelb.go, AppliedDaemonSet).
            let ds = format!("svclb-{svc}-{}", suffix(self.seq + 31));
            self.record(format!(
                "{name}: K3s service load balancer started (--disable servicelb is gone): DaemonSet kube-system/{ds} for {namespace}/{svc}"
            ));
            self.emit_event(
                ("Service", &namespace, &svc),
                "Normal",
                "AppliedDaemonSet",
                &format!("Applied LoadBalancer DaemonSet kube-system/{ds}"),
                "svccontroller",
            );
        }
    }
}
