//! k8s-openapi objects → the model's plain structs. Keeping kube types out of
//! the model keeps it testable without fixtures of whole API objects.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod, Service};
use kube::ResourceExt;
use kube::api::DynamicObject;

use super::node_lease::NodeLease;
use super::node_view::NodeView;
use crate::model::fleet::{
    Condition, EventInfo, L2Info, LeaseInfo, NodeInfo, PodInfo, ServiceInfo, SpeakerBuild, Taint,
    Tri,
};
use crate::text::printable;

pub fn node(n: &NodeView) -> NodeInfo {
    let labels = n.labels();
    let mut roles: Vec<String> = labels
        .keys()
        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect();
    roles.sort();
    let spec = n.spec.as_ref();
    let status = n.status.as_ref();
    let node_args = n
        .annotations()
        .get(super::slim::NODE_ARGS)
        .and_then(|a| serde_json::from_str::<Vec<String>>(a).ok());
    NodeInfo {
        lb_excluded: labels.contains_key(crate::model::metallb::EXCLUDE_LABEL),
        name: n.name_any(),
        roles,
        node_args,
        version: status
            .and_then(|s| s.node_info.as_ref())
            .map(|i| i.kubelet_version.clone())
            .unwrap_or_default(),
        unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
        taints: spec
            .and_then(|s| s.taints.as_ref())
            .map(|ts| {
                ts.iter()
                    .map(|t| Taint {
                        key: t.key.clone(),
                        effect: t.effect.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        conditions: status
            .and_then(|s| s.conditions.as_ref())
            .map(|cs| {
                cs.iter()
                    .map(|c| Condition {
                        kind: c.type_.clone(),
                        status: Tri::parse(&c.status),
                        reason: free_text(c.reason.as_deref()),
                        message: free_text(c.message.as_deref()),
                        last_transition: c.last_transition_time.as_ref().map(|t| t.0),
                        last_heartbeat: c.last_heartbeat_time.as_ref().map(|t| t.0),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        boot_id: status
            .and_then(|s| s.node_info.as_ref())
            .map(|i| i.boot_id.clone())
            .unwrap_or_default(),
        internal_ip: status.and_then(|s| {
            s.addresses
                .iter()
                .find(|a| a.type_ == "InternalIP")
                .map(|a| a.address.clone())
        }),
    }
}

/// A free-text field (a reason, a message) as the model keeps it: printable,
/// on one line. Names are left alone: the API server validates them, and the
/// cockpit sends them back to it.
fn free_text(text: Option<&str>) -> String {
    printable(text.unwrap_or_default()).into_owned()
}

pub fn lease(l: &NodeLease) -> LeaseInfo {
    let spec = l.spec.as_ref();
    LeaseInfo {
        node: l.name_any(),
        holder: spec
            .and_then(|s| s.holder_identity.clone())
            .unwrap_or_default(),
        renewed: spec.and_then(|s| s.renew_time.as_ref()).map(|t| t.0),
        duration: Duration::from_secs(
            spec.and_then(|s| s.lease_duration_seconds)
                .and_then(|d| u64::try_from(d).ok())
                .unwrap_or(40),
        ),
    }
}

/// LoadBalancer services only; others are not the cockpit's business.
pub fn service(s: &Service) -> Option<ServiceInfo> {
    let spec = s.spec.as_ref()?;
    if spec.type_.as_deref() != Some("LoadBalancer") {
        return None;
    }
    let ips = s
        .status
        .as_ref()
        .and_then(|st| st.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ing| ing.iter().filter_map(|i| i.ip.clone()).collect())
        .unwrap_or_default();
    Some(ServiceInfo {
        namespace: s.namespace().unwrap_or_default(),
        name: s.name_any(),
        ips,
        ports: spec
            .ports
            .iter()
            .flatten()
            .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
            .filter_map(|p| u16::try_from(p.port).ok())
            .collect(),
        selector: spec
            .selector
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
    })
}

pub fn pod(p: &Pod) -> Option<PodInfo> {
    let node = p.spec.as_ref()?.node_name.clone()?;
    let ready = p
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let mut info = PodInfo {
        namespace: p.namespace().unwrap_or_default(),
        name: p.name_any(),
        node,
        labels: p.labels().clone().into_iter().collect::<BTreeMap<_, _>>(),
        ready,
        speaker: None,
    };
    if info.is_speaker() {
        info.speaker = speaker_build(p);
    }
    Some(info)
}

/// The speaker container's image and whether it ignores the exclude label.
fn speaker_build(p: &Pod) -> Option<SpeakerBuild> {
    let containers = &p.spec.as_ref()?.containers;
    let c = containers
        .iter()
        .find(|c| c.name == "speaker")
        .or(containers.first())?;
    let flag = crate::model::metallb::IGNORE_FLAG;
    let ignore_exclude_lb = c.args.iter().chain(c.command.iter()).flatten().any(|a| {
        a == flag || a.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) == Some("true")
    });
    Some(SpeakerBuild {
        image: c.image.clone().unwrap_or_default(),
        ignore_exclude_lb,
    })
}

pub fn event(e: &Event) -> EventInfo {
    let obj = &e.involved_object;
    EventInfo {
        kind: obj.kind.clone().unwrap_or_default(),
        namespace: obj.namespace.clone().unwrap_or_default(),
        name: obj.name.clone().unwrap_or_default(),
        reason: free_text(e.reason.as_deref()),
        message: free_text(e.message.as_deref()),
        event_type: e.type_.clone().unwrap_or_default(),
        component: e
            .source
            .as_ref()
            .and_then(|s| s.component.clone())
            .unwrap_or_default(),
        at: e
            .last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or_else(|| e.event_time.as_ref().map(|t| t.0)),
    }
}

pub fn l2_status(o: &DynamicObject) -> Option<L2Info> {
    let status = o.data.get("status")?;
    let text = |k: &str| status.get(k).and_then(|v| v.as_str()).map(str::to_string);
    Some(L2Info {
        object: format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any()),
        node: text("node")?,
        service: (text("serviceNamespace")?, text("serviceName")?),
    })
}
