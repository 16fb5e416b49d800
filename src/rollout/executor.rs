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
            hand_labelled: Default::default(),
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
                node_ops::set_unschedulable(&self.client, node, true).await
            }
            Action::Uncordon { node, .. } => {
                node_ops::set_unschedulable(&self.client, node, false).await
            }
            Action::Drain { node, .. } => {
                let log = |line: String| tracing::info!(target: "upgrade", "{line}");
                node_ops::drain(&self.client, node, std_duration(t.drain_timeout), &log).await
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
            Action::Label { node, .. } => {
                node_ops::set_exclude_label(&self.client, node, true).await
            }
            Action::Unlabel { node, .. } => {
                node_ops::set_exclude_label(&self.client, node, false).await
            }
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

    async fn restart(&self, node: &str) -> Result<(), String> {
        let (n, _) = self.node(node)?;
        self.remote(
            node,
            "restart K3s",
            &n.restart_command(),
            self.plan.timings.command_timeout,
        )
        .await
        .map(|_| ())
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
                    std_duration(self.plan.timings.drain_timeout),
                    &log,
                )
                .await
            }
            Manual::RestartK3s => self.restart(node).await,
        }
    }
}
