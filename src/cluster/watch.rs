//! One watcher task per resource, all feeding one channel. kube-runtime's
//! watcher relists and re-watches by itself; errors are reported to the
//! model (for the "API unreachable" banner) and retried with backoff.
//! Objects are decoded one by one ([`Lenient`]): one that does not decode is
//! skipped with a warning instead of failing its whole list.

use std::time::Duration;

use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::api::core::v1::{Event, Pod, Service};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event as WatchEvent};
use kube::{Client, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use super::convert;
use super::lenient::{Lenient, Undecodable};
use super::node_lease::NodeLease;
use super::node_view::NodeView;
use crate::model::fleet::{ApiFailure, ApiFailureKind, ClusterEvent, ResourceKind};

/// How long the lease watcher lets renewals gather before it reads them.
/// Every node renews every 10 s, so at 5,000 nodes 500 renewals a second
/// each cost a wake-up, a `recv` and an ACK when read one by one; read every
/// 50 ms they arrive in batches. A renewal read 50 ms late changes nothing
/// seen: ages are whole seconds, LATE is judged from `renewTime` with a
/// second of slack, and nodes, services and pods are not paced.
const LEASE_PACE: Duration = Duration::from_millis(50);

/// Starts every watcher. Each task ends when the receiver is dropped or
/// its handle is aborted.
pub(crate) fn spawn_watchers(
    client: &Client,
    tx: &UnboundedSender<ClusterEvent>,
) -> Vec<JoinHandle<()>> {
    let gvk = GroupVersionKind::gvk("metallb.io", "v1beta1", "ServiceL2Status");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "servicel2statuses");
    let l2 = Api::all_with(client.clone(), &resource);
    vec![
        spawn(
            Api::all(client.clone()),
            ResourceKind::Nodes,
            None,
            tx,
            |n: &NodeView| Some(ClusterEvent::Node(convert::node(n))),
            |n| Some(ClusterEvent::NodeDeleted(n.name_any())),
        ),
        spawn(
            Api::namespaced(client.clone(), "kube-node-lease"),
            ResourceKind::Leases,
            Some(LEASE_PACE),
            tx,
            |l: &NodeLease| Some(ClusterEvent::Lease(convert::lease(l))),
            |l| Some(ClusterEvent::LeaseDeleted(l.name_any())),
        ),
        spawn(
            Api::all(client.clone()),
            ResourceKind::Services,
            None,
            tx,
            |s: &Service| convert::service(s).map(ClusterEvent::Service),
            |s| {
                Some(ClusterEvent::ServiceDeleted(
                    s.namespace().unwrap_or_default(),
                    s.name_any(),
                ))
            },
        ),
        spawn(
            Api::all(client.clone()),
            ResourceKind::Pods,
            None,
            tx,
            |p: &Pod| convert::pod(p).map(ClusterEvent::Pod),
            |p| {
                Some(ClusterEvent::PodDeleted(
                    p.namespace().unwrap_or_default(),
                    p.name_any(),
                ))
            },
        ),
        spawn(
            Api::all(client.clone()),
            ResourceKind::Events,
            None,
            tx,
            |e: &Event| Some(ClusterEvent::Event(convert::event(e))),
            |e: &Event| Some(ClusterEvent::EventDeleted(convert::event(e))),
        ),
        spawn(
            l2,
            ResourceKind::L2Statuses,
            None,
            tx,
            |o: &DynamicObject| convert::l2_status(o).map(ClusterEvent::L2),
            |o| {
                Some(ClusterEvent::L2Deleted(format!(
                    "{}/{}",
                    o.namespace().unwrap_or_default(),
                    o.name_any()
                )))
            },
        ),
    ]
}

/// One watcher task. With `pace`, after handling what has arrived it waits
/// that long before reading again (see [`LEASE_PACE`]).
fn spawn<K>(
    api: Api<Lenient<K>>,
    kind: ResourceKind,
    pace: Option<Duration>,
    tx: &UnboundedSender<ClusterEvent>,
    on_apply: fn(&K) -> Option<ClusterEvent>,
    on_delete: fn(&K) -> Option<ClusterEvent>,
) -> JoinHandle<()>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let tx = tx.clone();
    tokio::spawn(async move {
        let stream = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut healthy = false;
        pump(stream, pace, |item| {
            forward(item, kind, on_apply, on_delete, &mut healthy, &tx)
        })
        .await;
    })
}

/// Hands every item of `stream` to `handle` until either ends (`handle`
/// returns false). With `pace`, once nothing more is ready it waits that
/// long before reading again, so that items gather and are read in batches.
async fn pump<S: Stream + Unpin>(
    mut stream: S,
    pace: Option<Duration>,
    mut handle: impl FnMut(S::Item) -> bool,
) {
    while let Some(first) = stream.next().await {
        if !handle(first) {
            return;
        }
        let Some(pace) = pace else { continue };
        // Everything already received: hyper hands a body over one chunk at
        // a time from its connection task, so yield to that task between
        // polls; two empty polls in a row mean the socket is dry.
        let mut dry = 0;
        while dry < 2 {
            match stream.next().now_or_never() {
                Some(Some(item)) => {
                    dry = 0;
                    if !handle(item) {
                        return;
                    }
                }
                Some(None) => return,
                None => {
                    dry += 1;
                    tokio::task::yield_now().await;
                }
            }
        }
        tokio::time::sleep(pace).await;
    }
}

/// Turns one watcher item into a cluster event and sends it; false when the
/// receiver is gone or the resource is not there for us.
fn forward<K>(
    item: Result<WatchEvent<Lenient<K>>, watcher::Error>,
    kind: ResourceKind,
    on_apply: fn(&K) -> Option<ClusterEvent>,
    on_delete: fn(&K) -> Option<ClusterEvent>,
    healthy: &mut bool,
    tx: &UnboundedSender<ClusterEvent>,
) -> bool {
    let msg = match item {
        Ok(ev) => {
            if !*healthy {
                *healthy = true;
                if tx.send(ClusterEvent::ApiOk).is_err() {
                    return false;
                }
            }
            match ev {
                WatchEvent::Init => Some(ClusterEvent::ResyncStart(kind)),
                WatchEvent::InitDone => Some(ClusterEvent::ResyncDone(kind)),
                WatchEvent::Apply(o) | WatchEvent::InitApply(o) => {
                    decoded(o, kind).and_then(|o| on_apply(&o))
                }
                WatchEvent::Delete(o) => decoded(o, kind).and_then(|o| on_delete(&o)),
            }
        }
        Err(e) => {
            if let Some(reason) = unavailable(&e, kind) {
                *healthy = false;
                // Nothing to retry: the resource is not there for us.
                let _ = tx.send(ClusterEvent::Unavailable(kind, reason));
                return false;
            }
            let failure = classify(&e, kind);
            // A 410 is the watcher relisting: the connection is fine.
            if failure.kind != ApiFailureKind::Resync {
                *healthy = false;
            }
            Some(ClusterEvent::ApiError(failure))
        }
    };
    msg.is_none_or(|msg| tx.send(msg).is_ok())
}

/// The object if it decoded; otherwise a warning naming it and the field
/// error, and nothing for the model.
fn decoded<K>(object: Lenient<K>, kind: ResourceKind) -> Option<K> {
    object.0.map_err(|u| skip(&u, kind)).ok()
}

fn skip(u: &Undecodable, kind: ResourceKind) {
    tracing::warn!(
        "{kind:?}: skipped {} (resourceVersion {}): cannot decode it: {}",
        u.id(),
        u.metadata.resource_version.as_deref().unwrap_or("?"),
        u.error
    );
}

/// 403/404 on the optional resources (leases, MetalLB status) means
/// "degrade", not "retry forever".
fn unavailable(e: &watcher::Error, kind: ResourceKind) -> Option<String> {
    if !matches!(kind, ResourceKind::Leases | ResourceKind::L2Statuses) {
        return None;
    }
    let watcher::Error::InitialListFailed(kube::Error::Api(status)) = e else {
        return None;
    };
    match status.code {
        403 => Some("forbidden by RBAC".into()),
        404 => Some("resource not served (CRD missing)".into()),
        _ => None,
    }
}

/// What a watcher error means for the operator: the server unreachable
/// (nothing answered), credentials rejected (401), a permission missing
/// (403, naming verb and resource), a resync (410 Gone: not an outage), a
/// server error (5xx), or something else.
pub(crate) fn classify(e: &watcher::Error, kind: ResourceKind) -> ApiFailure {
    use ApiFailureKind::*;
    let (verb, client) = match e {
        watcher::Error::InitialListFailed(c) => ("list", Some(c)),
        watcher::Error::WatchStartFailed(c) | watcher::Error::WatchFailed(c) => ("watch", Some(c)),
        watcher::Error::WatchError(status) => return from_status(status, "watch", kind),
        watcher::Error::NoResourceVersion => ("watch", None),
    };
    match client {
        Some(kube::Error::Api(status)) => from_status(status, verb, kind),
        Some(kube::Error::Auth(_)) => ApiFailure::new(Unauthorized, short_error(e)),
        Some(
            kube::Error::HyperError(_)
            | kube::Error::Service(_)
            | kube::Error::ReadEvents(_)
            | kube::Error::RustlsTls(_),
        ) => ApiFailure::new(Unreachable, network_reason(e)),
        _ => ApiFailure::new(Other, short_error(e)),
    }
}

fn from_status(status: &kube::core::Status, verb: &str, kind: ResourceKind) -> ApiFailure {
    use ApiFailureKind::*;
    match status.code {
        401 => ApiFailure::new(Unauthorized, "credentials expired or rejected"),
        403 => ApiFailure::new(Forbidden, forbidden(status, verb, kind)),
        410 => ApiFailure::new(Resync, format!("{}: listing afresh", status_text(status))),
        500..=599 => ApiFailure::new(
            ServerError,
            format!("{} {}", status.code, status_text(status)),
        ),
        _ => ApiFailure::new(Other, format!("{} {}", status.code, status_text(status))),
    }
}

fn status_text(status: &kube::core::Status) -> String {
    let text = if status.message.is_empty() {
        status.reason.as_str()
    } else {
        status.message.as_str()
    };
    text.chars().take(160).collect()
}

/// `forbidden: list nodes`: from the server's message (`... cannot list
/// resource "nodes" ...`) when it has one, else from what was asked.
fn forbidden(status: &kube::core::Status, verb: &str, kind: ResourceKind) -> String {
    let parsed = status.message.split_once("cannot ").and_then(|(_, rest)| {
        let (verb, rest) = rest.split_once(" resource \"")?;
        let resource = rest.split('"').next()?;
        Some(format!("forbidden: {verb} {resource}"))
    });
    parsed.unwrap_or_else(|| format!("forbidden: {verb} {}", kind.resource()))
}

/// The innermost cause of a network failure (`connection refused`,
/// `dns error: ...`), which is what tells an operator where to look.
fn network_reason(e: &watcher::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut last = e.to_string();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            match io.kind() {
                ConnectionRefused => return "connection refused".into(),
                ConnectionReset => return "connection reset".into(),
                TimedOut => return "timed out".into(),
                _ => {}
            }
        }
        last = s.to_string();
        source = s.source();
    }
    last.chars().take(160).collect()
}

fn short_error(e: &watcher::Error) -> String {
    let text = e.to_string();
    // hyper/kube errors nest deeply; the head is what an operator needs.
    let text = text.replace("failed to perform initial object list: ", "list: ");
    text.chars().take(160).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Items sent one at a time, 10 ms apart, into a paced pump: every item
    /// arrives, in order, in fewer reads than items.
    #[tokio::test(flavor = "current_thread")]
    async fn paced_pump_delivers_everything_in_order_in_batches() {
        let (tx, rx) = futures::channel::mpsc::unbounded::<u32>();
        tokio::spawn(async move {
            for i in 0..40 {
                let _ = tx.unbounded_send(i);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        let mut seen = Vec::new();
        let mut reads = Vec::new();
        pump(rx, Some(Duration::from_millis(50)), |i| {
            reads.push(tokio::time::Instant::now());
            seen.push(i);
            true
        })
        .await;
        assert_eq!(seen, (0..40).collect::<Vec<_>>());
        // Items read in one batch share (almost) one instant.
        reads.dedup_by(|b, a| b.duration_since(*a) < Duration::from_millis(5));
        assert!(reads.len() <= 20, "{} reads for 40 items", reads.len());
    }

    /// What tracing writes, kept for assertions.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A good and an undecodable node through the watcher's decode path:
    /// the good one reaches the model, the bad one is a warning naming it
    /// and its field error.
    #[test]
    fn an_undecodable_node_is_skipped_with_a_warning_naming_it() {
        let nodes = [
            r#"{"metadata": {"name": "node-a", "resourceVersion": "5"}, "spec": {"unschedulable": false}}"#,
            r#"{"metadata": {"name": "node-b", "resourceVersion": "6"}, "spec": {"unschedulable": "yes"}}"#,
        ];
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let mut healthy = true;
            for json in nodes {
                let event = WatchEvent::InitApply(Lenient(super::super::lenient::decode(json)));
                let on_apply = |n: &NodeView| Some(ClusterEvent::Node(convert::node(n)));
                let on_delete = |n: &NodeView| Some(ClusterEvent::NodeDeleted(n.name_any()));
                assert!(forward(
                    Ok(event),
                    ResourceKind::Nodes,
                    on_apply,
                    on_delete,
                    &mut healthy,
                    &tx
                ));
            }
        });
        let mut names = Vec::new();
        while let Ok(event) = rx.try_recv() {
            if let ClusterEvent::Node(n) = event {
                names.push(n.name);
            }
        }
        assert_eq!(names, ["node-a"]);
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(log.contains("WARN"), "{log}");
        assert!(
            log.contains("Nodes: skipped node-b (resourceVersion 6): cannot decode it: invalid type: string \"yes\", expected a boolean"),
            "{log}"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn pump_stops_when_the_handler_says_so() {
        let stream = futures::stream::iter(0..100);
        let mut seen = 0;
        pump(stream, Some(Duration::from_millis(50)), |i| {
            seen += 1;
            i < 4
        })
        .await;
        assert_eq!(seen, 5);
    }

    fn status(code: u16, reason: &str, message: &str) -> Box<kube::core::Status> {
        Box::new(kube::core::Status {
            code,
            reason: reason.into(),
            message: message.into(),
            ..Default::default()
        })
    }

    fn list_failed(e: kube::Error) -> watcher::Error {
        watcher::Error::InitialListFailed(e)
    }

    /// Real kube errors, as the watchers get them, each to its kind.
    #[test]
    fn watcher_errors_are_told_apart_by_status_code_and_cause() {
        let c = |e: &watcher::Error| classify(e, ResourceKind::Nodes);

        let e = list_failed(kube::Error::Api(status(
            401,
            "Unauthorized",
            "Unauthorized",
        )));
        assert_eq!(
            c(&e),
            ApiFailure::new(
                ApiFailureKind::Unauthorized,
                "credentials expired or rejected"
            )
        );

        // The server's message names verb and resource.
        let e = list_failed(kube::Error::Api(status(
            403,
            "Forbidden",
            r#"nodes is forbidden: User "system:serviceaccount:kube-system:k3s-cockpit-watch" cannot list resource "nodes" in API group "" at the cluster scope"#,
        )));
        assert_eq!(
            c(&e),
            ApiFailure::new(ApiFailureKind::Forbidden, "forbidden: list nodes")
        );
        // Without one, what was asked: watching pods.
        let e = watcher::Error::WatchStartFailed(kube::Error::Api(status(403, "Forbidden", "")));
        assert_eq!(
            classify(&e, ResourceKind::Pods),
            ApiFailure::new(ApiFailureKind::Forbidden, "forbidden: watch pods")
        );

        // 410 Gone, as a watch event or a failed call: a resync.
        let e =
            watcher::Error::WatchError(status(410, "Expired", "too old resource version: 5 (77)"));
        assert_eq!(c(&e).kind, ApiFailureKind::Resync);
        let e = watcher::Error::WatchFailed(kube::Error::Api(status(410, "Gone", "")));
        assert_eq!(c(&e).kind, ApiFailureKind::Resync);

        let e = list_failed(kube::Error::Api(status(
            500,
            "InternalError",
            "etcdserver: leader changed",
        )));
        assert_eq!(
            c(&e),
            ApiFailure::new(
                ApiFailureKind::ServerError,
                "500 etcdserver: leader changed"
            )
        );
        let e = list_failed(kube::Error::Api(status(503, "ServiceUnavailable", "")));
        assert_eq!(
            c(&e),
            ApiFailure::new(ApiFailureKind::ServerError, "503 ServiceUnavailable")
        );

        // Network: connection refused deep in the service stack, a reset
        // while reading the watch stream.
        let refused =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "tcp connect error");
        let e = list_failed(kube::Error::Service(Box::new(refused)));
        assert_eq!(
            c(&e),
            ApiFailure::new(ApiFailureKind::Unreachable, "connection refused")
        );
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let e = watcher::Error::WatchFailed(kube::Error::ReadEvents(reset));
        assert_eq!(
            c(&e),
            ApiFailure::new(ApiFailureKind::Unreachable, "connection reset")
        );
        let dns = std::io::Error::other("dns error: failed to lookup address information");
        let e = list_failed(kube::Error::Service(Box::new(dns)));
        assert_eq!(c(&e).kind, ApiFailureKind::Unreachable);
        assert!(c(&e).text.contains("dns error"), "{:?}", c(&e));

        // An undecodable answer is neither.
        let bad = serde_json::from_str::<u8>("x").unwrap_err();
        let e = list_failed(kube::Error::SerdeError(bad));
        assert_eq!(c(&e).kind, ApiFailureKind::Other);
    }

    /// A connection refused by a real closed port, through a real kube
    /// client and watcher.
    #[tokio::test]
    async fn a_closed_port_is_unreachable_through_a_real_client() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = kube::Config::new(format!("http://127.0.0.1:{port}").parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let api: Api<Lenient<NodeView>> = Api::all(client);
        let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
        let e = loop {
            match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
                Ok(Some(Err(e))) => break e,
                Ok(Some(Ok(_))) => continue,
                other => panic!("expected an error, got {other:?}"),
            }
        };
        let failure = classify(&e, ResourceKind::Nodes);
        assert_eq!(failure.kind, ApiFailureKind::Unreachable, "{e:?}");
    }

    /// A 410 through `forward` does not mark the watch unhealthy, so no
    /// ApiOk follows it.
    #[test]
    fn forward_sends_the_kind_and_a_410_keeps_the_watch_healthy() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let on_apply = |n: &NodeView| Some(ClusterEvent::Node(convert::node(n)));
        let on_delete = |n: &NodeView| Some(ClusterEvent::NodeDeleted(n.name_any()));
        let mut healthy = true;
        let gone = watcher::Error::WatchError(status(410, "Expired", "too old"));
        assert!(forward(
            Err(gone),
            ResourceKind::Nodes,
            on_apply,
            on_delete,
            &mut healthy,
            &tx
        ));
        assert!(healthy);
        let Ok(ClusterEvent::ApiError(f)) = rx.try_recv() else {
            panic!("no ApiError")
        };
        assert_eq!(f.kind, ApiFailureKind::Resync);
        let denied = list_failed(kube::Error::Api(status(401, "Unauthorized", "")));
        assert!(forward(
            Err(denied),
            ResourceKind::Nodes,
            on_apply,
            on_delete,
            &mut healthy,
            &tx
        ));
        assert!(!healthy);
        let Ok(ClusterEvent::ApiError(f)) = rx.try_recv() else {
            panic!("no ApiError")
        };
        assert_eq!(f.kind, ApiFailureKind::Unauthorized);
    }
}
