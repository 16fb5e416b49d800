//! What a simulated node (or the simulated Proxmox host) does with the
//! commands an upgrade sends over SSH. Anything else exits 127, like a shell
//! that does not know the command.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use color_eyre::eyre::Result;
use futures::FutureExt;
use futures::future::BoxFuture;

use super::sim::{Kubelet, SimHandle};
use super::ssh::{self, CommandHandler, CommandOutcome, LabSshKeys};

/// One node's shell.
pub struct NodeShell {
    pub sim: SimHandle,
    pub node: String,
}

impl CommandHandler for NodeShell {
    fn run(&self, command: &str) -> BoxFuture<'static, CommandOutcome> {
        let (sim, node, command) = (self.sim.clone(), self.node.clone(), command.to_string());
        async move { run_on_node(&sim, &node, &command).await }.boxed()
    }
}

/// The Proxmox host: understands `qm guest exec VMID -- sh -c '...'`.
pub struct ProxmoxShell {
    pub sim: SimHandle,
}

impl CommandHandler for ProxmoxShell {
    fn run(&self, command: &str) -> BoxFuture<'static, CommandOutcome> {
        let (sim, command) = (self.sim.clone(), command.to_string());
        async move {
            let exec = match ssh::parse_qm_guest_exec(&command) {
                Ok(Some(exec)) => exec,
                Ok(None) => {
                    return CommandOutcome::fail(
                        127,
                        format!("sh: 1: {}: not found\n", first_word(&command)),
                    );
                }
                Err(e) => return CommandOutcome::fail(255, format!("qm: {e}\n")),
            };
            let node = {
                let s = sim.lock();
                s.nodes
                    .iter()
                    .find(|n| n.vmid == Some(exec.vmid))
                    .map(|n| n.name.clone())
            };
            let Some(node) = node else {
                return CommandOutcome::fail(
                    2,
                    format!(
                        "Configuration file 'nodes/pve/qemu-server/{}.conf' does not exist\n",
                        exec.vmid
                    ),
                );
            };
            let outcome = run_on_node(&sim, &node, &exec.shell_command()).await;
            CommandOutcome::ok(ssh::qm_exec_json(&outcome))
        }
        .boxed()
    }
}

fn first_word(command: &str) -> &str {
    command.split_whitespace().next().unwrap_or_default()
}

/// The commands an upgrade uses, matched loosely so templates can wrap them
/// (`nohup sh -c '...'`, `sudo`, redirections).
pub async fn run_on_node(sim: &SimHandle, node: &str, command: &str) -> CommandOutcome {
    if let Some(version) = install_version(command) {
        return match sim.install(node, &version).await {
            Ok(v) => CommandOutcome::ok(format!(
                "[INFO]  Using {v} as release\n[INFO]  Downloading binary\n[INFO]  Installing k3s to /usr/local/bin/k3s\n[INFO]  systemd: Starting k3s\n"
            )),
            Err(e) => CommandOutcome::fail(1, format!("[ERROR]  {e}\n")),
        };
    }
    if command.contains("k3s etcd-snapshot save") {
        let name = format!(
            "k3s-cockpit-{}-{}",
            node,
            jiff::Timestamp::now().as_second()
        );
        return CommandOutcome::ok(format!("Snapshot {name} saved.\n"));
    }
    if command.contains("systemctl restart k3s") {
        let restarted = match sim.restart(node) {
            Ok(()) => sim.started(node).await,
            Err(e) => Err(e),
        };
        return match restarted {
            Ok(()) => CommandOutcome::ok(""),
            Err(e) => CommandOutcome::fail(1, e),
        };
    }
    if command.contains("systemctl is-active k3s") {
        return match sim.kubelet_state(node) {
            Ok(Kubelet::Down) => CommandOutcome {
                stdout: "activating\n".into(),
                stderr: String::new(),
                exit_status: 3,
            },
            Ok(_) => CommandOutcome::ok("active\n"),
            Err(e) => CommandOutcome::fail(1, e),
        };
    }
    if command.contains("k3s --version") {
        return match sim.installed_version(node) {
            Ok(v) => {
                CommandOutcome::ok(format!("k3s version {v} (3ad6f7f5)\ngo version go1.24.9\n"))
            }
            Err(e) => CommandOutcome::fail(1, e),
        };
    }
    if command.trim() == "true" || command.trim().starts_with("echo ") {
        return CommandOutcome::ok(format!(
            "{}\n",
            command
                .trim()
                .trim_start_matches("echo ")
                .trim_matches('\'')
        ));
    }
    CommandOutcome::fail(127, format!("sh: 1: {}: not found\n", first_word(command)))
}

/// `... INSTALL_K3S_VERSION=v1.34.3+k3s1 ...` → the version.
fn install_version(command: &str) -> Option<String> {
    let at = command.find("INSTALL_K3S_VERSION=")?;
    let rest = &command[at + "INSTALL_K3S_VERSION=".len()..];
    let version: String = rest
        .trim_start_matches(['"', '\''])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-'))
        .collect();
    (!version.is_empty()).then_some(version)
}

/// SSH endpoints of a running lab.
pub struct SshEndpoints {
    pub nodes: BTreeMap<String, SocketAddr>,
    pub proxmox: Option<SocketAddr>,
    pub keys: LabSshKeys,
}

/// Binds one SSH listener per node (and the Proxmox host when the scenario
/// has one) on loopback, writes keys and known_hosts into `dir`, serves.
pub async fn start_ssh(sim: &SimHandle, dir: &Path, with_proxmox: bool) -> Result<SshEndpoints> {
    let names: Vec<String> = sim.lock().nodes.iter().map(|n| n.name.clone()).collect();
    let mut listeners = Vec::new();
    for _ in 0..names.len() + usize::from(with_proxmox) {
        listeners.push(tokio::net::TcpListener::bind("127.0.0.1:0").await?);
    }
    let ports: Vec<u16> = listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .map(|a| a.port())
        .collect();
    let keys = ssh::generate_keys(dir, &ports)?;
    let mut nodes = BTreeMap::new();
    let mut proxmox = None;
    for (i, listener) in listeners.into_iter().enumerate() {
        let addr = listener.local_addr()?;
        let handler: Arc<dyn CommandHandler> = match names.get(i) {
            Some(name) => {
                nodes.insert(name.clone(), addr);
                Arc::new(NodeShell {
                    sim: sim.clone(),
                    node: name.clone(),
                })
            }
            None => {
                proxmox = Some(addr);
                Arc::new(ProxmoxShell { sim: sim.clone() })
            }
        };
        let (host_key, authorized) = (keys.host_key.clone(), vec![keys.client_public.clone()]);
        tokio::spawn(async move {
            if let Err(e) = ssh::serve_node_ssh(listener, host_key, authorized, handler).await {
                tracing::warn!(target: "lab", "SSH endpoint {addr} stopped: {e:#}");
            }
        });
    }
    Ok(SshEndpoints {
        nodes,
        proxmox,
        keys,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_version_in_wrapped_install_commands() {
        let cmd = "nohup sh -c 'curl -sfL https://get.k3s.io | INSTALL_K3S_VERSION=v1.34.3+k3s1 sh -s -' >/var/log/x 2>&1";
        assert_eq!(install_version(cmd).as_deref(), Some("v1.34.3+k3s1"));
        assert_eq!(
            install_version("INSTALL_K3S_VERSION=\"v1.35.0+k3s1\" sh"),
            Some("v1.35.0+k3s1".into())
        );
        assert_eq!(install_version("k3s --version"), None);
    }
}
