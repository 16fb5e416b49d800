//! Airgap: copy a node's release asset and its sha256 list from the
//! operator's artifacts directory to the node's staging directory, over the
//! node's own SSH connection (streamed through the command's stdin, with
//! `become` applied). The binary method then verifies the sha256 on the
//! node before it swaps anything.

use std::path::Path;
use std::time::Duration;

use jiff::SignedDuration;

use super::artifacts::{self, LocalArtifact};
use super::executor::Executor;
use crate::remote::{Stdin, shell_quote};
use crate::upgrade::method::{self, ARTIFACTS_STAGE};

/// How often (in bytes sent) the log says how far a copy has come.
const PROGRESS_EVERY: u64 = 16 * 1024 * 1024;

/// The staging directory of `version` on the node.
pub fn stage_dir(version: &str) -> String {
    format!("{ARTIFACTS_STAGE}/{version}")
}

/// The command that writes its stdin to `file` in `dir`.
pub fn receive_command(dir: &str, file: &str) -> String {
    format!(
        "mkdir -p {} && cat > {}",
        shell_quote(dir),
        shell_quote(&format!("{dir}/{file}"))
    )
}

/// The command that removes the staged copy of `version`.
pub fn unstage_command(version: &str) -> String {
    format!("rm -rf {}", shell_quote(&stage_dir(version)))
}

impl Executor {
    /// The node's asset of `version` (by its `uname -m`), found in the
    /// plan's artifacts directory.
    pub(super) async fn local_artifact(
        &self,
        node: &str,
        dir: &Path,
        version: &str,
    ) -> Result<LocalArtifact, String> {
        let t = self.plan().timings.command_timeout;
        let (uname, _) = self.remote(node, "arch check", "uname -m", t).await?;
        let (arch, asset) = method::release_asset(uname.trim())
            .ok_or_else(|| format!("K3s publishes no binary for {}", uname.trim()))?;
        artifacts::locate(dir, version, arch, asset)
    }

    /// Copies `version`'s sha256 list and asset for `node` into the node's
    /// staging directory. The binary is not checked here: the node checks
    /// what it received against the list before the swap.
    pub(super) async fn stage_artifacts(&self, node: &str, version: &str) -> Result<(), String> {
        let Some(dir) = self.plan().artifacts.clone() else {
            return Ok(());
        };
        let a = self.local_artifact(node, &dir, version).await?;
        let target = stage_dir(version);
        let list_name = a.list.file_name().map(|f| f.to_string_lossy().into_owned());
        let list_name = list_name.unwrap_or_default();
        let t = self.plan().timings.install_timeout;
        self.send_file(node, &a.list, &target, &list_name, t)
            .await?;
        self.send_file(node, &a.binary, &target, &a.asset, t).await
    }

    /// Removes the staged copy of `version` once it is installed.
    pub(super) async fn unstage_artifacts(&self, node: &str, version: &str) {
        if self.plan().artifacts.is_none() {
            return;
        }
        let t = self.plan().timings.command_timeout;
        let cmd = unstage_command(version);
        if let Err(e) = self.remote(node, "remove staged artifacts", &cmd, t).await {
            tracing::warn!(target: "upgrade", "{node}: the staged copy stays: {e}");
        }
    }

    /// Streams the local file `path` to `dir/name` on the node.
    async fn send_file(
        &self,
        node: &str,
        path: &Path,
        dir: &str,
        name: &str,
        timeout: SignedDuration,
    ) -> Result<(), String> {
        let (n, transport) = self.node(node)?;
        let command = n.privileged(&receive_command(dir, name));
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| format!("copy to {node}: cannot open {}: {e}", path.display()))?;
        let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
        let what = format!("{node}: copy {} to {dir}/{name}", path.display());
        tracing::info!(target: "upgrade", "{what} ({len} bytes) via {}", transport.describe());
        let mut next = PROGRESS_EVERY;
        let progress = |sent: u64| {
            if sent >= next || sent == len {
                tracing::info!(target: "upgrade", "{what}: {sent} of {len} bytes sent");
                next = sent + PROGRESS_EVERY;
            }
        };
        let timeout = Duration::try_from(timeout).unwrap_or(Duration::ZERO);
        let tag = node.to_string();
        let r = transport
            .exec_with_stdin(&command, timeout, Stdin::new(file, progress), move |l| {
                tracing::info!(target: "upgrade", "{tag} ! {}", l.line);
            })
            .await
            .map_err(|e| format!("copy {} to {node}: {e}", path.display()))?;
        if r.success() {
            return Ok(());
        }
        let last = r.stderr.lines().rfind(|l| !l.trim().is_empty());
        Err(format!(
            "copy {} to {node}:{dir}/{name} failed (exit status {}): {}",
            path.display(),
            r.exit_status.map_or("none".into(), |c| c.to_string()),
            last.unwrap_or_default()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_receiving_command_quotes_its_paths() {
        assert_eq!(
            receive_command(&stage_dir("v1.34.3+k3s1"), "k3s"),
            "mkdir -p /var/lib/k3s-cockpit/artifacts/v1.34.3+k3s1 && cat > /var/lib/k3s-cockpit/artifacts/v1.34.3+k3s1/k3s"
        );
    }
}
