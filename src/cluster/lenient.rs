//! Per-object decoding for the watchers.
//!
//! kube-runtime's watcher decodes a list page or a watch event as a whole,
//! so one object the cockpit cannot decode (a node whose `spec.unschedulable`
//! is a string, written by a buggy controller or an API server without
//! validation) failed the whole list: the node table showed "Nodes 0" and the
//! watcher retried forever. [`Lenient`] decodes each object on its own: the
//! list goes through, and the bad object is named in a warning and skipped.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// An object that did not decode: who it is and why.
#[derive(Clone, Debug)]
pub struct Undecodable {
    /// Name, namespace and resourceVersion, read from the raw JSON as far
    /// as they are strings (the watcher resumes from the version).
    pub metadata: ObjectMeta,
    pub error: String,
}

impl Undecodable {
    /// `namespace/name` (or `name`), for messages.
    pub fn id(&self) -> String {
        let name = self.metadata.name.as_deref().unwrap_or("<unnamed>");
        match self.metadata.namespace.as_deref() {
            Some(ns) => format!("{ns}/{name}"),
            None => name.to_string(),
        }
    }
}

/// `K` as decoded from one object of a list or watch event, or why that
/// object did not decode (boxed: the rare case should not size the common).
#[derive(Clone, Debug)]
pub struct Lenient<K>(pub Result<K, Box<Undecodable>>);

impl<'de, K: DeserializeOwned> Deserialize<'de> for Lenient<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // The object's own text, so `K` decodes from it as it would have
        // from the list: no intermediate tree, slim views stay slim.
        let raw = Box::<RawValue>::deserialize(d)?;
        Ok(Lenient(decode(raw.get())))
    }
}

/// Decodes one object's JSON as `K`, or names it and says why not.
pub fn decode<K: DeserializeOwned>(json: &str) -> Result<K, Box<Undecodable>> {
    serde_json::from_str(json).map_err(|e| {
        Box::new(Undecodable {
            metadata: identity(json),
            error: e.to_string(),
        })
    })
}

/// Name, namespace and resourceVersion of an object that did not decode,
/// taking each only if it is a string.
fn identity(json: &str) -> ObjectMeta {
    let value: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    let text = |key: &str| value["metadata"][key].as_str().map(str::to_string);
    ObjectMeta {
        name: text("name"),
        namespace: text("namespace"),
        resource_version: text("resourceVersion"),
        ..ObjectMeta::default()
    }
}

impl<K: Resource> Resource for Lenient<K> {
    type DynamicType = K::DynamicType;
    type Scope = K::Scope;

    fn kind(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::version(dt)
    }

    fn plural(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        match &self.0 {
            Ok(k) => k.meta(),
            Err(u) => &u.metadata,
        }
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match &mut self.0 {
            Ok(k) => k.meta_mut(),
            Err(u) => &mut u.metadata,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cluster::node_view::NodeView;
    use kube::ResourceExt;

    /// A list page with one good node and one whose `unschedulable` is a
    /// string: the page decodes, the good node is there, the bad one is
    /// named with the field error.
    #[test]
    fn one_bad_node_does_not_sink_the_list() {
        let page = r#"{"kind": "NodeList", "apiVersion": "v1",
            "metadata": {"resourceVersion": "12"},
            "items": [
              {"metadata": {"name": "good", "resourceVersion": "10"},
               "spec": {"unschedulable": true}},
              {"metadata": {"name": "bad", "resourceVersion": "11"},
               "spec": {"unschedulable": "yes"}}
            ]}"#;
        let list: kube::core::ObjectList<Lenient<NodeView>> = serde_json::from_str(page).unwrap();
        let (good, bad): (Vec<_>, Vec<_>) =
            list.items.into_iter().map(|o| o.0).partition(Result::is_ok);
        let good = good.into_iter().next().unwrap().unwrap();
        assert_eq!(good.name_any(), "good");
        assert_eq!(good.spec.unwrap().unschedulable, Some(true));
        let bad = bad.into_iter().next().unwrap().unwrap_err();
        assert_eq!(bad.id(), "bad");
        assert_eq!(bad.metadata.resource_version.as_deref(), Some("11"));
        assert!(bad.error.contains("expected a boolean"), "{}", bad.error);
        // The same typed list without Lenient fails as a whole.
        assert!(serde_json::from_str::<kube::core::ObjectList<NodeView>>(page).is_err());
    }

    #[test]
    fn an_object_without_usable_metadata_is_still_named_as_far_as_possible() {
        let bad =
            decode::<NodeView>(r#"{"metadata": {"name": 7, "namespace": "ns"}}"#).unwrap_err();
        assert_eq!(bad.id(), "ns/<unnamed>");
    }
}
