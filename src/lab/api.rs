//! The lab's Kubernetes HTTP API: list, watch, get, patch, delete and the
//! eviction subresource (in `eviction`) for the kinds in [`Kind`], plus
//! discovery.
//!
//! One fallback handler parses the path itself: the Kubernetes URL scheme is
//! regular enough that this is shorter and clearer than a route per shape,
//! and every unknown path still gets a proper `Status` answer.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::audit::AuditLog;
use super::auth::{Auth, Refusal};
use super::discovery;
use super::query::ListQuery;
use super::schema;
use super::store::{Change, Kind, Store, WatchError, WatchStart, watch_line};
use super::tables;

/// What the HTTP layer shares with the simulation.
pub struct ApiState {
    pub store: Arc<Store>,
    pub audit: Option<AuditLog>,
    /// Evicted or deleted pods go to the simulation, which reschedules
    /// controller-owned ones like a ReplicaSet would.
    pub pod_removed: mpsc::UnboundedSender<Value>,
    pub bookmark_every: Duration,
    pub auth: Auth,
    pub api_servers: Option<Arc<super::api_servers::ApiServers>>,
    /// Eviction calls turned away with 429 + Retry-After (scenario `throttle`).
    pub throttle: Option<super::eviction::Throttle>,
}

pub fn router(state: Arc<ApiState>) -> axum::Router {
    axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move { handle(state, method, uri, headers, body).await }
        },
    )
}

/// A Kubernetes `Status` error response.
pub(super) fn status(code: StatusCode, reason: &str, message: impl Into<String>) -> Response {
    status_response(code, &status_body(code, reason, message))
}

/// The API servers' own EndpointSlice, served only when the lab runs one
/// API endpoint per server.
const KUBERNETES_SLICE: &str =
    "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes";

fn refusal((code, reason, message): Refusal) -> Response {
    status(code, reason, message)
}

fn status_response(code: StatusCode, body: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

pub(super) fn status_body(code: StatusCode, reason: &str, message: impl Into<String>) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message.into(), "reason": reason, "code": code.as_u16()})
}

fn json_response(value: &Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// A parsed resource path.
#[derive(Debug)]
pub(super) struct Target {
    pub kind: Kind,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

enum Route {
    Json(Value),
    Resource(Target),
    Namespaces,
}

#[allow(clippy::result_large_err)] // built once per request; boxing buys nothing
fn route(path: &str) -> Result<Route, Response> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let not_found = || {
        status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    };
    let (group, version, rest) = match segs.as_slice() {
        ["version"] => return Ok(Route::Json(discovery::version())),
        ["api"] => return Ok(Route::Json(discovery::core_versions())),
        ["apis"] => return Ok(Route::Json(discovery::group_list())),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(not_found()),
    };
    if rest.is_empty() {
        return discovery::resource_list(group, version)
            .map(Route::Json)
            .ok_or_else(not_found);
    }
    if discovery::resource_list(group, version).is_none() {
        return Err(not_found());
    }
    let (namespace, rest) = match rest {
        ["namespaces"] if group.is_empty() => return Ok(Route::Namespaces),
        ["namespaces", _ns] if group.is_empty() => return Ok(Route::Namespaces),
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        rest => (None, rest),
    };
    let (plural, name, sub) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(n.to_string()), None),
        [p, n, s] => (*p, Some(n.to_string()), Some(s.to_string())),
        _ => return Err(not_found()),
    };
    let kind = Kind::from_plural(group, plural).ok_or_else(not_found)?;
    if kind.group_version().1 != version {
        return Err(not_found());
    }
    if !kind.namespaced() && namespace.is_some() {
        return Err(not_found());
    }
    Ok(Route::Resource(Target {
        kind,
        namespace,
        name,
        subresource: sub,
    }))
}

fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"))
}

fn verb(method: &Method, target: Option<&Target>, watch: bool) -> &'static str {
    match (method.as_str(), target) {
        ("GET", Some(t)) if t.name.is_none() && watch => "watch",
        ("GET", Some(t)) if t.name.is_none() => "list",
        ("GET", _) => "get",
        ("PATCH", _) => "patch",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("DELETE", _) => "delete",
        _ => "unknown",
    }
}

async fn handle(
    state: Arc<ApiState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = uri.query().map(str::to_string);
    let (response, verb) = dispatch(&state, &method, &path, query.as_deref(), &headers, &body);
    if let Some(audit) = &state.audit {
        audit.record(
            verb,
            method.as_str(),
            &path,
            query.as_deref(),
            response.status().as_u16(),
        );
    }
    response
}

fn delete_lease(state: &ApiState, target: &Target, name: &str) -> Response {
    let namespace = target.namespace.as_deref().unwrap_or("");
    match state.store.delete(Kind::Lease, namespace, name) {
        Some(o) => json_response(&o),
        None => not_found(target, name),
    }
}

/// What is answered before any route: a refused token, and the API
/// servers' own EndpointSlice.
fn before_routing(
    state: &ApiState,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Option<(Response, &'static str)> {
    if let Err(refused) = state.auth.authenticate(headers) {
        return Some((refusal(refused), verb(method, None, false)));
    }
    let servers = state.api_servers.as_ref()?;
    (path == KUBERNETES_SLICE && method == Method::GET)
        .then(|| (json_response(&servers.endpoint_slice()), "get"))
}

fn dispatch(
    state: &Arc<ApiState>,
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &Bytes,
) -> (Response, &'static str) {
    if let Some(answer) = before_routing(state, method, path, headers) {
        return answer;
    }
    let route = match route(path) {
        Ok(r) => r,
        Err(resp) => return (resp, verb(method, None, false)),
    };
    let target = match route {
        Route::Json(v) if method == Method::GET => return (json_response(&v), "get"),
        Route::Namespaces if method == Method::GET => {
            return (json_response(&namespaces(&state.store)), "list");
        }
        Route::Json(_) | Route::Namespaces => {
            return (
                status(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    format!("{method} is not supported on {path}"),
                ),
                "unknown",
            );
        }
        Route::Resource(t) => t,
    };
    let q = match ListQuery::parse(query).and_then(|q| q.check_fields(target.kind)) {
        Ok(q) => q,
        Err(e) => {
            return (
                status(StatusCode::BAD_REQUEST, "BadRequest", e),
                verb(method, Some(&target), false),
            );
        }
    };
    let v = verb(method, Some(&target), q.watch);
    if let Err(refused) = state
        .auth
        .authorize(v, target.kind, target.namespace.as_deref())
    {
        return (refusal(refused), v);
    }
    let resp = match (method.as_str(), &target.name, target.subresource.as_deref()) {
        ("GET", None, _) if q.watch => watch(state, &target, q, wants_table(headers)),
        ("GET", None, _) => list(state, &target, &q, wants_table(headers)),
        ("GET", Some(name), None | Some("status")) => {
            get(state, &target, name, wants_table(headers))
        }
        ("PATCH", Some(name), None | Some("status")) => patch(state, &target, name, headers, body),
        ("DELETE", Some(name), None) if target.kind == Kind::Pod => {
            delete_pod(state, &target, name)
        }
        ("POST", Some(name), Some("eviction")) if target.kind == Kind::Pod => {
            super::eviction::evict(state, &target, name, body)
        }
        // Leases outside the kubelets' namespace: the cockpit's rollout lock.
        ("POST", None, None) if target.kind == Kind::Lease => create_lease(state, &target, body),
        ("PUT", Some(name), None) if target.kind == Kind::Lease => {
            replace_lease(state, &target, name, body)
        }
        ("DELETE", Some(name), None) if target.kind == Kind::Lease => {
            delete_lease(state, &target, name)
        }
        _ => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("{method} {path} is not supported by the k3s-cockpit lab"),
        ),
    };
    (resp, v)
}

fn namespaces(store: &Store) -> Value {
    let mut names =
        std::collections::BTreeSet::from(["default".to_string(), "kube-system".to_string()]);
    for kind in Kind::ALL.into_iter().filter(|k| k.namespaced()) {
        for o in store.list(kind, None).1 {
            if let Some(ns) = o["metadata"]["namespace"].as_str() {
                names.insert(ns.to_string());
            }
        }
    }
    let items: Vec<Value> = names
        .into_iter()
        .map(|n| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}, "status": {"phase": "Active"}}))
        .collect();
    json!({"kind": "NamespaceList", "apiVersion": "v1", "metadata": {"resourceVersion": store.current_rv().to_string()}, "items": items})
}

fn list(state: &ApiState, t: &Target, q: &ListQuery, table: bool) -> Response {
    let (rv, items) = state.store.list(t.kind, t.namespace.as_deref());
    let items: Vec<Arc<Value>> = items.into_iter().filter(|o| q.matches(o)).collect();
    if table {
        return json_response(&tables::table(t.kind, items.iter().map(|o| o.as_ref()), rv));
    }
    let items: Vec<&Value> = items.iter().map(|o| o.as_ref()).collect();
    json_response(&json!({
        "kind": format!("{}List", t.kind.kind_name()), "apiVersion": t.kind.api_version(),
        "metadata": {"resourceVersion": rv.to_string()}, "items": items
    }))
}

fn get(state: &ApiState, t: &Target, name: &str, table: bool) -> Response {
    match state
        .store
        .get(t.kind, t.namespace.as_deref().unwrap_or(""), name)
    {
        Some(o) if table => json_response(&tables::table(
            t.kind,
            [o.as_ref()],
            state.store.current_rv(),
        )),
        Some(o) => json_response(&o),
        None => not_found(t, name),
    }
}

pub(super) fn not_found(t: &Target, name: &str) -> Response {
    let mut body = status_body(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("{} \"{name}\" not found", t.kind.plural()),
    );
    body["details"] = json!({"name": name, "kind": t.kind.plural()});
    status_response(StatusCode::NOT_FOUND, &body)
}

/// A 422 as `errors.NewInvalid` builds it: `Node "x" is invalid: FIELD:
/// Invalid value: ...`, with the field again in `details.causes`. Nothing
/// is stored.
fn invalid(kind: Kind, name: &str, e: &schema::FieldError) -> Response {
    let code = StatusCode::UNPROCESSABLE_ENTITY;
    let mut body = status_body(
        code,
        "Invalid",
        format!("{} {name:?} is invalid: {}", kind.kind_name(), e.message()),
    );
    body["details"] = json!({
        "name": name, "group": kind.group_version().0, "kind": kind.kind_name(),
        "causes": [{"reason": "FieldValueInvalid", "message": e.message(), "field": e.field}],
    });
    status_response(code, &body)
}

/// JSON merge patch (RFC 7386). Strategic merge patch is accepted too: for
/// the fields clients patch here (cordon, labels, annotations) the two agree.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn patch(state: &ApiState, t: &Target, name: &str, headers: &HeaderMap, body: &Bytes) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !(content_type.starts_with("application/merge-patch+json")
        || content_type.starts_with("application/strategic-merge-patch+json"))
    {
        return status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!("the lab supports merge and strategic merge patches, not {content_type:?}"),
        );
    }
    let patch: Value = match serde_json::from_slice(body) {
        Ok(p @ Value::Object(_)) => p,
        Ok(_) => {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "patch body must be a JSON object",
            );
        }
        Err(e) => {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("malformed patch body: {e}"),
            );
        }
    };
    // The stored object is valid, so only the patch can make the merged
    // one invalid: checking the patch checks the result.
    if let Err(e) = schema::check(t.kind, &patch) {
        return invalid(t.kind, name, &e);
    }
    let ns = t.namespace.as_deref().unwrap_or("");
    let updated = state.store.update(t.kind, ns, name, |obj| {
        // Identity fields are not patchable.
        let meta = obj["metadata"].clone();
        merge_patch(obj, &patch);
        obj["metadata"]["name"] = meta["name"].clone();
        if !meta["namespace"].is_null() {
            obj["metadata"]["namespace"] = meta["namespace"].clone();
        }
    });
    match updated {
        Some(o) => json_response(&o),
        None => not_found(t, name),
    }
}

pub(super) fn delete_pod(state: &ApiState, t: &Target, name: &str) -> Response {
    match state
        .store
        .delete(Kind::Pod, t.namespace.as_deref().unwrap_or(""), name)
    {
        Some(pod) => {
            let _ = state.pod_removed.send((*pod).clone());
            json_response(&pod)
        }
        None => not_found(t, name),
    }
}

/// Reads a Lease body for create or replace: a JSON object whose
/// namespace (if given) matches the path.
fn lease_body(t: &Target, body: &Bytes) -> Result<Value, Box<Response>> {
    let obj: Value = match serde_json::from_slice(body) {
        Ok(o @ Value::Object(_)) => o,
        Ok(_) => {
            return Err(Box::new(status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Lease body must be a JSON object",
            )));
        }
        Err(e) => {
            return Err(Box::new(status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("malformed Lease body: {e}"),
            )));
        }
    };
    if let Err(e) = schema::check(Kind::Lease, &obj) {
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        return Err(Box::new(invalid(Kind::Lease, name, &e)));
    }
    let ns = t.namespace.as_deref().unwrap_or("");
    match obj["metadata"]["namespace"].as_str() {
        None | Some("") => Ok(obj),
        Some(n) if n == ns => Ok(obj),
        Some(n) => Err(Box::new(status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!(
                "the namespace of the object ({n}) does not match the namespace of the request ({ns})"
            ),
        ))),
    }
}

fn create_lease(state: &ApiState, t: &Target, body: &Bytes) -> Response {
    let mut obj = match lease_body(t, body) {
        Ok(o) => o,
        Err(resp) => return *resp,
    };
    let ns = t.namespace.clone().unwrap_or_default();
    let Some(name) = obj["metadata"]["name"].as_str().map(str::to_string) else {
        return status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            "metadata.name: Required value",
        );
    };
    if state.store.get(Kind::Lease, &ns, &name).is_some() {
        return status(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("leases.coordination.k8s.io \"{name}\" already exists"),
        );
    }
    obj["metadata"]["namespace"] = json!(ns);
    let created = state.store.upsert(Kind::Lease, obj);
    (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        created.to_string(),
    )
        .into_response()
}

/// PUT with optimistic concurrency: a stale `resourceVersion` is a 409, as
/// on a real API server, so two writers cannot both win.
fn replace_lease(state: &ApiState, t: &Target, name: &str, body: &Bytes) -> Response {
    let mut obj = match lease_body(t, body) {
        Ok(o) => o,
        Err(resp) => return *resp,
    };
    let ns = t.namespace.clone().unwrap_or_default();
    let Some(current) = state.store.get(Kind::Lease, &ns, name) else {
        return not_found(t, name);
    };
    let sent = obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default();
    if !sent.is_empty()
        && sent
            != current["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
    {
        return status(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on leases.coordination.k8s.io \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
            ),
        );
    }
    obj["metadata"]["namespace"] = json!(ns);
    obj["metadata"]["name"] = json!(name);
    json_response(&state.store.upsert(Kind::Lease, obj))
}

fn bookmark(kind: Kind, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    watch_line(
        "BOOKMARK",
        &json!({"kind": kind.kind_name(), "apiVersion": kind.api_version(), "metadata": meta}),
    )
}

fn gone_line(oldest: u64) -> Bytes {
    let status = status_body(
        StatusCode::GONE,
        "Expired",
        format!("too old resource version (oldest kept is {oldest})"),
    );
    watch_line("ERROR", &status)
}

/// Streams a watch: backlog from the requested version, then live changes,
/// bookmarks, until `timeoutSeconds` or the client goes away.
fn watch(state: &Arc<ApiState>, t: &Target, q: ListQuery, table: bool) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let from = q
        .resource_version
        .filter(|rv| *rv > 0 && !q.send_initial_events);
    let watcher = Watcher {
        state: state.clone(),
        kind: t.kind,
        namespace: t.namespace.clone(),
        q,
        table,
        from,
        tx,
    };
    tokio::spawn(async move {
        // Err: the client went away, and the stream with it.
        let _ = watcher.stream().await;
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let body = Body::from_stream(futures::StreamExt::map(
        stream,
        Ok::<_, std::convert::Infallible>,
    ));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .unwrap_or_else(|_| {
            status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "watch response",
            )
        })
}

/// The client of a watch went away: nothing more to send.
struct ClientGone;

/// One watch stream: which changes it shows, how it writes them, and the
/// channel to the response body.
struct Watcher {
    state: Arc<ApiState>,
    kind: Kind,
    namespace: Option<String>,
    q: ListQuery,
    /// Each object as a one-row table (`kubectl get -w`), not as itself.
    table: bool,
    /// The version the client watches from; None: from the current state.
    from: Option<u64>,
    tx: mpsc::Sender<Bytes>,
}

impl Watcher {
    /// Whether an object of `kind` belongs in this watch.
    fn keep(&self, kind: Kind, o: &Value) -> bool {
        kind == self.kind
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| o["metadata"]["namespace"].as_str() == Some(ns))
            && self.q.matches(o)
    }

    /// The watch line for `o`: the store's own `line` where it has one.
    fn encode(&self, event_type: &str, o: &Value, line: Option<&Bytes>) -> Bytes {
        match (self.table, line) {
            (false, Some(l)) => l.clone(),
            (false, None) => watch_line(event_type, o),
            (true, _) => watch_line(event_type, &tables::table(self.kind, [o], 0)),
        }
    }

    async fn send(&self, line: Bytes) -> Result<(), ClientGone> {
        self.tx.send(line).await.map_err(|_| ClientGone)
    }

    async fn stream(&self) -> Result<(), ClientGone> {
        let store = &self.state.store;
        let start = store.watch(self.from.unwrap_or_else(|| store.current_rv()));
        let mut start = match start {
            Ok(s) => s,
            Err(WatchError::Gone { oldest }) => return self.send(gone_line(oldest)).await,
        };
        if self.from.is_none() {
            self.send_current_state(&mut start).await?;
        }
        let mut last_rv = start.current_rv;
        for c in start
            .backlog
            .iter()
            .filter(|c| self.keep(c.kind, &c.object))
        {
            last_rv = last_rv.max(c.rv);
            self.send(self.encode(c.event_type, &c.object, Some(&c.line)))
                .await?;
        }
        self.follow(start.live, last_rv).await
    }

    /// No version: synthetic ADDED for the current state, as the API server
    /// does; the backlog keeps only what came after it.
    async fn send_current_state(&self, start: &mut WatchStart) -> Result<(), ClientGone> {
        let (rv, items) = self.state.store.list(self.kind, self.namespace.as_deref());
        for o in items.iter().filter(|o| self.keep(self.kind, o)) {
            self.send(self.encode("ADDED", o, None)).await?;
        }
        if self.q.send_initial_events {
            self.send(bookmark(self.kind, rv, true)).await?;
        }
        start.backlog.retain(|c| c.rv > rv);
        Ok(())
    }

    /// Live changes after `last_rv`, and bookmarks, until the timeout.
    async fn follow(
        &self,
        mut live: broadcast::Receiver<Arc<Change>>,
        mut last_rv: u64,
    ) -> Result<(), ClientGone> {
        let deadline = tokio::time::sleep(Duration::from_secs(
            self.q.timeout_seconds.unwrap_or(1800).min(3600),
        ));
        tokio::pin!(deadline);
        let expiry = self.state.auth.expiry();
        let token_expired = async move {
            match expiry {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(token_expired);
        let mut bookmarks = tokio::time::interval(self.state.bookmark_every);
        bookmarks.reset();
        let store = &self.state.store;
        loop {
            tokio::select! {
                _ = &mut deadline => return Ok(()),
                _ = &mut token_expired => return Ok(()),
                _ = bookmarks.tick(), if self.q.bookmarks => {
                    self.send(bookmark(self.kind, store.current_rv().max(last_rv), false)).await?;
                }
                change = live.recv() => match change {
                    Ok(c) => {
                        if c.rv <= last_rv && self.from.is_some() { continue; }
                        if self.keep(c.kind, &c.object) {
                            last_rv = c.rv;
                            self.send(self.encode(c.event_type, &c.object, Some(&c.line))).await?;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // The client fell behind the kept window: tell it to relist.
                        return self.send(gone_line(store.current_rv())).await;
                    }
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
                _ = self.tx.closed() => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_sets_and_removes() {
        let mut node = json!({"spec": {"unschedulable": true, "podCIDR": "10.42.0.0/24"}});
        merge_patch(&mut node, &json!({"spec": {"unschedulable": null}}));
        assert_eq!(node, json!({"spec": {"podCIDR": "10.42.0.0/24"}}));
        merge_patch(&mut node, &json!({"spec": {"unschedulable": true}}));
        assert_eq!(node["spec"]["unschedulable"], true);
    }

    #[test]
    fn routes_parse_core_and_group_paths() {
        assert!(matches!(
            route("/api/v1/nodes"),
            Ok(Route::Resource(Target {
                kind: Kind::Node,
                ..
            }))
        ));
        assert!(matches!(
            route("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"),
            Ok(Route::Resource(Target {
                kind: Kind::Lease,
                namespace: Some(_),
                ..
            }))
        ));
        assert!(matches!(
            route("/apis/metallb.io/v1beta1"),
            Ok(Route::Json(_))
        ));
        assert!(route("/api/v1/widgets").is_err());
        assert!(route("/apis/coordination.k8s.io/v2/leases").is_err());
    }
}
