//! Every API server of the cluster, and a client that moves between them.
//!
//! A K3s kubeconfig points at one server. When that server restarts (the
//! rollout may be upgrading it) its API endpoint refuses connections and
//! cuts every watch. The `kubernetes` EndpointSlice in `default` lists the
//! address of every live API server; this module learns them and builds one
//! kube client per endpoint, each with the kubeconfig's own credentials and
//! CA, so TLS is verified against the server actually reached (K3s server
//! certificates carry each server's own address and every `--tls-san`).
//!
//! The client the rest of the cockpit holds is a router over those clients:
//! a request whose endpoint cannot be reached is sent again to the next
//! endpoint, and that one becomes current, so a watch cut by a restart
//! resumes on another server at its next request. A request is sent again
//! only when that cannot apply it twice: a GET, or any request whose
//! connection was refused before it was sent.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use color_eyre::eyre::{Result, WrapErr};
use futures::FutureExt;
use futures::future::BoxFuture;
use http::{Request, Response, Uri};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::client::Body;
use tokio::sync::mpsc::UnboundedSender;

use crate::model::ClusterEvent;

/// Where the API servers' own EndpointSlice lives.
const KUBERNETES_SLICE: &str =
    "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes";

/// How often the endpoint list is read again (servers join and leave).
const RELEARN_EVERY: Duration = Duration::from_secs(30);

struct Endpoint {
    url: Uri,
    client: kube::Client,
}

struct State {
    endpoints: Vec<Endpoint>,
    current: usize,
}

struct Shared {
    /// The kubeconfig's settings; each endpoint's client is built from a
    /// copy with its own URL.
    template: kube::Config,
    read_only: bool,
    state: Mutex<State>,
    events: Mutex<Option<UnboundedSender<ClusterEvent>>>,
}

/// The API endpoints the cockpit knows, and which one it uses.
#[derive(Clone)]
pub struct ApiEndpoints {
    shared: Arc<Shared>,
}

fn build(config: &kube::Config, url: &Uri, read_only: bool) -> Result<kube::Client> {
    let mut config = config.clone();
    config.cluster_url = url.clone();
    // kube's default layer retries every 429 and 503 itself, up to 15 times:
    // a drain would then wait minutes inside one eviction call, past its own
    // deadline, and could not tell a disruption budget from throttling.
    // Callers see each answer and decide (drain, watchers' backoff, failover).
    config.default_retry = false;
    let builder = kube::client::ClientBuilder::try_from(config)
        .wrap_err_with(|| format!("cannot build a client for {url}"))?;
    Ok(if read_only {
        builder.with_layer(&super::readonly::ReadOnlyLayer).build()
    } else {
        builder.build()
    })
}

impl ApiEndpoints {
    /// Starts with the kubeconfig's endpoint; returns the routing client.
    pub fn new(config: kube::Config, read_only: bool) -> Result<(ApiEndpoints, kube::Client)> {
        let first = build(&config, &config.cluster_url, read_only)?;
        let namespace = config.default_namespace.clone();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                endpoints: vec![Endpoint {
                    url: config.cluster_url.clone(),
                    client: first,
                }],
                current: 0,
            }),
            template: config,
            read_only,
            events: Mutex::new(None),
        });
        let router = Router {
            shared: shared.clone(),
        };
        Ok((
            ApiEndpoints { shared },
            kube::Client::new(router, namespace),
        ))
    }

    /// The endpoint in use.
    pub fn current(&self) -> String {
        let state = self.shared.lock();
        state.endpoints[state.current].url.to_string()
    }

    /// Every endpoint known, the one in use first.
    pub fn known(&self) -> Vec<String> {
        let state = self.shared.lock();
        let mut urls: Vec<String> = vec![state.endpoints[state.current].url.to_string()];
        urls.extend(
            state
                .endpoints
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != state.current)
                .map(|(_, e)| e.url.to_string()),
        );
        urls
    }

    /// Switches go to `events` from now on, and the endpoint list is read
    /// now and every [`RELEARN_EVERY`].
    pub fn start(&self, client: kube::Client, events: UnboundedSender<ClusterEvent>) {
        *self.shared.events.lock().unwrap_or_else(|e| e.into_inner()) = Some(events);
        let me = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(RELEARN_EVERY);
            loop {
                every.tick().await;
                if let Err(e) = me.learn(&client).await {
                    tracing::debug!(target: "cluster", "API endpoints not learned: {e}");
                }
            }
        });
    }

    /// Reads the `kubernetes` EndpointSlice and adds every ready address
    /// not known yet. Returns how many endpoints are known.
    pub async fn learn(&self, client: &kube::Client) -> Result<usize> {
        let request = Request::get(KUBERNETES_SLICE)
            .body(Vec::new())
            .wrap_err("building the EndpointSlice request")?;
        let slice: EndpointSlice = client
            .request(request)
            .await
            .wrap_err("reading the kubernetes EndpointSlice in default")?;
        let scheme = self
            .shared
            .template
            .cluster_url
            .scheme_str()
            .unwrap_or("https")
            .to_string();
        let port = slice
            .ports
            .as_deref()
            .unwrap_or_default()
            .iter()
            .find_map(|p| p.port)
            .unwrap_or(6443);
        let mut urls = Vec::new();
        for e in &slice.endpoints {
            if e.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                continue;
            }
            for address in &e.addresses {
                let host = if address.contains(':') {
                    format!("[{address}]")
                } else {
                    address.clone()
                };
                if let Ok(url) = format!("{scheme}://{host}:{port}").parse::<Uri>() {
                    urls.push(url);
                }
            }
        }
        let mut added = Vec::new();
        for url in urls {
            if self
                .shared
                .lock()
                .endpoints
                .iter()
                .any(|e| same(&e.url, &url))
            {
                continue;
            }
            let client = build(&self.shared.template, &url, self.shared.read_only)?;
            added.push(url.to_string());
            self.shared.lock().endpoints.push(Endpoint { url, client });
        }
        if !added.is_empty() {
            tracing::info!(target: "cluster", "API endpoints learned: {}", added.join(", "));
        }
        Ok(self.shared.lock().endpoints.len())
    }

    /// Moves off the endpoint at `host` (a node about to be restarted)
    /// before it goes away. False when there is nowhere else to go.
    pub fn avoid(&self, host: &str) -> bool {
        let (index, current) = {
            let state = self.shared.lock();
            (state.current, state.endpoints[state.current].url.clone())
        };
        if current.host().map(|h| h.trim_matches(['[', ']'])) != Some(host) {
            return true;
        }
        self.shared
            .switch_from(index, &format!("{host} is about to restart"))
            .is_some()
    }
}

/// Same scheme, host and port.
fn same(a: &Uri, b: &Uri) -> bool {
    a.scheme() == b.scheme() && a.host() == b.host() && a.port_u16() == b.port_u16()
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current endpoint, its client, and how many endpoints there are.
    fn pick(&self) -> (usize, kube::Client, usize) {
        let state = self.lock();
        let current = state.current;
        let client = state.endpoints[current].client.clone();
        (current, client, state.endpoints.len())
    }

    /// Makes the endpoint after `failed` current, unless another request
    /// has moved on already; returns the endpoint now current, or None
    /// when `failed` is the only one.
    fn switch_from(&self, failed: usize, why: &str) -> Option<(usize, kube::Client)> {
        let (index, from, to, client) = {
            let mut state = self.lock();
            let n = state.endpoints.len();
            if n < 2 {
                return None;
            }
            if state.current == failed {
                state.current = (failed + 1) % n;
            }
            let index = state.current;
            let to = &state.endpoints[index];
            (
                index,
                state.endpoints[failed].url.to_string(),
                to.url.to_string(),
                to.client.clone(),
            )
        };
        if from == to {
            return None;
        }
        tracing::warn!(target: "cluster", "API endpoint {from} left ({why}): now {to}");
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = events.as_ref() {
            let _ = tx.send(ClusterEvent::ApiEndpoint {
                url: to.clone(),
                left: from,
                why: why.to_string(),
            });
        }
        Some((index, client))
    }
}

/// The service under the cockpit's client: sends each request to the
/// current endpoint, and to the next ones while they cannot be reached.
#[derive(Clone)]
struct Router {
    shared: Arc<Shared>,
}

impl tower::Service<Request<Body>> for Router {
    type Response = Response<Body>;
    type Error = kube::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, kube::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let shared = self.shared.clone();
        async move {
            let (mut index, mut client, tries) = shared.pick();
            let again = copy(&request);
            let idempotent = request.method() == http::Method::GET;
            let mut result = client.send(request).await;
            for _ in 1..tries {
                let Err(e) = &result else { break };
                let Some(resend) = again.as_ref().and_then(copy) else {
                    break;
                };
                if !(idempotent || refused(e)) {
                    break;
                }
                let Some(next) = shared.switch_from(index, &short(e)) else {
                    break;
                };
                (index, client) = next;
                result = client.send(resend).await;
            }
            result
        }
        .boxed()
    }
}

/// The request again, if its body can be sent twice (kube's requests are
/// built from bytes, so in practice always).
fn copy(request: &Request<Body>) -> Option<Request<Body>> {
    let body = request.body().try_clone()?;
    let mut again = Request::new(body);
    *again.method_mut() = request.method().clone();
    *again.uri_mut() = request.uri().clone();
    *again.headers_mut() = request.headers().clone();
    *again.version_mut() = request.version();
    Some(again)
}

/// Whether the connection was refused: the request never left.
fn refused(e: &kube::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// The innermost cause, for the log and the timeline.
fn short(e: &kube::Error) -> String {
    let mut last = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    last
}
