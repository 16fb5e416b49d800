//! The lab: a simulated K3s cluster that real clients (kube-rs, kubectl,
//! SSH) talk to on loopback. `k3s-cockpit lab` runs it alone; `demo`, the
//! tests and the benchmarks embed it.

pub mod api;
pub mod api_servers;
pub mod audit;
pub mod auth;
pub mod commit_log;
pub mod discovery;
pub mod eviction;
pub mod host;
mod node_exec;
mod node_files;
mod node_restore;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod node_tests;
mod node_upgrade;
pub mod objects;
pub mod plan_out;
pub mod query;
pub mod replay;
pub mod scenario;
pub mod schema;
pub mod serve;
pub mod shell;
pub mod sim;
pub mod ssh;
pub mod store;
pub mod tables;
pub mod workloads;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use color_eyre::eyre::{Result, WrapErr, bail};
use tokio::sync::mpsc;

use self::api::ApiState;
use self::audit::AuditLog;
use self::scenario::Scenario;
use self::sim::{Sim, SimHandle};
use self::store::Store;

#[derive(Debug, Clone)]
pub struct LabConfig {
    pub scenario: Scenario,
    pub listen: SocketAddr,
    /// Serving on a non-loopback address must be asked for explicitly: the
    /// lab has no authentication.
    pub allow_non_loopback: bool,
    pub audit_log: Option<PathBuf>,
    /// Record every committed change with its instant (benchmarks).
    pub commit_log: Option<PathBuf>,
    /// Play the scenario's `[replay]` (the old upgrade automation).
    pub replay: bool,
    /// Append the lab's own service outage windows here (JSON lines).
    pub outage_log: Option<PathBuf>,
    /// Append every command the nodes' shells carry out here (JSON lines).
    pub node_log: Option<PathBuf>,
    /// A bearer token that expires (the kubeconfig carries it) and
    /// resources the client may not touch.
    pub auth: auth::Auth,
    /// Serve the API on each server node's own address as well, stopped
    /// while its K3s restarts; the kubeconfig then points at the first.
    pub api_per_server: bool,
}

impl LabConfig {
    pub fn new(scenario: Scenario) -> Self {
        LabConfig {
            scenario,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            allow_non_loopback: false,
            audit_log: None,
            commit_log: None,
            replay: true,
            outage_log: None,
            node_log: None,
            auth: auth::Auth::default(),
            api_per_server: false,
        }
    }
}

/// A running lab. Dropping it stops nothing by itself: the tasks live on the
/// runtime, which ends with the process (or the test).
pub struct Lab {
    pub addr: SocketAddr,
    pub store: Arc<Store>,
    pub sim: SimHandle,
    pub scenario: Scenario,
    /// The bearer token clients must present, if the lab asks for one.
    pub token: Option<String>,
    /// Each server's own API endpoint, with `api_per_server`.
    pub api_servers: Option<Arc<api_servers::ApiServers>>,
}

impl Lab {
    pub async fn start(config: LabConfig) -> Result<Lab> {
        if !config.listen.ip().is_loopback() && !config.allow_non_loopback {
            bail!(
                "refusing to serve the lab on {}: it has no authentication. Use a 127.x.x.x address, \
                 or pass --allow-non-loopback if you really mean it",
                config.listen
            );
        }
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .wrap_err_with(|| {
                format!(
                    "cannot listen on {} (is the port already in use?)",
                    config.listen
                )
            })?;
        let addr = listener.local_addr()?;
        let nodes = config.scenario.nodes.len();
        // Enough history for every node to renew several times over.
        let store = Arc::new(Store::new((nodes * 8).max(10_000)));
        if let Some(path) = &config.commit_log {
            store.log_commits(commit_log::CommitLog::create(path)?);
        }
        let audit = match &config.audit_log {
            Some(path) => Some(AuditLog::create(path)?),
            None => None,
        };
        let sim = Sim::start(store.clone(), &config.scenario);
        if let Some(path) = &config.outage_log {
            sim.set_outage_log(open_append(path, "the outage log")?);
        }
        if let Some(path) = &config.node_log {
            sim.set_node_log(open_append(path, "the node log")?);
        }
        let (pod_tx, pod_rx) = mpsc::unbounded_channel();
        let throttle = config
            .scenario
            .throttle
            .clone()
            .map(eviction::Throttle::new);
        let api_servers = config
            .api_per_server
            .then(|| api_servers::ApiServers::start(&sim, &store, addr));
        let state = Arc::new(ApiState {
            store: store.clone(),
            audit,
            pod_removed: pod_tx,
            bookmark_every: Duration::from_secs(60).div_f64(config.scenario.time_scale),
            auth: config.auth.clone(),
            api_servers: api_servers.clone(),
            throttle,
        });
        serve_api(listener, api::router(state));
        spawn_sim(&sim, &store, pod_rx);
        if config.replay
            && let Some(spec) = config.scenario.replay.clone()
        {
            tokio::spawn(replay::run(
                sim.clone(),
                store.clone(),
                spec,
                config.scenario.time_scale,
            ));
        }
        Ok(Lab {
            addr,
            store,
            sim,
            scenario: config.scenario,
            token: config.auth.token().map(str::to_string),
            api_servers,
        })
    }

    pub fn server_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What the kubeconfig points at: the first server's own endpoint when
    /// each server serves the API, else the lab's listener.
    pub fn kubeconfig_url(&self) -> String {
        match self.api_servers.as_ref().and_then(|a| a.first()) {
            Some(first) => format!("http://{first}"),
            None => self.server_url(),
        }
    }

    /// Writes a kubeconfig for plain HTTP on loopback with no credentials.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<()> {
        let text = kubeconfig_yaml(&self.kubeconfig_url(), "k3s-lab", self.token.as_deref());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .wrap_err_with(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(path, text)
            .wrap_err_with(|| format!("cannot write kubeconfig {}", path.display()))
    }
}

/// Serves the lab's API on `listener`. Like the API server (Go sets
/// TCP_NODELAY on every connection), a watch event is written at once, not
/// held back by Nagle's algorithm until the client's delayed ACK.
fn serve_api(listener: tokio::net::TcpListener, app: axum::Router) {
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("lab API server stopped: {e}");
        }
    });
}

/// The simulation's timers, its speakers' node watch, and the pods the
/// API evicted coming back.
fn spawn_sim(
    sim: &SimHandle,
    store: &Arc<Store>,
    mut pod_rx: mpsc::UnboundedReceiver<serde_json::Value>,
) {
    tokio::spawn(sim.clone().run());
    tokio::spawn(sim::watch_nodes(sim.clone(), store.clone()));
    let reschedule = sim.clone();
    tokio::spawn(async move {
        while let Some(pod) = pod_rx.recv().await {
            reschedule.pod_removed(pod);
        }
    });
}

fn open_append(path: &Path, what: &str) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .wrap_err_with(|| format!("cannot open {what} {}", path.display()))
}

pub fn kubeconfig_yaml(server: &str, context: &str, token: Option<&str>) -> String {
    let user = token.map_or("{}".to_string(), |t| format!("\n    token: {t}"));
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {context}\n  cluster:\n    server: {server}\n\
         users:\n- name: {context}\n  user: {user}\ncontexts:\n- name: {context}\n  context:\n    cluster: {context}\n    user: {context}\n\
         current-context: {context}\n"
    )
}
