//! The lab: a simulated K3s cluster that real clients (kube-rs, kubectl,
//! SSH) talk to on loopback. `k3s-cockpit lab` runs it alone; `demo`, the
//! tests and the benchmarks embed it.

pub mod api;
pub mod audit;
pub mod commit_log;
pub mod discovery;
pub mod host;
mod node_exec;
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
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .wrap_err_with(|| format!("cannot open the outage log {}", path.display()))?;
            sim.set_outage_log(file);
        }
        let (pod_tx, mut pod_rx) = mpsc::unbounded_channel();
        let state = Arc::new(ApiState {
            store: store.clone(),
            audit,
            pod_removed: pod_tx,
            bookmark_every: Duration::from_secs(60).div_f64(config.scenario.time_scale),
        });
        let app = api::router(state);
        // Like the API server (Go sets TCP_NODELAY on every connection): a
        // watch event is written at once, not held back by Nagle's algorithm
        // until the client's delayed ACK.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("lab API server stopped: {e}");
            }
        });
        tokio::spawn(sim.clone().run());
        let reschedule = sim.clone();
        tokio::spawn(async move {
            while let Some(pod) = pod_rx.recv().await {
                reschedule.pod_removed(pod);
            }
        });
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
        })
    }

    pub fn server_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes a kubeconfig for plain HTTP on loopback with no credentials.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<()> {
        let text = kubeconfig_yaml(&self.server_url(), "k3s-lab");
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .wrap_err_with(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(path, text)
            .wrap_err_with(|| format!("cannot write kubeconfig {}", path.display()))
    }
}

pub fn kubeconfig_yaml(server: &str, context: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {context}\n  cluster:\n    server: {server}\n\
         users:\n- name: {context}\n  user: {{}}\ncontexts:\n- name: {context}\n  context:\n    cluster: {context}\n    user: {context}\n\
         current-context: {context}\n"
    )
}
