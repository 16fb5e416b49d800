//! SSH transport client (russh): connect, verify the host key against
//! known_hosts, authenticate with a key file or the ssh-agent, run one command,
//! stream its output line by line.
//!
//! One connection per [`SshTarget::exec`]: upgrade commands are few and long,
//! and a fresh connection never inherits a half-dead session.

use std::collections::VecDeque;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use color_eyre::eyre::{Report, Result};
use russh::client::{self, Handle};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::known_hosts::{known_host_keys_path, learn_known_hosts_path};
use russh::keys::{
    Algorithm, HashAlg, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate,
    check_known_hosts_path, load_secret_key,
};
use russh::{ChannelMsg, Disconnect};
use tracing::{debug, warn};

use super::quote::redact_command;
pub use super::stdin::Stdin;
use crate::durations::format_duration;

/// Default bound on TCP connect + SSH handshake + authentication.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Default SSH keepalive interval; three unanswered keepalives drop the connection,
/// so a silently dead peer is detected within about four intervals.
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// How much of each output stream [`ExecResult`] keeps (the tail).
pub const TAIL_BYTES: usize = 64 * 1024;
/// Longer lines are split into pieces of this size when streamed.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// Where and how to reach one SSH server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Private key file (OpenSSH or PEM format; ed25519, rsa, ecdsa). Unencrypted keys
    /// only: for a passphrase-protected key, load it into ssh-agent and leave this `None`,
    /// which authenticates with the identities of the agent at `SSH_AUTH_SOCK`.
    pub key_path: Option<PathBuf>,
    /// known_hosts file the host key is verified against (OpenSSH format, hashed entries ok).
    pub known_hosts: PathBuf,
    /// Trust a host whose key is not in `known_hosts` yet, and append it there.
    /// A key that differs from a recorded one is refused regardless.
    pub accept_unknown: bool,
    /// Bound on TCP connect + handshake + authentication.
    pub connect_timeout: Duration,
    /// SSH keepalive interval (dead-peer detection while a command runs silently).
    pub keepalive_interval: Duration,
}

/// Which stream a line of output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// One line of remote output, without its line terminator (`\n` or `\r\n`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLine {
    pub stream: OutputStream,
    pub line: String,
}

/// How a remote command ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecResult {
    /// Exit status of the command, if it exited normally.
    pub exit_status: Option<u32>,
    /// Signal name (`"KILL"`, `"TERM"`, ...) if the command was killed by a signal.
    pub signal: Option<String>,
    /// Last [`TAIL_BYTES`] of stdout (whole lines, `\n`-separated).
    pub stdout: String,
    /// Last [`TAIL_BYTES`] of stderr.
    pub stderr: String,
    /// Earlier output was dropped from the tails, or (Proxmox) the guest agent
    /// reported truncated capture.
    pub truncated: bool,
    /// Wall time of the whole exec, connection included.
    pub duration: Duration,
}

impl ExecResult {
    /// Exited normally with status 0.
    pub fn success(&self) -> bool {
        self.exit_status == Some(0)
    }
}

/// The kind of a [`RemoteError`], for callers that react differently (retry, halt, ask).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RemoteErrorKind {
    /// TCP connect or SSH handshake failed (refused, unreachable, protocol error).
    Connect,
    /// The host key is not in known_hosts and `accept_unknown` is off.
    HostKeyUnknown,
    /// The host key differs from the one recorded in known_hosts.
    HostKeyChanged,
    /// Key could not be loaded, or the server refused it.
    Auth,
    /// The connection or the command exceeded its time budget.
    Timeout,
    /// The connection dropped before the command reported how it ended.
    ConnectionLost,
    /// The server refused the exec request or broke the protocol.
    Protocol,
    /// `qm guest exec` failed or printed something unexpected.
    Proxmox,
}

/// A transport error; always names the target (`user@host:port`). It is carried inside
/// the `color_eyre` report: `report.downcast_ref::<RemoteError>()` or [`error_kind`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteError {
    pub kind: RemoteErrorKind,
    /// `user@host:port`, or `VM 101 via user@host:port` for Proxmox.
    pub target: String,
    pub message: String,
}

impl RemoteError {
    pub fn new(
        kind: RemoteErrorKind,
        target: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        RemoteError {
            kind,
            target: target.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ssh {}: {}", self.target, self.message)
    }
}

impl std::error::Error for RemoteError {}

/// The [`RemoteErrorKind`] of a report produced by this module, if it is one.
pub fn error_kind(report: &Report) -> Option<RemoteErrorKind> {
    report.downcast_ref::<RemoteError>().map(|e| e.kind)
}

impl SshTarget {
    /// A target with default timeouts and `accept_unknown` off.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        user: impl Into<String>,
        key_path: Option<PathBuf>,
        known_hosts: impl Into<PathBuf>,
    ) -> Self {
        SshTarget {
            host: host.into(),
            port,
            user: user.into(),
            key_path,
            known_hosts: known_hosts.into(),
            accept_unknown: false,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            keepalive_interval: DEFAULT_KEEPALIVE_INTERVAL,
        }
    }

    /// `user@host:port` (`user@[::1]:port` for IPv6 literals).
    pub fn label(&self) -> String {
        if self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_ipv6()) {
            format!("{}@[{}]:{}", self.user, self.host, self.port)
        } else {
            format!("{}@{}:{}", self.user, self.host, self.port)
        }
    }

    fn err(&self, kind: RemoteErrorKind, message: impl Into<String>) -> RemoteError {
        RemoteError::new(kind, self.label(), message)
    }

    /// Connect, verify the host key and authenticate, then disconnect. For preflight checks.
    pub async fn check_connection(&self) -> Result<()> {
        let handle = self.connect().await?;
        goodbye(&handle).await;
        Ok(())
    }

    /// Run `command` (parsed by the remote user's login shell) and stream its output.
    ///
    /// `timeout` bounds the whole call, connection included (the connection phase is
    /// also bounded by `connect_timeout`). On timeout the connection is closed and an
    /// error of kind [`RemoteErrorKind::Timeout`] returned; the remote command is not
    /// signalled and may keep running. If the connection drops before the command
    /// reports an exit status or signal, the error is [`RemoteErrorKind::ConnectionLost`].
    /// A non-zero exit status is not an error: inspect [`ExecResult::exit_status`].
    pub async fn exec(
        &self,
        command: &str,
        timeout: Duration,
        mut on_output: impl FnMut(OutputLine) + Send,
    ) -> Result<ExecResult> {
        self.exec_inner(command, timeout, &mut on_output, None)
            .await
    }

    /// [`exec`](Self::exec), but with `capture` set stdout is collected raw into it
    /// (up to its limit) instead of being split into lines and streamed.
    pub(crate) async fn exec_inner(
        &self,
        command: &str,
        timeout: Duration,
        on_output: &mut (impl FnMut(OutputLine) + Send),
        capture: Option<&mut Capture>,
    ) -> Result<ExecResult> {
        self.exec_full(command, timeout, on_output, capture, None)
            .await
    }

    /// [`exec`](Self::exec) with `stdin` streamed to the command, then EOF.
    /// The call fails if the command ends before it has read all of it.
    pub async fn exec_with_stdin(
        &self,
        command: &str,
        timeout: Duration,
        stdin: Stdin<'_>,
        mut on_output: impl FnMut(OutputLine) + Send,
    ) -> Result<ExecResult> {
        self.exec_full(command, timeout, &mut on_output, None, Some(stdin))
            .await
    }

    async fn exec_full(
        &self,
        command: &str,
        timeout: Duration,
        on_output: &mut (impl FnMut(OutputLine) + Send),
        mut capture: Option<&mut Capture>,
        mut stdin: Option<Stdin<'_>>,
    ) -> Result<ExecResult> {
        let started = Instant::now();
        let label = self.label();
        debug!(target: "remote", %label, command = %redact_command(command), "ssh exec");
        let outcome = tokio::time::timeout(timeout, async {
            let handle = self.connect().await?;
            let result = run_command(
                self,
                &handle,
                command,
                on_output,
                capture.as_deref_mut(),
                stdin.take(),
            )
            .await;
            goodbye(&handle).await;
            result
        })
        .await;
        match outcome {
            Err(_) => Err(self
                .err(
                    RemoteErrorKind::Timeout,
                    format!(
                        "timed out after {} running `{}`; the command may still be running on the host",
                        format_duration(timeout),
                        shorten(&redact_command(command), 120)
                    ),
                )
                .into()),
            Ok(Err(e)) => Err(e.into()),
            Ok(Ok(mut result)) => {
                result.duration = started.elapsed();
                debug!(
                    target: "remote",
                    %label,
                    exit_status = ?result.exit_status,
                    signal = ?result.signal,
                    elapsed_ms = result.duration.as_millis() as u64,
                    "ssh exec finished"
                );
                Ok(result)
            }
        }
    }

    /// TCP connect, handshake with host key verification, authentication.
    async fn connect(&self) -> Result<Handle<ClientHandler>, RemoteError> {
        match tokio::time::timeout(self.connect_timeout, self.connect_inner()).await {
            Ok(r) => r,
            Err(_) => Err(self.err(
                RemoteErrorKind::Timeout,
                format!(
                    "could not connect and authenticate within {}",
                    format_duration(self.connect_timeout)
                ),
            )),
        }
    }

    async fn connect_inner(&self) -> Result<Handle<ClientHandler>, RemoteError> {
        let mut config = client::Config {
            keepalive_interval: Some(self.keepalive_interval),
            keepalive_max: 3,
            inactivity_timeout: None,
            nodelay: true,
            ..Default::default()
        };
        // Like OpenSSH: if known_hosts records keys of some algorithms for this host,
        // ask for those first, so a host with several keys is verified by a known one.
        let known_algorithms: Vec<Algorithm> =
            known_host_keys_path(&self.host, self.port, &self.known_hosts)
                .unwrap_or_default()
                .into_iter()
                .map(|(_, k)| k.algorithm())
                .collect();
        if !known_algorithms.is_empty() {
            let mut keys = config.preferred.key.to_vec();
            keys.sort_by_key(|a| !known_algorithms.iter().any(|k| same_key_type(a, k)));
            config.preferred.key = keys.into();
        }
        let handler = ClientHandler {
            target: self.clone(),
        };
        let mut handle =
            client::connect(Arc::new(config), (self.host.as_str(), self.port), handler)
                .await
                .map_err(|e| match e {
                    HandlerError::HostKey(e) => e,
                    HandlerError::Russh(e) => self.err(
                        RemoteErrorKind::Connect,
                        format!("cannot connect: {}", describe_russh(&e)),
                    ),
                })?;
        self.authenticate(&mut handle).await?;
        Ok(handle)
    }

    async fn authenticate(&self, handle: &mut Handle<ClientHandler>) -> Result<(), RemoteError> {
        match &self.key_path {
            Some(path) => self.authenticate_with_file(handle, path).await,
            None => self.authenticate_with_agent(handle).await,
        }
    }

    async fn rsa_hash(
        &self,
        handle: &Handle<ClientHandler>,
        algorithm: &Algorithm,
    ) -> Result<Option<HashAlg>, RemoteError> {
        if !matches!(algorithm, Algorithm::Rsa { .. }) {
            return Ok(None);
        }
        let best = handle.best_supported_rsa_hash().await.map_err(|e| {
            self.err(
                RemoteErrorKind::Connect,
                format!(
                    "connection failed during authentication: {}",
                    describe_russh(&e)
                ),
            )
        })?;
        // No server-sig-algs extension: assume a modern server (SHA-1 `ssh-rsa` is
        // disabled by default since OpenSSH 8.8).
        Ok(best.unwrap_or(Some(HashAlg::Sha256)))
    }

    async fn authenticate_with_file(
        &self,
        handle: &mut Handle<ClientHandler>,
        path: &Path,
    ) -> Result<(), RemoteError> {
        let key = load_secret_key(path, None).map_err(|e| match e {
            russh::keys::Error::KeyIsEncrypted => self.err(
                RemoteErrorKind::Auth,
                format!(
                    "private key {} is passphrase-protected; add it to ssh-agent and leave the key unset to use the agent",
                    path.display()
                ),
            ),
            other => self.err(
                RemoteErrorKind::Auth,
                format!("cannot load private key {}: {other}", path.display()),
            ),
        })?;
        let algorithm = key.algorithm();
        let fingerprint = key.public_key().fingerprint(HashAlg::Sha256);
        let hash = self.rsa_hash(handle, &algorithm).await?;
        let result = handle
            .authenticate_publickey(&self.user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
            .await
            .map_err(|e| {
                self.err(
                    RemoteErrorKind::Connect,
                    format!(
                        "connection failed during authentication: {}",
                        describe_russh(&e)
                    ),
                )
            })?;
        if result.success() {
            debug!(target: "remote", label = %self.label(), %fingerprint, "authenticated with key file");
            Ok(())
        } else {
            Err(self.err(
                RemoteErrorKind::Auth,
                format!(
                    "server refused public key {fingerprint} ({}, {}) for user {}",
                    algorithm,
                    path.display(),
                    self.user
                ),
            ))
        }
    }

    async fn authenticate_with_agent(
        &self,
        handle: &mut Handle<ClientHandler>,
    ) -> Result<(), RemoteError> {
        let mut agent = AgentClient::connect_env().await.map_err(|e| {
            self.err(
                RemoteErrorKind::Auth,
                format!("no key file configured and no usable ssh-agent (SSH_AUTH_SOCK): {e}"),
            )
        })?;
        let identities = agent.request_identities().await.map_err(|e| {
            self.err(
                RemoteErrorKind::Auth,
                format!("ssh-agent did not list its keys: {e}"),
            )
        })?;
        let keys: Vec<PublicKey> = identities
            .into_iter()
            .filter_map(|id| match id {
                AgentIdentity::PublicKey { key, .. } => Some(key),
                AgentIdentity::Certificate { .. } => None,
            })
            .collect();
        if keys.is_empty() {
            return Err(self.err(
                RemoteErrorKind::Auth,
                "no key file configured and the ssh-agent holds no keys",
            ));
        }
        let tried = keys.len();
        for key in keys {
            let algorithm = key.algorithm();
            let fingerprint = key.fingerprint(HashAlg::Sha256);
            let hash = self.rsa_hash(handle, &algorithm).await?;
            match handle
                .authenticate_publickey_with(&self.user, key, hash, &mut agent)
                .await
            {
                Ok(r) if r.success() => {
                    debug!(target: "remote", label = %self.label(), %fingerprint, "authenticated with ssh-agent key");
                    return Ok(());
                }
                Ok(_) => {}
                Err(e) => {
                    debug!(target: "remote", label = %self.label(), %fingerprint, error = %e, "ssh-agent key failed")
                }
            }
        }
        Err(self.err(
            RemoteErrorKind::Auth,
            format!(
                "server refused all {tried} ssh-agent key(s) for user {}",
                self.user
            ),
        ))
    }
}

/// Send a polite disconnect, without waiting long on a dead peer.
async fn goodbye(handle: &Handle<ClientHandler>) {
    let _ = tokio::time::timeout(
        Duration::from_millis(300),
        handle.disconnect(Disconnect::ByApplication, "", "en"),
    )
    .await;
}

async fn run_command(
    target: &SshTarget,
    handle: &Handle<ClientHandler>,
    command: &str,
    on_output: &mut (impl FnMut(OutputLine) + Send),
    capture: Option<&mut Capture>,
    stdin: Option<Stdin<'_>>,
) -> Result<ExecResult, RemoteError> {
    let lost = |what: String| target.err(RemoteErrorKind::ConnectionLost, what);
    let channel = handle.channel_open_session().await.map_err(|e| {
        target.err(
            RemoteErrorKind::Protocol,
            format!("cannot open a session channel: {}", describe_russh(&e)),
        )
    })?;
    channel.exec(true, command).await.map_err(|e| {
        lost(format!(
            "connection lost sending the command: {}",
            describe_russh(&e)
        ))
    })?;
    let (mut read, write) = channel.split();
    let Some(stdin) = stdin else {
        return read_channel(target, &mut read, on_output, capture).await;
    };
    let (sent, result) = super::stdin::send_while_reading(
        &write,
        stdin,
        read_channel(target, &mut read, on_output, capture),
    )
    .await;
    let result = result?;
    match sent {
        // A failed command says more than the stdin it did not read.
        Err(_) if !result.success() => Ok(result),
        Err(why) => Err(lost(format!("sending stdin: {why}"))),
        Ok(()) => Ok(result),
    }
}

/// Reads the channel until the command has ended: output lines (or raw
/// stdout into `capture`), exit status or signal.
async fn read_channel(
    target: &SshTarget,
    channel: &mut russh::ChannelReadHalf,
    on_output: &mut (impl FnMut(OutputLine) + Send),
    mut capture: Option<&mut Capture>,
) -> Result<ExecResult, RemoteError> {
    let lost = |what: String| target.err(RemoteErrorKind::ConnectionLost, what);
    let mut stdout = LineSplitter::new(OutputStream::Stdout);
    let mut stderr = LineSplitter::new(OutputStream::Stderr);
    let mut result = ExecResult::default();
    let mut finished = false;
    while let Some(msg) = channel.wait().await {
        match msg {
            ChannelMsg::Data { data } => match capture.as_deref_mut() {
                Some(capture) => capture.push(&data),
                None => stdout.push(&data, on_output),
            },
            ChannelMsg::ExtendedData { data, ext: 1 } => stderr.push(&data, on_output),
            ChannelMsg::ExitStatus { exit_status } => {
                result.exit_status = Some(exit_status);
                finished = true;
            }
            ChannelMsg::ExitSignal {
                signal_name,
                error_message,
                ..
            } => {
                let name = signal_name_str(&signal_name);
                if !error_message.is_empty() {
                    stderr.push(format!("\n{error_message}\n").as_bytes(), on_output);
                }
                result.signal = Some(name);
                finished = true;
            }
            ChannelMsg::Failure => {
                return Err(
                    target.err(RemoteErrorKind::Protocol, "server refused the exec request")
                );
            }
            ChannelMsg::Close => break,
            _ => {}
        }
    }
    stdout.finish(on_output);
    stderr.finish(on_output);
    if !finished {
        return Err(lost(
            "connection lost before the command finished (no exit status received); \
             the command may or may not have completed on the host"
                .into(),
        ));
    }
    result.truncated = stdout.tail.truncated || stderr.tail.truncated;
    result.stdout = stdout.tail.render();
    result.stderr = stderr.tail.render();
    Ok(result)
}

fn signal_name_str(sig: &russh::Sig) -> String {
    match sig {
        russh::Sig::Custom(name) => name.clone(),
        other => format!("{other:?}"),
    }
}

/// Raw stdout collected by [`SshTarget::exec_inner`], bounded by `limit`.
pub(crate) struct Capture {
    pub(crate) buf: Vec<u8>,
    pub(crate) limit: usize,
    pub(crate) overflow: bool,
}

impl Capture {
    pub(crate) fn new(limit: usize) -> Self {
        Capture {
            buf: Vec::new(),
            limit,
            overflow: false,
        }
    }

    fn push(&mut self, data: &[u8]) {
        let room = self.limit.saturating_sub(self.buf.len());
        if data.len() > room {
            self.overflow = true;
        }
        self.buf.extend_from_slice(&data[..data.len().min(room)]);
    }
}

/// Splits a byte stream into lines, calls back per line and keeps a bounded tail.
pub(crate) struct LineSplitter {
    stream: OutputStream,
    buf: Vec<u8>,
    pub(crate) tail: Tail,
}

impl LineSplitter {
    pub(crate) fn new(stream: OutputStream) -> Self {
        LineSplitter {
            stream,
            buf: Vec::new(),
            tail: Tail::default(),
        }
    }

    pub(crate) fn push(&mut self, data: &[u8], on_output: &mut impl FnMut(OutputLine)) {
        self.buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|b| *b == b'\n') {
            let end = start + pos;
            let mut line = &self.buf[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let line = String::from_utf8_lossy(line).into_owned();
            self.emit(line, on_output);
            start = end + 1;
        }
        self.buf.drain(..start);
        while self.buf.len() > MAX_LINE_BYTES {
            // Cut at a char boundary near the limit so long lines stay valid UTF-8.
            let mut cut = MAX_LINE_BYTES;
            while cut > 1 && (self.buf[cut] & 0xC0) == 0x80 {
                cut -= 1;
            }
            let piece: Vec<u8> = self.buf.drain(..cut).collect();
            let line = String::from_utf8_lossy(&piece).into_owned();
            self.emit(line, on_output);
        }
    }

    pub(crate) fn finish(&mut self, on_output: &mut impl FnMut(OutputLine)) {
        if !self.buf.is_empty() {
            let mut rest = std::mem::take(&mut self.buf);
            if rest.last() == Some(&b'\r') {
                rest.pop();
            }
            let line = String::from_utf8_lossy(&rest).into_owned();
            self.emit(line, on_output);
        }
    }

    fn emit(&mut self, line: String, on_output: &mut impl FnMut(OutputLine)) {
        self.tail.push(&line);
        on_output(OutputLine {
            stream: self.stream,
            line,
        });
    }
}

/// The last [`TAIL_BYTES`] of a stream, in whole lines.
#[derive(Default)]
pub(crate) struct Tail {
    lines: VecDeque<String>,
    bytes: usize,
    pub(crate) truncated: bool,
}

impl Tail {
    pub(crate) fn push(&mut self, line: &str) {
        self.lines.push_back(line.to_owned());
        self.bytes += line.len() + 1;
        while self.bytes > TAIL_BYTES && self.lines.len() > 1 {
            if let Some(old) = self.lines.pop_front() {
                self.bytes -= old.len() + 1;
            }
            self.truncated = true;
        }
    }

    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(self.bytes);
        for line in &self.lines {
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}

/// Client-side handler: host key verification against known_hosts.
struct ClientHandler {
    target: SshTarget,
}

#[derive(Debug)]
enum HandlerError {
    Russh(russh::Error),
    HostKey(RemoteError),
}

impl From<russh::Error> for HandlerError {
    fn from(e: russh::Error) -> Self {
        HandlerError::Russh(e)
    }
}

impl client::Handler for ClientHandler {
    type Error = HandlerError;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        verify_host_key(&self.target, server_key).map_err(HandlerError::HostKey)
    }
}

fn verify_host_key(
    target: &SshTarget,
    server_key: &PublicKeyOrCertificate,
) -> Result<bool, RemoteError> {
    let key = match server_key {
        PublicKeyOrCertificate::PublicKey { key, .. } => key,
        PublicKeyOrCertificate::Certificate(_) => {
            return Err(target.err(
                RemoteErrorKind::HostKeyUnknown,
                "server presented a host certificate; only known_hosts keys are supported",
            ));
        }
    };
    match check_known_hosts_path(&target.host, target.port, key, &target.known_hosts) {
        Ok(true) => {
            let fingerprint = key.fingerprint(HashAlg::Sha256);
            debug!(target: "remote", label = %target.label(), %fingerprint, "host key verified");
            Ok(true)
        }
        Ok(false) if target.accept_unknown => learn_host_key(target, key).map(|()| true),
        Ok(false) => Err(unknown_host_key(target, key)),
        Err(russh::keys::Error::KeyChanged { line }) => Err(changed_host_key(target, key, line)),
        Err(e) => Err(target.err(
            RemoteErrorKind::HostKeyUnknown,
            format!(
                "cannot read known_hosts {}: {e}",
                target.known_hosts.display()
            ),
        )),
    }
}

/// Trust on first use (the operator allowed it): record the key, and say so
/// loudly, with its fingerprint for checking afterwards.
fn learn_host_key(target: &SshTarget, key: &PublicKey) -> Result<(), RemoteError> {
    let known_hosts = target.known_hosts.display();
    learn_known_hosts_path(&target.host, target.port, key, &target.known_hosts).map_err(|e| {
        target.err(
            RemoteErrorKind::HostKeyUnknown,
            format!("cannot record the host key in {known_hosts}: {e}"),
        )
    })?;
    warn!(
        target: "remote",
        label = %target.label(),
        "accepted previously unknown host key {} {} for {} and added it to {known_hosts}",
        key.algorithm(),
        key.fingerprint(HashAlg::Sha256),
        known_hosts_host(&target.host, target.port),
    );
    Ok(())
}

/// A host not in known_hosts: the refusal says how to add it after
/// checking the fingerprint.
fn unknown_host_key(target: &SshTarget, key: &PublicKey) -> RemoteError {
    let known_hosts = target.known_hosts.display();
    target.err(
        RemoteErrorKind::HostKeyUnknown,
        format!(
            "host key {} {} of {} is not in {known_hosts}{}; \
             refusing to connect. Verify the fingerprint out of band, then add it \
             (e.g. `ssh-keyscan -p {} {} >> {known_hosts}`) or allow accepting unknown hosts",
            key.algorithm(),
            key.fingerprint(HashAlg::Sha256),
            known_hosts_host(&target.host, target.port),
            other_key_types(target),
            target.port,
            target.host,
        ),
    )
}

/// ` (known_hosts has other key types for it: …)`, or nothing: a host known
/// by another key type only is a different case from a host never seen.
fn other_key_types(target: &SshTarget) -> String {
    let others: Vec<String> = known_host_keys_path(&target.host, target.port, &target.known_hosts)
        .unwrap_or_default()
        .into_iter()
        .map(|(line, k)| {
            format!(
                "{} at line {}",
                k.algorithm(),
                physical_line(&target.known_hosts, line)
            )
        })
        .collect();
    if others.is_empty() {
        String::new()
    } else {
        format!(
            " (known_hosts has other key types for it: {})",
            others.join(", ")
        )
    }
}

/// known_hosts records another key for this host at `line` (russh's count).
fn changed_host_key(target: &SshTarget, key: &PublicKey, line: usize) -> RemoteError {
    let line = physical_line(&target.known_hosts, line);
    let fingerprint = key.fingerprint(HashAlg::Sha256);
    let known_hosts = target.known_hosts.display();
    warn!(target: "remote", label = %target.label(), %fingerprint, line, "host key mismatch");
    target.err(
        RemoteErrorKind::HostKeyChanged,
        format!(
            "HOST KEY MISMATCH: {} presented {} {fingerprint}, but {known_hosts} line {line} \
             records a different key. Someone may be intercepting the connection, or the host was \
             reinstalled; refusing to connect. If the change is expected, remove line {line} and add the new key",
            known_hosts_host(&target.host, target.port),
            key.algorithm()
        ),
    )
}

/// russh numbers known_hosts lines without counting `#` comment lines; map its
/// number back to the line number an editor shows.
fn physical_line(path: &Path, russh_line: usize) -> usize {
    let Ok(text) = std::fs::read_to_string(path) else {
        return russh_line;
    };
    let mut counted = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        if line.starts_with('#') {
            continue;
        }
        counted += 1;
        if counted == russh_line {
            return index + 1;
        }
    }
    russh_line
}

/// How known_hosts names a host: `host` on port 22, `[host]:port` otherwise.
pub fn known_hosts_host(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    }
}

fn same_key_type(a: &Algorithm, b: &Algorithm) -> bool {
    match (a, b) {
        (Algorithm::Rsa { .. }, Algorithm::Rsa { .. }) => true,
        _ => a == b,
    }
}

fn describe_russh(e: &russh::Error) -> String {
    match e {
        russh::Error::IO(io) => io.to_string(),
        russh::Error::Disconnect => "the server closed the connection".to_owned(),
        russh::Error::HUP => "the server hung up".to_owned(),
        russh::Error::KeepaliveTimeout => "the server stopped answering keepalives".to_owned(),
        other => other.to_string(),
    }
}

pub(crate) fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let cut: String = s.chars().take(max).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn collect(chunks: &[&[u8]]) -> (Vec<String>, Tail) {
        let mut lines = Vec::new();
        let mut s = LineSplitter::new(OutputStream::Stdout);
        for c in chunks {
            s.push(c, &mut |l: OutputLine| lines.push(l.line));
        }
        s.finish(&mut |l: OutputLine| lines.push(l.line));
        (lines, s.tail)
    }

    #[test]
    fn splits_lines_across_chunks() {
        let (lines, tail) = collect(&[b"hel", b"lo\r\nwor", b"ld\n\nlast"]);
        assert_eq!(lines, vec!["hello", "world", "", "last"]);
        assert_eq!(tail.render(), "hello\nworld\n\nlast\n");
        assert!(!tail.truncated);
    }

    #[test]
    fn long_lines_are_cut_on_char_boundaries() {
        let long = "é".repeat(MAX_LINE_BYTES); // 2 bytes each
        let (lines, _) = collect(&[long.as_bytes()]);
        assert!(lines.len() >= 2);
        assert_eq!(lines.concat(), long);
        assert!(lines.iter().all(|l| !l.contains('\u{FFFD}')));
    }

    #[test]
    fn tail_keeps_the_end() {
        let mut tail = Tail::default();
        for i in 0..100_000 {
            tail.push(&format!("line {i}"));
        }
        assert!(tail.truncated);
        let text = tail.render();
        assert!(text.len() <= TAIL_BYTES);
        assert!(text.ends_with("line 99999\n"));
    }

    #[test]
    fn known_hosts_line_numbers_count_comments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kh");
        std::fs::write(&path, "# a\nhost1 k\n# b\n\nhost2 k\n").unwrap();
        assert_eq!(physical_line(&path, 1), 2);
        assert_eq!(physical_line(&path, 3), 5);
        assert_eq!(physical_line(&dir.path().join("missing"), 4), 4);
    }

    #[test]
    fn labels() {
        let t = SshTarget::new("10.0.0.5", 22, "root", None, "/tmp/kh");
        assert_eq!(t.label(), "root@10.0.0.5:22");
        let t = SshTarget::new("::1", 2222, "k", None, "/tmp/kh");
        assert_eq!(t.label(), "k@[::1]:2222");
        assert_eq!(known_hosts_host("127.0.0.1", 2222), "[127.0.0.1]:2222");
        assert_eq!(known_hosts_host("node1", 22), "node1");
    }

    #[test]
    fn error_kind_survives_eyre() {
        let report: Report = RemoteError::new(RemoteErrorKind::Timeout, "a@b:22", "x").into();
        assert_eq!(error_kind(&report), Some(RemoteErrorKind::Timeout));
        assert_eq!(report.to_string(), "ssh a@b:22: x");
    }
}
