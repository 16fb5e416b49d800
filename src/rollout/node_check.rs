//! Checks on each node over its own transport, before anything is changed:
//! for every node before the rollout starts, and again right before each
//! node is cordoned. Read-only: nothing on the node or in the cluster
//! changes. Each failure names the node and the check.

use jiff::SignedDuration;

use super::executor::Executor;
use crate::upgrade::method::{self, K3S_BIN};
use crate::upgrade::plan::ResolvedNode;

/// Room the binary method needs where it stages: the new binary beside the
/// running one, plus the old one kept for a rollback (~70 MiB each).
const NEED_MIB: u64 = 200;

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

/// The hash listed for `asset` in a `sha256sum-ARCH.txt`.
fn listed_hash<'a>(list: &'a str, asset: &str) -> Option<&'a str> {
    list.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let hash = f.next()?;
        (f.next()? == asset).then_some(hash)
    })
}

impl Executor {
    /// Every check on `node`, whose kubelet reports `kubelet`.
    pub async fn check_node(&self, node: &str, kubelet: &str) -> Result<(), String> {
        let (n, _) = self.node(node)?;
        let n = n.clone();
        let t = self.plan().timings.command_timeout;
        let fail = |check: &str, why: String| format!("node {node}: {check}: {why}");
        self.exec_as(node, "ssh check", "true", t)
            .await
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
            self.check_disk(&n, t).await.map_err(|e| fail("disk", e))?;
            for v in &n.hops {
                self.check_release(&n, &v.to_string(), arch, asset, t)
                    .await
                    .map_err(|e| fail("target binary", e))?;
            }
        }
        Ok(())
    }

    /// Root, or a `become` that works without a password.
    async fn check_privilege(&self, n: &ResolvedNode, t: SignedDuration) -> Result<(), String> {
        match (n.login_user(), &n.escalate) {
            (Some(user), None) if user != "root" => Err(format!(
                "logged in as {user}, not root, and no become is set: set become = \"sudo -n\" under [transport] (or [node.{}.transport])",
                n.name
            )),
            (Some(user), Some(b)) => self
                .exec_as(&n.name, "privilege check", &format!("{b} true"), t)
                .await
                .map(|_| ())
                .map_err(|e| format!("`{b} true` as {user} failed ({e}): let {user} run sudo without a password (NOPASSWD), or log in as root")),
            _ => Ok(()),
        }
    }

    async fn check_disk(&self, n: &ResolvedNode, t: SignedDuration) -> Result<(), String> {
        let (df, _) = self
            .remote(&n.name, "disk check", "df -Pk /usr/local/bin", t)
            .await?;
        let kib = df_available_kib(&df)
            .ok_or_else(|| format!("cannot read df output {:?}", df.trim()))?;
        if kib / 1024 < NEED_MIB {
            return Err(format!(
                "{} MiB free in /usr/local/bin; staging the new binary beside the old one needs {NEED_MIB} MiB",
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
}
