//! Carries out the steps of the cluster-wide restore on a node. Each may
//! run again after a crash: stop, start and `rm -rf` are idempotent, and
//! the reset first looks for K3s's reset-flag, which a completed reset
//! leaves until the next normal start (k3s-io/k3s pkg/etcd/etcd.go).

use super::executor::Executor;
use crate::upgrade::Action;

impl Executor {
    pub(super) async fn restore_step(&self, action: &Action) -> Result<(), String> {
        let node = action.node();
        let (n, _) = self.node(node)?;
        let t = &self.plan().timings;
        let (purpose, command, timeout) = match action {
            Action::StopK3s { .. } => ("stop K3s", n.stop_command(), t.command_timeout),
            Action::StartK3s { .. } => ("start K3s", n.start_command(), t.restart_timeout),
            Action::ClearDb { .. } => (
                "clear the etcd database",
                n.clear_db_command(),
                t.command_timeout,
            ),
            Action::ClusterReset { snapshot, .. } => {
                if self.reset_already_done(node).await {
                    tracing::info!(
                        target: "upgrade",
                        "{node}: the cluster reset already ran ({} exists, K3s not started since): not resetting again",
                        crate::upgrade::plan::RESET_FLAG
                    );
                    return Ok(());
                }
                (
                    "cluster reset",
                    n.cluster_reset_command(snapshot),
                    t.restart_timeout,
                )
            }
            other => return Err(format!("{node}: {other:?} is not a restore step")),
        };
        self.remote(node, purpose, &command, timeout)
            .await
            .map(|_| ())
    }

    async fn reset_already_done(&self, node: &str) -> bool {
        let Ok((n, _)) = self.node(node) else {
            return false;
        };
        let timeout = self.plan().timings.command_timeout;
        self.remote(
            node,
            "look for the reset flag",
            &n.reset_done_command(),
            timeout,
        )
        .await
        .is_ok()
    }
}
