//! Scenario files (`assets/scenarios/*.toml`): the nodes, services, timings
//! and scripted faults of one simulated cluster. Durations are in cluster
//! time; `time_scale` compresses all of them so a five-minute story plays in
//! one.

use std::path::Path;
use std::time::Duration;

use color_eyre::eyre::{Result, eyre};
use serde::Deserialize;

use crate::durations::{serde_human, toml_error};

const BUILTIN: [(&str, &str); 2] = [
    (
        "healthy",
        include_str!("../../assets/scenarios/healthy.toml"),
    ),
    (
        "incident-2026-01-25",
        include_str!("../../assets/scenarios/incident-2026-01-25.toml"),
    ),
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Divides every duration; 1.0 is real Kubernetes time.
    #[serde(default = "one")]
    pub time_scale: f64,
    #[serde(default)]
    pub timing: Timing,
    #[serde(default)]
    pub nodes: Vec<NodeSpec>,
    #[serde(default)]
    pub services: Vec<ServiceSpec>,
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
    /// Workload pods beyond the services' own: what a drain has to judge.
    #[serde(default)]
    pub pods: Vec<PodSpec>,
    /// policy/v1 PodDisruptionBudgets over the pods' `app` labels.
    #[serde(default)]
    pub pdbs: Vec<PdbSpec>,
    /// The API server answering eviction calls with 429 + Retry-After, as
    /// API Priority and Fairness does under load.
    pub throttle: Option<ThrottleSpec>,
    /// The old automation from the post-mortem, replayed by the lab itself.
    pub replay: Option<ReplaySpec>,
    /// Simulated Proxmox host reachable over SSH (for `qm guest exec`).
    #[serde(default)]
    pub proxmox_host: bool,
    /// No node reaches the internet: downloads from GitHub fail.
    #[serde(default)]
    pub airgap: bool,
    /// The single server keeps its state in SQLite: no etcd role label,
    /// no etcd snapshots.
    #[serde(default)]
    pub sqlite: bool,
    /// Releases already copied to every node under [`super::host::STAGED`]
    /// (`VERSION/k3s`, `VERSION/sha256sum-ARCH.txt`), as for an airgapped
    /// cluster.
    #[serde(default)]
    pub staged_releases: Vec<String>,
    #[serde(default)]
    pub metallb: MetallbSpec,
}

/// The MetalLB the lab's speakers behave like.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetallbSpec {
    /// Speaker image tag, e.g. `v0.15.2`.
    pub version: String,
    /// The speaker's `--ignore-exclude-lb` flag.
    pub ignore_exclude_lb: bool,
}

impl Default for MetallbSpec {
    fn default() -> Self {
        MetallbSpec {
            version: "v0.15.2".into(),
            ignore_exclude_lb: false,
        }
    }
}

impl MetallbSpec {
    /// Whether these speakers stop announcing from a node labelled
    /// `node.kubernetes.io/exclude-from-external-load-balancers`.
    pub fn honours_exclude_label(&self) -> bool {
        !self.ignore_exclude_lb && crate::model::metallb::honours_exclude_label(&self.version)
    }
}

fn one() -> f64 {
    1.0
}

/// Kubernetes' own defaults unless a scenario says otherwise.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timing {
    #[serde(with = "serde_human")]
    pub lease_duration: Duration,
    #[serde(with = "serde_human")]
    pub renew_interval: Duration,
    /// Fraction of the renew interval added at random (kubelet: 0.04).
    pub renew_jitter: f64,
    #[serde(with = "serde_human")]
    pub status_report: Duration,
    #[serde(with = "serde_human")]
    pub grace_period: Duration,
    #[serde(with = "serde_human")]
    pub monitor_period: Duration,
    /// How long a (re)started kubelet reports NotReady before Ready.
    #[serde(with = "serde_human")]
    pub kubelet_startup: Duration,
    /// How long K3s is down during `systemctl restart`.
    #[serde(with = "serde_human")]
    pub restart_down: Duration,
    /// How long the install script runs before it restarts K3s.
    #[serde(with = "serde_human")]
    pub install: Duration,
    /// memberlist failure detection before another speaker takes over.
    #[serde(with = "serde_human")]
    pub speaker_failover: Duration,
    /// After K3s starts, how long kube-proxy and flannel take to program
    /// the service rules again: the install script flushed them, so the
    /// node's announced IPs refuse connections until then.
    #[serde(with = "serde_human")]
    pub reprogram: Duration,
    /// How long speakers take to see a node label change and re-elect.
    #[serde(with = "serde_human")]
    pub label_sync: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            lease_duration: Duration::from_secs(40),
            renew_interval: Duration::from_secs(10),
            renew_jitter: 0.04,
            status_report: Duration::from_secs(300),
            grace_period: Duration::from_secs(50),
            monitor_period: Duration::from_secs(5),
            kubelet_startup: Duration::from_secs(5),
            restart_down: Duration::from_secs(3),
            install: Duration::from_secs(20),
            speaker_failover: Duration::from_secs(4),
            reprogram: Duration::from_secs(3),
            label_sync: Duration::from_secs(1),
        }
    }
}

impl Timing {
    /// The same timings divided by `scale`.
    pub fn scaled(&self, scale: f64) -> Timing {
        let s = |d: Duration| d.div_f64(scale.max(0.001));
        Timing {
            lease_duration: s(self.lease_duration),
            renew_interval: s(self.renew_interval),
            renew_jitter: self.renew_jitter,
            status_report: s(self.status_report),
            grace_period: s(self.grace_period),
            monitor_period: s(self.monitor_period),
            kubelet_startup: s(self.kubelet_startup),
            restart_down: s(self.restart_down),
            install: s(self.install),
            speaker_failover: s(self.speaker_failover),
            reprogram: s(self.reprogram),
            label_sync: s(self.label_sync),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Server,
    Agent,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    pub name: String,
    pub role: Role,
    pub version: String,
    /// VM id on the simulated Proxmox host, if the node is reached that way.
    pub vmid: Option<u32>,
    /// How far the node's clock is off ("-30s": 30 s behind). Its kubelet
    /// stamps lease renewals with it, as a real kubelet stamps them with
    /// its own clock.
    #[serde(default, with = "clock_offset")]
    pub clock_offset: jiff::SignedDuration,
    /// The arguments of the unit's `ExecStart` after `k3s server`/`k3s agent`
    /// (what the first install was given on its command line).
    #[serde(default)]
    pub args: Vec<String>,
    /// `uname -m`: x86_64, aarch64 or armv7l.
    #[serde(default = "x86_64")]
    pub arch: String,
    /// Free space in /usr/local/bin, in MiB.
    #[serde(default = "twenty_gib")]
    pub free_disk_mib: u64,
    /// Whether SSH accepts the user root (many images refuse it).
    #[serde(default = "yes")]
    pub root_login: bool,
    /// What `sudo -n` does for a user other than root.
    #[serde(default)]
    pub sudo: SudoPolicy,
    /// `K3S_*` variables in the unit's environment file.
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// /etc/rancher/k3s/config.yaml.
    #[serde(default)]
    pub config_yaml: String,
    /// The staged release binaries on this node are damaged (a truncated copy).
    #[serde(default)]
    pub corrupt_staged: bool,
}

fn x86_64() -> String {
    "x86_64".into()
}

fn twenty_gib() -> u64 {
    20 * 1024
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SudoPolicy {
    /// `user ALL=(ALL) NOPASSWD: ALL`.
    #[default]
    Nopasswd,
    /// sudo asks for a password: `sudo -n` refuses.
    Password,
    /// The user is not in sudoers (or sudo is not installed).
    None,
}

/// A signed duration such as "-30s" or "2s".
mod clock_offset {
    use jiff::SignedDuration;
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SignedDuration, D::Error> {
        let text = String::deserialize(d)?;
        text.trim().parse().map_err(|e| {
            serde::de::Error::custom(format!("clock_offset {text:?}: {e} (try \"-30s\")"))
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    pub namespace: String,
    pub name: String,
    /// LoadBalancer IP, from the loopback range so probes hit real sockets.
    pub ip: String,
    pub port: u16,
    /// Node the service's single pod starts on.
    pub pod_node: String,
}

/// Who owns a scenario pod, which decides what a drain does with it.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum PodOwner {
    /// A ReplicaSet (a Deployment's pods): evicted, recreated elsewhere.
    #[default]
    ReplicaSet,
    StatefulSet,
    /// Skipped by a drain; comes straight back on the same node.
    DaemonSet,
    /// No controller: an evicted pod never comes back.
    None,
    /// A static pod's mirror (annotation `kubernetes.io/config.mirror`):
    /// the API cannot evict it.
    Mirror,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodSpec {
    pub namespace: String,
    pub name: String,
    pub node: String,
    #[serde(default)]
    pub owner: PodOwner,
    /// The `app` label (PDB selectors and replica counts use it); default: the name.
    pub app: Option<String>,
    /// An emptyDir volume: its data goes with the pod.
    #[serde(default)]
    pub empty_dir: bool,
    /// A PersistentVolumeClaim on K3s's `local-path` StorageClass, bound to
    /// this node: the pod cannot run anywhere else.
    pub local_volume: Option<String>,
}

impl PodSpec {
    pub fn app(&self) -> &str {
        self.app.as_deref().unwrap_or(&self.name)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PdbSpec {
    pub namespace: String,
    pub name: String,
    /// Selects pods whose `app` label is this.
    pub app: String,
    pub min_available: Option<u32>,
    pub max_unavailable: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleSpec {
    /// The first N eviction calls are answered 429.
    #[serde(default)]
    pub first_evictions: u32,
    /// After those, this fraction of eviction calls (0.0-1.0), at random.
    #[serde(default)]
    pub fraction: f64,
    /// The `Retry-After` header, whole seconds (the API server sends 1).
    #[serde(default = "one_second")]
    pub retry_after_seconds: u32,
}

fn one_second() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// The kubelet stops renewing its lease and posting status.
    KubeletStop,
    /// The MetalLB speaker on the node dies (memberlist notices).
    SpeakerStop,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub node: String,
    pub kind: FaultKind,
    /// Fire this long after the node first runs `after_upgrade_to` (or after
    /// the lab starts when that is absent).
    #[serde(with = "serde_human")]
    pub delay: Duration,
    pub after_upgrade_to: Option<String>,
    /// A `systemctl restart k3s` on the node heals the fault once it fired.
    #[serde(default = "yes")]
    pub heal_on_restart: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaySpec {
    #[serde(with = "serde_human")]
    pub start: Duration,
    pub versions: Vec<String>,
    /// The old script's fixed wait after each node.
    #[serde(with = "serde_human")]
    pub settle: Duration,
}

impl Scenario {
    /// A built-in name (`healthy`, `incident-2026-01-25`) or a file path.
    pub fn load(name_or_path: &str) -> Result<Scenario> {
        if let Some((name, text)) = BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            return Scenario::parse(text, &format!("<builtin {name}>"));
        }
        let path = Path::new(name_or_path);
        let text = std::fs::read_to_string(path).map_err(|e| {
            eyre!(
                "cannot read scenario {}: {e} (built-in scenarios: {})",
                path.display(),
                BUILTIN.map(|(n, _)| n).join(", ")
            )
        })?;
        Scenario::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, origin: &str) -> Result<Scenario> {
        let scenario: Scenario =
            toml::from_str(text).map_err(|e| eyre!(toml_error(origin, text, &e)))?;
        scenario.validate().map_err(|e| eyre!("{origin}: {e}"))?;
        Ok(scenario)
    }

    fn validate(&self) -> Result<(), String> {
        if self.time_scale.is_nan() || self.time_scale <= 0.0 {
            return Err("time_scale must be positive".into());
        }
        let known = |n: &str| self.nodes.iter().any(|x| x.name == n);
        for f in &self.faults {
            if !known(&f.node) {
                return Err(format!("fault names unknown node {:?}", f.node));
            }
        }
        for p in &self.pods {
            if !known(&p.node) {
                return Err(format!(
                    "pod {}/{} is placed on unknown node {:?}",
                    p.namespace, p.name, p.node
                ));
            }
        }
        for b in &self.pdbs {
            if b.min_available.is_some() == b.max_unavailable.is_some() {
                return Err(format!(
                    "PodDisruptionBudget {}/{} needs exactly one of min_available and max_unavailable",
                    b.namespace, b.name
                ));
            }
        }
        if let Some(t) = &self.throttle
            && !(0.0..=1.0).contains(&t.fraction)
        {
            return Err(format!(
                "throttle.fraction {} is not within 0.0-1.0",
                t.fraction
            ));
        }
        for s in &self.services {
            if !known(&s.pod_node) {
                return Err(format!(
                    "service {} places its pod on unknown node {:?}",
                    s.name, s.pod_node
                ));
            }
            if !s
                .ip
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback())
            {
                return Err(format!(
                    "service {} has IP {}; the lab only uses loopback addresses (127.0.0.0/8)",
                    s.name, s.ip
                ));
            }
        }
        Ok(())
    }

    /// Replaces the nodes with `count` generated ones (3 servers, the rest
    /// agents) for scale runs; services and faults that named removed nodes
    /// are dropped.
    pub fn with_generated_nodes(mut self, count: usize) -> Scenario {
        let version = self
            .nodes
            .first()
            .map_or("v1.33.6+k3s1".to_string(), |n| n.version.clone());
        self.nodes = (0..count)
            .map(|i| NodeSpec {
                name: format!("lab-node-{i:04}"),
                role: if i < 3.min(count) {
                    Role::Server
                } else {
                    Role::Agent
                },
                version: version.clone(),
                vmid: None,
                clock_offset: jiff::SignedDuration::ZERO,
                args: Vec::new(),
                arch: x86_64(),
                free_disk_mib: twenty_gib(),
                root_login: true,
                sudo: SudoPolicy::default(),
                env: Default::default(),
                config_yaml: String::new(),
                corrupt_staged: false,
            })
            .collect();
        let first = self
            .nodes
            .first()
            .map(|n| n.name.clone())
            .unwrap_or_default();
        for s in &mut self.services {
            s.pod_node = first.clone();
        }
        self.faults.clear();
        self.pods.clear();
        self.pdbs.clear();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_scenarios_parse() {
        for (name, _) in BUILTIN {
            let s = Scenario::load(name).unwrap();
            assert!(!s.nodes.is_empty(), "{name} has nodes");
        }
    }

    #[test]
    fn bad_scenario_names_line_and_column() {
        let err = Scenario::parse(
            "name = \"x\"\n[timing]\ngrace_period = \"50 parsecs\"\n",
            "bad.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("bad.toml:3:"), "{err}");
        assert!(err.contains("unknown unit"), "{err}");
    }

    #[test]
    fn non_loopback_service_ip_is_refused() {
        let text = "name='x'\n[[nodes]]\nname='a'\nrole='server'\nversion='v1.33.6+k3s1'\n\
                    [[services]]\nnamespace='d'\nname='s'\nip='192.168.1.10'\nport=80\npod_node='a'\n";
        let err = Scenario::parse(text, "x.toml").unwrap_err().to_string();
        assert!(err.contains("loopback"), "{err}");
    }
}
