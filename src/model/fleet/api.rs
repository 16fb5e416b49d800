//! The API server's state as the watchers see it: how a call failed and
//! what the status bar and banner say about it.

use jiff::Timestamp;

use super::health;

/// How a call to the API server failed. Only [`Unreachable`] and
/// [`Silent`] are outages of the server (the banner and the report count
/// them); the others are the server answering "no", and [`Resync`] is
/// routine. Any of them but a resync leaves the cockpit blind, so the
/// rollout engine pauses its judgements for all of them.
///
/// [`Unreachable`]: ApiFailureKind::Unreachable
/// [`Silent`]: ApiFailureKind::Silent
/// [`Resync`]: ApiFailureKind::Resync
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiFailureKind {
    /// Connection refused, reset or timed out, DNS: nothing answered.
    Unreachable,
    /// Connected but no answer (see [`crate::cluster::liveness`]).
    Silent,
    /// 401: the credentials expired or were rejected.
    Unauthorized,
    /// 403: the identity may not do this (`text` names verb and resource).
    Forbidden,
    /// 410 Gone: the watch's resourceVersion is too old and the watcher
    /// lists afresh. Not an outage: no banner, no Down.
    Resync,
    /// 5xx: the server answered with an error.
    ServerError,
    /// Anything else (an undecodable answer, another 4xx).
    Other,
}

impl ApiFailureKind {
    /// Stable name, as journaled (`unreachable`, `unauthorized`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ApiFailureKind::Unreachable => "unreachable",
            ApiFailureKind::Silent => "silent",
            ApiFailureKind::Unauthorized => "unauthorized",
            ApiFailureKind::Forbidden => "forbidden",
            ApiFailureKind::Resync => "resync",
            ApiFailureKind::ServerError => "server_error",
            ApiFailureKind::Other => "error",
        }
    }

    /// The server itself is gone or hung: heartbeats cannot be judged and
    /// the time counts as an API outage.
    pub fn is_outage(self) -> bool {
        matches!(self, ApiFailureKind::Unreachable | ApiFailureKind::Silent)
    }
}

/// A classified API failure: its kind and a short text for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiFailure {
    pub kind: ApiFailureKind,
    pub text: String,
}

impl ApiFailure {
    pub fn new(kind: ApiFailureKind, text: impl Into<String>) -> Self {
        ApiFailure {
            kind,
            text: text.into(),
        }
    }
}

/// What to do about a 401, said wherever it is shown.
pub const RENEW_CREDENTIALS: &str =
    "renew them: a token from `kubectl create token NAME --duration=24h`, or a fresh kubeconfig";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiStatus {
    Connecting,
    Up,
    Down {
        since: Timestamp,
        error: String,
        failures: u32,
        /// How it failed (the latest failure's kind).
        kind: ApiFailureKind,
    },
}

impl ApiStatus {
    /// True while the server is unreachable or silent: an outage, during
    /// which the rollout engine pauses its judgements.
    pub fn is_outage(&self) -> bool {
        matches!(self, ApiStatus::Down { kind, .. } if kind.is_outage())
    }

    /// The status bar's connection state: `● connected`, `● API DOWN`,
    /// `● API SILENT`, `● UNAUTHORIZED`, `● FORBIDDEN`, `● API ERROR`.
    pub fn label(&self) -> &'static str {
        match self {
            ApiStatus::Connecting => "● connecting",
            ApiStatus::Up => "● connected",
            ApiStatus::Down { kind, .. } => match kind {
                ApiFailureKind::Unreachable => "● API DOWN",
                ApiFailureKind::Silent => "● API SILENT",
                ApiFailureKind::Unauthorized => "● UNAUTHORIZED",
                ApiFailureKind::Forbidden => "● FORBIDDEN",
                ApiFailureKind::ServerError | ApiFailureKind::Resync | ApiFailureKind::Other => {
                    "● API ERROR"
                }
            },
        }
    }

    /// The banner while Down, with how long at `now`; None otherwise.
    pub fn describe(&self, now: Timestamp) -> Option<String> {
        let ApiStatus::Down {
            since,
            error,
            failures,
            kind,
            ..
        } = self
        else {
            return None;
        };
        let down = crate::durations::format_duration(health::age(*since, now));
        Some(match kind {
            ApiFailureKind::Silent => format!(
                "API server silent for {down}: {error} — heartbeats are not judged until it answers"
            ),
            ApiFailureKind::Unreachable => format!(
                "API server unreachable for {down} ({failures} failed attempts, retrying with backoff): {error} — ages keep counting"
            ),
            ApiFailureKind::Unauthorized => {
                format!("API credentials expired or rejected for {down} (401): {RENEW_CREDENTIALS}")
            }
            ApiFailureKind::Forbidden => format!(
                "API {error} for {down} (403): the cockpit's identity lacks this permission (assets/rbac/read-only.yaml grants it)"
            ),
            ApiFailureKind::ServerError => format!(
                "API server answering with errors for {down} ({failures} failed attempts, retrying): {error}"
            ),
            ApiFailureKind::Resync | ApiFailureKind::Other => {
                format!(
                    "API requests failing for {down} ({failures} failed attempts, retrying): {error}"
                )
            }
        })
    }
}
