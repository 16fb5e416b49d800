//! The lab's LoadBalancer IPs as real sockets: a tiny HTTP/1.1 server on
//! each service `ip:port` (loopback addresses, 127.77.0.0/24 in the built-in
//! scenarios), bound exactly while a live MetalLB speaker announces the IP.
//! Probes from the cockpit, the demo and the tests hit these sockets and see
//! a real outage window when the announcing speaker dies and nobody has
//! taken over yet.
//!
//! Every request gets `200 OK` with a one-line body naming the service and
//! the announcing node. Dropping a [`Served`] closes the listener and every
//! open connection, as a vanished ARP/NDP answer would.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// One period with no listener on a service's `ip:port`, as the lab itself
/// recorded it (wall-clock instants, comparable with the cockpit's journal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutageWindow {
    /// `namespace/name`.
    pub service: String,
    /// `ip:port`.
    pub endpoint: String,
    /// Why the IP was dark (the node and what it was doing).
    pub cause: String,
    pub start: jiff::Timestamp,
    /// None while the outage lasts.
    pub end: Option<jiff::Timestamp>,
}

impl OutageWindow {
    pub fn duration(&self) -> Option<Duration> {
        let end = self.end?;
        Duration::try_from(end.duration_since(self.start)).ok()
    }
}

/// A bound service listener; dropping it stops serving.
pub struct Served {
    announcer: Arc<Mutex<String>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Served").finish_non_exhaustive()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Served {
    /// Binds `addr` now (synchronously, so the caller knows the instant) and
    /// serves on the current tokio runtime.
    pub fn bind(addr: SocketAddr, service: &str, node: &str) -> std::io::Result<Served> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| std::io::Error::other(format!("no async runtime: {e}")))?;
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let announcer = Arc::new(Mutex::new(node.to_string()));
        let service = service.to_string();
        let shared = announcer.clone();
        let task = runtime.spawn(async move {
            match TcpListener::from_std(std_listener) {
                Ok(listener) => accept_loop(listener, service, shared).await,
                Err(e) => tracing::warn!(target: "lab", "cannot serve {addr}: {e}"),
            }
        });
        Ok(Served { announcer, task })
    }

    /// The IP moved to another live node: same socket, new name in replies.
    pub fn set_announcer(&self, node: &str) {
        let mut name = self.announcer.lock().unwrap_or_else(|e| e.into_inner());
        if *name != node {
            *name = node.to_string();
        }
    }
}

async fn accept_loop(listener: TcpListener, service: String, announcer: Arc<Mutex<String>>) {
    // Connections live in the set, so aborting this task closes them too.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let node = announcer.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    let body = format!("{service} served from {node}\n");
                    connections.spawn(answer(stream, body));
                }
                // Out of descriptors and the like: breathe, keep serving.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Reads one request head (or gives up after a short while) and answers 200.
async fn answer(mut stream: TcpStream, body: String) {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        true
    };
    if !matches!(
        tokio::time::timeout(Duration::from_secs(5), read).await,
        Ok(true)
    ) {
        return;
    }
    let reply = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}
