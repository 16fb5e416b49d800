//! The eviction subresource and PodDisruptionBudgets, as the API server and
//! the disruption controller run them.
//!
//! A budget's status counts the ready pods its selector matches; an
//! eviction that would take it below `desiredHealthy` is refused with 429
//! and a `DisruptionBudget` cause naming the budget, in the words of
//! kubernetes/kubernetes pkg/registry/core/pod/storage/eviction.go
//! (`checkAndDecrement`). Throttling (API Priority and Fairness, max
//! in-flight) is also a 429, but a plain-text one with `Retry-After`
//! (k8s.io/apiserver pkg/server/filters, `tooManyRequests`): a client tells
//! the two apart by the body, never by the code.

use std::sync::atomic::{AtomicU32, Ordering};

use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde_json::{Value, json};

use super::api::{ApiState, Target, delete_pod, not_found, status, status_body};
use super::scenario::ThrottleSpec;
use super::store::{Kind, Store};

/// The scenario's eviction throttling and how many calls it has seen.
#[derive(Debug)]
pub struct Throttle {
    spec: ThrottleSpec,
    calls: AtomicU32,
}

impl Throttle {
    pub fn new(spec: ThrottleSpec) -> Self {
        Throttle {
            spec,
            calls: AtomicU32::new(0),
        }
    }

    /// Whether this eviction call is turned away.
    fn refuses(&self) -> bool {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        n < self.spec.first_evictions
            || (self.spec.fraction > 0.0 && rand::rng().random::<f64>() < self.spec.fraction)
    }

    fn response(&self) -> Response {
        (
            StatusCode::TOO_MANY_REQUESTS,
            [
                (
                    header::CONTENT_TYPE,
                    "text/plain; charset=utf-8".to_string(),
                ),
                (
                    header::RETRY_AFTER,
                    self.spec.retry_after_seconds.to_string(),
                ),
            ],
            "Too many requests, please try again later.\n",
        )
            .into_response()
    }
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .is_some_and(|c| c["status"] == "True")
}

/// Whether `pdb`'s `matchLabels` select `pod` (same namespace assumed).
fn selects(pdb: &Value, pod: &Value) -> bool {
    let Some(labels) = pdb["spec"]["selector"]["matchLabels"].as_object() else {
        return false;
    };
    !labels.is_empty()
        && labels
            .iter()
            .all(|(k, v)| pod["metadata"]["labels"][k] == *v)
}

/// The status the disruption controller computes for `pdb` over the pods of
/// its namespace: expected = pods matched, desired = minAvailable or
/// expected - maxUnavailable, allowed = ready - desired (never negative).
pub fn budget_status(pdb: &Value, pods: &[std::sync::Arc<Value>]) -> Value {
    let matched: Vec<&Value> = pods
        .iter()
        .map(|p| p.as_ref())
        .filter(|p| selects(pdb, p))
        .collect();
    let expected = matched.len() as i64;
    let healthy = matched.iter().filter(|p| ready(p)).count() as i64;
    let desired = match (
        pdb["spec"]["minAvailable"].as_i64(),
        pdb["spec"]["maxUnavailable"].as_i64(),
    ) {
        (Some(min), _) => min,
        (None, Some(max)) => (expected - max).max(0),
        (None, None) => 0,
    };
    json!({"observedGeneration": 1, "expectedPods": expected, "currentHealthy": healthy,
           "desiredHealthy": desired, "disruptionsAllowed": (healthy - desired).max(0)})
}

/// Recomputes every budget's status, writing only those that changed (a
/// watch sees one MODIFIED per real change, as from the controller).
pub fn sync_budgets(store: &Store) {
    for pdb in store.list(Kind::PodDisruptionBudget, None).1 {
        let ns = pdb["metadata"]["namespace"].as_str().unwrap_or_default();
        let pods = store.list(Kind::Pod, Some(ns)).1;
        let fresh = budget_status(&pdb, &pods);
        if pdb["status"] != fresh {
            let name = pdb["metadata"]["name"].as_str().unwrap_or_default();
            store.update(Kind::PodDisruptionBudget, ns, name, |o| {
                o["status"] = fresh.clone();
            });
        }
    }
}

/// The 429 of an eviction a budget refuses, cause and all.
fn budget_refusal(pdb: &Value, st: &Value) -> Response {
    let mut body = status_body(
        StatusCode::TOO_MANY_REQUESTS,
        "TooManyRequests",
        "Cannot evict pod as it would violate the pod's disruption budget.",
    );
    body["details"] = json!({"causes": [{
        "reason": "DisruptionBudget",
        "message": format!(
            "The disruption budget {} needs {} healthy pods and has {} currently",
            pdb["metadata"]["name"].as_str().unwrap_or_default(),
            st["desiredHealthy"], st["currentHealthy"]
        )
    }]});
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

pub(super) fn evict(state: &ApiState, t: &Target, name: &str, body: &Bytes) -> Response {
    if let Err(e) = serde_json::from_slice::<Value>(body) {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("malformed Eviction body: {e}"),
        );
    }
    if state.throttle.as_ref().is_some_and(|t| t.refuses()) {
        return state.throttle.as_ref().map_or_else(
            || StatusCode::TOO_MANY_REQUESTS.into_response(),
            Throttle::response,
        );
    }
    let ns = t.namespace.as_deref().unwrap_or("");
    let Some(pod) = state.store.get(Kind::Pod, ns, name) else {
        return not_found(t, name);
    };
    let pods = state.store.list(Kind::Pod, Some(ns)).1;
    // A pod that is not ready does not count against its budget (the
    // API server lets it go whatever the budget says).
    if ready(&pod) {
        for pdb in state.store.list(Kind::PodDisruptionBudget, Some(ns)).1 {
            if !selects(&pdb, &pod) {
                continue;
            }
            let st = budget_status(&pdb, &pods);
            if st["disruptionsAllowed"].as_i64().unwrap_or(0) <= 0 {
                return budget_refusal(&pdb, &st);
            }
        }
    }
    delete_pod(state, t, name);
    sync_budgets(&state.store);
    (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}).to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn pod(app: &str, ready: bool) -> Arc<Value> {
        Arc::new(json!({"metadata": {"labels": {"app": app}},
            "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}}))
    }

    #[test]
    fn budget_counts_ready_matching_pods() {
        let pdb = json!({"metadata": {"name": "web"},
                         "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}});
        let pods = [pod("web", true), pod("web", true), pod("db", true)];
        let st = budget_status(&pdb, &pods);
        assert_eq!(st["expectedPods"], 2);
        assert_eq!(st["disruptionsAllowed"], 1);
        let pods = [pod("web", true), pod("web", false)];
        assert_eq!(budget_status(&pdb, &pods)["disruptionsAllowed"], 0);
        let max =
            json!({"spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}});
        let pods = [pod("web", true), pod("web", true), pod("web", true)];
        assert_eq!(budget_status(&max, &pods)["desiredHealthy"], 2);
        assert_eq!(budget_status(&max, &pods)["disruptionsAllowed"], 1);
    }
}
