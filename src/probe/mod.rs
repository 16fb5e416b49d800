//! Service probes: from the operator's machine, every second, a TCP connect
//! or an HTTP GET to each LoadBalancer IP and port of the services asked
//! for, with a short timeout. Results travel as [`ClusterEvent::Probe`] on
//! the channel the cockpit's loop drains, so a slow or dead service never
//! blocks the screen.
//!
//! The IPs come from the Services' `status.loadBalancer.ingress`, as the
//! watchers report them: a [`Prober`] watches the same [`ClusterEvent`]
//! stream and starts, moves or stops one task per endpoint when a Service
//! appears, changes or goes away. [`attach`] puts a prober in front of a
//! watcher channel; the upgrade runner builds its [`Selection`] from the
//! plan with [`Selection::from_plan`] and either calls `attach` or feeds
//! [`Prober::observe`] itself.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;

use crate::durations::format_duration;
use crate::model::fleet::{ClusterEvent, ResourceKind, ServiceInfo};
use crate::model::probe::{DEFAULT_FAILURES, ProbeResult};

/// One probe per endpoint per interval.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// A probe that has not connected (or, for HTTP, read the status line)
/// within this is a failure.
pub const TIMEOUT: Duration = Duration::from_millis(800);

/// How to probe.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Check {
    /// A TCP connect.
    Tcp,
    /// `GET path` over HTTP/1.1; healthy when the status is `expect_status`.
    Http { path: String, expect_status: u16 },
}

impl Check {
    pub fn http() -> Check {
        Check::Http {
            path: "/".into(),
            expect_status: 200,
        }
    }

    /// `tcp` or `http GET /path`, as shown on screen and in the journal.
    pub fn label(&self) -> String {
        match self {
            Check::Tcp => "tcp".into(),
            Check::Http { path, .. } => format!("http GET {path}"),
        }
    }
}

/// What to probe: one service, one port or all of its ports, one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    pub namespace: String,
    pub name: String,
    /// None: every TCP port of the Service.
    pub port: Option<u16>,
    pub check: Check,
}

/// `NS/NAME[=tcp|http][:PORT][/PATH][@STATUS]`, e.g. `frigate/frigate`,
/// `frigate/frigate:5000`, `home/ha=http:8123/manifest.json@200`.
impl FromStr for ProbeSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let usage =
            "expected NS/NAME[=tcp|http][:PORT][/PATH][@STATUS], e.g. frigate/frigate=http:5000";
        let (namespace, rest) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?}: no namespace; {usage}"))?;
        let name_end = rest.find(['=', ':']).unwrap_or(rest.len());
        let (name, mut rest) = rest.split_at(name_end);
        if namespace.is_empty() || name.is_empty() {
            return Err(format!("{text:?}: empty namespace or name; {usage}"));
        }
        let mut http = false;
        if let Some(r) = rest.strip_prefix('=') {
            let end = r.find([':', '/', '@']).unwrap_or(r.len());
            match &r[..end] {
                "tcp" => {}
                "http" => http = true,
                other => {
                    return Err(format!(
                        "{text:?}: unknown probe kind {other:?} (tcp or http)"
                    ));
                }
            }
            rest = &r[end..];
        }
        let mut port = None;
        if let Some(r) = rest.strip_prefix(':') {
            let end = r.find(['/', '@']).unwrap_or(r.len());
            let p: u16 = r[..end]
                .parse()
                .map_err(|_| format!("{text:?}: bad port {:?}; {usage}", &r[..end]))?;
            if p == 0 {
                return Err(format!("{text:?}: port 0"));
            }
            port = Some(p);
            rest = &r[end..];
        }
        let mut path = "/".to_string();
        let mut expect_status = 200;
        if rest.starts_with('/') {
            let end = rest.find('@').unwrap_or(rest.len());
            path = rest[..end].to_string();
            rest = &rest[end..];
        }
        if let Some(r) = rest.strip_prefix('@') {
            expect_status = r
                .parse()
                .ok()
                .filter(|s| (100..=599).contains(s))
                .ok_or_else(|| format!("{text:?}: bad HTTP status {r:?}"))?;
            rest = "";
        }
        if !rest.is_empty() {
            return Err(format!("{text:?}: unexpected {rest:?}; {usage}"));
        }
        if !http && (path != "/" || expect_status != 200) {
            return Err(format!(
                "{text:?}: a path or status needs an http probe (add =http)"
            ));
        }
        Ok(ProbeSpec {
            namespace: namespace.to_string(),
            name: name.to_string(),
            port,
            check: if http {
                Check::Http {
                    path,
                    expect_status,
                }
            } else {
                Check::Tcp
            },
        })
    }
}

/// Which services to probe, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub specs: Vec<ProbeSpec>,
    /// Probe every LoadBalancer service not named in `specs`, on each of
    /// its TCP ports, with this check.
    pub all: Option<Check>,
    /// Failures in a row that turn an endpoint DOWN (one failed probe over
    /// Wi-Fi is not an outage).
    pub failures: u32,
}

impl Default for Selection {
    fn default() -> Self {
        Selection {
            specs: Vec::new(),
            all: None,
            failures: DEFAULT_FAILURES,
        }
    }
}

impl Selection {
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty() && self.all.is_none()
    }

    /// The probes of a resolved plan (`ResolvedGates.probes`).
    pub fn from_plan(probes: &[crate::upgrade::plan::Probe]) -> Selection {
        let specs = probes
            .iter()
            .filter_map(|p| {
                let (namespace, name) = p.service.split_once('/')?;
                Some(ProbeSpec {
                    namespace: namespace.into(),
                    name: name.into(),
                    port: Some(p.port),
                    check: match &p.http {
                        Some(h) => Check::Http {
                            path: h.path.clone(),
                            expect_status: h.expect_status,
                        },
                        None => Check::Tcp,
                    },
                })
            })
            .collect();
        Selection {
            specs,
            all: None,
            failures: DEFAULT_FAILURES,
        }
    }

    /// (port, check) pairs wanted for one Service.
    fn wanted(&self, info: &ServiceInfo) -> Vec<(u16, Check)> {
        let mut out: Vec<(u16, Check)> = Vec::new();
        let mut named = false;
        for spec in &self.specs {
            if spec.namespace != info.namespace || spec.name != info.name {
                continue;
            }
            named = true;
            match spec.port {
                Some(p) => out.push((p, spec.check.clone())),
                None => out.extend(info.ports.iter().map(|p| (*p, spec.check.clone()))),
            }
        }
        if !named && let Some(check) = &self.all {
            out.extend(info.ports.iter().map(|p| (*p, check.clone())));
        }
        out.sort_by_key(|(p, _)| *p);
        out.dedup();
        out
    }
}

/// `--probe` and `--probe-all` for commands that watch a cluster.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ProbeArgs {
    /// Probe a LoadBalancer service every second from this machine
    /// (repeatable): NS/NAME[=tcp|http][:PORT][/PATH][@STATUS]. Default: TCP
    /// connect on every port of the Service; `=http` sends GET PATH
    /// (default /) and expects STATUS (default 200).
    #[arg(
        long = "probe",
        value_name = "NS/NAME[=tcp|http][:PORT][/PATH][@STATUS]"
    )]
    pub probe: Vec<ProbeSpec>,
    /// Probe every LoadBalancer service on each of its TCP ports: a TCP
    /// connect (`--probe-all`, `--probe-all=tcp`) or GET / expecting 200
    /// (`--probe-all=http`). A service named with --probe is probed only as
    /// --probe says.
    #[arg(
        long,
        value_name = "tcp|http",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "tcp",
        value_parser = ["tcp", "http"]
    )]
    pub probe_all: Option<String>,
    /// A probed endpoint turns DOWN (and fails the rollout's gate) only
    /// after this many failures in a row; each failure before that is a
    /// timeline warning, and a success resets the count (a flap).
    #[arg(
        long,
        value_name = "N",
        default_value_t = DEFAULT_FAILURES,
        value_parser = clap::value_parser!(u32).range(1..=100)
    )]
    pub probe_failures: u32,
}

impl ProbeArgs {
    pub fn selection(&self) -> Selection {
        Selection {
            specs: self.probe.clone(),
            all: self.probe_all.as_deref().map(|m| match m {
                "http" => Check::http(),
                _ => Check::Tcp,
            }),
            failures: self.probe_failures,
        }
    }
}

/// Aborts a probe task when dropped.
struct Task(JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

type Key = ((String, String), SocketAddr, Check);

/// Keeps one probe task per wanted endpoint, following the Services.
pub struct Prober {
    selection: Selection,
    tx: UnboundedSender<ClusterEvent>,
    tasks: HashMap<Key, Task>,
    /// Services seen during a relist, to stop probing the vanished ones.
    resync: Option<HashSet<(String, String)>>,
    interval: Duration,
    timeout: Duration,
}

impl Prober {
    /// Sends the selection's failure threshold on `tx` at once, so the
    /// model knows it before the first result.
    pub fn new(selection: Selection, tx: UnboundedSender<ClusterEvent>) -> Prober {
        let _ = tx.send(ClusterEvent::ProbeFailures(selection.failures));
        Prober {
            selection,
            tx,
            tasks: HashMap::new(),
            resync: None,
            interval: INTERVAL,
            timeout: TIMEOUT,
        }
    }

    /// Endpoints probed now, as `namespace/name ip:port check`, sorted.
    pub fn endpoints(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .tasks
            .keys()
            .map(|((ns, n), addr, check)| format!("{ns}/{n} {addr} {}", check.label()))
            .collect();
        v.sort();
        v
    }

    /// Follows one watcher event. Must run inside a tokio runtime.
    pub fn observe(&mut self, event: &ClusterEvent) {
        match event {
            ClusterEvent::Service(info) => {
                let key = (info.namespace.clone(), info.name.clone());
                if let Some(seen) = &mut self.resync {
                    seen.insert(key.clone());
                }
                self.reconcile(&key, Some(info));
            }
            ClusterEvent::ServiceDeleted(ns, name) => {
                self.reconcile(&(ns.clone(), name.clone()), None);
            }
            ClusterEvent::ResyncStart(ResourceKind::Services) => {
                self.resync = Some(HashSet::new());
            }
            ClusterEvent::ResyncDone(ResourceKind::Services) => {
                if let Some(seen) = self.resync.take() {
                    self.tasks.retain(|(svc, _, _), _| seen.contains(svc));
                }
            }
            _ => {}
        }
    }

    fn reconcile(&mut self, service: &(String, String), info: Option<&ServiceInfo>) {
        let mut wanted: HashSet<Key> = HashSet::new();
        if let Some(info) = info {
            let checks = self.selection.wanted(info);
            for ip in info.ips.iter().filter_map(|ip| ip.parse::<IpAddr>().ok()) {
                for (port, check) in &checks {
                    wanted.insert((service.clone(), SocketAddr::new(ip, *port), check.clone()));
                }
            }
        }
        self.tasks
            .retain(|key, _| &key.0 != service || wanted.contains(key));
        for key in wanted {
            if self.tasks.contains_key(&key) {
                continue;
            }
            let (svc, addr, check) = key.clone();
            let task = tokio::spawn(run(
                svc,
                addr,
                check,
                self.interval,
                self.timeout,
                self.tx.clone(),
            ));
            self.tasks.insert(key, Task(task));
        }
    }
}

/// Puts a [`Prober`] in front of a watcher channel: every event passes
/// through unchanged, and probe results join the same stream. With an
/// empty selection the channel is returned as it is.
pub fn attach(
    selection: Selection,
    mut input: UnboundedReceiver<ClusterEvent>,
) -> UnboundedReceiver<ClusterEvent> {
    if selection.is_empty() {
        return input;
    }
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut prober = Prober::new(selection, tx.clone());
        while let Some(event) = input.recv().await {
            prober.observe(&event);
            if tx.send(event).is_err() {
                return;
            }
        }
    });
    rx
}

async fn run(
    service: (String, String),
    addr: SocketAddr,
    check: Check,
    interval: Duration,
    timeout: Duration,
    tx: UnboundedSender<ClusterEvent>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let label = check.label();
    loop {
        tick.tick().await;
        let at = crate::clock::now();
        let started = tokio::time::Instant::now();
        let outcome = probe_once(addr, &check, timeout).await;
        let result = ProbeResult {
            service: service.clone(),
            endpoint: addr.to_string(),
            check: label.clone(),
            ok: outcome.is_ok(),
            latency: started.elapsed(),
            error: outcome.err(),
            at,
        };
        if tx.send(ClusterEvent::Probe(result)).is_err() {
            return;
        }
    }
}

/// One probe: Ok when the endpoint answered as `check` wants within
/// `timeout`, else a short reason (`connection refused`, `HTTP 503,
/// expected 200`, `no answer within 800ms`).
pub async fn probe_once(addr: SocketAddr, check: &Check, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, attempt(addr, check)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {}", format_duration(timeout))),
    }
}

async fn attempt(addr: SocketAddr, check: &Check) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| io_reason(&e))?;
    let Check::Http {
        path,
        expect_status,
    } = check
    else {
        return Ok(());
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nuser-agent: k3s-cockpit-probe\r\naccept: */*\r\nconnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| io_reason(&e))?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 512];
    while !head.contains(&b'\n') {
        if head.len() > 8 * 1024 {
            return Err("no HTTP status line".into());
        }
        match stream.read(&mut buf).await {
            Ok(0) => return Err("connection closed before an HTTP status line".into()),
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => return Err(io_reason(&e)),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let status = line
        .split_whitespace()
        .nth(1)
        .filter(|_| line.starts_with("HTTP/"))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| "not an HTTP answer".to_string())?;
    if status == *expect_status {
        Ok(())
    } else {
        Err(format!("HTTP {status}, expected {expect_status}"))
    }
}

fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connection refused".into(),
        ConnectionReset => "connection reset".into(),
        TimedOut => "timed out".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn spec_syntax() {
        let s: ProbeSpec = "frigate/frigate".parse().unwrap();
        assert_eq!((s.port, s.check), (None, Check::Tcp));
        let s: ProbeSpec = "frigate/frigate:5000".parse().unwrap();
        assert_eq!((s.port, s.check), (Some(5000), Check::Tcp));
        let s: ProbeSpec = "home/ha=http:8123/api/health@204".parse().unwrap();
        assert_eq!(s.name, "ha");
        assert_eq!(s.port, Some(8123));
        assert_eq!(
            s.check,
            Check::Http {
                path: "/api/health".into(),
                expect_status: 204
            }
        );
        let s: ProbeSpec = "a/b=http".parse().unwrap();
        assert_eq!(s.check, Check::http());
        for bad in [
            "frigate",
            "/x",
            "a/b=udp",
            "a/b:0",
            "a/b:http",
            "a/b=tcp/path",
            "a/b=http@999",
            "a/b=http:80 x",
        ] {
            assert!(bad.parse::<ProbeSpec>().is_err(), "{bad} accepted");
        }
    }

    fn info(ports: &[u16]) -> ServiceInfo {
        ServiceInfo {
            namespace: "frigate".into(),
            name: "frigate".into(),
            ips: vec!["127.0.0.1".into()],
            ports: ports.to_vec(),
            selector: Default::default(),
        }
    }

    #[test]
    fn explicit_probes_override_probe_all() {
        let all = Selection {
            specs: vec![],
            all: Some(Check::Tcp),
            ..Selection::default()
        };
        assert_eq!(
            all.wanted(&info(&[80, 443])),
            vec![(80, Check::Tcp), (443, Check::Tcp)]
        );
        let named = Selection {
            specs: vec!["frigate/frigate=http:80".parse().unwrap()],
            all: Some(Check::Tcp),
            ..Selection::default()
        };
        assert_eq!(named.wanted(&info(&[80, 443])), vec![(80, Check::http())]);
    }

    #[tokio::test]
    async fn probes_see_refused_ok_wrong_status_and_silence() {
        use tokio::net::TcpListener;
        let t = Duration::from_millis(300);
        // Nothing listening.
        let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed = free.local_addr().unwrap();
        drop(free);
        assert_eq!(
            probe_once(closed, &Check::Tcp, t).await,
            Err("connection refused".into())
        );

        // A server answering 204 to anything.
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = server.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf).await;
                    let _ = s
                        .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                        .await;
                });
            }
        });
        assert_eq!(probe_once(addr, &Check::Tcp, t).await, Ok(()));
        let want_204 = Check::Http {
            path: "/x".into(),
            expect_status: 204,
        };
        assert_eq!(probe_once(addr, &want_204, t).await, Ok(()));
        assert_eq!(
            probe_once(addr, &Check::http(), t).await,
            Err("HTTP 204, expected 200".into())
        );

        // A server that accepts and never answers: HTTP times out.
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent_addr = silent.local_addr().unwrap();
        let _keep = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                held.push(silent.accept().await.unwrap());
            }
        });
        assert_eq!(
            probe_once(silent_addr, &Check::http(), t).await,
            Err("no answer within 300ms".into())
        );
    }

    #[tokio::test]
    async fn prober_follows_services_and_reports_on_the_channel() {
        let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = server.local_addr().unwrap().port();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut prober = Prober::new(
            Selection {
                specs: vec![],
                all: Some(Check::Tcp),
                failures: 5,
            },
            tx,
        );
        prober.interval = Duration::from_millis(50);
        prober.observe(&ClusterEvent::Service(info(&[port])));
        assert_eq!(
            prober.endpoints(),
            vec![format!("frigate/frigate 127.0.0.1:{port} tcp")]
        );
        // The threshold first, so the model knows it before any result.
        assert!(matches!(
            rx.recv().await,
            Some(ClusterEvent::ProbeFailures(5))
        ));
        let Some(ClusterEvent::Probe(r)) = rx.recv().await else {
            panic!("no probe result")
        };
        assert!(r.ok, "{r:?}");
        assert_eq!(r.endpoint, format!("127.0.0.1:{port}"));
        drop(server);
        // The IP is withdrawn: the task stops.
        let mut gone = info(&[port]);
        gone.ips.clear();
        prober.observe(&ClusterEvent::Service(gone));
        assert!(prober.endpoints().is_empty());
    }

    #[test]
    fn probe_failures_option_defaults_to_three_and_reaches_the_selection() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            probes: ProbeArgs,
        }
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
                .map(|c| c.probes.selection().failures)
        };
        assert_eq!(parse(&["--probe-all"]).unwrap(), DEFAULT_FAILURES);
        assert_eq!(parse(&["--probe-failures", "5"]).unwrap(), 5);
        assert_eq!(parse(&["--probe-failures", "1"]).unwrap(), 1);
        assert!(parse(&["--probe-failures", "0"]).is_err());
    }
}
