//! Proxmox transport: SSH to the Proxmox host, run `qm guest exec VMID` there, and
//! turn the guest agent's JSON status into an [`ExecResult`].
//!
//! `qm guest exec VMID --timeout 0 -- sh -c CMD` waits for the guest command and
//! prints pretty, key-sorted JSON: `exited`, `exitcode` or `signal`, `out-data`,
//! `err-data` (already decoded text), `out-truncated`, `err-truncated`. The `qm`
//! process's own exit status says nothing about the guest command: `exitcode` does.
//! Output is only available when the command has finished, so lines are delivered
//! to the callback at the end, not streamed.

use std::time::{Duration, Instant};

use color_eyre::eyre::Result;
use serde::Deserialize;
use serde_json::Value;

use super::quote::shell_quote;
use super::ssh::{
    Capture, ExecResult, LineSplitter, OutputLine, OutputStream, RemoteError, RemoteErrorKind,
    SshTarget, shorten,
};

/// Upper bound on the JSON read from `qm` (the guest agent caps each stream at 16 MiB).
const MAX_QM_OUTPUT: usize = 40 * 1024 * 1024;

/// The command line run on the Proxmox host for guest command `command`.
pub fn qm_guest_exec_command(vmid: u32, command: &str) -> String {
    format!(
        "qm guest exec {vmid} --timeout 0 -- sh -c {}",
        shell_quote(command)
    )
}

/// The command line run on the Proxmox host as a user who needs `escalate`
/// (`sudo -n`) to run qm: qm is root's tool; the guest agent then runs the
/// guest command as root in the VM.
pub fn qm_wire_command(escalate: Option<&str>, vmid: u32, command: &str) -> String {
    match escalate {
        Some(b) => format!("{b} {}", qm_guest_exec_command(vmid, command)),
        None => qm_guest_exec_command(vmid, command),
    }
}

/// Why a file cannot be streamed into a VM through `qm guest exec`: its
/// `--pass-stdin` reads all of stdin first and hands it to the guest agent
/// in one request, not as a stream.
pub const NO_STDIN_STREAM: &str = "qm guest exec cannot stream a file into the VM: --pass-stdin hands the guest agent all of stdin in one request, and a K3s binary is ~70 MiB";

/// `qm guest exec` status object (fields as PVE prints them; booleans may be 0/1).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct QmExecStatus {
    #[serde(default)]
    pub exited: Option<Value>,
    #[serde(default)]
    pub exitcode: Option<i64>,
    #[serde(default)]
    pub signal: Option<i64>,
    #[serde(default, rename = "out-data")]
    pub out_data: Option<String>,
    #[serde(default, rename = "err-data")]
    pub err_data: Option<String>,
    #[serde(default, rename = "out-truncated")]
    pub out_truncated: Option<Value>,
    #[serde(default, rename = "err-truncated")]
    pub err_truncated: Option<Value>,
    /// Present when qm stopped waiting (its own timeout) before the command ended.
    #[serde(default)]
    pub pid: Option<u64>,
}

fn truthy(v: &Option<Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_i64().is_some_and(|n| n != 0),
        Some(Value::String(s)) => s == "1" || s == "true",
        _ => false,
    }
}

impl QmExecStatus {
    /// Parse qm's JSON output.
    pub fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text.trim()).map_err(|e| e.to_string())
    }

    pub fn has_exited(&self) -> bool {
        truthy(&self.exited)
    }

    pub fn truncated(&self) -> bool {
        truthy(&self.out_truncated) || truthy(&self.err_truncated)
    }
}

/// Name a signal number the way OpenSSH names signals (`KILL`, `TERM`, ...).
pub fn signal_name(number: i64) -> String {
    let name = match number {
        1 => "HUP",
        2 => "INT",
        3 => "QUIT",
        4 => "ILL",
        6 => "ABRT",
        8 => "FPE",
        9 => "KILL",
        10 => "USR1",
        11 => "SEGV",
        12 => "USR2",
        13 => "PIPE",
        14 => "ALRM",
        15 => "TERM",
        _ => return format!("SIG{number}"),
    };
    name.to_owned()
}

/// Run `command` in VM `vmid` through `qm guest exec` on `host`.
pub async fn exec(
    host: &SshTarget,
    vmid: u32,
    escalate: Option<&str>,
    command: &str,
    timeout: Duration,
    mut on_output: impl FnMut(OutputLine) + Send,
) -> Result<ExecResult> {
    let started = Instant::now();
    let label = format!("VM {vmid} via {}", host.label());
    let err = |kind, message: String| RemoteError::new(kind, label.clone(), message);
    let wire = qm_wire_command(escalate, vmid, command);
    let mut capture = Capture::new(MAX_QM_OUTPUT);
    // qm's own stderr (warnings, "VM 101 is not running") is streamed, marked as qm's.
    let mut qm_stderr = |l: OutputLine| {
        on_output(OutputLine {
            stream: l.stream,
            line: format!("qm: {}", l.line),
        })
    };
    let qm = match host
        .exec_inner(&wire, timeout, &mut qm_stderr, Some(&mut capture))
        .await
    {
        Ok(r) => r,
        Err(report) => {
            // Re-label transport errors with the VM, keep their kind.
            return Err(match report.downcast::<RemoteError>() {
                Ok(e) => err(e.kind, e.message).into(),
                Err(other) => other,
            });
        }
    };
    if capture.overflow {
        return Err(err(
            RemoteErrorKind::Proxmox,
            format!("qm guest exec printed more than {MAX_QM_OUTPUT} bytes; refusing to parse it"),
        )
        .into());
    }
    let text = String::from_utf8_lossy(&capture.buf);
    if text.trim().is_empty() {
        let status = match (qm.exit_status, &qm.signal) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(sig)) => format!("signal {sig}"),
            (None, None) => "no exit status".to_owned(),
        };
        let stderr = shorten(qm.stderr.trim(), 500);
        return Err(err(
            RemoteErrorKind::Proxmox,
            format!("qm guest exec {vmid} failed ({status}): {stderr}"),
        )
        .into());
    }
    let status = QmExecStatus::parse(&text).map_err(|e| {
        err(
            RemoteErrorKind::Proxmox,
            format!(
                "unexpected output from qm guest exec {vmid} ({e}): {}",
                shorten(text.trim(), 300)
            ),
        )
    })?;
    if !status.has_exited() {
        let pid = status
            .pid
            .map_or_else(|| "unknown pid".to_owned(), |p| format!("pid {p}"));
        return Err(err(
            RemoteErrorKind::Proxmox,
            format!("qm returned before the guest command finished ({pid}); it may still be running in the guest"),
        )
        .into());
    }
    let mut result =
        status_to_result(&status, &mut on_output).map_err(|m| err(RemoteErrorKind::Proxmox, m))?;
    result.duration = started.elapsed();
    Ok(result)
}

/// Convert a finished qm status into an [`ExecResult`], delivering output lines.
pub fn status_to_result(
    status: &QmExecStatus,
    on_output: &mut impl FnMut(OutputLine),
) -> Result<ExecResult, String> {
    let exit_status = match status.exitcode {
        Some(code) => Some(u32::try_from(code).map_err(|_| format!("invalid exitcode {code}"))?),
        None => None,
    };
    let signal = status.signal.map(signal_name);
    if exit_status.is_none() && signal.is_none() {
        return Err("guest command finished without exitcode or signal".to_owned());
    }
    let mut stdout = LineSplitter::new(OutputStream::Stdout);
    let mut stderr = LineSplitter::new(OutputStream::Stderr);
    if let Some(out) = &status.out_data {
        stdout.push(out.as_bytes(), on_output);
        stdout.finish(on_output);
    }
    if let Some(err) = &status.err_data {
        stderr.push(err.as_bytes(), on_output);
        stderr.finish(on_output);
    }
    Ok(ExecResult {
        exit_status,
        signal,
        truncated: status.truncated() || stdout.tail.truncated || stderr.tail.truncated,
        stdout: stdout.tail.render(),
        stderr: stderr.tail.render(),
        duration: Duration::ZERO,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn wire_command_quotes_once() {
        assert_eq!(
            qm_guest_exec_command(101, "systemctl restart k3s"),
            "qm guest exec 101 --timeout 0 -- sh -c 'systemctl restart k3s'"
        );
        assert_eq!(
            qm_guest_exec_command(7, "echo 'a'"),
            "qm guest exec 7 --timeout 0 -- sh -c 'echo '\\''a'\\'''"
        );
    }

    #[test]
    fn become_runs_qm_itself_as_root_and_quotes_the_guest_command_once() {
        assert_eq!(
            qm_wire_command(Some("sudo -n"), 106, "echo a"),
            "sudo -n qm guest exec 106 --timeout 0 -- sh -c 'echo a'"
        );
        assert_eq!(
            qm_wire_command(None, 106, "true"),
            qm_guest_exec_command(106, "true")
        );
    }

    #[test]
    fn parses_pve_output() {
        // As PVE prints it: 3-space indent, sorted keys, booleans as 0/1.
        let text = "{\n   \"err-data\" : \"warn\\n\",\n   \"exitcode\" : 3,\n   \"exited\" : 1,\n   \"out-data\" : \"a\\nb\\n\",\n   \"out-truncated\" : 0\n}\n";
        let status = QmExecStatus::parse(text).unwrap();
        assert!(status.has_exited());
        assert!(!status.truncated());
        let mut lines = Vec::new();
        let r =
            status_to_result(&status, &mut |l: OutputLine| lines.push((l.stream, l.line))).unwrap();
        assert_eq!(r.exit_status, Some(3));
        assert_eq!(r.stdout, "a\nb\n");
        assert_eq!(r.stderr, "warn\n");
        assert_eq!(
            lines,
            vec![
                (OutputStream::Stdout, "a".to_owned()),
                (OutputStream::Stdout, "b".to_owned()),
                (OutputStream::Stderr, "warn".to_owned()),
            ]
        );
    }

    #[test]
    fn signal_and_truncation_and_pid() {
        let s = QmExecStatus::parse(r#"{"exited":true,"signal":9,"out-truncated":true}"#).unwrap();
        let r = status_to_result(&s, &mut |_| {}).unwrap();
        assert_eq!(r.signal.as_deref(), Some("KILL"));
        assert_eq!(r.exit_status, None);
        assert!(r.truncated);
        let s = QmExecStatus::parse(r#"{"pid": 1234}"#).unwrap();
        assert!(!s.has_exited());
        assert!(QmExecStatus::parse("VM 101 is not running").is_err());
        let s = QmExecStatus::parse(r#"{"exited":1}"#).unwrap();
        assert!(status_to_result(&s, &mut |_| {}).is_err());
    }
}
