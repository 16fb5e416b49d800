//! The lab's authentication and authorization, as far as a cockpit can
//! meet them on a real cluster: a bearer token that expires (a service
//! account token from `kubectl create token` lasts an hour by default) and
//! resources the client's role may not touch.
//!
//! The answers copy the API server's: a token that fails authentication
//! gets `401 Unauthorized` on every path, `/version` included (an invalid
//! token is rejected, not treated as anonymous); a request the role does
//! not allow gets `403 Forbidden` naming the user, verb, resource and group
//! (kubernetes/kubernetes, staging/src/k8s.io/apiserver/pkg/endpoints/
//! handlers/responsewriters/errors.go, `forbiddenMessage`).

use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};
use tokio::time::Instant;

use super::store::Kind;

/// The user the lab's token belongs to, as a 403 names it.
const USER: &str = "system:serviceaccount:kube-system:k3s-cockpit";

#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// The token the kubeconfig carries, and when it stops working.
    token: Option<(String, Option<Instant>)>,
    /// Resources (plural names) the token's role may not touch.
    forbidden: Vec<String>,
}

/// Why a request is refused: status, reason, message.
pub type Refusal = (StatusCode, &'static str, String);

impl Auth {
    /// A token valid for `ttl` from now (forever when None).
    pub fn with_token(mut self, token: String, ttl: Option<Duration>) -> Auth {
        self.token = Some((token, ttl.map(|t| Instant::now() + t)));
        self
    }

    pub fn forbidding(mut self, resources: Vec<String>) -> Auth {
        self.forbidden = resources;
        self
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_ref().map(|(t, _)| t.as_str())
    }

    /// When the token expires. Open watches end then: a real watch outlives
    /// its token until the watch's own timeout, which ends it sooner or
    /// later; the lab brings that moment forward so a test need not wait.
    pub fn expiry(&self) -> Option<Instant> {
        self.token.as_ref().and_then(|(_, at)| *at)
    }

    /// Authentication: refused unless the request carries the live token.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let Some((token, expiry)) = &self.token else {
            return Ok(());
        };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let live = expiry.is_none_or(|at| Instant::now() < at);
        if presented == Some(token.as_str()) && live {
            return Ok(());
        }
        Err((
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Unauthorized".into(),
        ))
    }

    /// Authorization of `verb` on `kind` (in `namespace`, if any).
    pub fn authorize(
        &self,
        verb: &str,
        kind: Kind,
        namespace: Option<&str>,
    ) -> Result<(), Refusal> {
        if !self.forbidden.iter().any(|r| r == kind.plural()) {
            return Ok(());
        }
        let (group, _) = kind.group_version();
        let resource = if group.is_empty() {
            kind.plural().to_string()
        } else {
            format!("{}.{group}", kind.plural())
        };
        let scope = match namespace {
            Some(ns) => format!("in the namespace \"{ns}\""),
            None => "at the cluster scope".to_string(),
        };
        Err((
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "{resource} is forbidden: User \"{USER}\" cannot {verb} resource \"{}\" in API group \"{group}\" {scope}",
                kind.plural()
            ),
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        h
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_works_until_it_expires_and_a_wrong_one_never() {
        let auth = Auth::default().with_token("s3cret".into(), Some(Duration::from_secs(60)));
        assert!(auth.authenticate(&bearer("s3cret")).is_ok());
        assert_eq!(
            auth.authenticate(&bearer("nope")).unwrap_err().0,
            StatusCode::UNAUTHORIZED
        );
        assert!(auth.authenticate(&HeaderMap::new()).is_err());
        tokio::time::advance(Duration::from_secs(61)).await;
        let (code, reason, _) = auth.authenticate(&bearer("s3cret")).unwrap_err();
        assert_eq!((code, reason), (StatusCode::UNAUTHORIZED, "Unauthorized"));
        assert!(Auth::default().authenticate(&HeaderMap::new()).is_ok());
    }

    #[test]
    fn forbidden_names_user_verb_resource_and_scope() {
        let auth = Auth::default().forbidding(vec!["leases".into()]);
        assert!(auth.authorize("list", Kind::Node, None).is_ok());
        let (code, _, message) = auth
            .authorize("watch", Kind::Lease, Some("kube-node-lease"))
            .unwrap_err();
        assert_eq!(code, StatusCode::FORBIDDEN);
        assert_eq!(
            message,
            "leases.coordination.k8s.io is forbidden: User \"system:serviceaccount:kube-system:k3s-cockpit\" cannot watch resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"kube-node-lease\""
        );
    }
}
