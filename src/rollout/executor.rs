//! Carries out the engine's actions: node actions through the Kubernetes
//! API, commands over SSH (or SSH to Proxmox and `qm guest exec`). Every
//! action ends in exactly one `ActionFinished`, whose error text names the
//! node, the command's purpose and the transport.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jiff::SignedDuration;

use super::node_ops;
use crate::remote::{self, OutputStream, redact_command};
use crate::upgrade::engine::HandoffMode;
use crate::upgrade::plan::{self, ResolvedNode, ResolvedPlan};
use crate::upgrade::{Action, Input};

/// What the operator can do by hand on the selected node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Manual {
    Cordon,
    Uncordon,
    Drain,
    RestartK3s,
}

impl Manual {
    pub fn label(self) -> &'static str {
        match self {
            Manual::Cordon => "cordon",
            Manual::Uncordon => "uncordon",
            Manual::Drain => "drain",
            Manual::RestartK3s => "restart K3s",
        }
    }
}

#[derive(Clone)]
pub struct Executor {
    client: kube::Client,
    plan: Arc<ResolvedPlan>,
    transports: Arc<HashMap<String, remote::Transport>>,
    /// Nodes a manual drain labelled, so that a manual uncordon removes
    /// only labels this session put there.
    hand_labelled: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
    /// Per node, the last lines a failed remote command printed: the
    /// evidence a failed action carries to the timeline and node detail.
    evidence: Arc<std::sync::Mutex<HashMap<String, String>>>,
}

use super::artifacts::expand_home;

fn ssh_target(t: &plan::SshTarget) -> remote::SshTarget {
    let known_hosts = t
        .known_hosts
        .as_deref()
        .map_or_else(|| expand_home(Path::new("~/.ssh/known_hosts")), expand_home);
    let mut target = remote::SshTarget::new(
        t.host.clone(),
        t.port,
        t.user.clone(),
        t.key.as_deref().map(expand_home),
        known_hosts,
    );
    target.accept_unknown = t.accept_unknown_host_keys;
    target
}

/// The node's transport as the remote edge runs it. On a Proxmox host,
/// the node's `become` applies to qm (the guest agent runs as root).
pub fn transport(n: &ResolvedNode) -> remote::Transport {
    match &n.transport {
        plan::Transport::Ssh(s) => remote::Transport::Ssh(ssh_target(s)),
        plan::Transport::Proxmox { host, vmid } => remote::Transport::Proxmox {
            host: ssh_target(host),
            vmid: *vmid,
            escalate: n.escalate.clone(),
        },
    }
}

/// Lines of a failed command's output kept as evidence.
pub const EVIDENCE_LINES: usize = 20;

/// The last [`EVIDENCE_LINES`] non-empty lines of a command's output:
/// stdout first, then stderr (where install scripts and K3s log), as a
/// terminal would have shown them last.
fn tail(stdout: &str, stderr: &str) -> String {
    let lines: Vec<&str> = stdout
        .lines()
        .chain(stderr.lines())
        .filter(|l| !l.trim().is_empty())
        .collect();
    lines[lines.len().saturating_sub(EVIDENCE_LINES)..].join("\n")
}

/// How often a unit that is starting is asked whether it has started.
const UNIT_POLL: Duration = Duration::from_secs(1);

/// Lists the node's etcd snapshots, one per line, the name first.
const SNAPSHOT_LIST: &str = "k3s etcd-snapshot ls";

/// The snapshot name in K3s's `Snapshot NAME saved.` log line (logrus on
/// stderr: `time="..." level=info msg="Snapshot NAME saved."`; k3s-io/k3s
/// pkg/cli/etcdsnapshot).
fn saved_snapshot(log: &str) -> Option<String> {
    log.lines().rev().find_map(|l| {
        let rest = &l[l.find("Snapshot ")? + "Snapshot ".len()..];
        let name = rest.split(" saved.").next()?;
        (!name.is_empty() && !name.contains(' ')).then(|| name.to_string())
    })
}

fn std_duration(d: SignedDuration) -> Duration {
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

impl Executor {
    pub fn new(client: kube::Client, plan: Arc<ResolvedPlan>) -> Self {
        let transports = plan
            .nodes
            .iter()
            .map(|n| (n.name.clone(), transport(n)))
            .collect();
        Executor {
            client,
            plan,
            transports: Arc::new(transports),
            hand_labelled: Default::default(),
            evidence: Default::default(),
        }
    }

    /// Records (`set`) or takes back a manual drain's label on `node`;
    /// taking back says whether there was one.
    fn labelled_by_hand(&self, node: &str, set: bool) -> bool {
        let mut nodes = self.hand_labelled.lock().unwrap_or_else(|e| e.into_inner());
        if set {
            nodes.insert(node.to_string())
        } else {
            nodes.remove(node)
        }
    }

    pub(super) fn plan(&self) -> &ResolvedPlan {
        &self.plan
    }

    pub(super) fn node(&self, name: &str) -> Result<(&ResolvedNode, &remote::Transport), String> {
        match (self.plan.node(name), self.transports.get(name)) {
            (Some(n), Some(t)) => Ok((n, t)),
            _ => Err(format!(
                "node {name} is not in the plan {}",
                self.plan.origin
            )),
        }
    }

    /// Runs a command on a node, streaming its output to the log panel.
    /// Returns stdout and stderr on exit status 0.
    pub(super) async fn remote(
        &self,
        node: &str,
        purpose: &str,
        command: &str,
        timeout: SignedDuration,
    ) -> Result<(String, String), String> {
        let (n, _) = self.node(node)?;
        self.exec_as(node, purpose, &n.privileged(command), timeout)
            .await
    }

    /// Runs `command` exactly as given, as the login user.
    pub(super) async fn exec_as(
        &self,
        node: &str,
        purpose: &str,
        command: &str,
        timeout: SignedDuration,
    ) -> Result<(String, String), String> {
        let (_, transport) = self.node(node)?;
        tracing::info!(
            target: "upgrade",
            "{node}: {purpose}: {} via {}",
            redact_command(command),
            transport.describe()
        );
        let tag = node.to_string();
        let result = transport
            .exec(command, std_duration(timeout), move |line| {
                let stream = match line.stream {
                    OutputStream::Stdout => "│",
                    OutputStream::Stderr => "!",
                };
                tracing::info!(target: "upgrade", "{tag} {stream} {}", line.line);
            })
            .await
            .map_err(|e| format!("{purpose} on {node}: {e}"))?;
        if result.success() {
            return Ok((result.stdout, result.stderr));
        }
        let how = match (&result.exit_status, &result.signal) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(sig)) => format!("was killed by SIG{sig}"),
            (None, None) => "ended without an exit status".to_string(),
        };
        let last = result
            .stderr
            .lines()
            .chain(result.stdout.lines())
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or_default();
        self.evidence
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(node.to_string(), tail(&result.stdout, &result.stderr));
        Err(format!(
            "{purpose} on {node} via {} {how}: {last}",
            transport.describe()
        ))
    }

    /// Runs one engine action to its end.
    pub async fn run(&self, action: Action) -> Input {
        let t = &self.plan.timings;
        let id = action.id();
        let mut output = None;
        let result = match &action {
            Action::Cordon { node, .. } => match self.check_before_cordon(node).await {
                Err(e) => Err(e),
                // A drain kubectl would refuse is refused before the cordon,
                // so nothing is left half done.
                Ok(()) => {
                    match node_ops::check_drainable(&self.client, node, &self.plan.drain).await {
                        Ok(()) => node_ops::set_unschedulable(&self.client, node, true).await,
                        Err(why) => Err(why),
                    }
                }
            },
            Action::Uncordon { node, .. } => {
                node_ops::set_unschedulable(&self.client, node, false).await
            }
            Action::Drain { node, .. } => {
                let log = |line: String| tracing::info!(target: "upgrade", "{line}");
                let timeout = std_duration(t.drain_timeout);
                node_ops::drain(&self.client, node, &self.plan.drain, timeout, &log).await
            }
            Action::Install {
                node,
                version,
                reinstate,
                ..
            } => self.install(node, version, *reinstate).await,
            Action::Restart { node, .. } => self.restart(node).await,
            // The handoff label is the first write to a node: its checks
            // run before it, as before a cordon.
            Action::Label { node, .. } => match self.check_before_cordon(node).await {
                Err(e) => Err(e),
                Ok(()) => node_ops::set_exclude_label(&self.client, node, true).await,
            },
            Action::Unlabel { node, .. } => {
                node_ops::set_exclude_label(&self.client, node, false).await
            }
            Action::EtcdSnapshot { node, name, .. } => self
                .snapshot(node, name)
                .await
                .map(|saved| output = Some(saved)),
            Action::StopK3s { .. }
            | Action::ClusterReset { .. }
            | Action::ClearDb { .. }
            | Action::StartK3s { .. } => self.restore_step(&action).await,
        };
        let evidence = self
            .evidence
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(action.node());
        if let Err(e) = &result {
            tracing::error!(target: "upgrade", "{e}");
            output = evidence.filter(|lines| !lines.is_empty());
        }
        Input::ActionFinished { id, result, output }
    }

    /// Installs `version`, then checks that the unit still starts K3s with
    /// the arguments it had: an install that rewrote `ExecStart` (the
    /// install script without the node's flags) fails here, before the
    /// restart would run K3s without them.
    async fn install(
        &self,
        node: &str,
        version: &crate::upgrade::K3sVersion,
        reinstate: bool,
    ) -> Result<(), String> {
        let (n, _) = self.node(node)?;
        let t = &self.plan.timings;
        let unit = format!("systemctl cat {}", n.role.service());
        let before = self.unit_args(node, &unit).await;
        let (cmd, purpose) = if reinstate {
            (n.reinstall_command(version), format!("put {version} back"))
        } else {
            self.stage_artifacts(node, &version.to_string()).await?;
            (n.install_command(version), format!("install {version}"))
        };
        let installed = self.remote(node, &purpose, &cmd, t.install_timeout).await;
        if !reinstate {
            self.unstage_artifacts(node, &version.to_string()).await;
        }
        installed?;
        // For the log only: the engine trusts the kubelet.
        let _ = self
            .remote(
                node,
                "version check",
                &n.version_command(),
                t.command_timeout,
            )
            .await;
        let after = self.unit_args(node, &unit).await;
        let (Some(before), Some(after)) = (before, after) else {
            return Ok(());
        };
        let lost = super::unit_args::lost(&before, &after);
        if !lost.is_empty() {
            return Err(format!(
                "install {version} on {node} rewrote {}'s ExecStart and lost {}. K3s still runs with the old arguments until it restarts: put them back (systemctl edit --full {}) before retrying",
                n.role.service(),
                lost.join(", "),
                n.role.service()
            ));
        }
        if let Some(change) = super::unit_args::describe_change(&before, &after) {
            // Flags from config.yaml or node-args written into the unit:
            // the same configuration, said twice.
            tracing::warn!(target: "upgrade", "{node}: install changed ExecStart ({change})");
        }
        Ok(())
    }

    /// The arguments in the unit's `ExecStart`, if the node shows them.
    async fn unit_args(&self, node: &str, command: &str) -> Option<Vec<String>> {
        super::unit_args::exec_start_args(&self.quiet(node, command).await?)
    }

    /// The node checks again, right before the node is first touched (its
    /// handoff label or its cordon), against the version its kubelet
    /// reports now.
    async fn check_before_cordon(&self, node: &str) -> Result<(), String> {
        let nodes: kube::Api<crate::cluster::node_view::NodeView> =
            kube::Api::all(self.client.clone());
        let seen = nodes
            .get(node)
            .await
            .map_err(|e| format!("reading node {node} before cordoning it: {e}"))?;
        let kubelet = crate::cluster::convert::node(&seen).version;
        self.check_node(node, &kubelet)
            .await
            .map_err(|e| format!("not cordoned: {e}"))
    }

    /// Takes the snapshot and checks that K3s lists it; returns the name
    /// K3s gave it (it appends the node name and a timestamp).
    async fn snapshot(&self, node: &str, name: &str) -> Result<String, String> {
        let (n, _) = self.node(node)?;
        let timeout = self.plan.timings.command_timeout;
        let cmd = n.snapshot_command(name);
        let (stdout, stderr) = self.remote(node, "etcd snapshot", &cmd, timeout).await?;
        let saved = saved_snapshot(&stderr)
            .or_else(|| saved_snapshot(&stdout))
            .ok_or_else(|| {
                format!("etcd snapshot on {node}: K3s did not print \"Snapshot NAME saved.\" on either stream")
            })?;
        let (listing, _) = self
            .remote(node, "etcd snapshot check", SNAPSHOT_LIST, timeout)
            .await?;
        if !listing.split_whitespace().any(|w| w == saved) {
            return Err(format!(
                "etcd snapshot {saved} on {node} is not in `{SNAPSHOT_LIST}`: not touching any server without it"
            ));
        }
        Ok(saved)
    }

    /// Restarts the node's K3s unit and waits for it to start, within the
    /// plan's `restart_timeout`. A unit still `activating` from an earlier
    /// restart (one that outlived its timeout) is waited for, not restarted
    /// again: a second restart would throw that start's progress away.
    async fn restart(&self, node: &str) -> Result<(), String> {
        let (n, _) = self.node(node)?;
        let timeout = self.plan.timings.restart_timeout;
        if self
            .unit_state(node, &n.unit_state_command())
            .await
            .as_deref()
            == Some("activating")
        {
            tracing::info!(
                target: "upgrade",
                "{node}: {} is still starting from the last restart: waiting for it, not restarting again",
                n.role.service()
            );
            return self
                .wait_started(node, &n.unit_state_command(), timeout)
                .await;
        }
        self.remote(node, "restart K3s", &n.restart_command(), timeout)
            .await
            .map(|_| ())
    }

    /// The unit's state as `systemctl is-active` prints it (`active`,
    /// `activating`, `failed`, ...); None when it cannot be asked.
    async fn unit_state(&self, node: &str, command: &str) -> Option<String> {
        let out = self.quiet(node, command).await?;
        Some(out.lines().next()?.trim().to_string())
    }

    /// Stdout of a read-only look at the node (`systemctl cat`, `is-active`),
    /// whatever its exit status, kept out of the log: it is not a step.
    async fn quiet(&self, node: &str, command: &str) -> Option<String> {
        let (_, transport) = self.node(node).ok()?;
        let timeout = std_duration(self.plan.timings.command_timeout);
        let out = transport.exec(command, timeout, |_| {}).await.ok()?;
        Some(out.stdout)
    }

    /// Polls the unit until it is no longer `activating`, within `timeout`.
    async fn wait_started(
        &self,
        node: &str,
        command: &str,
        timeout: SignedDuration,
    ) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + std_duration(timeout);
        let mut poll = tokio::time::interval(UNIT_POLL);
        loop {
            poll.tick().await;
            let state = self.unit_state(node, command).await;
            match state.as_deref() {
                Some("active") => return Ok(()),
                Some("activating") | None if tokio::time::Instant::now() < deadline => {}
                Some("activating") | None => {
                    return Err(format!(
                        "restart K3s on {node}: still starting after {}; the unit may still come up (retry waits for it)",
                        crate::durations::format_signed(timeout)
                    ));
                }
                Some(other) => {
                    return Err(format!(
                        "restart K3s on {node}: the unit is {other} after starting (see `journalctl -u k3s` on the node)"
                    ));
                }
            }
        }
    }

    /// An operator's manual action on one node, outside the engine. A
    /// drain hands the node's LoadBalancer IPs off first (unless the plan
    /// says `handoff = "off"`); uncordon takes that label back.
    pub async fn manual(&self, what: Manual, node: &str) -> Result<(), String> {
        let handoff = self.plan.handoff == HandoffMode::Auto;
        match what {
            Manual::Cordon => node_ops::set_unschedulable(&self.client, node, true).await,
            Manual::Uncordon => {
                node_ops::set_unschedulable(&self.client, node, false).await?;
                if self.labelled_by_hand(node, false) {
                    node_ops::set_exclude_label(&self.client, node, false).await?;
                }
                Ok(())
            }
            Manual::Drain => {
                if handoff {
                    self.labelled_by_hand(node, true);
                    node_ops::set_exclude_label(&self.client, node, true).await?;
                    let timeout = std_duration(self.plan.timings.handoff_timeout);
                    node_ops::wait_moved(&self.client, node, timeout).await?;
                    tracing::info!(target: "upgrade", "{node}: LoadBalancer IPs handed off; draining");
                }
                let log = |line: String| tracing::info!(target: "upgrade", "{line}");
                node_ops::drain(
                    &self.client,
                    node,
                    &self.plan.drain,
                    std_duration(self.plan.timings.drain_timeout),
                    &log,
                )
                .await
            }
            Manual::RestartK3s => self.restart(node).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{EVIDENCE_LINES, saved_snapshot, tail};

    #[test]
    fn evidence_is_the_last_twenty_lines_stderr_last() {
        let stdout: String = (1..=30).map(|i| format!("out {i}\n")).collect();
        let kept = tail(&stdout, "\nerr: checksum mismatch\n");
        let lines: Vec<&str> = kept.lines().collect();
        assert_eq!(lines.len(), EVIDENCE_LINES);
        assert_eq!(lines[0], "out 12");
        assert_eq!(lines[EVIDENCE_LINES - 1], "err: checksum mismatch");
        assert_eq!(tail("", ""), "");
    }

    #[test]
    fn snapshot_name_from_k3s_log_line() {
        let log = "time=\"2026-11-29T12:00:00Z\" level=info msg=\"Saving etcd snapshot to /var/lib/rancher/k3s/server/db/snapshots/pre-n1-1\"\n\
                   time=\"2026-11-29T12:00:01Z\" level=info msg=\"Snapshot pre-n1-1 saved.\"\n";
        assert_eq!(saved_snapshot(log).as_deref(), Some("pre-n1-1"));
        assert_eq!(saved_snapshot("Snapshot x saved.\n").as_deref(), Some("x"));
        assert_eq!(saved_snapshot("nothing\n"), None);
    }
}
