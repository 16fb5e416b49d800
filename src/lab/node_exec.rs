//! What a simulated node's shell does with a script: each simple command
//! (split at newlines, `;`, `&&`) is carried out with the semantics a real
//! node gives it, stopping at the first failure like `set -e`; a command the
//! node does not know exits 127. The upgrade's own scripts (the binary
//! method, the K3s install script) change the node's [`Host`] as the real
//! steps would.

use std::collections::BTreeMap;

use super::host::{self, Failure, Host};
use super::node_files;
use super::shell::first_word;
use super::sim::{Kubelet, SimHandle};
use super::ssh::{CommandOutcome, LabStdin};
use crate::remote::quote::shell_split;
use crate::upgrade::method::{BINARY_MARKER, REINSTATE_MARKER};

/// The commands of `script` in order, each as its words without
/// redirections; leading `NAME=value` assignments are split off.
pub(super) struct Simple {
    pub(super) env: BTreeMap<String, String>,
    pub(super) words: Vec<String>,
}

pub async fn run_script(
    sim: &SimHandle,
    node: &str,
    script: &str,
    root: bool,
    stdin: &mut LabStdin,
) -> CommandOutcome {
    if script.starts_with(BINARY_MARKER) || script.starts_with(REINSTATE_MARKER) {
        sim.log_node_command(node, script.lines().next().unwrap_or_default());
    }
    let marked = if script.starts_with(BINARY_MARKER) {
        Some(super::node_upgrade::binary(sim, node, script, root).await)
    } else if script.starts_with(REINSTATE_MARKER) {
        Some(super::node_upgrade::reinstate(sim, node, script, root))
    } else {
        None
    };
    if let Some(done) = marked {
        return done;
    }
    let mut out = CommandOutcome::ok("");
    // `. "$f"` of the unit's env file keeps K3S_URL/K3S_TOKEN for install.sh.
    let sources_env = script.contains(".service.env") && script.contains(". \"$f\"");
    for segment in segments(script) {
        if let Some(done) = piped_install(sim, node, &segment, root).await {
            return done;
        }
        let Ok(words) = shell_split(&segment) else {
            return fail_with(out, 2, format!("sh: 1: Syntax error: {segment}\n"));
        };
        let into = node_files::cat_into(&words).map(str::to_string);
        let simple = simple(words);
        sim.log_node_command(node, &segment);
        let done = if let Some(file) = into {
            node_files::receive(sim, node, &file, root, stdin).await
        } else if is_install_script(&simple.words) {
            super::node_upgrade::install_script(sim, node, &simple, sources_env, root).await
        } else {
            command(sim, node, &simple.words, root).await
        };
        out.stdout.push_str(&done.stdout);
        out.stderr.push_str(&done.stderr);
        if done.exit_status != 0 {
            out.exit_status = done.exit_status;
            return out;
        }
    }
    out
}

fn fail_with(mut out: CommandOutcome, status: u32, stderr: String) -> CommandOutcome {
    out.stderr.push_str(&stderr);
    out.exit_status = status;
    out
}

/// `curl -sfL https://get.k3s.io | [ENV] sh -s - ARGS`: the install script
/// read from a pipe. A failed download leaves `sh` an empty script, which
/// succeeds: the pipe's status is the shell's.
async fn piped_install(
    sim: &SimHandle,
    node: &str,
    segment: &str,
    root: bool,
) -> Option<CommandOutcome> {
    let (left, right) = segment.split_once(" | ")?;
    if !left.starts_with("curl ") || !left.contains("https://get.k3s.io") {
        return None;
    }
    let mut cmd = simple(shell_split(right).ok()?);
    if cmd.words.first().map(String::as_str) != Some("sh") {
        return None;
    }
    let args: Vec<String> = cmd
        .words
        .iter()
        .skip(1)
        .skip_while(|w| *w == "-s" || *w == "-")
        .cloned()
        .collect();
    if sim.with_host(node, |h| h.airgap).unwrap_or(false) {
        return Some(CommandOutcome {
            stdout: String::new(),
            stderr: "curl: (6) Could not resolve host: get.k3s.io\n".into(),
            exit_status: 0,
        });
    }
    cmd.words = ["sh".to_string(), "-".to_string()]
        .into_iter()
        .chain(args)
        .collect();
    let sources_env = segment.contains(".service.env");
    Some(super::node_upgrade::install_script(sim, node, &cmd, sources_env, root).await)
}

/// `sh /tmp/...install.sh ARGS` (the K3s install script, saved to a file).
fn is_install_script(words: &[String]) -> bool {
    matches!(words, [sh, path, ..] if sh == "sh" && path.ends_with("install.sh"))
}

/// Splits a script at newlines, `;`, `&&` and `||` outside quotes.
fn segments(script: &str) -> Vec<String> {
    let (mut out, mut cur) = (Vec::new(), String::new());
    let (mut single, mut double) = (false, false);
    let mut chars = script.chars().peekable();
    while let Some(c) = chars.next() {
        let sep = !single && !double && (c == '\n' || c == ';')
            || (!single && !double && (c == '&' || c == '|') && chars.peek() == Some(&c));
        if sep {
            if c == '&' || c == '|' {
                chars.next();
            }
            out.push(std::mem::take(&mut cur));
            continue;
        }
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && !s.starts_with('#'))
        .collect()
}

fn simple(words: Vec<String>) -> Simple {
    let mut env = BTreeMap::new();
    let mut rest = Vec::new();
    for w in words {
        let redirect = w.starts_with('>') || w.starts_with('<') || w.starts_with("2>");
        if redirect {
            continue;
        }
        if rest.is_empty()
            && let Some((k, v)) = w.split_once('=')
            && !k.is_empty()
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            env.insert(k.to_string(), v.to_string());
            continue;
        }
        rest.push(w);
    }
    if rest.first().is_some_and(|w| w == "nohup") {
        rest.remove(0);
    }
    Simple { env, words: rest }
}

fn ok(stdout: impl Into<String>) -> CommandOutcome {
    CommandOutcome::ok(stdout)
}

fn failed((status, stderr): Failure) -> CommandOutcome {
    CommandOutcome::fail(status, stderr)
}

/// One simple command.
async fn command(sim: &SimHandle, node: &str, words: &[String], root: bool) -> CommandOutcome {
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    match w.as_slice() {
        [] | ["true" | ":" | "set" | "fi" | "then" | "if", ..] | [".", _] | ["[", ..] => ok(""),
        ["echo", rest @ ..] => ok(format!("{}\n", rest.join(" "))),
        ["command", "-v", tool] => ok(format!("/usr/bin/{tool}\n")),
        ["id", "-u"] => ok(if root { "0\n" } else { "1000\n" }),
        ["systemctl", verb, unit] => systemctl(sim, node, verb, unit, root).await,
        [bin, "--version"] if is_k3s(bin) => with(sim, node, |h| match h.binary_version() {
            Some(v) => ok(format!("k3s version {v} (3ad6f7f5)\ngo version go1.24.9\n")),
            None => failed((127, format!("sh: 1: {bin}: not found\n"))),
        }),
        [bin, "etcd-snapshot", rest @ ..] if is_k3s(bin) => {
            super::node_upgrade::etcd_snapshot(sim, node, rest, root)
        }
        [bin, "server", "--cluster-reset", restore] if is_k3s(bin) => {
            super::node_restore::cluster_reset(sim, node, restore, root).await
        }
        // The lab removes only the datastore; any other rm is unknown to it.
        ["rm", "-rf", path] if path.starts_with(super::sim::DB) => {
            super::node_restore::remove(sim, node, path, root)
        }
        ["test", "-e", path] => with(sim, node, |h| super::node_restore::exists(h, path)),
        ["uname", "-m"] => with(sim, node, |h| ok(format!("{}\n", h.arch))),
        ["df", "-Pk", path] => with(sim, node, |h| {
            ok(format!(
                "Filesystem     1024-blocks     Used Available Capacity Mounted on\n/dev/sda1         30830592 10485760 {:>9}      34% {path}\n",
                h.free_mib * 1024
            ))
        }),
        ["sha256sum", file] => with(sim, node, |h| match h.files.get(*file) {
            Some(data) => ok(format!("{}  {file}\n", host::sha256_hex(data))),
            None => failed((1, format!("sha256sum: {file}: No such file or directory\n"))),
        }),
        ["cat", file] => with(sim, node, |h| cat(h, file, root)),
        ["curl", ..] => curl(sim, node, &w, root),
        _ => node_files::dirs(sim, node, &w, root).unwrap_or_else(|| {
            CommandOutcome::fail(
                127,
                format!("sh: 1: {}: not found\n", first_word(&words.join(" "))),
            )
        }),
    }
}

fn is_k3s(bin: &str) -> bool {
    bin == "k3s" || bin == host::BIN
}

fn with(
    sim: &SimHandle,
    node: &str,
    f: impl FnOnce(&mut Host) -> CommandOutcome,
) -> CommandOutcome {
    sim.with_host(node, f)
        .unwrap_or_else(|e| CommandOutcome::fail(255, format!("{e}\n")))
}

async fn systemctl(
    sim: &SimHandle,
    node: &str,
    verb: &str,
    unit: &str,
    root: bool,
) -> CommandOutcome {
    let unit = unit.trim_end_matches(".service");
    let exists = sim.with_host(node, |h| h.unit == unit).unwrap_or(false);
    match verb {
        "is-active" if !exists => CommandOutcome {
            stdout: "inactive\n".into(),
            stderr: String::new(),
            exit_status: 3,
        },
        "is-active" => match sim.kubelet_state(node) {
            Ok(Kubelet::Down) => CommandOutcome {
                stdout: "activating\n".into(),
                stderr: String::new(),
                exit_status: 3,
            },
            Ok(Kubelet::Stopped) => CommandOutcome {
                stdout: "inactive\n".into(),
                stderr: String::new(),
                exit_status: 3,
            },
            Ok(_) => ok("active\n"),
            Err(e) => CommandOutcome::fail(1, e),
        },
        "cat" if exists => with(sim, node, |h| ok(unit_file(h))),
        "cat" => CommandOutcome::fail(1, format!("No files found for {unit}.service.\n")),
        "stop" | "start" => {
            super::node_restore::stop_start(sim, node, verb, unit, exists, root).await
        }
        "restart" if !exists => CommandOutcome::fail(
            5,
            format!("Failed to restart {unit}.service: Unit {unit}.service not found.\n"),
        ),
        "restart" if !root => CommandOutcome::fail(
            1,
            format!(
                "Failed to restart {unit}.service: Interactive authentication required.\nSee system logs and 'systemctl status {unit}.service' for details.\n"
            ),
        ),
        // The unit is Type=notify without a start timeout: systemctl returns
        // once K3s has started, however long that takes.
        "restart" => match sim.restart(node) {
            Ok(()) => match sim.started(node).await {
                Ok(()) => ok(""),
                Err(e) => CommandOutcome::fail(1, e),
            },
            Err(e) => CommandOutcome::fail(1, e),
        },
        _ => CommandOutcome::fail(1, format!("Unknown command verb {verb}.\n")),
    }
}

/// The unit as install.sh writes it: `ExecStart` with one quoted argument
/// per line (k3s-io/k3s install.sh, create_systemd_service_file).
pub fn unit_file(h: &Host) -> String {
    let mut exec = format!("ExecStart={} \\\n    {} \\\n", host::BIN, h.exec[0]);
    for a in &h.exec[1..] {
        exec.push_str(&format!("\t'{a}' \\\n"));
    }
    format!(
        "# /etc/systemd/system/{u}.service\n[Unit]\nDescription=Lightweight Kubernetes\n\n[Service]\nType=notify\nEnvironmentFile=-/etc/default/%N\nEnvironmentFile=-/etc/sysconfig/%N\nEnvironmentFile=-/etc/systemd/system/{u}.service.env\n{exec}\n",
        u = h.unit
    )
}

fn cat(h: &Host, file: &str, root: bool) -> CommandOutcome {
    let env_file = format!("/etc/systemd/system/{}.service.env", h.unit);
    if file == env_file && !root {
        return CommandOutcome::fail(1, format!("cat: {file}: Permission denied\n"));
    }
    let text = if file == env_file {
        h.env.iter().map(|(k, v)| format!("{k}='{v}'\n")).collect()
    } else if file == "/etc/rancher/k3s/config.yaml" {
        h.config_yaml.clone()
    } else if let Some(data) = h.files.get(file) {
        String::from_utf8_lossy(data).into_owned()
    } else {
        return CommandOutcome::fail(1, format!("cat: {file}: No such file or directory\n"));
    };
    ok(text)
}

/// `curl -sfL URL -o FILE`: the install script from get.k3s.io, or a
/// release file.
fn curl(sim: &SimHandle, node: &str, w: &[&str], root: bool) -> CommandOutcome {
    let url = w.iter().find(|a| a.starts_with("http"));
    let out = w.iter().position(|a| *a == "-o").and_then(|i| w.get(i + 1));
    let (Some(url), Some(out)) = (url, out) else {
        return CommandOutcome::fail(2, "curl: the lab only knows curl -sfL URL -o FILE\n");
    };
    with(sim, node, |h| {
        let data = if url.trim_end_matches('/') == "https://get.k3s.io" {
            if h.airgap {
                return failed((6, "curl: (6) Could not resolve host: get.k3s.io\n".into()));
            }
            b"#!/bin/sh\n# K3s install script (k3s-cockpit lab)\n".to_vec()
        } else {
            match h.download(url) {
                Ok(d) => d,
                Err(f) => return failed(f),
            }
        };
        if !root && !out.starts_with("/tmp/") {
            return failed((
                23,
                format!(
                    "curl: (23) Failure writing output to destination: {out}: Permission denied\n"
                ),
            ));
        }
        h.files.insert(out.to_string(), data);
        ok("")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_split_outside_quotes_only() {
        let s =
            "set -a; f=x; if [ -r \"$f\" ]; then . \"$f\"; fi\ncurl a -o b && X='1;2' sh b 'c d'";
        assert_eq!(
            segments(s),
            [
                "set -a",
                "f=x",
                "if [ -r \"$f\" ]",
                "then . \"$f\"",
                "fi",
                "curl a -o b",
                "X='1;2' sh b 'c d'"
            ]
        );
    }

    #[test]
    fn assignments_and_redirections_are_split_off() {
        let words = shell_split(
            "A=1 B='x y' nohup sh /tmp/k3s-install.sh server >>/var/log/l 2>&1 </dev/null",
        )
        .unwrap_or_default();
        let s = simple(words);
        assert_eq!(s.words, ["sh", "/tmp/k3s-install.sh", "server"]);
        assert_eq!(s.env.get("B").map(String::as_str), Some("x y"));
        assert!(is_install_script(&s.words));
    }
}
