//! Checks on each node over its own transport, before anything is changed:
//! for every node before the rollout starts, and again right before each
//! node is cordoned. Read-only: nothing on the node or in the cluster
//! changes. Each failure names the node and the check.

use jiff::SignedDuration;

use super::executor::Executor;
use crate::upgrade::method::{self, K3S_BIN};
use crate::upgrade::plan::ResolvedNode;

/// Room one K3s release binary takes (v1.33+ amd64 is ~70 MiB), with margin.
const BINARY_MIB: u64 = 100;

/// Room the binary method needs in the binary's directory for the hops
/// still ahead: the new binary staged beside the running one, and one
/// replaced binary kept per hop (`k3s.cockpit-VERSION`, which nothing
/// removes), so that a rollback can reach every version the node ran.
fn need_mib(hops_ahead: usize) -> u64 {
    BINARY_MIB.saturating_mul(hops_ahead as u64 + 1)
}

/// `k3s version v1.33.6+k3s1 (3ad6f7f5)` → the version.
fn k3s_version(stdout: &str) -> Option<&str> {
    let line = stdout.lines().next()?;
    line.strip_prefix("k3s version ")?.split_whitespace().next()
}

/// Free KiB in `df -Pk`'s second line (Available is the fourth column).
fn df_available_kib(stdout: &str) -> Option<u64> {
    stdout
        .lines()
        .nth(1)?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

/// The hash `sha256sum` printed for the first file.
fn first_hash(stdout: &str) -> Option<&str> {
    stdout.split_whitespace().next()
}

use super::artifacts::listed_hash;

/// The versions of `n`'s path its kubelet (`kubelet`) does not run yet.
fn versions_ahead<'a>(
    n: &'a ResolvedNode,
    kubelet: &str,
) -> impl Iterator<Item = &'a crate::upgrade::K3sVersion> {
    let running = kubelet.parse::<crate::upgrade::K3sVersion>().ok();
    n.hops
        .iter()
        .filter(move |v| running.as_ref().is_none_or(|r| r < *v))
}

fn hops_ahead(n: &ResolvedNode, kubelet: &str) -> usize {
    versions_ahead(n, kubelet).count()
}

impl Executor {
    /// Every check on `node`, whose kubelet reports `kubelet`.
    pub async fn check_node(&self, node: &str, kubelet: &str) -> Result<(), String> {
        let (n, _) = self.node(node)?;
        let n = n.clone();
        let t = self.plan().timings.command_timeout;
        let fail = |check: &str, why: String| format!("node {node}: {check}: {why}");
        // Behind a Proxmox host, the host is what SSH reaches; the VM is
        // reached through qm once the privilege for it is known.
        if n.proxmox_user().is_some() {
            self.exec_on_proxmox_host(node, "ssh check", "true", t)
                .await
        } else {
            self.exec_as(node, "ssh check", "true", t).await.map(|_| ())
        }
        .map_err(|e| fail("ssh", e))?;
        self.check_privilege(&n, t)
            .await
            .map_err(|e| fail("privilege", e))?;
        let unit = n.role.service();
        self.remote(
            node,
            "unit check",
            &format!("systemctl is-active {unit}"),
            t,
        )
        .await
        .map_err(|e| {
            fail(
                "unit",
                format!(
                    "{unit} is not active ({e}); is this node a {} as its labels say?",
                    n.role.as_str()
                ),
            )
        })?;
        let (out, _) = self
            .remote(node, "binary check", "k3s --version", t)
            .await
            .map_err(|e| fail("binary", e))?;
        match k3s_version(&out) {
            Some(v) if v == kubelet => {}
            Some(v) => {
                return Err(fail(
                    "binary",
                    format!(
                        "{K3S_BIN} is {v} but the kubelet reports {kubelet}: finish or undo this node's last upgrade first"
                    ),
                ));
            }
            None => {
                return Err(fail(
                    "binary",
                    format!("cannot read the version in {:?}", out.trim()),
                ));
            }
        }
        let (uname, _) = self
            .remote(node, "arch check", "uname -m", t)
            .await
            .map_err(|e| fail("arch", e))?;
        let (arch, asset) = method::release_asset(uname.trim()).ok_or_else(|| {
            fail(
                "arch",
                format!("K3s publishes no binary for {}", uname.trim()),
            )
        })?;
        if n.commands.install.starts_with(method::BINARY_MARKER) {
            let ahead = hops_ahead(&n, kubelet);
            self.check_disk(&n, ahead, t)
                .await
                .map_err(|e| fail("disk", e))?;
            self.check_targets(&n, kubelet, (arch, asset), t)
                .await
                .map_err(|e| fail("target binary", e))?;
        }
        Ok(())
    }

    /// Every version the node does not run yet can reach it.
    async fn check_targets(
        &self,
        n: &ResolvedNode,
        kubelet: &str,
        (arch, asset): (&str, &str),
        t: SignedDuration,
    ) -> Result<(), String> {
        for v in versions_ahead(n, kubelet) {
            let v = v.to_string();
            match self.plan().artifacts.clone() {
                Some(dir) => self.check_artifact(n, &dir, &v, (arch, asset), t).await?,
                None => self.check_release(n, &v, arch, asset, t).await?,
            }
        }
        Ok(())
    }

    /// Airgap: the asset of `version` for the node's arch is in the local
    /// artifacts directory and matches its list, and there is room for it
    /// in the node's staging directory.
    async fn check_artifact(
        &self,
        n: &ResolvedNode,
        dir: &std::path::Path,
        version: &str,
        (arch, asset): (&str, &str),
        t: SignedDuration,
    ) -> Result<(), String> {
        let a = super::artifacts::locate(dir, version, arch, asset)?;
        a.verify()?;
        let (df, _) = self
            .remote(&n.name, "disk check", "df -Pk /var/lib", t)
            .await?;
        let kib = df_available_kib(&df)
            .ok_or_else(|| format!("cannot read df output {:?}", df.trim()))?;
        if kib.saturating_mul(1024) < a.len {
            return Err(format!(
                "{} KiB free in /var/lib; staging {} ({} bytes) in {} needs more",
                kib,
                a.binary.display(),
                a.len,
                method::ARTIFACTS_STAGE
            ));
        }
        Ok(())
    }

    /// Root, or a `become` that works without a password: on the node, or
    /// on the Proxmox host, where qm needs root.
    async fn check_privilege(&self, n: &ResolvedNode, t: SignedDuration) -> Result<(), String> {
        let (user, on_host) = match (n.login_user(), n.proxmox_user()) {
            (Some(user), _) => (user, false),
            (None, Some(user)) => (user, true),
            (None, None) => return Ok(()),
        };
        let whom = if on_host {
            format!("{user} on the Proxmox host (qm needs root)")
        } else {
            user.to_string()
        };
        match &n.escalate {
            None if user != "root" => Err(format!(
                "logged in as {whom}, not root, and no become is set: set become = \"sudo -n\" under [transport] (or [node.{}.transport])",
                n.name
            )),
            None => Ok(()),
            Some(b) => {
                let command = format!("{b} true");
                let done = if on_host {
                    self.exec_on_proxmox_host(&n.name, "privilege check", &command, t)
                        .await
                } else {
                    self.exec_as(&n.name, "privilege check", &command, t)
                        .await
                        .map(|_| ())
                };
                done.map_err(|e| format!("`{command}` as {whom} failed ({e}): let {user} run sudo without a password (NOPASSWD), or log in as root"))
            }
        }
    }

    /// Runs `command` on the Proxmox host itself, as its login user.
    async fn exec_on_proxmox_host(
        &self,
        node: &str,
        purpose: &str,
        command: &str,
        t: SignedDuration,
    ) -> Result<(), String> {
        let (_, transport) = self.node(node)?;
        let host = transport.ssh_target();
        tracing::info!(target: "upgrade", "{node}: {purpose}: {command} on {}", host.label());
        let timeout = std::time::Duration::try_from(t).unwrap_or_default();
        let r = host
            .exec(command, timeout, |_| {})
            .await
            .map_err(|e| e.to_string())?;
        if r.success() {
            return Ok(());
        }
        let last = r.stderr.lines().rfind(|l| !l.trim().is_empty());
        Err(format!(
            "exit status {}: {}",
            r.exit_status.map_or("none".to_string(), |c| c.to_string()),
            last.unwrap_or_default()
        ))
    }

    async fn check_disk(
        &self,
        n: &ResolvedNode,
        hops_ahead: usize,
        t: SignedDuration,
    ) -> Result<(), String> {
        let (df, _) = self
            .remote(&n.name, "disk check", "df -Pk /usr/local/bin", t)
            .await?;
        let kib = df_available_kib(&df)
            .ok_or_else(|| format!("cannot read df output {:?}", df.trim()))?;
        let need = need_mib(hops_ahead);
        if kib / 1024 < need {
            return Err(format!(
                "{} MiB free in /usr/local/bin; staging the new binary and keeping the replaced one of each of {hops_ahead} hop(s) ({K3S_BIN}.cockpit-VERSION) needs {need} MiB",
                kib / 1024
            ));
        }
        Ok(())
    }

    /// The release of `version` is reachable from the node: the sha256 list
    /// downloads, or the artifact on the node matches its list.
    async fn check_release(
        &self,
        n: &ResolvedNode,
        version: &str,
        arch: &str,
        asset: &str,
        t: SignedDuration,
    ) -> Result<(), String> {
        let release = self.plan().release.clone();
        let list_path = format!("{release}/{version}/sha256sum-{arch}.txt");
        if release.starts_with("http://") || release.starts_with("https://") {
            let cmd = format!(
                "curl -sfL -o /tmp/k3s-cockpit-check.sha256 {}",
                crate::remote::shell_quote(&list_path)
            );
            return self.remote(&n.name, "download check", &cmd, t).await.map(|_| ()).map_err(|e| {
                format!("the node cannot download {list_path} ({e}); for an airgapped cluster set release to a directory on the nodes holding VERSION/{asset} and VERSION/sha256sum-{arch}.txt")
            });
        }
        let quote = crate::remote::shell_quote;
        let (list, _) = self
            .remote(
                &n.name,
                "artifact check",
                &format!("cat {}", quote(&list_path)),
                t,
            )
            .await?;
        let want =
            listed_hash(&list, asset).ok_or_else(|| format!("{list_path} lists no {asset}"))?;
        let artifact = format!("{release}/{version}/{asset}");
        let (sum, _) = self
            .remote(
                &n.name,
                "artifact check",
                &format!("sha256sum {}", quote(&artifact)),
                t,
            )
            .await?;
        match first_hash(&sum) {
            Some(got) if got == want => Ok(()),
            got => Err(format!(
                "{artifact} has sha256 {}, but {list_path} lists {want}: the artifact is corrupted or from another release",
                got.unwrap_or("?")
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_node_prints() {
        assert_eq!(
            k3s_version("k3s version v1.33.6+k3s1 (3ad6f7f5)\ngo version go1.24.9\n"),
            Some("v1.33.6+k3s1")
        );
        let df = "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/sda1 30830592 10485760 20971520 34% /\n";
        assert_eq!(df_available_kib(df), Some(20_971_520));
        assert_eq!(
            listed_hash("abc  k3s\ndef  k3s-arm64\n", "k3s-arm64"),
            Some("def")
        );
        assert_eq!(first_hash("abc  /x/k3s\n"), Some("abc"));
    }

    #[test]
    fn each_hop_ahead_keeps_one_more_binary() {
        assert_eq!(need_mib(1), 2 * BINARY_MIB);
        assert_eq!(need_mib(2), 3 * BINARY_MIB);
    }
}
