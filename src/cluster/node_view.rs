//! The Node as the node watcher decodes it: labels (roles), cordon and
//! taints, conditions, kubelet version, boot ID and addresses. A real
//! node's status also carries its image list (often tens of kilobytes),
//! capacity and managed fields; every Ready flip or heartbeat-condition
//! update resends all of it, and none of it is on screen.

use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeCondition, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

use super::slim::{slim_meta, slim_resource};

#[derive(Clone, Debug, Deserialize)]
pub struct NodeView {
    #[serde(deserialize_with = "slim_meta")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Option<NodeViewSpec>,
    #[serde(default)]
    pub status: Option<NodeViewStatus>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct NodeViewSpec {
    pub unschedulable: Option<bool>,
    pub taints: Option<Vec<Taint>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeViewStatus {
    pub conditions: Option<Vec<NodeCondition>>,
    pub node_info: Option<KubeletInfo>,
    /// Where a server's API is served (InternalIP), for moving off it.
    #[serde(default)]
    pub addresses: Vec<NodeAddress>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct KubeletInfo {
    #[serde(default, rename = "kubeletVersion")]
    pub kubelet_version: String,
    #[serde(default, rename = "bootID")]
    pub boot_id: String,
}

slim_resource!(NodeView, Node, k8s_openapi::ClusterResourceScope);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use kube::{Resource, ResourceExt};

    /// A K3s server node as the API server sends it (images and managed
    /// fields shortened).
    const NODE: &str = r#"{
      "apiVersion": "v1", "kind": "Node",
      "metadata": {
        "name": "k3s-vm-still-fawn", "resourceVersion": "91234",
        "labels": {"kubernetes.io/hostname": "k3s-vm-still-fawn",
                   "node-role.kubernetes.io/control-plane": "true"},
        "annotations": {"k3s.io/hostname": "k3s-vm-still-fawn",
                        "k3s.io/node-args": "[\"server\",\"--disable\",\"servicelb\"]"},
        "managedFields": [{"manager": "k3s", "operation": "Update", "fieldsType": "FieldsV1",
                           "fieldsV1": {"f:status": {"f:conditions": {}}}}]
      },
      "spec": {"podCIDR": "10.42.1.0/24", "unschedulable": true,
               "taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule",
                           "timeAdded": "2026-01-25T13:40:00Z"}]},
      "status": {
        "conditions": [{"type": "Ready", "status": "False", "reason": "KubeletNotReady",
                        "message": "PLEG is not healthy",
                        "lastHeartbeatTime": "2026-01-25T13:46:00Z",
                        "lastTransitionTime": "2026-01-25T13:45:10Z"}],
        "nodeInfo": {"kubeletVersion": "v1.35.0+k3s1", "bootID": "9f0c", "osImage": "Debian"},
        "images": [{"names": ["docker.io/rancher/mirrored-pause:3.6"], "sizeBytes": 301463}],
        "addresses": [{"type": "InternalIP", "address": "192.168.4.19"}]
      }
    }"#;

    #[test]
    fn decodes_what_the_node_table_shows_and_nothing_else() {
        let n: NodeView = serde_json::from_str(NODE).unwrap();
        assert_eq!(n.name_any(), "k3s-vm-still-fawn");
        assert_eq!(n.resource_version().as_deref(), Some("91234"));
        assert!(
            n.labels()
                .contains_key("node-role.kubernetes.io/control-plane")
        );
        assert!(n.metadata.managed_fields.is_none());
        // Of the annotations only K3s's record of the node's arguments.
        let kept: Vec<&String> = n.annotations().keys().collect();
        assert_eq!(kept, ["k3s.io/node-args"]);
        let info = crate::cluster::convert::node(&n);
        assert_eq!(info.version, "v1.35.0+k3s1");
        assert_eq!(info.boot_id, "9f0c");
        assert_eq!(info.roles, vec!["control-plane"]);
        assert_eq!(
            info.node_args,
            Some(vec![
                "server".into(),
                "--disable".into(),
                "servicelb".into()
            ])
        );
        assert!(info.unschedulable);
        assert_eq!(info.taints[0].key, "node.kubernetes.io/unschedulable");
        let ready = &info.conditions[0];
        assert_eq!(
            (ready.kind.as_str(), ready.reason.as_str()),
            ("Ready", "KubeletNotReady")
        );
        assert_eq!(ready.message, "PLEG is not healthy");
        assert_eq!(
            ready.last_transition.unwrap().to_string(),
            "2026-01-25T13:45:10Z"
        );
        assert_eq!(NodeView::url_path(&(), None), "/api/v1/nodes");
    }

    #[test]
    fn a_node_without_status_is_still_a_node() {
        let n: NodeView = serde_json::from_str(r#"{"metadata": {"name": "n1"}}"#).unwrap();
        let info = crate::cluster::convert::node(&n);
        assert_eq!((info.name.as_str(), info.version.as_str()), ("n1", ""));
        assert!(info.conditions.is_empty());
    }
}
