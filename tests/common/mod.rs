//! Shared helpers for integration tests: a fast scenario, the lab binary as
//! a child process, and tmux as a real terminal.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_k3s-cockpit");

/// Three nodes, kubelet renewals every second, grace 6 s; `victim` loses its
/// kubelet and speaker after `fault_delay`.
pub fn fast_scenario(victim: &str, fault_delay: &str) -> String {
    format!(
        r#"name = "fast"
time_scale = 1.0
[timing]
lease_duration = "4s"
renew_interval = "1s"
grace_period = "6s"
monitor_period = "500ms"
speaker_failover = "1s"
install = "1s"
restart_down = "500ms"
kubelet_startup = "500ms"
[[nodes]]
name = "node-a"
role = "server"
version = "v1.33.6+k3s1"
[[nodes]]
name = "node-b"
role = "server"
version = "v1.33.6+k3s1"
[[nodes]]
name = "node-c"
role = "agent"
version = "v1.33.6+k3s1"
[[services]]
namespace = "frigate"
name = "frigate"
ip = "127.77.0.10"
port = 5000
pod_node = "node-c"
[[faults]]
node = "{victim}"
kind = "kubelet-stop"
delay = "{fault_delay}"
[[faults]]
node = "{victim}"
kind = "speaker-stop"
delay = "{fault_delay}"
"#
    )
}

/// The node MetalLB picks first for the frigate IP.
pub fn first_announcer() -> &'static str {
    ["node-a", "node-b", "node-c"]
        .into_iter()
        .min_by_key(|n| k3s_cockpit::lab::objects::l2_rank(n, "127.77.0.10"))
        .unwrap()
}

pub struct LabProcess {
    child: Child,
    pub kubeconfig: PathBuf,
}

impl Drop for LabProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `k3s-cockpit lab` and waits until the kubeconfig exists.
pub fn start_lab(dir: &Path, scenario: &str, extra: &[&str]) -> LabProcess {
    let scenario_path = dir.join("scenario.toml");
    std::fs::write(&scenario_path, scenario).unwrap();
    let kubeconfig = dir.join("lab.kubeconfig");
    let port = free_port();
    let child = Command::new(BIN)
        .args(["lab", "--scenario"])
        .arg(&scenario_path)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--kubeconfig-out"])
        .arg(&kubeconfig)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lab = LabProcess { child, kubeconfig };
    wait_for(Duration::from_secs(20), || {
        lab.kubeconfig.exists() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    lab
}

pub fn wait_for(timeout: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A detached tmux session running `command`, on its own socket.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    pub fn start(name: &str, width: u16, height: u16, command: &str) -> Tmux {
        let socket = format!("k3sc-{name}-{}", std::process::id());
        let t = Tmux { socket };
        let status = t
            .cmd()
            .args([
                "new-session",
                "-d",
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
                command,
            ])
            .status()
            .unwrap();
        assert!(status.success(), "tmux new-session failed");
        t
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]);
        c
    }

    pub fn screen(&self) -> String {
        let out = self.cmd().args(["capture-pane", "-p"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn keys(&self, keys: &str) {
        self.cmd().args(["send-keys", keys]).status().unwrap();
    }

    /// Waits until the screen contains `text`; returns the last screen.
    pub fn wait_for(&self, text: &str, timeout: Duration) -> Result<String, String> {
        let start = Instant::now();
        let mut last = String::new();
        while start.elapsed() < timeout {
            last = self.screen();
            if last.contains(text) {
                return Ok(last);
            }
            std::thread::sleep(Duration::from_millis(150));
        }
        Err(format!(
            "{text:?} did not appear within {timeout:?}; screen:\n{last}"
        ))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().args(["kill-server"]).status();
    }
}
