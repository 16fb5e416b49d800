//! The node Lease as the lease watcher decodes it: only what the cockpit
//! reads. Every node renews its lease every 10 s, so at 5,000 nodes 500
//! leases a second arrive; decoding the full `Lease` builds an `ObjectMeta`
//! with owner references, managed fields and timestamps for each one, only
//! to drop them. Here serde skips those without allocating.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use serde::Deserialize;

use super::slim::{slim_meta, slim_resource};

/// A `coordination.k8s.io/v1` Lease with its name, resourceVersion (the
/// watcher resumes from it) and the renewal fields of its spec.
#[derive(Clone, Debug, Deserialize)]
pub struct NodeLease {
    #[serde(deserialize_with = "slim_meta")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Option<RenewalSpec>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenewalSpec {
    pub holder_identity: Option<String>,
    pub lease_duration_seconds: Option<i32>,
    pub renew_time: Option<MicroTime>,
}

slim_resource!(NodeLease, Lease, k8s_openapi::NamespaceResourceScope);

#[cfg(test)]
mod tests {
    use super::*;
    use kube::{Resource, ResourceExt};

    /// A K3s node lease as the API server sends it, managed fields included.
    const LEASE: &str = r#"{
      "apiVersion": "coordination.k8s.io/v1",
      "kind": "Lease",
      "metadata": {
        "creationTimestamp": "2026-01-20T09:00:00Z",
        "managedFields": [{"apiVersion": "coordination.k8s.io/v1", "fieldsType": "FieldsV1",
          "fieldsV1": {"f:spec": {"f:renewTime": {}}}, "manager": "k3s", "operation": "Update",
          "time": "2026-01-25T13:46:00Z"}],
        "name": "k3s-vm-fun-bedbug",
        "namespace": "kube-node-lease",
        "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "k3s-vm-fun-bedbug",
          "uid": "6c1f1b7e-0000-4000-8000-000000000001"}],
        "resourceVersion": "48213",
        "uid": "0b8c1a9e-0000-4000-8000-000000000002"
      },
      "spec": {
        "holderIdentity": "k3s-vm-fun-bedbug",
        "leaseDurationSeconds": 40,
        "renewTime": "2026-01-25T13:46:01.123456Z"
      }
    }"#;

    #[test]
    fn decodes_what_the_cockpit_reads_and_nothing_else() {
        let l: NodeLease = serde_json::from_str(LEASE).unwrap();
        assert_eq!(l.name_any(), "k3s-vm-fun-bedbug");
        assert_eq!(l.namespace().as_deref(), Some("kube-node-lease"));
        assert_eq!(l.resource_version().as_deref(), Some("48213"));
        assert!(l.metadata.managed_fields.is_none());
        let spec = l.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("k3s-vm-fun-bedbug"));
        assert_eq!(spec.lease_duration_seconds, Some(40));
        assert_eq!(
            spec.renew_time.unwrap().0.to_string(),
            "2026-01-25T13:46:01.123456Z"
        );
        assert_eq!(
            NodeLease::url_path(&(), Some("kube-node-lease")),
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
        );
    }

    #[test]
    fn a_lease_without_spec_is_still_a_lease() {
        let l: NodeLease =
            serde_json::from_str(r#"{"metadata": {"name": "n1", "resourceVersion": "7"}}"#)
                .unwrap();
        assert_eq!(l.name_any(), "n1");
        assert!(l.spec.is_none());
    }
}
