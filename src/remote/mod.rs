//! Remote command execution on cluster nodes: direct SSH, or SSH to a Proxmox host
//! and `qm guest exec` into the node's VM.
//!
//! Host keys are verified against known_hosts by default; unknown keys are refused
//! unless explicitly accepted, changed keys always. Commands are logged with secrets
//! redacted ([`quote::redact_command`]); key material is never logged.

pub mod proxmox;
pub mod quote;
pub mod ssh;
pub mod stdin;

use std::time::Duration;

use color_eyre::eyre::Result;

pub use quote::{redact_command, shell_join, shell_quote, shell_split};
pub use ssh::{
    ExecResult, OutputLine, OutputStream, RemoteError, RemoteErrorKind, SshTarget, error_kind,
};
pub use stdin::Stdin;

/// How commands reach a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// SSH straight to the node.
    Ssh(SshTarget),
    /// SSH to the Proxmox host, then `qm guest exec VMID` into the node's VM;
    /// `escalate` (`sudo -n`) when the host login is not root.
    Proxmox {
        host: SshTarget,
        vmid: u32,
        escalate: Option<String>,
    },
}

impl Transport {
    /// Human-readable target: `root@10.0.0.5:22` or `VM 101 via root@pve:22`.
    pub fn describe(&self) -> String {
        match self {
            Transport::Ssh(t) => t.label(),
            Transport::Proxmox { host, vmid, .. } => format!("VM {vmid} via {}", host.label()),
        }
    }

    /// The command line actually sent over SSH for `command` (for dry runs and logs;
    /// pass it through [`redact_command`] before showing it).
    pub fn wire_command(&self, command: &str) -> String {
        match self {
            Transport::Ssh(_) => command.to_owned(),
            Transport::Proxmox { vmid, escalate, .. } => {
                proxmox::qm_wire_command(escalate.as_deref(), *vmid, command)
            }
        }
    }

    /// The SSH server this transport connects to.
    pub fn ssh_target(&self) -> &SshTarget {
        match self {
            Transport::Ssh(t) => t,
            Transport::Proxmox { host, .. } => host,
        }
    }

    /// Run `command` with a POSIX shell on the node. Same contract as
    /// [`SshTarget::exec`]: `on_output` gets each output line (for Proxmox, all lines
    /// arrive when the command has finished, plus `qm: ` prefixed lines from qm itself),
    /// a non-zero exit status is a normal result, and failures to run the command are
    /// errors carrying a [`RemoteError`].
    pub async fn exec(
        &self,
        command: &str,
        timeout: Duration,
        on_output: impl FnMut(OutputLine) + Send,
    ) -> Result<ExecResult> {
        match self {
            Transport::Ssh(t) => t.exec(command, timeout, on_output).await,
            Transport::Proxmox {
                host,
                vmid,
                escalate,
            } => {
                proxmox::exec(
                    host,
                    *vmid,
                    escalate.as_deref(),
                    command,
                    timeout,
                    on_output,
                )
                .await
            }
        }
    }

    /// [`exec`](Self::exec) with `stdin` streamed to the command. Only
    /// direct SSH can: for Proxmox this fails with [`proxmox::NO_STDIN_STREAM`].
    pub async fn exec_with_stdin(
        &self,
        command: &str,
        timeout: Duration,
        stdin: Stdin<'_>,
        on_output: impl FnMut(OutputLine) + Send,
    ) -> Result<ExecResult> {
        match self {
            Transport::Ssh(t) => t.exec_with_stdin(command, timeout, stdin, on_output).await,
            Transport::Proxmox { .. } => Err(RemoteError::new(
                RemoteErrorKind::Proxmox,
                self.describe(),
                proxmox::NO_STDIN_STREAM,
            )
            .into()),
        }
    }
}
