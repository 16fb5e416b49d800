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
use crate::model::fleet::{ClusterEvent, ResourceKind};

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
            |_| None,
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
            *healthy = false;
            if let Some(reason) = unavailable(&e, kind) {
                // Nothing to retry: the resource is not there for us.
                let _ = tx.send(ClusterEvent::Unavailable(kind, reason));
                return false;
            }
            Some(ClusterEvent::ApiError(short_error(&e)))
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
}
