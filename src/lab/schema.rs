//! Types of the fields the lab models, checked on what clients write (patch,
//! create, replace) the way an API server does, so a client bug that sends
//! `{"spec":{"unschedulable":"yes"}}` fails here as it would on a cluster
//! instead of storing a node that no watcher can decode.
//!
//! Modelled on kubernetes/kubernetes: the patch handler decodes the patched
//! object into its typed struct and answers a failure with
//! `errors.NewInvalid(..., field.Invalid(...))`, a 422 `Status` with reason
//! `Invalid` (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go,
//! `applyPatchToCurrentObject`). The message names the field in the form the
//! OpenAPI schema validator uses for custom resources (kube-openapi
//! `pkg/validation/errors`, "%s in %s must be of type %s"), which says which
//! field is wrong more plainly than Go's decoder error. Fields the lab does
//! not model are not checked, and nothing stored by the simulation is.
//!
//! Selectors are checked as `labels.Parse` and the field label conversion
//! functions do: a malformed selector or an unsupported field is a 400
//! `BadRequest` (handlers/get.go wraps both in `errors.NewBadRequest`).

use serde_json::Value;

use super::store::Kind;

/// JSON types as the OpenAPI schema names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Type {
    Boolean,
    Integer,
    String,
    Object,
    Array,
}

impl Type {
    fn name(self) -> &'static str {
        match self {
            Type::Boolean => "boolean",
            Type::Integer => "integer",
            Type::String => "string",
            Type::Object => "object",
            Type::Array => "array",
        }
    }

    fn admits(self, value: &Value) -> bool {
        match self {
            Type::Boolean => value.is_boolean(),
            Type::Integer => value.is_i64() || value.is_u64(),
            Type::String => value.is_string(),
            Type::Object => value.is_object(),
            Type::Array => value.is_array(),
        }
    }
}

/// A field path pattern and its type: `*` stands for any array item or map
/// key.
type Field = (&'static str, Type);

const META: &[Field] = &[
    ("metadata", Type::Object),
    ("metadata.name", Type::String),
    ("metadata.namespace", Type::String),
    ("metadata.resourceVersion", Type::String),
    ("metadata.labels", Type::Object),
    ("metadata.labels.*", Type::String),
    ("metadata.annotations", Type::Object),
    ("metadata.annotations.*", Type::String),
    ("spec", Type::Object),
    ("status", Type::Object),
];

const NODE: &[Field] = &[
    ("spec.unschedulable", Type::Boolean),
    ("spec.podCIDR", Type::String),
    ("spec.taints", Type::Array),
    ("spec.taints.*", Type::Object),
    ("spec.taints.*.key", Type::String),
    ("spec.taints.*.value", Type::String),
    ("spec.taints.*.effect", Type::String),
    ("status.conditions", Type::Array),
    ("status.conditions.*", Type::Object),
    ("status.conditions.*.type", Type::String),
    ("status.conditions.*.status", Type::String),
    ("status.conditions.*.reason", Type::String),
    ("status.conditions.*.message", Type::String),
    ("status.conditions.*.lastHeartbeatTime", Type::String),
    ("status.conditions.*.lastTransitionTime", Type::String),
    ("status.nodeInfo", Type::Object),
    ("status.nodeInfo.kubeletVersion", Type::String),
    ("status.nodeInfo.bootID", Type::String),
];

const LEASE: &[Field] = &[
    ("spec.holderIdentity", Type::String),
    ("spec.leaseDurationSeconds", Type::Integer),
    ("spec.leaseTransitions", Type::Integer),
    ("spec.acquireTime", Type::String),
    ("spec.renewTime", Type::String),
];

const SERVICE: &[Field] = &[
    ("spec.type", Type::String),
    ("spec.selector", Type::Object),
    ("spec.selector.*", Type::String),
    ("spec.ports", Type::Array),
    ("spec.ports.*", Type::Object),
    ("spec.ports.*.port", Type::Integer),
    ("spec.ports.*.protocol", Type::String),
];

const POD: &[Field] = &[("spec.nodeName", Type::String)];

fn fields(kind: Kind) -> impl Iterator<Item = &'static Field> {
    let own = match kind {
        Kind::Node => NODE,
        Kind::Lease => LEASE,
        Kind::Service => SERVICE,
        Kind::Pod => POD,
        Kind::Event
        | Kind::DaemonSet
        | Kind::ServiceL2Status
        | Kind::PodDisruptionBudget
        | Kind::PersistentVolumeClaim => &[],
    };
    META.iter().chain(own)
}

fn type_of(kind: Kind, pattern: &str) -> Option<Type> {
    fields(kind).find(|(p, _)| *p == pattern).map(|(_, t)| *t)
}

/// A field whose value has the wrong type.
#[derive(Debug, PartialEq, Eq)]
pub struct FieldError {
    /// As Kubernetes writes it: `spec.taints[0].key`.
    pub field: String,
    got: &'static str,
    want: Type,
}

impl FieldError {
    /// `field.Invalid`'s text: `spec.unschedulable: Invalid value: "string":
    /// spec.unschedulable in body must be of type boolean`.
    pub fn message(&self) -> String {
        format!(
            "{f}: Invalid value: \"{got}\": {f} in body must be of type {want}",
            f = self.field,
            got = self.got,
            want = self.want.name()
        )
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks every modelled field of `object` (a whole object or a merge
/// patch; `null` deletes a field and is always allowed).
pub fn check(kind: Kind, object: &Value) -> Result<(), FieldError> {
    match object.as_object() {
        Some(fields) => fields
            .iter()
            .try_for_each(|(key, v)| walk(kind, v, key, key.clone())),
        None => Err(FieldError {
            field: "<body>".into(),
            got: json_type(object),
            want: Type::Object,
        }),
    }
}

/// Checks `value` found at `pattern` (shown as `shown`), then its children.
fn walk(kind: Kind, value: &Value, pattern: &str, shown: String) -> Result<(), FieldError> {
    let Some(want) = type_of(kind, pattern) else {
        return Ok(());
    };
    if value.is_null() {
        return Ok(());
    }
    if !want.admits(value) {
        return Err(FieldError {
            field: shown,
            got: json_type(value),
            want,
        });
    }
    match value {
        Value::Array(items) => items.iter().enumerate().try_for_each(|(i, item)| {
            walk(kind, item, &format!("{pattern}.*"), format!("{shown}[{i}]"))
        }),
        Value::Object(fields) => fields.iter().try_for_each(|(key, v)| {
            let named = format!("{pattern}.{key}");
            let child = if type_of(kind, &named).is_some() {
                named
            } else {
                format!("{pattern}.*")
            };
            walk(kind, v, &child, format!("{shown}.{key}"))
        }),
        _ => Ok(()),
    }
}

/// Whether a field selector may name `field` for `kind`: the fields each
/// kind's field label conversion function accepts (pkg/apis/core/v1
/// conversion.go and the like), of those the lab can match.
pub fn selectable(kind: Kind, field: &str) -> bool {
    let own: &[&str] = match kind {
        Kind::Node => &["spec.unschedulable"],
        Kind::Pod => &["spec.nodeName", "status.phase"],
        Kind::Service => &["spec.type", "spec.clusterIP"],
        Kind::Event => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "reason",
            "type",
        ],
        Kind::Lease
        | Kind::DaemonSet
        | Kind::ServiceL2Status
        | Kind::PodDisruptionBudget
        | Kind::PersistentVolumeClaim => &[],
    };
    ["metadata.name", "metadata.namespace"].contains(&field) || own.contains(&field)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wrong_types_name_the_field() {
        let e = check(Kind::Node, &json!({"spec": {"unschedulable": "yes"}})).unwrap_err();
        assert_eq!(
            e.message(),
            "spec.unschedulable: Invalid value: \"string\": spec.unschedulable in body must be of type boolean"
        );
        let e = check(
            Kind::Node,
            &json!({"metadata": {"labels": {"a": "b", "n": 1}}}),
        );
        assert_eq!(e.unwrap_err().field, "metadata.labels.n");
        let e = check(
            Kind::Node,
            &json!({"spec": {"taints": [{"key": "k"}, {"key": 5}]}}),
        );
        assert_eq!(e.unwrap_err().field, "spec.taints[1].key");
        let e = check(Kind::Lease, &json!({"spec": {"leaseDurationSeconds": 1.5}}));
        assert_eq!(
            e.unwrap_err().message().split(':').nth(2),
            Some(" \"number\"")
        );
        assert!(check(Kind::Node, &json!({"spec": "x"})).is_err());
        assert!(check(Kind::Node, &json!([1])).is_err());
    }

    #[test]
    fn good_patches_nulls_and_unmodelled_fields_pass() {
        for ok in [
            json!({"spec": {"unschedulable": true}}),
            json!({"spec": {"unschedulable": null}}),
            json!({"metadata": {"labels": {"a": "b", "gone": null}}}),
            json!({"spec": {"providerID": 7}, "whatever": [1, "x"]}),
        ] {
            assert_eq!(check(Kind::Node, &ok), Ok(()), "{ok}");
        }
    }
}
