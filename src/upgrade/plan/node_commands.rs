//! The commands a resolved node runs beyond the plan's templates: going
//! back to a version, and the steps of K3s's cluster-wide restore
//! (docs.k3s.io upgrades/roll-back; k3s-io/k3s pkg/etcd/etcd.go `Reset`).

use super::ResolvedNode;
use crate::upgrade::engine::DB_DIR;
use crate::upgrade::template;
use crate::upgrade::version::K3sVersion;

/// K3s writes this file when `--cluster-reset` completed and removes it on
/// the next normal start; while it exists K3s refuses another reset.
pub const RESET_FLAG: &str = "/var/lib/rancher/k3s/server/db/reset-flag";

impl ResolvedNode {
    /// Puts `version` back without starting K3s: the kept binary with the
    /// binary method, else the install command (whose install script is
    /// told `INSTALL_K3S_SKIP_START=true`).
    pub fn reinstall_command(&self, version: &K3sVersion) -> String {
        match &self.commands.reinstate {
            Some(script) => template::render(script, &[("version", &version.to_string())]),
            None => self.install_command(version),
        }
    }

    pub fn stop_command(&self) -> String {
        format!("systemctl stop {}", self.role.service())
    }

    pub fn start_command(&self) -> String {
        format!("systemctl start {}", self.role.service())
    }

    /// Restores `snapshot` as a new one-member etcd cluster; K3s exits when
    /// done and is then started normally.
    pub fn cluster_reset_command(&self, snapshot: &str) -> String {
        format!(
            "k3s server --cluster-reset --cluster-reset-restore-path={}",
            crate::remote::quote::shell_quote(snapshot)
        )
    }

    /// Removes the server's datastore so that it joins as a new member.
    pub fn clear_db_command(&self) -> String {
        format!("rm -rf {DB_DIR}")
    }

    /// Exit status 0 when a reset already ran and K3s has not started since.
    pub fn reset_done_command(&self) -> String {
        format!("test -e {RESET_FLAG}")
    }
}

impl ResolvedNode {
    /// The remote command an engine action runs on this node, if it runs
    /// one (cordon, drain and labels go through the API).
    pub fn action_command(&self, action: &crate::upgrade::Action) -> Option<String> {
        use crate::upgrade::Action as A;
        Some(match action {
            A::Install {
                version,
                reinstate: true,
                ..
            } => self.reinstall_command(version),
            A::Install { version, .. } => self.install_command(version),
            A::Restart { .. } => self.restart_command(),
            A::EtcdSnapshot { name, .. } => self.snapshot_command(name),
            A::StopK3s { .. } => self.stop_command(),
            A::StartK3s { .. } => self.start_command(),
            A::ClusterReset { snapshot, .. } => self.cluster_reset_command(snapshot),
            A::ClearDb { .. } => self.clear_db_command(),
            A::Cordon { .. }
            | A::Uncordon { .. }
            | A::Drain { .. }
            | A::Label { .. }
            | A::Unlabel { .. } => return None,
        })
    }
}
