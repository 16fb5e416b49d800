//! A simulated node's machine: its K3s unit and `ExecStart` arguments, env
//! file, config.yaml, architecture, free disk, logins and the files the
//! upgrade touches, with what the upgrade's steps do to them. Pure state:
//! the node shell ([`super::shell`]) parses commands into these calls.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::scenario::{NodeSpec, Role, SudoPolicy};

pub const BIN: &str = "/usr/local/bin/k3s";
/// Where the K3s install script and the binary method download releases.
pub const RELEASE_URL: &str = "https://github.com/k3s-io/k3s/releases/download";
/// Where scenarios stage releases on nodes (`staged_releases`).
pub const STAGED: &str = "/var/lib/k3s-cockpit/releases";
/// What a release binary weighs on disk (K3s v1.33+ amd64 is ~70 MiB).
const BINARY_MIB: u64 = 70;

/// One node's machine.
#[derive(Debug, Clone)]
pub struct Host {
    /// `k3s` (server) or `k3s-agent`.
    pub unit: String,
    /// `ExecStart` after the binary: `server --disable servicelb ...`.
    pub exec: Vec<String>,
    /// The unit's env file (`K3S_URL`, `K3S_TOKEN`, ...).
    pub env: BTreeMap<String, String>,
    pub config_yaml: String,
    pub arch: String,
    pub free_mib: u64,
    pub root_login: bool,
    pub sudo: SudoPolicy,
    /// Files by absolute path: the binary, the binaries the binary method
    /// kept (`BIN.cockpit-VERSION`, one per version it replaced), staged
    /// artifacts.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Downloads fail (no route to GitHub).
    pub airgap: bool,
    /// An embedded etcd member (servers, unless the cluster uses SQLite).
    pub etcd: bool,
    /// etcd snapshots saved on this node.
    pub snapshots: Vec<String>,
    /// Which reset of the etcd cluster this member's data belongs to
    /// (0: the original cluster); None once `server/db` was removed.
    pub etcd_member_of: Option<u64>,
    /// `server/db/reset-flag`: a `--cluster-reset` completed and K3s has
    /// not started normally since.
    pub reset_flag: bool,
    /// Whether K3s's service LB ran when the lab started (a scenario
    /// without MetalLB's `--disable servicelb` runs it from the start).
    pub servicelb_at_start: bool,
}

/// A failed step: exit status and what it printed on stderr.
pub type Failure = (u32, String);

impl Host {
    pub fn new(spec: &NodeSpec, airgap: bool, sqlite: bool) -> Host {
        let role = match spec.role {
            Role::Server => "server",
            Role::Agent => "agent",
        };
        let mut exec = vec![role.to_string()];
        exec.extend(spec.args.iter().cloned());
        let asset = asset_for(&spec.arch).map_or("k3s", |(_, a)| a);
        let files = BTreeMap::from([(BIN.to_string(), fake_binary(&spec.version, asset))]);
        let mut host = Host {
            unit: unit_for(role).to_string(),
            exec,
            env: spec.env.clone(),
            config_yaml: spec.config_yaml.clone(),
            arch: spec.arch.clone(),
            free_mib: spec.free_disk_mib,
            root_login: spec.root_login,
            sudo: spec.sudo,
            files,
            airgap,
            etcd: spec.role == Role::Server && !sqlite,
            snapshots: Vec::new(),
            etcd_member_of: Some(0),
            reset_flag: false,
            servicelb_at_start: false,
        };
        host.servicelb_at_start = host.servicelb_enabled();
        host
    }

    /// The version of the binary at [`BIN`], as `k3s --version` reports it.
    pub fn binary_version(&self) -> Option<String> {
        self.files.get(BIN).and_then(|b| version_of(b))
    }

    /// K3s's `k3s.io/node-args` annotation: the JSON array of the process's
    /// arguments (the lab leaves config.yaml flags out of it).
    pub fn node_args(&self) -> String {
        serde_json::Value::from(self.exec.clone()).to_string()
    }

    /// Whether K3s's own service load balancer (klipper-lb) runs: on a
    /// server, unless `--disable servicelb` is given on the command line or
    /// in config.yaml.
    pub fn servicelb_enabled(&self) -> bool {
        let server = self.exec.first().is_some_and(|c| c == "server");
        server && !self.disables("servicelb")
    }

    fn disables(&self, component: &str) -> bool {
        let listed = |v: &str| v.split(',').any(|c| c.trim() == component);
        let mut args = self.exec.iter();
        while let Some(a) = args.next() {
            let value = match a.split_once('=') {
                Some((flag, v)) if flag == "--disable" || flag == "--no-deploy" => Some(v),
                None if a == "--disable" || a == "--no-deploy" => args.next().map(String::as_str),
                _ => None,
            };
            if value.is_some_and(listed) {
                return true;
            }
        }
        // config.yaml: `disable: servicelb` or a `- servicelb` list item.
        self.config_yaml.lines().any(|l| {
            let l = l.trim();
            (l.starts_with("disable:") && listed(l.trim_start_matches("disable:")))
                || l.trim_start_matches("- ").trim_matches(['"', '\'']) == component
        })
    }

    /// Copies `versions` of the release for this node's arch under
    /// [`STAGED`]; `corrupt` truncates the binaries.
    pub fn stage_releases(&mut self, versions: &[String], corrupt: bool) {
        let Some((arch, asset)) = asset_for(&self.arch) else {
            return;
        };
        for v in versions {
            let list = release_file(v, &format!("sha256sum-{arch}.txt"));
            let binary = release_file(v, asset);
            if let (Some(list), Some(mut binary)) = (list, binary) {
                if corrupt {
                    binary.truncate(binary.len() / 2);
                }
                self.files
                    .insert(format!("{STAGED}/{v}/sha256sum-{arch}.txt"), list);
                self.files.insert(format!("{STAGED}/{v}/{asset}"), binary);
            }
        }
    }

    /// `curl -sfL URL`: the lab's GitHub release, unless the node is airgapped.
    pub fn download(&self, url: &str) -> Result<Vec<u8>, Failure> {
        if self.airgap {
            return Err((6, "curl: (6) Could not resolve host: github.com\n".into()));
        }
        let not_found = || {
            (
                22,
                "curl: (22) The requested URL returned error: 404\n".into(),
            )
        };
        let rest = url.strip_prefix(RELEASE_URL).ok_or_else(not_found)?;
        let (version, file) = rest
            .trim_start_matches('/')
            .split_once('/')
            .ok_or_else(not_found)?;
        release_file(version, file).ok_or_else(not_found)
    }

    /// `cp SRC` or a download, depending on what `source` names.
    pub fn fetch(&self, source: &str) -> Result<Vec<u8>, Failure> {
        if source.starts_with("https://") || source.starts_with("http://") {
            return self.download(source);
        }
        self.files.get(source).cloned().ok_or_else(|| {
            (
                1,
                format!("cp: cannot stat '{source}': No such file or directory\n"),
            )
        })
    }

    /// Writes a staged binary, as `cp`/`curl -o` would; checks the disk.
    pub fn write_binary(&mut self, path: &str, content: Vec<u8>) -> Result<(), Failure> {
        if self.free_mib < BINARY_MIB {
            return Err((
                1,
                format!("cp: error writing '{path}': No space left on device\n"),
            ));
        }
        self.files.insert(path.to_string(), content);
        Ok(())
    }
}

pub fn unit_for(role: &str) -> &'static str {
    if role == "server" { "k3s" } else { "k3s-agent" }
}

/// `uname -m` → (release arch, binary asset), as install.sh maps it
/// (k3s-io/k3s install.sh, setup_verify_arch).
pub fn asset_for(uname_m: &str) -> Option<(&'static str, &'static str)> {
    match uname_m {
        "x86_64" | "amd64" => Some(("amd64", "k3s")),
        "aarch64" | "arm64" => Some(("arm64", "k3s-arm64")),
        m if m.starts_with("arm") => Some(("arm", "k3s-armhf")),
        _ => None,
    }
}

/// The content of the lab's release binary `asset` of `version`: a script
/// that says which version it is.
pub fn fake_binary(version: &str, asset: &str) -> Vec<u8> {
    format!("#!/bin/sh\n# k3s {version} {asset} (k3s-cockpit lab)\n").into_bytes()
}

pub fn version_of(binary: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(binary).ok()?;
    let line = text.lines().find_map(|l| l.strip_prefix("# k3s "))?;
    line.split_whitespace().next().map(str::to_string)
}

pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A file of the lab's GitHub release `version`: a binary asset or a
/// `sha256sum-ARCH.txt` list (`HASH  NAME` lines, like sha256sum prints).
pub fn release_file(version: &str, file: &str) -> Option<Vec<u8>> {
    if !version.starts_with('v') || !version.contains("+k3s") {
        return None;
    }
    let assets = [
        ("amd64", "k3s"),
        ("arm64", "k3s-arm64"),
        ("arm", "k3s-armhf"),
    ];
    if let Some((_, asset)) = assets.iter().find(|(_, a)| *a == file) {
        return Some(fake_binary(version, asset));
    }
    let arch = file.strip_prefix("sha256sum-")?.strip_suffix(".txt")?;
    let (_, asset) = assets.iter().find(|(a, _)| *a == arch)?;
    let hash = sha256_hex(&fake_binary(version, asset));
    Some(format!("{hash}  {asset}\n").into_bytes())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn host(args: &[&str], config: &str) -> Host {
        let spec: NodeSpec = toml::from_str(&format!(
            "name='n'\nrole='server'\nversion='v1.33.6+k3s1'\nargs={:?}\nconfig_yaml={config:?}",
            args
        ))
        .unwrap();
        Host::new(&spec, false, false)
    }

    #[test]
    fn servicelb_runs_unless_disabled_on_the_command_line_or_in_config() {
        assert!(host(&[], "").servicelb_enabled());
        assert!(!host(&["--disable", "servicelb"], "").servicelb_enabled());
        assert!(!host(&["--disable=traefik,servicelb"], "").servicelb_enabled());
        assert!(!host(&[], "disable:\n  - servicelb\n").servicelb_enabled());
        assert!(host(&["--disable", "traefik"], "").servicelb_enabled());
    }

    #[test]
    fn node_args_and_binary_version() {
        let h = host(&["--disable", "servicelb"], "");
        assert_eq!(h.node_args(), r#"["server","--disable","servicelb"]"#);
        assert_eq!(h.binary_version().as_deref(), Some("v1.33.6+k3s1"));
        assert_eq!(h.unit, "k3s");
    }

    #[test]
    fn release_sha_list_matches_the_binary() {
        let list = release_file("v1.35.0+k3s1", "sha256sum-arm64.txt").unwrap();
        let bin = release_file("v1.35.0+k3s1", "k3s-arm64").unwrap();
        let list = String::from_utf8(list).unwrap();
        assert_eq!(list, format!("{}  k3s-arm64\n", sha256_hex(&bin)));
        assert!(release_file("latest", "k3s").is_none());
    }
}
