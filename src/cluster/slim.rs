//! Slim decodes: API objects as the watchers decode them, with only what the
//! cockpit reads. serde skips the rest (managed fields, owner references,
//! a node's image list) without building it.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Deserializer};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlimMeta {
    name: Option<String>,
    namespace: Option<String>,
    resource_version: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
}

/// The one annotation the cockpit reads: K3s's record of a node's
/// arguments, compared before and after an upgrade.
pub const NODE_ARGS: &str = "k3s.io/node-args";

/// Name, namespace, resourceVersion (the watcher resumes from it), labels
/// and the [`NODE_ARGS`] annotation.
pub(super) fn slim_meta<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let m = SlimMeta::deserialize(d)?;
    Ok(ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        resource_version: m.resource_version,
        labels: m.labels,
        annotations: m
            .annotations
            .map(|mut a| {
                a.retain(|k, _| k == NODE_ARGS);
                a
            })
            .filter(|a| !a.is_empty()),
        ..ObjectMeta::default()
    })
}

/// `kube::Resource` for a slim type, borrowing kind, group, version and
/// plural from the full k8s-openapi type it stands for.
macro_rules! slim_resource {
    ($slim:ty, $full:ty, $scope:ty) => {
        impl kube::Resource for $slim {
            type DynamicType = ();
            type Scope = $scope;

            fn kind(_: &()) -> std::borrow::Cow<'_, str> {
                <$full as k8s_openapi::Resource>::KIND.into()
            }

            fn group(_: &()) -> std::borrow::Cow<'_, str> {
                <$full as k8s_openapi::Resource>::GROUP.into()
            }

            fn version(_: &()) -> std::borrow::Cow<'_, str> {
                <$full as k8s_openapi::Resource>::VERSION.into()
            }

            fn plural(_: &()) -> std::borrow::Cow<'_, str> {
                <$full as k8s_openapi::Resource>::URL_PATH_SEGMENT.into()
            }

            fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &self.metadata
            }

            fn meta_mut(
                &mut self,
            ) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &mut self.metadata
            }
        }
    };
}
pub(super) use slim_resource;
