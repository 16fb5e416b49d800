//! Carries out the engine's actions: node actions through the Kubernetes
//! API, commands over SSH (or SSH to Proxmox and `qm guest exec`). Every
//! action ends in exactly one `ActionFinished`, whose error text names the
//! node, the command's purpose and the transport.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::SignedDuration;

use super::node_ops;
use crate::remote::{self, OutputStream, redact_command};
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
}

/// `~/x` → `$HOME/x`, as a shell would for plan paths.
fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => path.to_path_buf(),
    }
}

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

/// The plan's transport as the remote edge runs it.
pub fn transport(t: &plan::Transport) -> remote::Transport {
    match t {
        plan::Transport::Ssh(s) => remote::Transport::Ssh(ssh_target(s)),
        plan::Transport::Proxmox { host, vmid } => remote::Transport::Proxmox {
            host: ssh_target(host),
            vmid: *vmid,
        },
    }
}

/// How often a unit that is starting is asked whether it has started.
const UNIT_POLL: Duration = Duration::from_secs(1);

fn std_duration(d: SignedDuration) -> Duration {
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

impl Executor {
    pub fn new(client: kube::Client, plan: Arc<ResolvedPlan>) -> Self {
        let transports = plan
            .nodes
            .iter()
            .map(|n| (n.name.clone(), transport(&n.transport)))
            .collect();
        Executor {
            client,
            plan,
            transports: Arc::new(transports),
        }
    }

    fn node(&self, name: &str) -> Result<(&ResolvedNode, &remote::Transport), String> {
        match (self.plan.node(name), self.transports.get(name)) {
            (Some(n), Some(t)) => Ok((n, t)),
            _ => Err(format!(
                "node {name} is not in the plan {}",
                self.plan.origin
            )),
        }
    }

    /// Runs a command on a node, streaming its output to the log panel.
    /// Returns stdout's tail on exit status 0.
    async fn remote(
        &self,
        node: &str,
        purpose: &str,
        command: &str,
        timeout: SignedDuration,
    ) -> Result<String, String> {
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
            return Ok(result.stdout);
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
            Action::Cordon { node, .. } => {
                // A drain kubectl would refuse is refused before the cordon,
                // so nothing is left half done.
                match node_ops::check_drainable(&self.client, node, &self.plan.drain).await {
                    Ok(()) => node_ops::set_unschedulable(&self.client, node, true).await,
                    Err(why) => Err(why),
                }
            }
            Action::Uncordon { node, .. } => {
                node_ops::set_unschedulable(&self.client, node, false).await
            }
            Action::Drain { node, .. } => {
                let log = |line: String| tracing::info!(target: "upgrade", "{line}");
                let timeout = std_duration(t.drain_timeout);
                node_ops::drain(&self.client, node, &self.plan.drain, timeout, &log).await
            }
            Action::Install { node, version, .. } => match self.node(node) {
                Err(e) => Err(e),
                Ok((n, _)) => {
                    let cmd = n.install_command(version);
                    let done = self
                        .remote(node, &format!("install {version}"), &cmd, t.install_timeout)
                        .await;
                    if done.is_ok() {
                        // For the log only: the engine trusts the kubelet.
                        let _ = self
                            .remote(
                                node,
                                "version check",
                                &n.version_command(),
                                t.command_timeout,
                            )
                            .await;
                    }
                    done.map(|_| ())
                }
            },
            Action::Restart { node, .. } => self.restart(node).await,
            Action::EtcdSnapshot { node, name, .. } => match self.node(node) {
                Err(e) => Err(e),
                Ok((n, _)) => {
                    let cmd = n.snapshot_command(name);
                    self.remote(node, "etcd snapshot", &cmd, t.command_timeout)
                        .await
                        .map(|out| output = Some(out))
                }
            },
        };
        if let Err(e) = &result {
            tracing::error!(target: "upgrade", "{e}");
        }
        Input::ActionFinished { id, result, output }
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
        let (_, transport) = self.node(node).ok()?;
        let out = transport
            .exec(
                command,
                std_duration(self.plan.timings.command_timeout),
                |_| {},
            )
            .await
            .ok()?;
        Some(out.stdout.lines().next()?.trim().to_string())
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

    /// An operator's manual action on one node, outside the engine.
    pub async fn manual(&self, what: Manual, node: &str) -> Result<(), String> {
        match what {
            Manual::Cordon => node_ops::set_unschedulable(&self.client, node, true).await,
            Manual::Uncordon => node_ops::set_unschedulable(&self.client, node, false).await,
            Manual::Drain => {
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
