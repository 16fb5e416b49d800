//! SSH transport tests: against a real OpenSSH `sshd` started on loopback (a
//! failure under CI when /usr/sbin/sshd is absent, a SKIP elsewhere), and
//! against the lab's russh server.
//!
//! Run with `--nocapture` to see the measured latencies.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use k3s_cockpit::lab::ssh::{
    CommandHandler, CommandOutcome, generate_keys, parse_qm_guest_exec, qm_exec_json,
    random_ed25519, serve_node_ssh,
};
use k3s_cockpit::remote::{
    OutputLine, OutputStream, RemoteErrorKind, SshTarget, Transport, error_kind, shell_quote,
};

const SSHD: &str = "/usr/sbin/sshd";
const T: Duration = Duration::from_secs(20);

fn skip_without_sshd(test: &str) -> bool {
    !common::require(test, &[SSHD, "ssh-keygen"])
}

fn current_user() -> String {
    if let Ok(u) = std::env::var("USER")
        && !u.is_empty()
    {
        return u;
    }
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn keygen(path: &Path, kind: &str, passphrase: &str) {
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", kind, "-N", passphrase, "-C", "test", "-f"])
        .arg(path);
    if kind == "rsa" {
        cmd.args(["-b", "2048"]);
    }
    let status = cmd.stdout(Stdio::null()).status().unwrap();
    assert!(status.success(), "ssh-keygen {kind} failed");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A throwaway OpenSSH server on 127.0.0.1 accepting `client_key` for the current user.
struct Sshd {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    user: String,
}

impl Sshd {
    fn start() -> Sshd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let _ = std::fs::create_dir_all("/run/sshd");
        keygen(&d.join("host_ed25519"), "ed25519", "");
        keygen(&d.join("client_ed25519"), "ed25519", "");
        keygen(&d.join("client_rsa"), "rsa", "");
        keygen(&d.join("client_encrypted"), "ed25519", "correct horse");
        keygen(&d.join("stranger"), "ed25519", "");
        let mut authorized = String::new();
        for k in ["client_ed25519", "client_rsa", "client_encrypted"] {
            authorized += &std::fs::read_to_string(d.join(format!("{k}.pub"))).unwrap();
        }
        std::fs::write(d.join("authorized_keys"), authorized).unwrap();
        for attempt in 0..5 {
            let port = free_port();
            let config = format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_ed25519\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\nUsePAM no\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\n\
                 StrictModes no\nLogLevel VERBOSE\n",
                d = d.display()
            );
            std::fs::write(d.join("sshd_config"), config).unwrap();
            let log = std::fs::File::create(d.join("sshd.log")).unwrap();
            let mut child = Command::new(SSHD)
                .args(["-D", "-e", "-f"])
                .arg(d.join("sshd_config"))
                .args(["-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Sshd {
                        child,
                        port,
                        dir,
                        user: current_user(),
                    };
                }
                if let Some(status) = child.try_wait().unwrap() {
                    let log = std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default();
                    eprintln!("sshd attempt {attempt} exited with {status}: {log}");
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!("sshd did not listen on {port} within 5 s");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("could not start sshd");
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// known_hosts line for this server's real host key.
    fn known_hosts_line(&self) -> String {
        let pubkey = std::fs::read_to_string(self.path("host_ed25519.pub")).unwrap();
        format!("[127.0.0.1]:{} {}", self.port, pubkey.trim())
    }

    /// A target with a known_hosts file that trusts this server.
    fn target(&self, key: &str) -> SshTarget {
        let kh = self.path("known_hosts");
        if !kh.exists() {
            std::fs::write(&kh, format!("{}\n", self.known_hosts_line())).unwrap();
        }
        SshTarget::new("127.0.0.1", self.port, &self.user, Some(self.path(key)), kh)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Lines = Arc<Mutex<Vec<(Instant, OutputStream, String)>>>;

fn recorder() -> (Lines, impl FnMut(OutputLine) + Send + 'static) {
    let lines: Lines = Arc::default();
    let l = lines.clone();
    (lines, move |o: OutputLine| {
        l.lock().unwrap().push((Instant::now(), o.stream, o.line))
    })
}

fn texts(lines: &Lines, stream: OutputStream) -> Vec<String> {
    lines
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, s, _)| *s == stream)
        .map(|(_, _, l)| l.clone())
        .collect()
}

#[tokio::test]
async fn sshd_key_auth_echo_streams_and_exits_zero() {
    if skip_without_sshd("sshd_key_auth_echo_streams_and_exits_zero") {
        return;
    }
    let sshd = Sshd::start();
    let target = sshd.target("client_ed25519");
    let (lines, sink) = recorder();
    let r = target
        .exec("echo hello; echo second", T, sink)
        .await
        .unwrap_or_else(|e| panic!("{e:?}\nsshd log:\n{}", sshd.log()));
    assert_eq!(r.exit_status, Some(0));
    assert!(r.success());
    assert_eq!(r.stdout, "hello\nsecond\n");
    assert_eq!(texts(&lines, OutputStream::Stdout), vec!["hello", "second"]);

    // Latency: connect + handshake + auth + exec, sequentially.
    let n = 10;
    let start = Instant::now();
    for _ in 0..n {
        let r = target.exec("true", T, |_| {}).await.unwrap();
        assert_eq!(r.exit_status, Some(0));
    }
    eprintln!(
        "TIMING sshd: connect+auth+exec `true`: {:.1} ms per call (mean of {n})",
        start.elapsed().as_secs_f64() * 1000.0 / n as f64
    );
}

/// A file streamed through the command's stdin arrives byte for byte, in
/// chunks (never held whole), with the byte count reported as it goes; a
/// command that ends without reading its input is reported, not hung on.
#[tokio::test]
async fn sshd_stdin_streams_a_file_byte_identical() {
    if skip_without_sshd("sshd_stdin_streams_a_file_byte_identical") {
        return;
    }
    let sshd = Sshd::start();
    let target = sshd.target("client_ed25519");
    // 9 MiB of every byte value, not a multiple of the chunk size.
    let data: Vec<u8> = (0..9 * 1024 * 1024 + 7)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let source = sshd.path("source.bin");
    std::fs::write(&source, &data).unwrap();
    let arrived = sshd.path("arrived.bin");
    let command = format!("cat > {}", shell_quote(&arrived.display().to_string()));
    let sent = Arc::new(Mutex::new(Vec::new()));
    let counts = sent.clone();
    let stdin =
        k3s_cockpit::remote::Stdin::new(tokio::fs::File::open(&source).await.unwrap(), move |n| {
            counts.lock().unwrap().push(n)
        });
    let started = Instant::now();
    let r = target
        .exec_with_stdin(&command, T, stdin, |_| {})
        .await
        .unwrap_or_else(|e| panic!("{e:?}\nsshd log:\n{}", sshd.log()));
    eprintln!(
        "TIMING sshd: 9 MiB through stdin in {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    assert_eq!(r.exit_status, Some(0), "{r:?}");
    assert!(std::fs::read(&arrived).unwrap() == data, "the copy differs");
    let sent = sent.lock().unwrap().clone();
    assert_eq!(sent.last(), Some(&(data.len() as u64)));
    assert!(sent.len() > 100, "sent in {} chunks", sent.len());

    let stdin =
        k3s_cockpit::remote::Stdin::new(tokio::fs::File::open(&source).await.unwrap(), |_| {});
    let err = target
        .exec_with_stdin("exit 0", T, stdin, |_| {})
        .await
        .unwrap_err();
    assert_eq!(error_kind(&err), Some(RemoteErrorKind::ConnectionLost));
    assert!(err.to_string().contains("sending stdin"), "{err}");
}

#[tokio::test]
async fn sshd_rsa_key_and_exit_code() {
    if skip_without_sshd("sshd_rsa_key_and_exit_code") {
        return;
    }
    let sshd = Sshd::start();
    let r = sshd
        .target("client_rsa")
        .exec("exit 3", T, |_| {})
        .await
        .unwrap_or_else(|e| panic!("{e:?}\nsshd log:\n{}", sshd.log()));
    assert_eq!(r.exit_status, Some(3));
    assert!(!r.success());
    assert_eq!(r.signal, None);
}

#[tokio::test]
async fn sshd_stderr_is_tagged_and_output_streams_live() {
    if skip_without_sshd("sshd_stderr_is_tagged_and_output_streams_live") {
        return;
    }
    let sshd = Sshd::start();
    let (lines, sink) = recorder();
    let started = Instant::now();
    let r = sshd
        .target("client_ed25519")
        .exec(
            "echo out1; echo err1 >&2; sleep 1; echo out2; echo err2 >&2; exit 4",
            T,
            sink,
        )
        .await
        .unwrap();
    assert_eq!(r.exit_status, Some(4));
    assert_eq!(texts(&lines, OutputStream::Stdout), vec!["out1", "out2"]);
    assert_eq!(texts(&lines, OutputStream::Stderr), vec!["err1", "err2"]);
    assert_eq!(r.stderr, "err1\nerr2\n");
    // out1 reached the callback while the command was still sleeping.
    let lines = lines.lock().unwrap();
    let first = lines.iter().find(|(_, _, l)| l == "out1").unwrap().0;
    let last = lines.iter().find(|(_, _, l)| l == "out2").unwrap().0;
    assert!(
        last.duration_since(first) >= Duration::from_millis(800),
        "output was not streamed: {:?} apart",
        last.duration_since(first)
    );
    eprintln!(
        "TIMING sshd: first line after {:.0} ms",
        first.duration_since(started).as_secs_f64() * 1000.0
    );
}

#[tokio::test]
async fn sshd_changed_host_key_is_refused_even_with_accept_unknown() {
    if skip_without_sshd("sshd_changed_host_key_is_refused_even_with_accept_unknown") {
        return;
    }
    let sshd = Sshd::start();
    let other = random_ed25519();
    let other_pub = other.public_key().to_openssh().unwrap();
    let kh = sshd.path("known_hosts_wrong");
    std::fs::write(
        &kh,
        format!("# comment\n[127.0.0.1]:{} {other_pub}\n", sshd.port),
    )
    .unwrap();
    let mut target = sshd.target("client_ed25519");
    target.known_hosts = kh.clone();
    for accept_unknown in [false, true] {
        target.accept_unknown = accept_unknown;
        let err = target
            .exec("echo should-not-run", T, |_| panic!("no output expected"))
            .await
            .unwrap_err();
        assert_eq!(error_kind(&err), Some(RemoteErrorKind::HostKeyChanged));
        let msg = err.to_string();
        assert!(msg.contains("HOST KEY MISMATCH"), "{msg}");
        assert!(msg.contains(&format!("[127.0.0.1]:{}", sshd.port)), "{msg}");
        assert!(msg.contains(&format!("{} line 2", kh.display())), "{msg}");
        assert!(msg.contains(&target.label()), "{msg}");
    }
    // The file was not modified.
    assert_eq!(std::fs::read_to_string(&kh).unwrap().lines().count(), 2);
}

#[tokio::test]
async fn sshd_unknown_host_refused_by_default_accepted_explicitly() {
    if skip_without_sshd("sshd_unknown_host_refused_by_default_accepted_explicitly") {
        return;
    }
    let sshd = Sshd::start();
    let mut target = sshd.target("client_ed25519");
    target.known_hosts = sshd.path("fresh/known_hosts"); // does not exist yet
    let err = target.exec("true", T, |_| {}).await.unwrap_err();
    assert_eq!(error_kind(&err), Some(RemoteErrorKind::HostKeyUnknown));
    let msg = err.to_string();
    assert!(msg.contains("is not in"), "{msg}");
    assert!(msg.contains("SHA256:"), "{msg}");
    assert!(!target.known_hosts.exists());

    target.accept_unknown = true;
    let r = target.exec("echo ok", T, |_| {}).await.unwrap();
    assert_eq!(r.stdout, "ok\n");
    let recorded = std::fs::read_to_string(&target.known_hosts).unwrap();
    let expected_key = sshd.known_hosts_line();
    let expected_key = expected_key.split(' ').nth(2).unwrap();
    assert!(
        recorded
            .trim_start()
            .starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 ", sshd.port)),
        "{recorded}"
    );
    assert!(recorded.contains(expected_key), "{recorded}");

    // Now known: strict mode connects.
    target.accept_unknown = false;
    assert_eq!(
        target.exec("exit 0", T, |_| {}).await.unwrap().exit_status,
        Some(0)
    );
}

#[tokio::test]
async fn sshd_auth_failures_are_clear() {
    if skip_without_sshd("sshd_auth_failures_are_clear") {
        return;
    }
    let sshd = Sshd::start();
    let err = sshd
        .target("stranger")
        .exec("true", T, |_| {})
        .await
        .unwrap_err();
    assert_eq!(error_kind(&err), Some(RemoteErrorKind::Auth));
    assert!(err.to_string().contains("refused public key"), "{err}");

    let err = sshd
        .target("client_encrypted")
        .exec("true", T, |_| {})
        .await
        .unwrap_err();
    assert_eq!(error_kind(&err), Some(RemoteErrorKind::Auth));
    assert!(err.to_string().contains("passphrase-protected"), "{err}");

    let err = sshd
        .target("no-such-key")
        .exec("true", T, |_| {})
        .await
        .unwrap_err();
    assert_eq!(error_kind(&err), Some(RemoteErrorKind::Auth));

    // Nothing listening.
    let mut target = sshd.target("client_ed25519");
    target.port = free_port();
    let err = target.exec("true", T, |_| {}).await.unwrap_err();
    assert_eq!(error_kind(&err), Some(RemoteErrorKind::Connect));
    assert!(err.to_string().contains(&target.label()), "{err}");
}

#[tokio::test]
async fn sshd_timeout_errors_quickly() {
    if skip_without_sshd("sshd_timeout_errors_quickly") {
        return;
    }
    let sshd = Sshd::start();
    let started = Instant::now();
    let err = sshd
        .target("client_ed25519")
        .exec("sleep 5", Duration::from_millis(500), |_| {})
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(error_kind(&err), Some(RemoteErrorKind::Timeout));
    assert!(err.to_string().contains("timed out after 500ms"), "{err}");
    assert!(elapsed < Duration::from_millis(1500), "took {elapsed:?}");
    eprintln!(
        "TIMING sshd: 500 ms timeout returned after {} ms",
        elapsed.as_millis()
    );
}

#[tokio::test]
async fn sshd_connection_drop_is_an_error_not_a_hang() {
    if skip_without_sshd("sshd_connection_drop_is_an_error_not_a_hang") {
        return;
    }
    let sshd = Sshd::start();
    let (lines, sink) = recorder();
    let started = Instant::now();
    // $PPID of the command's shell is the sshd process serving this session.
    let err = sshd
        .target("client_ed25519")
        .exec("echo started; sleep 0.2; kill -9 $PPID; sleep 30", T, sink)
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(
        error_kind(&err),
        Some(RemoteErrorKind::ConnectionLost),
        "{err:?}"
    );
    assert!(err.to_string().contains("connection lost"), "{err}");
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    assert_eq!(texts(&lines, OutputStream::Stdout), vec!["started"]);
    eprintln!(
        "TIMING sshd: connection drop detected after {} ms",
        elapsed.as_millis()
    );
}

#[tokio::test]
async fn sshd_quoted_arguments_arrive_intact_and_concurrent_execs_work() {
    if skip_without_sshd("sshd_quoted_arguments_arrive_intact_and_concurrent_execs_work") {
        return;
    }
    let sshd = Sshd::start();
    let target = sshd.target("client_ed25519");
    let nasty = "it's $HOME `id` \"q\" ; | & * \\ ✓";
    let r = target
        .exec(&format!("printf '%s\\n' {}", shell_quote(nasty)), T, |_| {})
        .await
        .unwrap();
    assert_eq!(r.stdout, format!("{nasty}\n"));

    let started = Instant::now();
    let runs = (0..5).map(|i| {
        let target = target.clone();
        async move { target.exec(&format!("echo {i}"), T, |_| {}).await }
    });
    let results = futures::future::join_all(runs).await;
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap().stdout, format!("{i}\n"));
    }
    eprintln!(
        "TIMING sshd: 5 concurrent execs in {} ms",
        started.elapsed().as_millis()
    );
}

/// Agent authentication needs SSH_AUTH_SOCK in the environment, which a test cannot set
/// for itself without `unsafe`; so this test starts ssh-agent and re-runs the test binary
/// with the variable set, executing `agent_auth_child` there.
#[test]
fn sshd_agent_auth() {
    if skip_without_sshd("sshd_agent_auth") {
        return;
    }
    if !common::require("sshd_agent_auth", &["ssh-agent", "ssh-add"]) {
        return;
    }
    let sshd = Sshd::start();
    let sock = sshd.path("agent.sock");
    let mut agent = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sock.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let added = Command::new("ssh-add")
        .arg(sshd.path("client_rsa"))
        .env("SSH_AUTH_SOCK", &sock)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(added.success());
    let target = sshd.target("client_ed25519");
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["agent_auth_child", "--exact", "--nocapture"])
        .env("SSH_AUTH_SOCK", &sock)
        .env("K3SC_AGENT_TEST_PORT", sshd.port.to_string())
        .env("K3SC_AGENT_TEST_KNOWN_HOSTS", &target.known_hosts)
        .env("K3SC_AGENT_TEST_USER", &sshd.user)
        .output()
        .unwrap();
    let _ = agent.kill();
    let _ = agent.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("AGENT-AUTH-OK"), "{stdout}");
}

#[tokio::test]
async fn agent_auth_child() {
    let Ok(port) = std::env::var("K3SC_AGENT_TEST_PORT") else {
        return; // only meaningful when started by sshd_agent_auth
    };
    let target = SshTarget::new(
        "127.0.0.1",
        port.parse().unwrap(),
        std::env::var("K3SC_AGENT_TEST_USER").unwrap(),
        None,
        std::env::var("K3SC_AGENT_TEST_KNOWN_HOSTS").unwrap(),
    );
    let r = target.exec("echo via-agent", T, |_| {}).await.unwrap();
    assert_eq!(r.stdout, "via-agent\n");
    println!("AGENT-AUTH-OK");
}

// ---------------------------------------------------------------------------------------
// The lab's russh server.

/// Echo handler: reports the command, fails with 7 on "fail", prints a lot on "big".
struct Echo;

impl CommandHandler for Echo {
    fn run(&self, _user: &str, command: &str) -> BoxFuture<'static, CommandOutcome> {
        let command = command.to_owned();
        async move {
            if command == "hang" {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            if command == "panic" {
                panic!("handler bug");
            }
            if command == "big" {
                return CommandOutcome::ok("0123456789abcdef\n".repeat(20_000));
            }
            CommandOutcome {
                stdout: format!("ran: {command}\nsecond line\n"),
                stderr: "a warning\n".into(),
                exit_status: if command.contains("fail") { 7 } else { 0 },
            }
        }
        .boxed()
    }
}

struct Lab {
    port: u16,
    dir: tempfile::TempDir,
    keys: k3s_cockpit::lab::ssh::LabSshKeys,
    task: tokio::task::JoinHandle<color_eyre::Result<()>>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start_lab(handler: Arc<dyn CommandHandler>) -> Lab {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let keys = generate_keys(dir.path(), &[port]).unwrap();
    let task = tokio::spawn(serve_node_ssh(
        listener,
        keys.host_key.clone(),
        vec![keys.client_public.clone()],
        handler,
    ));
    Lab {
        port,
        dir,
        keys,
        task,
    }
}

impl Lab {
    fn target(&self) -> SshTarget {
        SshTarget::new(
            "127.0.0.1",
            self.port,
            "root",
            Some(self.keys.client_key_path.clone()),
            self.keys.known_hosts_path.clone(),
        )
    }
}

#[tokio::test]
async fn lab_server_runs_commands_for_the_russh_client() {
    let lab = start_lab(Arc::new(Echo)).await;
    let target = lab.target();
    let (lines, sink) = recorder();
    let r = target.exec("k3s --version", T, sink).await.unwrap();
    assert_eq!(r.exit_status, Some(0));
    assert_eq!(r.stdout, "ran: k3s --version\nsecond line\n");
    assert_eq!(r.stderr, "a warning\n");
    assert_eq!(
        texts(&lines, OutputStream::Stdout),
        vec!["ran: k3s --version", "second line"]
    );
    assert_eq!(texts(&lines, OutputStream::Stderr), vec!["a warning"]);

    assert_eq!(
        target
            .exec("please fail", T, |_| {})
            .await
            .unwrap()
            .exit_status,
        Some(7)
    );

    let mut count = 0;
    let r = target.exec("big", T, |_| count += 1).await.unwrap();
    assert_eq!(count, 20_000);
    assert!(r.truncated); // 320 KB of output, tail is 64 KiB
    assert!(r.stdout.ends_with("0123456789abcdef\n"));

    let n = 20;
    let start = Instant::now();
    for _ in 0..n {
        target.exec("true", T, |_| {}).await.unwrap();
    }
    eprintln!(
        "TIMING lab: connect+auth+exec: {:.1} ms per call (mean of {n})",
        start.elapsed().as_secs_f64() * 1000.0 / n as f64
    );
}

#[tokio::test]
async fn lab_server_rejects_unknown_keys_and_checks_host_key() {
    let lab = start_lab(Arc::new(Echo)).await;
    // A client key the lab does not know.
    let stranger = lab.dir.path().join("stranger");
    std::fs::write(
        &stranger,
        random_ed25519()
            .to_openssh(russh::keys::ssh_key::LineEnding::LF)
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    let mut target = lab.target();
    target.key_path = Some(stranger);
    let err = target.exec("true", T, |_| {}).await.unwrap_err();
    assert_eq!(error_kind(&err), Some(RemoteErrorKind::Auth), "{err:?}");

    // Another lab's known_hosts does not vouch for this one.
    let other = start_lab(Arc::new(Echo)).await;
    let mut target = lab.target();
    std::fs::write(
        &target.known_hosts,
        format!(
            "[127.0.0.1]:{} {}\n",
            lab.port,
            other.keys.known_hosts_lines[0].split_once(' ').unwrap().1
        ),
    )
    .unwrap();
    target.accept_unknown = true;
    let err = target.exec("true", T, |_| {}).await.unwrap_err();
    assert_eq!(error_kind(&err), Some(RemoteErrorKind::HostKeyChanged));
}

/// The OpenSSH client accepts the lab's key files and known_hosts, and gets a polite
/// refusal for interactive sessions.
#[tokio::test]
async fn lab_server_works_with_openssh_client() {
    if !common::require("lab_server_works_with_openssh_client", &["ssh"]) {
        return;
    }
    let lab = start_lab(Arc::new(Echo)).await;
    let ssh = |extra: &[&str]| {
        let mut cmd = tokio::process::Command::new("ssh");
        cmd.arg("-i")
            .arg(&lab.keys.client_key_path)
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                lab.keys.known_hosts_path.display()
            ))
            .args([
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
            ])
            .args([
                "-F",
                "/dev/null",
                "-p",
                &lab.port.to_string(),
                "root@127.0.0.1",
            ])
            .args(extra)
            .stdin(Stdio::null());
        cmd
    };
    let out = ssh(&["echo", "hi"]).output().await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ran: echo hi\nsecond line\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0));
    let out = ssh(&["fail"]).output().await.unwrap();
    assert_eq!(out.status.code(), Some(7));

    let out = ssh(&[]).output().await.unwrap();
    assert_ne!(out.status.code(), Some(0));
}

/// Simulated Proxmox host: answers `qm guest exec` like PVE, running the guest command
/// with a tiny fake guest.
struct FakeProxmox;

impl CommandHandler for FakeProxmox {
    fn run(&self, _user: &str, command: &str) -> BoxFuture<'static, CommandOutcome> {
        let parsed = parse_qm_guest_exec(command);
        async move {
            let qm = match parsed {
                Ok(Some(qm)) => qm,
                Ok(None) => return CommandOutcome::fail(127, "sh: command not found\n"),
                Err(e) => return CommandOutcome::fail(255, format!("{e}\n")),
            };
            if qm.vmid != 101 {
                return CommandOutcome::fail(
                    255,
                    format!(
                        "Configuration file 'nodes/pve/qemu-server/{}.conf' does not exist\n",
                        qm.vmid
                    ),
                );
            }
            let script = qm.shell_command();
            let guest = if script == "k3s --version" {
                CommandOutcome::ok("k3s version v1.34.2+k3s1 (abc)\ngo version go1.24.9\n")
            } else if let Some(code) = script.strip_prefix("exit ") {
                CommandOutcome::fail(code.parse().unwrap(), "bye\n")
            } else {
                CommandOutcome::ok(format!("{script}\n"))
            };
            CommandOutcome::ok(qm_exec_json(&guest))
        }
        .boxed()
    }
}

#[tokio::test]
async fn proxmox_transport_against_lab_host() {
    let lab = start_lab(Arc::new(FakeProxmox)).await;
    let transport = Transport::Proxmox {
        host: lab.target(),
        vmid: 101,
        escalate: None,
    };
    assert!(
        transport
            .describe()
            .starts_with("VM 101 via root@127.0.0.1:")
    );
    let (lines, sink) = recorder();
    let r = transport.exec("k3s --version", T, sink).await.unwrap();
    assert_eq!(r.exit_status, Some(0));
    assert_eq!(
        texts(&lines, OutputStream::Stdout),
        vec!["k3s version v1.34.2+k3s1 (abc)", "go version go1.24.9"]
    );

    let r = transport.exec("exit 5", T, |_| {}).await.unwrap();
    assert_eq!(r.exit_status, Some(5));
    assert_eq!(r.stderr, "bye\n");

    // Quoting survives SSH + qm + sh -c.
    let tricky = "INSTALL_K3S_VERSION='v1.34.2+k3s1' sh -c \"echo it's\" | tee /tmp/x";
    let r = transport.exec(tricky, T, |_| {}).await.unwrap();
    assert_eq!(r.stdout, format!("{tricky}\n"));

    // qm itself failing (no JSON) is an error naming the VM and qm's message.
    let bad = Transport::Proxmox {
        host: lab.target(),
        vmid: 999,
        escalate: None,
    };
    let err = bad.exec("true", T, |_| {}).await.unwrap_err();
    assert_eq!(error_kind(&err), Some(RemoteErrorKind::Proxmox));
    let msg = err.to_string();
    assert!(msg.contains("VM 999 via root@127.0.0.1"), "{msg}");
    assert!(msg.contains("999.conf' does not exist"), "{msg}");

    // Direct SSH transport to the same server sees the raw qm-less command.
    let direct = Transport::Ssh(lab.target());
    let r = direct.exec("uptime", T, |_| {}).await.unwrap();
    assert_eq!(r.exit_status, Some(127));
}

/// TCP proxy that forwards until `frozen` is set, then goes silent without closing
/// (a network partition, not a clean disconnect).
async fn freezing_proxy(upstream: u16) -> (u16, Arc<AtomicBool>) {
    let frozen = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let f = frozen.clone();
    tokio::spawn(async move {
        loop {
            let (client, _) = listener.accept().await.unwrap();
            let server = tokio::net::TcpStream::connect(("127.0.0.1", upstream))
                .await
                .unwrap();
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pump(cr, sw, f.clone()));
            tokio::spawn(pump(sr, cw, f.clone()));
        }
    });
    (port, frozen)
}

async fn pump(
    mut r: impl tokio::io::AsyncRead + Unpin,
    mut w: impl tokio::io::AsyncWrite + Unpin,
    frozen: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = r.read(&mut buf).await.unwrap_or(0);
        if frozen.load(Ordering::SeqCst) {
            // Keep both sockets open and never forward again.
            std::future::pending::<()>().await;
        }
        if n == 0 || w.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn silent_network_is_detected_by_keepalives() {
    let lab = start_lab(Arc::new(Echo)).await;
    let (port, frozen) = freezing_proxy(lab.port).await;
    let mut target = lab.target();
    // known_hosts names the lab's port; trust the same key on the proxy's port.
    let line = &lab.keys.known_hosts_lines[0];
    let key = line.split_once(' ').unwrap().1;
    std::fs::write(&target.known_hosts, format!("[127.0.0.1]:{port} {key}\n")).unwrap();
    target.port = port;
    target.keepalive_interval = Duration::from_millis(200);
    assert_eq!(
        target.exec("ok", T, |_| {}).await.unwrap().exit_status,
        Some(0)
    );

    let f = frozen.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        f.store(true, Ordering::SeqCst);
    });
    let started = Instant::now();
    let err = target.exec("hang", T, |_| {}).await.unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(
        error_kind(&err),
        Some(RemoteErrorKind::ConnectionLost),
        "{err:?}"
    );
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    eprintln!(
        "TIMING lab: silent peer detected after {} ms (keepalive 200 ms x 3)",
        elapsed.as_millis()
    );
}

#[tokio::test]
async fn lab_handler_panic_is_reported_not_hung() {
    let lab = start_lab(Arc::new(Echo)).await;
    let r = lab.target().exec("panic", T, |_| {}).await.unwrap();
    assert_eq!(r.exit_status, Some(255));
    assert!(r.stderr.contains("command handler failed"), "{}", r.stderr);
}
