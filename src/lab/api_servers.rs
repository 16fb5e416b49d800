//! Each K3s server node's own API endpoint. On a real cluster every server
//! runs an API server on its address (port 6443), a kubeconfig copied from a
//! server points at that one server, and while its K3s restarts the
//! endpoint refuses connections and every open connection (each watch) is
//! cut. The `kubernetes` EndpointSlice in `default` lists the servers whose
//! API server is up: an API server removes its own address when it shuts
//! down (kubernetes/kubernetes, pkg/controlplane/reconcilers, the lease
//! endpoint reconciler's `RemoveEndpoints`).
//!
//! The lab serves one shared store, as the servers share one datastore, so
//! each endpoint is a TCP relay to the lab's API listener on the server's
//! own loopback address (127.78.0.N, the same port), bound while that
//! node's K3s runs.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::scenario::Role;
use super::sim::{Kubelet, SimHandle};
use super::store::{Kind, Store};

/// How often an endpoint looks whether its node's K3s runs. The lab's
/// simulation has no per-node notifier and this is test scaffolding, not
/// the cockpit.
const LOOK_EVERY: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub struct ServerEndpoint {
    pub node: String,
    pub addr: SocketAddr,
}

/// The server endpoints of a running lab.
pub struct ApiServers {
    pub endpoints: Vec<ServerEndpoint>,
    sim: SimHandle,
}

/// The loopback address of the `n`th server (0-based).
fn server_ip(n: usize) -> IpAddr {
    let n = u8::try_from(n + 1).unwrap_or(u8::MAX);
    IpAddr::V4(Ipv4Addr::new(127, 78, 0, n))
}

impl ApiServers {
    /// Binds one endpoint per server node of the simulation, relaying to
    /// `upstream`, and gives each server node that address as its
    /// InternalIP (as K3s advertises the API on the node's address).
    pub fn start(sim: &SimHandle, store: &Store, upstream: SocketAddr) -> Arc<ApiServers> {
        let servers: Vec<String> = sim
            .lock()
            .nodes
            .iter()
            .filter(|n| n.role == Role::Server)
            .map(|n| n.name.clone())
            .collect();
        let endpoints: Vec<ServerEndpoint> = servers
            .into_iter()
            .enumerate()
            .map(|(i, node)| ServerEndpoint {
                node,
                addr: SocketAddr::new(server_ip(i), upstream.port()),
            })
            .collect();
        for e in &endpoints {
            let ip = e.addr.ip().to_string();
            store.update(Kind::Node, "", &e.node, |n| {
                n["metadata"]["annotations"]["k3s.io/internal-ip"] = json!(ip);
                n["status"]["addresses"][0]["address"] = json!(ip);
            });
            tokio::spawn(serve(sim.clone(), e.clone(), upstream));
        }
        Arc::new(ApiServers {
            endpoints,
            sim: sim.clone(),
        })
    }

    /// The endpoint a kubeconfig copied from the first server points at.
    pub fn first(&self) -> Option<SocketAddr> {
        self.endpoints.first().map(|e| e.addr)
    }

    /// `default/kubernetes` as an EndpointSlice: the servers whose K3s runs.
    pub fn endpoint_slice(&self) -> Value {
        let live: Vec<Value> = self
            .endpoints
            .iter()
            .filter(|e| k3s_running(&self.sim, &e.node))
            .map(|e| json!({"addresses": [e.addr.ip().to_string()], "conditions": {"ready": true}}))
            .collect();
        let port = self.endpoints.first().map_or(6443, |e| e.addr.port());
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": "IPv4",
            "endpoints": live,
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        })
    }
}

fn k3s_running(sim: &SimHandle, node: &str) -> bool {
    sim.kubelet_state(node)
        .is_ok_and(|k| k != Kubelet::Down && k != Kubelet::Stopped)
}

/// Serves one endpoint for the lab's life: bound while the node's K3s
/// runs; when it stops, the listener closes and every relayed connection
/// is cut.
async fn serve(sim: SimHandle, endpoint: ServerEndpoint, upstream: SocketAddr) {
    let mut look = tokio::time::interval(LOOK_EVERY);
    loop {
        look.tick().await;
        if !k3s_running(&sim, &endpoint.node) {
            continue;
        }
        let listener = match TcpListener::bind(endpoint.addr).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(target: "lab", "cannot serve {}'s API on {}: {e}", endpoint.node, endpoint.addr);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut relays = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((client, _)) = accepted {
                        relays.spawn(relay(client, upstream));
                    }
                }
                _ = look.tick() => {
                    if !k3s_running(&sim, &endpoint.node) {
                        break;
                    }
                }
                Some(_) = relays.join_next(), if !relays.is_empty() => {}
            }
        }
        drop(listener);
        relays.abort_all();
        tracing::debug!(target: "lab", "{}: API server on {} stopped with K3s", endpoint.node, endpoint.addr);
    }
}

async fn relay(mut client: TcpStream, upstream: SocketAddr) {
    let _ = client.set_nodelay(true);
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = server.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}
