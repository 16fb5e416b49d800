//! One watcher task per resource, all feeding one channel. kube-runtime's
//! watcher relists and re-watches by itself; errors are reported to the
//! model (for the "API unreachable" banner) and retried with backoff.

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod, Service};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event as WatchEvent};
use kube::{Client, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc::UnboundedSender;

use super::convert;
use crate::model::fleet::{ClusterEvent, ResourceKind};

/// Starts every watcher. Each task ends when the receiver is dropped.
pub fn spawn_all(client: &Client, tx: &UnboundedSender<ClusterEvent>) {
    spawn(
        Api::<Node>::all(client.clone()),
        ResourceKind::Nodes,
        tx,
        |n: &Node| Some(ClusterEvent::Node(convert::node(n))),
        |n| Some(ClusterEvent::NodeDeleted(n.name_any())),
    );
    spawn(
        Api::<Lease>::namespaced(client.clone(), "kube-node-lease"),
        ResourceKind::Leases,
        tx,
        |l: &Lease| Some(ClusterEvent::Lease(convert::lease(l))),
        |l| Some(ClusterEvent::LeaseDeleted(l.name_any())),
    );
    spawn(
        Api::<Service>::all(client.clone()),
        ResourceKind::Services,
        tx,
        |s: &Service| convert::service(s).map(ClusterEvent::Service),
        |s| {
            Some(ClusterEvent::ServiceDeleted(
                s.namespace().unwrap_or_default(),
                s.name_any(),
            ))
        },
    );
    spawn(
        Api::<Pod>::all(client.clone()),
        ResourceKind::Pods,
        tx,
        |p: &Pod| convert::pod(p).map(ClusterEvent::Pod),
        |p| {
            Some(ClusterEvent::PodDeleted(
                p.namespace().unwrap_or_default(),
                p.name_any(),
            ))
        },
    );
    spawn(
        Api::<Event>::all(client.clone()),
        ResourceKind::Events,
        tx,
        |e: &Event| Some(ClusterEvent::Event(convert::event(e))),
        |_| None,
    );
    let gvk = GroupVersionKind::gvk("metallb.io", "v1beta1", "ServiceL2Status");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "servicel2statuses");
    let l2: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    spawn(
        l2,
        ResourceKind::L2Statuses,
        tx,
        |o: &DynamicObject| convert::l2_status(o).map(ClusterEvent::L2),
        |o| {
            Some(ClusterEvent::L2Deleted(format!(
                "{}/{}",
                o.namespace().unwrap_or_default(),
                o.name_any()
            )))
        },
    );
}

fn spawn<K>(
    api: Api<K>,
    kind: ResourceKind,
    tx: &UnboundedSender<ClusterEvent>,
    on_apply: fn(&K) -> Option<ClusterEvent>,
    on_delete: fn(&K) -> Option<ClusterEvent>,
) where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let tx = tx.clone();
    tokio::spawn(async move {
        let mut stream = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut healthy = false;
        while let Some(item) = stream.next().await {
            let msg = match item {
                Ok(ev) => {
                    if !healthy {
                        healthy = true;
                        if tx.send(ClusterEvent::ApiOk).is_err() {
                            return;
                        }
                    }
                    match ev {
                        WatchEvent::Init => Some(ClusterEvent::ResyncStart(kind)),
                        WatchEvent::InitDone => Some(ClusterEvent::ResyncDone(kind)),
                        WatchEvent::Apply(o) | WatchEvent::InitApply(o) => on_apply(&o),
                        WatchEvent::Delete(o) => on_delete(&o),
                    }
                }
                Err(e) => {
                    healthy = false;
                    if let Some(reason) = unavailable(&e, kind) {
                        // Nothing to retry: the resource is not there for us.
                        let _ = tx.send(ClusterEvent::Unavailable(kind, reason));
                        return;
                    }
                    Some(ClusterEvent::ApiError(short_error(&e)))
                }
            };
            if let Some(msg) = msg
                && tx.send(msg).is_err()
            {
                return;
            }
        }
    });
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
