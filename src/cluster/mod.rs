//! The Kubernetes edge: building a client from a kubeconfig, and watchers
//! that turn API objects into [`crate::model::ClusterEvent`]s.

pub mod convert;
pub mod endpoints;
pub mod lenient;
pub mod liveness;
pub mod node_lease;
pub mod node_view;
pub mod readonly;
mod slim;
pub mod watch;

use std::path::PathBuf;

use color_eyre::eyre::{Result, eyre};

use crate::model::ClusterEvent;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Where to find the cluster: `--kubeconfig`/`KUBECONFIG` and `--context`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ClusterTarget {
    /// Path to the kubeconfig (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use (default: the current context).
    #[arg(long)]
    pub context: Option<String>,
}

/// A client plus what the status bar shows about it.
#[derive(Clone)]
pub struct Connection {
    pub client: kube::Client,
    pub context: String,
    pub server: String,
    /// Every API server's endpoint, and which one the client uses; None
    /// for a client that stays on one endpoint.
    pub endpoints: Option<endpoints::ApiEndpoints>,
}

impl Connection {
    /// Starts following the API servers: the endpoint list is learned,
    /// and each switch of endpoint is reported to `events`.
    pub fn follow_endpoints(&self, events: &tokio::sync::mpsc::UnboundedSender<ClusterEvent>) {
        if let Some(e) = &self.endpoints {
            e.start(self.client.clone(), events.clone());
        }
    }
}

/// Builds a client. `read_only` puts [`readonly::ReadOnlyLayer`] under it.
pub async fn connect(target: &ClusterTarget, read_only: bool) -> Result<Connection> {
    let options = KubeConfigOptions {
        context: target.context.clone(),
        ..Default::default()
    };
    let kubeconfig = match &target.kubeconfig {
        Some(path) => Kubeconfig::read_from(path)
            .map_err(|e| eyre!("cannot read kubeconfig {}: {e}", path.display()))?,
        None => Kubeconfig::read().map_err(|e| {
            eyre!("no kubeconfig found ({e}). Pass --kubeconfig PATH, set KUBECONFIG, or try `k3s-cockpit demo`")
        })?,
    };
    if let Some(ctx) = &target.context
        && !kubeconfig.contexts.iter().any(|c| &c.name == ctx)
    {
        let known: Vec<&str> = kubeconfig
            .contexts
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        return Err(eyre!(
            "unknown context {ctx:?}; the kubeconfig has: {}",
            known.join(", ")
        ));
    }
    let context = target
        .context
        .clone()
        .or_else(|| kubeconfig.current_context.clone())
        .unwrap_or_else(|| "<none>".into());
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| eyre!("kubeconfig context {context:?} is not usable: {e}"))?;
    let server = config.cluster_url.to_string();
    let (endpoints, client) = endpoints::ApiEndpoints::new(config, read_only)?;
    Ok(Connection {
        client,
        context,
        server,
        endpoints: Some(endpoints),
    })
}

/// Fails fast with a useful message when the API server cannot be reached
/// at start-up (later outages are shown in the cockpit instead).
pub async fn check_reachable(conn: &Connection) -> Result<()> {
    let probe = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        conn.client.apiserver_version(),
    );
    match probe.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(eyre!(
            "cannot reach the API server {} (context {}): {e}. Check that the cluster is up and the kubeconfig is right",
            conn.server,
            conn.context
        )),
        Err(_) => Err(eyre!(
            "the API server {} did not answer within 10 s (context {})",
            conn.server,
            conn.context
        )),
    }
}
