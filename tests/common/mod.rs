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

/// Every node as the API at `kubeconfig` shows it now (a read-only
/// client, as the cockpit decodes them).
pub fn api_nodes(kubeconfig: &Path) -> Vec<k3s_cockpit::model::fleet::NodeInfo> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let target = k3s_cockpit::cluster::ClusterTarget {
            kubeconfig: Some(kubeconfig.to_path_buf()),
            context: None,
        };
        let conn = k3s_cockpit::cluster::connect(&target, true).await.unwrap();
        let nodes: kube::Api<k3s_cockpit::cluster::node_view::NodeView> =
            kube::Api::all(conn.client);
        let list = nodes.list(&Default::default()).await.unwrap();
        list.items
            .iter()
            .map(k3s_cockpit::cluster::convert::node)
            .collect()
    })
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

impl LabProcess {
    /// The lab's process id (to stop and continue it, as a hung server).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the lab now, as a crash would.
    pub fn kill(&mut self) -> std::io::Result<()> {
        self.child.kill()?;
        self.child.wait().map(|_| ())
    }
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
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lab = LabProcess { child, kubeconfig };
    let up = wait_for(Duration::from_secs(20), || {
        lab.kubeconfig.exists() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            || lab.child.try_wait().is_ok_and(|s| s.is_some())
    });
    let exited = lab.child.try_wait().ok().flatten();
    if !up || exited.is_some() {
        let _ = lab.child.kill();
        let mut stderr = String::new();
        if let Some(mut pipe) = lab.child.stderr.take() {
            use std::io::Read;
            let _ = pipe.read_to_string(&mut stderr);
        }
        panic!("the lab did not come up on port {port} (exit: {exited:?}); its stderr:\n{stderr}");
    }
    // The lab logs to stderr for its whole life: drain the pipe so it
    // never blocks on a full buffer.
    if let Some(mut pipe) = lab.child.stderr.take() {
        std::thread::spawn(move || std::io::copy(&mut pipe, &mut std::io::sink()));
    }
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

/// Whether `tool` is on PATH, or (an absolute path) exists.
pub fn have(tool: &str) -> bool {
    if tool.starts_with('/') {
        return Path::new(tool).exists();
    }
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .any(|dir| std::fs::metadata(dir.join(tool)).is_ok_and(|m| m.is_file()))
    })
}

/// Whether `test` can run: every tool it needs is there. A missing tool
/// fails the test under CI (`CI` set) and names it; elsewhere the test
/// says SKIP on the terminal (libtest cannot capture a direct write) with
/// the count of skips in this `cargo test` run, and returns early.
pub fn require(test: &str, tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !have(t)).collect();
    if missing.is_empty() {
        return true;
    }
    let what = missing.join(", ");
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!(
            "{test} needs {what}, which is missing (CI is set, so this is a failure, not a skip)"
        );
    }
    let count = count_skip(test);
    let line = format!(
        "SKIP {test}: {what} not found (skip {count} of this cargo test run; under CI this fails)\n"
    );
    use std::io::Write;
    let _ = std::io::stderr().write_all(line.as_bytes());
    false
}

/// Records a skip in a file shared by every test binary of this `cargo
/// test` run (they share cargo's process as parent); returns the count.
fn count_skip(test: &str) -> usize {
    use std::io::Write;
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let file = dir.join(format!("skips-{}.txt", std::os::unix::process::parent_id()));
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&file)
    {
        let _ = writeln!(f, "{test}");
    }
    std::fs::read_to_string(&file).map_or(1, |s| s.lines().count())
}

/// A detached tmux session running `command`, on its own socket.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// Call [`require`] first: without tmux this panics.
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

    /// Runs any tmux command on this server (`display -p -t :0
    /// '#{pane_title}'`, `set -g monitor-bell on`, `new-window ...`) and
    /// returns its stdout without the final newline; panics if it fails.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        text.strip_suffix('\n').unwrap_or(&text).to_string()
    }

    /// A format (`#{pane_title}`, `#{window_bell_flag}`) for `target`
    /// (`:0` is window 0).
    pub fn show(&self, target: &str, format: &str) -> String {
        self.run(&["display-message", "-p", "-t", target, format])
    }

    /// Window 0's screen: the program under test, whichever window the
    /// operator is looking at.
    pub fn screen(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", ":0"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types into window 0.
    pub fn keys(&self, keys: &str) {
        self.cmd()
            .args(["send-keys", "-t", ":0", keys])
            .status()
            .unwrap();
    }

    /// Waits until the screen contains `text`; returns the last screen.
    pub fn wait_for(&self, text: &str, timeout: Duration) -> Result<String, String> {
        self.wait_until(timeout, |screen| screen.contains(text))
            .map_err(|e| format!("{text:?} did not appear: {e}"))
    }

    /// Waits until `ok` holds for the screen; returns that screen.
    pub fn wait_until(
        &self,
        timeout: Duration,
        ok: impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        let start = Instant::now();
        let mut last = String::new();
        while start.elapsed() < timeout {
            last = self.screen();
            if ok(&last) {
                return Ok(last);
            }
            std::thread::sleep(Duration::from_millis(150));
        }
        Err(format!("not within {timeout:?}; screen:\n{last}"))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().args(["kill-server"]).status();
    }
}
