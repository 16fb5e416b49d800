//! One eviction call, and what its answer means. The API server answers 429
//! for two reasons a drain must tell apart: a PodDisruptionBudget (a JSON
//! `Status` whose `details.causes` has reason `DisruptionBudget` and the
//! message "The disruption budget NAME needs N healthy pods and has M
//! currently", kubernetes/kubernetes pkg/registry/core/pod/storage/
//! eviction.go), and throttling (API Priority and Fairness: `Retry-After`
//! and a plain-text body, k8s.io/apiserver pkg/server/filters).

use std::time::Duration;

use kube::Client;
use kube::api::EvictParams;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evicted {
    Done,
    /// Already gone.
    Gone,
    /// Refused by a disruption budget: the budget named, retried later.
    Budget(String),
    /// Throttled: retry after this long.
    Throttled(Duration),
}

/// Throttling without a usable `Retry-After`: the API server's own default.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The meaning of an eviction answer: pure, so every shape is tested.
pub fn classify(code: u16, retry_after: Option<&str>, body: &[u8]) -> Result<Evicted, String> {
    let status: Option<kube::core::Status> = serde_json::from_slice(body).ok();
    let message = status.as_ref().map_or_else(
        || String::from_utf8_lossy(body).trim().to_string(),
        |s| s.message.clone(),
    );
    match code {
        200..=299 => Ok(Evicted::Done),
        404 => Ok(Evicted::Gone),
        429 => {
            let cause = status
                .as_ref()
                .and_then(|s| s.details.as_ref())
                .and_then(|d| d.causes.iter().find(|c| c.reason == "DisruptionBudget"));
            if let Some(cause) = cause {
                let budget = cause
                    .message
                    .strip_prefix("The disruption budget ")
                    .and_then(|rest| rest.split_whitespace().next())
                    .unwrap_or("?");
                let detail = cause
                    .message
                    .split_once(" needs ")
                    .map_or(String::new(), |(_, n)| format!(": needs {n}"));
                return Ok(Evicted::Budget(format!(
                    "blocked by PodDisruptionBudget {budget}{detail}"
                )));
            }
            if message.contains("disruption budget") {
                return Ok(Evicted::Budget(format!(
                    "blocked by a PodDisruptionBudget: {message}"
                )));
            }
            let seconds = retry_after
                .and_then(|v| v.trim().parse::<u64>().ok())
                .or_else(|| {
                    let d = status.as_ref()?.details.as_ref()?;
                    (d.retry_after_seconds > 0).then_some(u64::from(d.retry_after_seconds))
                });
            Ok(Evicted::Throttled(
                seconds.map_or(DEFAULT_RETRY_AFTER, Duration::from_secs),
            ))
        }
        _ => Err(format!("HTTP {code}: {message}")),
    }
}

/// Sends one eviction for `namespace/name` and reads the whole answer
/// (status, `Retry-After`, body), which kube's typed call would hide.
pub async fn evict(client: &Client, namespace: &str, name: &str) -> Result<Evicted, String> {
    let fail = |e: String| format!("evicting {namespace}/{name}: {e}");
    let request = kube::core::Request::new(format!("/api/v1/namespaces/{namespace}/pods"))
        .evict(name, &EvictParams::default())
        .map_err(|e| fail(e.to_string()))?;
    let response = client
        .send(request.map(kube::client::Body::from))
        .await
        .map_err(|e| fail(e.to_string()))?;
    let code = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = response
        .into_body()
        .collect_bytes()
        .await
        .map_err(|e| fail(e.to_string()))?;
    classify(code, retry_after.as_deref(), &body).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_429_names_the_budget() {
        let body = br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
            "message":"Cannot evict pod as it would violate the pod's disruption budget.",
            "reason":"TooManyRequests","details":{"causes":[{"reason":"DisruptionBudget",
            "message":"The disruption budget web needs 2 healthy pods and has 2 currently"}]},"code":429}"#;
        assert_eq!(
            classify(429, None, body),
            Ok(Evicted::Budget(
                "blocked by PodDisruptionBudget web: needs 2 healthy pods and has 2 currently"
                    .into()
            ))
        );
    }

    #[test]
    fn a_throttling_429_is_retried_after_its_retry_after() {
        let body = b"Too many requests, please try again later.\n";
        assert_eq!(
            classify(429, Some("3"), body),
            Ok(Evicted::Throttled(Duration::from_secs(3)))
        );
        assert_eq!(
            classify(429, None, body),
            Ok(Evicted::Throttled(DEFAULT_RETRY_AFTER))
        );
        assert_eq!(classify(201, None, b"{}"), Ok(Evicted::Done));
        assert_eq!(classify(404, None, b"{}"), Ok(Evicted::Gone));
        let err =
            classify(403, None, br#"{"message":"pods is forbidden","code":403}"#).unwrap_err();
        assert!(err.contains("403") && err.contains("forbidden"), "{err}");
    }
}
