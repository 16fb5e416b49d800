//! The SSH side of a simulated node (or the simulated Proxmox host): who
//! may log in, what `sudo -n` allows, and unwrapping `sudo -n sh -c '...'`
//! and `nohup sh -c '...'` down to the script that [`super::node_exec`]
//! carries out.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use color_eyre::eyre::Result;
use futures::FutureExt;
use futures::future::BoxFuture;

use super::node_exec;
use super::scenario::SudoPolicy;
use super::sim::SimHandle;
use super::ssh::{self, CommandHandler, CommandOutcome, LabSshKeys};
use crate::remote::quote::{shell_join, shell_split};

/// One node's shell.
pub struct NodeShell {
    pub sim: SimHandle,
    pub node: String,
}

impl CommandHandler for NodeShell {
    fn run(&self, user: &str, command: &str) -> BoxFuture<'static, CommandOutcome> {
        let (sim, node) = (self.sim.clone(), self.node.clone());
        let (user, command) = (user.to_string(), command.to_string());
        async move { run_on_node(&sim, &node, &user, &command).await }.boxed()
    }

    fn run_with_stdin(
        &self,
        user: &str,
        command: &str,
        mut stdin: ssh::LabStdin,
    ) -> BoxFuture<'static, CommandOutcome> {
        let (sim, node) = (self.sim.clone(), self.node.clone());
        let (user, command) = (user.to_string(), command.to_string());
        async move { run_with_stdin(&sim, &node, &user, &command, &mut stdin).await }.boxed()
    }

    fn accepts_user(&self, user: &str) -> bool {
        user != "root"
            || self
                .sim
                .with_host(&self.node, |h| h.root_login)
                .unwrap_or(false)
    }
}

/// The Proxmox host: understands `qm guest exec VMID -- sh -c '...'`, run
/// by root or through `sudo -n` (every login may use sudo without a
/// password here); qm refuses other users.
pub struct ProxmoxShell {
    pub sim: SimHandle,
}

/// `sudo -n COMMAND...` → (true, COMMAND); anything else unchanged.
fn without_sudo(command: &str) -> (bool, String) {
    match shell_split(command) {
        Ok(words) if words.len() > 2 && words[0] == "sudo" && words[1] == "-n" => {
            (true, shell_join(&words[2..]))
        }
        _ => (false, command.to_string()),
    }
}

impl CommandHandler for ProxmoxShell {
    fn run(&self, user: &str, command: &str) -> BoxFuture<'static, CommandOutcome> {
        let (sim, (sudo, command)) = (self.sim.clone(), without_sudo(command));
        let root = sudo || user == "root";
        async move {
            if command == "true" {
                return CommandOutcome::ok("");
            }
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
            if !root {
                return CommandOutcome::fail(
                    1,
                    "k3s-cockpit lab: qm runs as root only on the Proxmox host: log in as root or use sudo -n\n",
                );
            }
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
            // The guest agent runs commands as root.
            let outcome = run_on_node(&sim, &node, "root", &exec.shell_command()).await;
            CommandOutcome::ok(ssh::qm_exec_json(&outcome))
        }
        .boxed()
    }
}

pub(super) fn first_word(command: &str) -> &str {
    command.split_whitespace().next().unwrap_or_default()
}

/// Runs what `user` sent: privilege from the login and `sudo -n`, then the
/// script inside any `sh -c` wrapper.
pub async fn run_on_node(sim: &SimHandle, node: &str, user: &str, command: &str) -> CommandOutcome {
    run_with_stdin(sim, node, user, command, &mut ssh::LabStdin::empty()).await
}

/// [`run_on_node`] for a command that may read `stdin`.
pub async fn run_with_stdin(
    sim: &SimHandle,
    node: &str,
    user: &str,
    command: &str,
    stdin: &mut ssh::LabStdin,
) -> CommandOutcome {
    let sudo = match sim.with_host(node, |h| h.sudo) {
        Ok(s) => s,
        Err(e) => return CommandOutcome::fail(255, format!("{e}\n")),
    };
    let mut privileged = user == "root";
    let mut text = command.to_string();
    while let Ok(words) = shell_split(&text) {
        match words.first().map(String::as_str) {
            Some("sudo") => {
                if words.get(1).map(String::as_str) != Some("-n") {
                    return CommandOutcome::fail(
                        1,
                        "sudo: a terminal is required to read the password; either use the -S option to read from standard input or configure an askpass helper\nsudo: a password is required\n",
                    );
                }
                if !privileged && sudo != SudoPolicy::Nopasswd {
                    return CommandOutcome::fail(1, "sudo: a password is required\n");
                }
                privileged = true;
                text = unwrap_sh(&words[2..]).unwrap_or_else(|| shell_join(&words[2..]));
            }
            _ => match unwrap_sh(&words) {
                Some(script) => text = script,
                None => break,
            },
        }
    }
    node_exec::run_script(sim, node, &text, privileged, stdin).await
}

/// `[nohup] sh -c SCRIPT [redirections]` → SCRIPT.
fn unwrap_sh(words: &[String]) -> Option<String> {
    let words = match words.first().map(String::as_str) {
        Some("nohup") => &words[1..],
        _ => words,
    };
    match words {
        [shell, flag, script, ..]
            if flag == "-c"
                && matches!(
                    shell.rsplit('/').next(),
                    Some("sh" | "bash" | "dash" | "ash")
                ) =>
        {
            Some(script.clone())
        }
        _ => None,
    }
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
