//! SSH server plumbing for the simulated lab (russh): public-key authentication
//! against a fixed list of keys, `exec` requests only, each command handed to a
//! [`CommandHandler`] whose outcome is sent back as stdout, stderr and exit status.
//! Plus key generation for the lab and a parser for `qm guest exec` command lines.

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use color_eyre::eyre::{Result, WrapErr, eyre};
use futures::future::BoxFuture;
use rand::RngCore;
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{PrivateKey, PublicKey};
use russh::server::{Auth, Msg, PublicKeyOffer, Server as _, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, MethodKind, MethodSet};
use serde::Serialize;
use tracing::debug;

use crate::remote::quote::{shell_join, shell_split};
use crate::remote::ssh::known_hosts_host;

/// What a simulated command printed and how it exited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandOutcome {
    pub stdout: String,
    pub stderr: String,
    pub exit_status: u32,
}

impl CommandOutcome {
    pub fn ok(stdout: impl Into<String>) -> Self {
        CommandOutcome {
            stdout: stdout.into(),
            stderr: String::new(),
            exit_status: 0,
        }
    }

    pub fn fail(exit_status: u32, stderr: impl Into<String>) -> Self {
        CommandOutcome {
            stdout: String::new(),
            stderr: stderr.into(),
            exit_status,
        }
    }
}

/// A command's standard input as the client sends it; ends at the
/// client's EOF (a client that never sends one gives a stdin that never
/// ends, as with a real sshd).
pub struct LabStdin(Option<tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>>);

impl LabStdin {
    /// A stdin that is already at its end.
    pub fn empty() -> Self {
        LabStdin(None)
    }

    /// A stdin fed through `rx`; it ends when every sender is dropped.
    pub fn from_receiver(rx: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) -> Self {
        LabStdin(Some(rx))
    }

    /// The next chunk, or None at EOF.
    pub async fn chunk(&mut self) -> Option<Vec<u8>> {
        self.0.as_mut()?.recv().await
    }

    /// Everything up to EOF.
    pub async fn read_to_end(&mut self) -> Vec<u8> {
        let mut all = Vec::new();
        while let Some(chunk) = self.chunk().await {
            all.extend_from_slice(&chunk);
        }
        all
    }
}

/// Runs the command text of one SSH `exec` request (as the client sent it,
/// unparsed) for the user who logged in.
pub trait CommandHandler: Send + Sync {
    fn run(&self, user: &str, command: &str) -> BoxFuture<'static, CommandOutcome>;

    /// [`run`](Self::run) for a handler whose commands may read stdin.
    fn run_with_stdin(
        &self,
        user: &str,
        command: &str,
        stdin: LabStdin,
    ) -> BoxFuture<'static, CommandOutcome> {
        drop(stdin);
        self.run(user, command)
    }

    /// Whether this user may log in at all (`PermitRootLogin no` refuses root).
    fn accepts_user(&self, _user: &str) -> bool {
        true
    }
}

/// Serve SSH on `listener` until the listener fails (abort the task to stop).
/// Only `authorized` public keys are accepted, for any user name.
pub async fn serve_node_ssh(
    listener: tokio::net::TcpListener,
    host_key: PrivateKey,
    authorized: Vec<PublicKey>,
    handler: Arc<dyn CommandHandler>,
) -> Result<()> {
    let local = listener.local_addr().ok();
    let config = russh::server::Config {
        keys: vec![host_key],
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        // Loopback lab: no need to slow down rejected attempts.
        auth_rejection_time: Duration::from_millis(50),
        auth_rejection_time_initial: Some(Duration::ZERO),
        inactivity_timeout: Some(Duration::from_secs(3600)),
        nodelay: true,
        ..Default::default()
    };
    let mut server = LabSshServer {
        authorized: authorized.into(),
        handler,
    };
    debug!(target: "lab::ssh", addr = ?local, "serving SSH");
    server
        .run_on_socket(Arc::new(config), &listener)
        .await
        .wrap_err_with(|| format!("lab SSH server on {local:?}"))
}

struct LabSshServer {
    authorized: Arc<[PublicKey]>,
    handler: Arc<dyn CommandHandler>,
}

impl russh::server::Server for LabSshServer {
    type Handler = LabSshConn;

    fn new_client(&mut self, peer: Option<SocketAddr>) -> LabSshConn {
        LabSshConn {
            authorized: self.authorized.clone(),
            handler: self.handler.clone(),
            peer,
            user: String::new(),
            stdin: Default::default(),
        }
    }

    fn handle_session_error(&mut self, error: russh::Error) {
        debug!(target: "lab::ssh", %error, "session ended with error");
    }
}

struct LabSshConn {
    authorized: Arc<[PublicKey]>,
    handler: Arc<dyn CommandHandler>,
    peer: Option<SocketAddr>,
    /// The user that authenticated.
    user: String,
    /// Where each running command's stdin goes, until the client's EOF.
    stdin: std::collections::HashMap<ChannelId, tokio::sync::mpsc::UnboundedSender<Vec<u8>>>,
}

impl LabSshConn {
    fn is_authorized(&self, key: &PublicKey) -> bool {
        self.authorized
            .iter()
            .any(|k| k.key_data() == key.key_data())
    }

    fn verdict(&self, user: &str, key: &PublicKey) -> Auth {
        if self.is_authorized(key) && self.handler.accepts_user(user) {
            Auth::Accept
        } else {
            Auth::Reject {
                proceed_with_methods: Some(MethodSet::from(&[MethodKind::PublicKey][..])),
                partial_success: false,
            }
        }
    }
}

const NO_SHELL: &str = "k3s-cockpit lab: interactive sessions are not supported; run a command instead (ssh HOST COMMAND)\r\n";

impl russh::server::Handler for LabSshConn {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(self.verdict(user, offer.public_key))
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let verdict = self.verdict(user, key.public_key);
        if verdict == Auth::Accept {
            self.user = user.to_string();
        }
        debug!(target: "lab::ssh", peer = ?self.peer, user, accepted = (verdict == Auth::Accept), "public key auth");
        Ok(verdict)
    }

    async fn channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let command = String::from_utf8_lossy(data).into_owned();
        debug!(target: "lab::ssh", peer = ?self.peer, command = %crate::remote::redact_command(&command), "exec");
        session.channel_success(channel)?;
        let handle = session.handle();
        let handler = self.handler.clone();
        let user = self.user.clone();
        let (stdin_tx, stdin_rx) = tokio::sync::mpsc::unbounded_channel();
        self.stdin.insert(channel, stdin_tx);
        let stdin = LabStdin(Some(stdin_rx));
        tokio::spawn(async move {
            // A panicking handler must not leave the client waiting forever.
            let run = handler.run_with_stdin(&user, &command, stdin);
            let outcome = match tokio::spawn(run).await {
                Ok(outcome) => outcome,
                Err(e) => CommandOutcome::fail(
                    255,
                    format!("k3s-cockpit lab: command handler failed: {e}\n"),
                ),
            };
            // Stdout in chunks (at line boundaries where possible), then stderr.
            for chunk in chunks(&outcome.stdout, 16 * 1024) {
                if handle
                    .data(channel, chunk.as_bytes().to_vec())
                    .await
                    .is_err()
                {
                    return;
                }
            }
            if !outcome.stderr.is_empty()
                && handle
                    .extended_data(channel, 1, outcome.stderr.into_bytes())
                    .await
                    .is_err()
            {
                return;
            }
            let _ = handle
                .exit_status_request(channel, outcome.exit_status)
                .await;
            let _ = handle.eof(channel).await;
            let _ = handle.close(channel).await;
        });
        Ok(())
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(tx) = self.stdin.get(&channel) {
            // A command that stopped reading drops its end: the rest is lost, as in a pipe.
            let _ = tx.send(data.to_vec());
        }
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.stdin.remove(&channel);
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.stdin.remove(&channel);
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        session.extended_data(channel, 1, NO_SHELL.as_bytes().to_vec())?;
        session.exit_status_request(channel, 1)?;
        session.eof(channel)?;
        session.close(channel)
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }
}

/// Split `s` into pieces of at most about `max` bytes, preferring line ends, on char boundaries.
fn chunks(s: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    while rest.len() > max {
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if let Some(nl) = rest[..cut].rfind('\n') {
            cut = nl + 1;
        }
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// Keys and files for a lab's SSH endpoints.
#[derive(Debug)]
pub struct LabSshKeys {
    /// Host key shared by all simulated SSH endpoints of the lab.
    pub host_key: PrivateKey,
    /// The client's public key: pass it to [`serve_node_ssh`] as authorized.
    pub client_public: PublicKey,
    /// OpenSSH-format private key file (mode 0600) for clients (`ssh -i`, plans).
    pub client_key_path: PathBuf,
    /// known_hosts file with one `[127.0.0.1]:PORT ssh-ed25519 ...` line per port.
    pub known_hosts_path: PathBuf,
    /// The lines written to `known_hosts_path`.
    pub known_hosts_lines: Vec<String>,
}

/// File names written by [`generate_keys`].
pub const CLIENT_KEY_FILE: &str = "lab_ssh_ed25519";
pub const KNOWN_HOSTS_FILE: &str = "lab_known_hosts";

/// A fresh random ed25519 key.
pub fn random_ed25519() -> PrivateKey {
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    PrivateKey::from(Ed25519Keypair::from_seed(&seed))
}

/// `[host]:port ssh-ed25519 AAAA...` (or `host ...` on port 22).
pub fn known_hosts_line(host: &str, port: u16, key: &PublicKey) -> Result<String> {
    let mut key = key.clone();
    key.set_comment("");
    Ok(format!(
        "{} {}",
        known_hosts_host(host, port),
        key.to_openssh().wrap_err("encoding host key")?
    ))
}

/// Generate a lab host key and a client key; write into `dir` the client private key
/// ([`CLIENT_KEY_FILE`], 0600, OpenSSH format), its `.pub`, and a known_hosts file
/// ([`KNOWN_HOSTS_FILE`]) trusting the host key on `127.0.0.1` at every port in `ports`.
/// Existing files are replaced.
pub fn generate_keys(dir: &Path, ports: &[u16]) -> Result<LabSshKeys> {
    fs::create_dir_all(dir).wrap_err_with(|| format!("creating {}", dir.display()))?;
    let host_key = random_ed25519();
    let mut client_key = random_ed25519();
    client_key.set_comment("k3s-cockpit-lab");
    let client_public = client_key.public_key().clone();

    let client_key_path = dir.join(CLIENT_KEY_FILE);
    let pem = client_key
        .to_openssh(LineEnding::LF)
        .wrap_err("encoding client key")?;
    write_private(&client_key_path, pem.as_bytes())?;
    let pub_path = dir.join(format!("{CLIENT_KEY_FILE}.pub"));
    let pub_line = client_public
        .to_openssh()
        .wrap_err("encoding client public key")?;
    fs::write(&pub_path, format!("{pub_line}\n"))
        .wrap_err_with(|| format!("writing {}", pub_path.display()))?;

    let known_hosts_lines = ports
        .iter()
        .map(|port| known_hosts_line("127.0.0.1", *port, host_key.public_key()))
        .collect::<Result<Vec<_>>>()?;
    let known_hosts_path = dir.join(KNOWN_HOSTS_FILE);
    let mut text = known_hosts_lines.join("\n");
    text.push('\n');
    fs::write(&known_hosts_path, text)
        .wrap_err_with(|| format!("writing {}", known_hosts_path.display()))?;
    Ok(LabSshKeys {
        host_key,
        client_public,
        client_key_path,
        known_hosts_path,
        known_hosts_lines,
    })
}

fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    let ctx = || format!("writing private key {}", path.display());
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).wrap_err_with(ctx)?;
    #[cfg(unix)]
    {
        // An existing file keeps its mode on open: force 0600.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .wrap_err_with(ctx)?;
    }
    file.write_all(contents).wrap_err_with(ctx)?;
    Ok(())
}

/// A parsed `qm guest exec VMID [OPTIONS] -- CMD...` command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QmGuestExec {
    pub vmid: u32,
    /// `--timeout N` (qm's default is 30 when absent).
    pub timeout: Option<u64>,
    /// `--synchronous` (default true).
    pub synchronous: bool,
    /// `--pass-stdin` (default false).
    pub pass_stdin: bool,
    /// The guest command's argv (after `--`, or the extra args).
    pub args: Vec<String>,
}

impl QmGuestExec {
    /// The guest command as shell text: the script of `sh -c SCRIPT` / `bash -c SCRIPT`,
    /// otherwise the argv re-quoted.
    pub fn shell_command(&self) -> String {
        match self.args.as_slice() {
            [shell, flag, script, ..]
                if flag == "-c"
                    && matches!(
                        shell.rsplit('/').next(),
                        Some("sh" | "bash" | "dash" | "ash")
                    ) =>
            {
                script.clone()
            }
            args => shell_join(args),
        }
    }
}

/// Parse a `qm guest exec` command line as sent over SSH (shell syntax).
/// `Ok(None)`: not a `qm guest exec` command. `Err`: a `qm guest exec` command that
/// qm itself would reject, with a qm-like message.
pub fn parse_qm_guest_exec(command: &str) -> Result<Option<QmGuestExec>> {
    let words = shell_split(command).map_err(|e| eyre!("cannot parse command line: {e}"))?;
    let mut words = words.into_iter();
    let head: Vec<String> = words.by_ref().take(3).collect();
    let is_qm = matches!(head.first().map(|w| w.rsplit('/').next()), Some(Some("qm")));
    if !is_qm
        || head.get(1).map(String::as_str) != Some("guest")
        || head.get(2).map(String::as_str) != Some("exec")
    {
        return Ok(None);
    }
    let mut vmid = None;
    let mut timeout = None;
    let mut synchronous = true;
    let mut pass_stdin = false;
    let mut args = Vec::new();
    let mut words = words.peekable();
    while let Some(w) = words.next() {
        if w == "--" {
            args.extend(words.by_ref());
            break;
        }
        let (name, inline) = match w.strip_prefix("--").or_else(|| w.strip_prefix('-')) {
            Some(opt) if !opt.is_empty() => match opt.split_once('=') {
                Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
                None => (opt.to_owned(), None),
            },
            _ => {
                if vmid.is_none() {
                    vmid = Some(w.parse::<u32>().map_err(|_| eyre!("400 Parameter verification failed.\nvmid: invalid format - value '{w}' does not look like a valid VM ID"))?);
                } else {
                    args.push(w);
                }
                continue;
            }
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| words.next())
                .ok_or_else(|| eyre!("400 missing value for option '--{name}'"))
        };
        match name.as_str() {
            "timeout" => {
                let v = value()?;
                timeout = Some(v.parse().map_err(|_| eyre!("400 Parameter verification failed.\ntimeout: type check ('integer') failed - got '{v}'"))?);
            }
            "synchronous" => synchronous = parse_bool(&value()?)?,
            "pass-stdin" => pass_stdin = parse_bool(&value()?)?,
            other => return Err(eyre!("Unknown option: {other}\n400 unable to parse option")),
        }
    }
    let vmid = vmid.ok_or_else(|| {
        eyre!("400 not enough arguments\nqm guest exec <vmid> [<extra-args>] [OPTIONS]")
    })?;
    if args.is_empty() {
        return Err(eyre!("No command given"));
    }
    if !synchronous && timeout.is_some() {
        return Err(eyre!(
            "400 Parameter verification failed.\ntimeout: 'synchronous' needs to be set for 'timeout'"
        ));
    }
    Ok(Some(QmGuestExec {
        vmid,
        timeout,
        synchronous,
        pass_stdin,
        args,
    }))
}

fn parse_bool(v: &str) -> Result<bool> {
    match v {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        other => Err(eyre!(
            "400 Parameter verification failed.\ntype check ('boolean') failed - got '{other}'"
        )),
    }
}

#[derive(Serialize)]
struct QmJson<'a> {
    #[serde(rename = "err-data", skip_serializing_if = "str::is_empty")]
    err_data: &'a str,
    exitcode: u32,
    exited: u8,
    #[serde(rename = "out-data", skip_serializing_if = "str::is_empty")]
    out_data: &'a str,
}

/// What `qm guest exec` prints for a finished guest command: PVE's pretty, key-sorted
/// JSON (3-space indent), with `out-data`/`err-data` only when non-empty.
pub fn qm_exec_json(outcome: &CommandOutcome) -> String {
    let value = QmJson {
        err_data: &outcome.stderr,
        exitcode: outcome.exit_status,
        exited: 1,
        out_data: &outcome.stdout,
    };
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"   ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
    if value.serialize(&mut ser).is_err() {
        return String::from("{}\n");
    }
    let mut text = String::from_utf8_lossy(&buf).into_owned();
    text.push('\n');
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::remote::proxmox::{QmExecStatus, qm_guest_exec_command};

    #[test]
    fn parses_what_the_transport_sends() {
        let cmd = "INSTALL_K3S_VERSION='v1.34.2+k3s1' sh -c \"echo 'hi'\"";
        let wire = qm_guest_exec_command(104, cmd);
        let qm = parse_qm_guest_exec(&wire).unwrap().unwrap();
        assert_eq!(qm.vmid, 104);
        assert_eq!(qm.timeout, Some(0));
        assert_eq!(qm.args, vec!["sh", "-c", cmd]);
        assert_eq!(qm.shell_command(), cmd);
    }

    #[test]
    fn parses_variants_and_rejects_bad_ones() {
        let qm = parse_qm_guest_exec("/usr/sbin/qm guest exec 101 uptime")
            .unwrap()
            .unwrap();
        assert_eq!(
            (qm.vmid, qm.timeout, qm.args.clone()),
            (101, None, vec!["uptime".into()])
        );
        let qm = parse_qm_guest_exec("qm guest exec 101 -- k3s --version")
            .unwrap()
            .unwrap();
        assert_eq!(qm.shell_command(), "k3s --version");
        // Like qm: without `--`, dashed words are qm options.
        assert!(parse_qm_guest_exec("qm guest exec 101 k3s --version").is_err());
        let qm =
            parse_qm_guest_exec("qm guest exec 5 --timeout=60 --pass-stdin 1 -- bash -c 'x y'")
                .unwrap()
                .unwrap();
        assert_eq!(
            (qm.timeout, qm.pass_stdin, qm.shell_command()),
            (Some(60), true, "x y".to_owned())
        );
        assert_eq!(parse_qm_guest_exec("systemctl restart k3s").unwrap(), None);
        assert_eq!(parse_qm_guest_exec("qm list").unwrap(), None);
        assert!(parse_qm_guest_exec("qm guest exec abc -- true").is_err());
        assert!(parse_qm_guest_exec("qm guest exec 101").is_err());
        assert!(parse_qm_guest_exec("qm guest exec 101 --bogus 1 -- true").is_err());
        assert!(
            parse_qm_guest_exec("qm guest exec 101 --synchronous 0 --timeout 5 -- true").is_err()
        );
    }

    #[test]
    fn json_looks_like_pve_and_round_trips() {
        let text = qm_exec_json(&CommandOutcome {
            stdout: "k3s version v1.34.2+k3s1\n".into(),
            stderr: String::new(),
            exit_status: 0,
        });
        assert_eq!(
            text,
            "{\n   \"exitcode\": 0,\n   \"exited\": 1,\n   \"out-data\": \"k3s version v1.34.2+k3s1\\n\"\n}\n"
        );
        let parsed = QmExecStatus::parse(&text).unwrap();
        assert!(parsed.has_exited());
        assert_eq!(parsed.exitcode, Some(0));
    }

    #[test]
    fn chunking_keeps_content() {
        let s = "line\n".repeat(10_000) + "tail é";
        let parts = chunks(&s, 4096);
        assert!(parts.len() > 10);
        assert!(parts.iter().all(|p| p.len() <= 4096));
        assert_eq!(parts.concat(), s);
    }

    #[test]
    fn generated_files() {
        let dir = tempfile::tempdir().unwrap();
        let keys = generate_keys(dir.path(), &[2201, 2202]).unwrap();
        assert_eq!(keys.known_hosts_lines.len(), 2);
        assert!(keys.known_hosts_lines[0].starts_with("[127.0.0.1]:2201 ssh-ed25519 AAAA"));
        let loaded = russh::keys::load_secret_key(&keys.client_key_path, None).unwrap();
        assert_eq!(
            loaded.public_key().key_data(),
            keys.client_public.key_data()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&keys.client_key_path)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let kh = fs::read_to_string(&keys.known_hosts_path).unwrap();
        assert_eq!(kh.lines().count(), 2);
    }
}
