//! Command templates are rendered with cluster data (node names) and with
//! values the cockpit chooses; whatever a value holds, the rendered command
//! must be valid `sh` (shellcheck) and must not run anything from the value.
//! Each rendered command is executed for real, with the programs it calls
//! (`nohup`, `curl`, `systemctl`, `k3s`, a second `sh`) replaced by stubs
//! that only print their arguments.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use k3s_cockpit::remote::quote::shell_split;
use k3s_cockpit::upgrade::method::{self, GITHUB_RELEASES, K3S_BIN};
use k3s_cockpit::upgrade::plan::{
    self, ClusterNode, DEFAULT_ETCD_SNAPSHOT, DEFAULT_RESTART, DEFAULT_VERSION, Plan, Role,
};
use k3s_cockpit::upgrade::template;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A scratch directory with stub programs on PATH and a marker file that any
/// executed metacharacter in a value would create.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let echo_stub = "#!/bin/sh\nprintf '%s|' \"$(basename \"$0\")\" \"$@\"; echo\n";
        for name in ["curl", "systemctl", "k3s", "logger"] {
            stub(&bin.join(name), echo_stub);
        }
        stub(&bin.join("nohup"), "#!/bin/sh\nexec \"$@\"\n");
        // `sh -c SCRIPT` really runs the script; `sh FILE ARGS` (the install
        // script) only shows its arguments and the version it was given.
        stub(
            &bin.join("sh"),
            "#!/bin/sh\nif [ \"$1\" = -c ]; then exec /bin/sh \"$@\"; fi\nprintf 'sh|'; printf '%s|' \"$@\"; printf 'INSTALL_K3S_VERSION=%s\\n' \"$INSTALL_K3S_VERSION\"\n",
        );
        Sandbox { dir }
    }

    fn marker(&self) -> PathBuf {
        self.dir.path().join("pwned")
    }

    /// A value full of shell metacharacters, each of which would create the
    /// marker if the shell ran it.
    fn hostile(&self) -> String {
        let m = self.marker();
        let m = m.display();
        format!("agent$(touch {m})`touch {m}`;touch {m}&&touch {m}|'\"\\ x")
    }

    /// Runs `command` as the remote login shell would, with the stubs first on
    /// PATH; the default install's fixed log and script paths are moved into
    /// the sandbox. Returns everything printed, including the install log.
    fn run(&self, command: &str) -> String {
        let log = self.dir.path().join("install.log");
        let _ = std::fs::remove_file(&log);
        let command = command
            .replace(
                "/var/log/k3s-cockpit-install.log",
                &log.display().to_string(),
            )
            .replace(
                "/tmp/k3s-cockpit-install.sh",
                &self.dir.path().join("install.sh").display().to_string(),
            );
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(&command)
            .env("PATH", path)
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&std::fs::read_to_string(&log).unwrap_or_default());
        assert!(
            !self.marker().exists(),
            "a value was executed by:\n{command}\noutput:\n{text}"
        );
        text
    }
}

fn stub(path: &Path, body: &str) {
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `shellcheck -s sh` on `script` and on every `sh -c` script inside it.
/// Without shellcheck the check is skipped, unless CI is set. SC1090 is
/// excluded because the default install sources the unit's env file, whose
/// path is only known on the node.
fn shellcheck(script: &str) {
    if !common::require("shellcheck of rendered commands", &["shellcheck"]) {
        return;
    }
    let mut child = Command::new("shellcheck")
        .args(["-s", "sh", "-S", "warning", "-e", "SC1090", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "shellcheck on:\n{script}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    for inner in sh_c_scripts(script) {
        shellcheck(&inner);
    }
}

/// The SCRIPT words of `sh -c SCRIPT` in `command`.
fn sh_c_scripts(command: &str) -> Vec<String> {
    let words = shell_split(command).unwrap();
    words
        .windows(3)
        .filter(|w| w[0] == "sh" && w[1] == "-c")
        .map(|w| w[2].clone())
        .collect()
}

#[test]
fn default_commands_keep_hostile_values_inert() {
    let sandbox = Sandbox::new();
    let hostile = sandbox.hostile();
    let all = [
        ("version", hostile.as_str()),
        ("service", hostile.as_str()),
        ("role", hostile.as_str()),
        ("node", hostile.as_str()),
        ("snapshot", hostile.as_str()),
    ];
    for default in [DEFAULT_RESTART, DEFAULT_VERSION, DEFAULT_ETCD_SNAPSHOT] {
        let command = template::render(default, &all);
        shellcheck(&command);
        sandbox.run(&command);
    }
    // Where a value is a word of the script that reads it, it arrives exactly.
    let restart = sandbox.run(&template::render(DEFAULT_RESTART, &all));
    assert_eq!(restart.trim_end(), format!("systemctl|restart|{hostile}|"));
    let snapshot = sandbox.run(&template::render(DEFAULT_ETCD_SNAPSHOT, &all));
    assert!(
        snapshot.contains(&format!("|--name|{hostile}|")),
        "{snapshot}"
    );
}

/// The install methods' generated scripts: valid POSIX sh, and a hostile
/// version or node argument stays data.
#[test]
fn generated_install_scripts_pass_shellcheck_and_keep_values_inert() {
    let sandbox = Sandbox::new();
    let hostile = sandbox.hostile();
    let bin = sandbox.dir.path().join("k3s").display().to_string();
    let binary = template::render(
        &method::binary_script(GITHUB_RELEASES, &bin),
        &[("version", hostile.as_str())],
    );
    shellcheck(
        &method::binary_script(GITHUB_RELEASES, K3S_BIN).replace("{version}", "v1.34.3+k3s1"),
    );
    shellcheck(&binary);
    sandbox.run(&binary);
    // Airgap: what receives a copied file, and what removes it, as root
    // through become, and through qm with become on a Proxmox host.
    let stage = k3s_cockpit::rollout::upload::stage_dir("v1.34.3+k3s1");
    let receive = k3s_cockpit::rollout::upload::receive_command(&stage, "k3s");
    let quoted = k3s_cockpit::remote::shell_quote(&receive);
    shellcheck(&receive);
    shellcheck(&format!("sudo -n sh -c {quoted}"));
    shellcheck(&k3s_cockpit::rollout::upload::unstage_command(
        "v1.34.3+k3s1",
    ));
    shellcheck(&k3s_cockpit::remote::proxmox::qm_wire_command(
        Some("sudo -n"),
        106,
        "k3s --version",
    ));
    let args = vec![
        "server".to_string(),
        "--node-label".to_string(),
        hostile.clone(),
    ];
    let install = template::render(
        &method::install_script_command("k3s", &args),
        &[("version", hostile.as_str())],
    );
    shellcheck(&install);
    let out = sandbox.run(&install);
    assert!(
        out.contains(&format!("|server|--node-label|{hostile}|")),
        "{out}"
    );
    assert!(out.contains("INSTALL_K3S_VERSION="), "{out}");
}

/// A fake K3s binary: prints what `k3s --version` prints for `version`.
fn fake_k3s(version: &str) -> String {
    format!("#!/bin/sh\necho 'k3s version {version} (3ad6f7f5)'\necho 'go version go1.24.9'\n")
}

/// The binary method's script run by a real `sh` against a release
/// directory: it swaps the binary and keeps the old one under the version
/// it reports, one file per version; a corrupted binary, or a binary whose
/// version cannot be read, is refused and the installed one stays.
#[test]
fn binary_script_swaps_verified_binaries_and_refuses_corrupted_ones() {
    if !common::require("binary script run", &["sha256sum", "awk"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("k3s");
    stub(&bin, &fake_k3s("v1.33.6+k3s1"));
    let release = dir.path().join("release");
    let (arch, asset) = match std::env::consts::ARCH {
        "aarch64" => ("arm64", "k3s-arm64"),
        _ => ("amd64", "k3s"),
    };
    // Publishes `binary` as `version`'s asset, listed with `listed`'s sha256.
    let publish = |version: &str, binary: &str, listed: &str| {
        let rel = release.join(version);
        std::fs::create_dir_all(&rel).unwrap();
        std::fs::write(rel.join(asset), listed).unwrap();
        let sha = Command::new("sha256sum")
            .arg(rel.join(asset))
            .output()
            .unwrap();
        let sha = String::from_utf8_lossy(&sha.stdout)
            .split(' ')
            .next()
            .unwrap()
            .to_string();
        std::fs::write(
            rel.join(format!("sha256sum-{arch}.txt")),
            format!("{sha}  {asset}\n"),
        )
        .unwrap();
        std::fs::write(rel.join(asset), binary).unwrap();
    };
    let run = |version: &str| {
        let script = template::render(
            &method::binary_script(&release.display().to_string(), &bin.display().to_string()),
            &[("version", version)],
        );
        Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap()
    };
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    for v in ["v1.34.3+k3s1", "v1.35.0+k3s1"] {
        publish(v, &fake_k3s(v), &fake_k3s(v));
        let out = run(v);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(read("k3s"), fake_k3s(v));
    }
    // Two hops, two kept binaries: a rollback can reach either version.
    assert_eq!(read("k3s.cockpit-v1.33.6+k3s1"), fake_k3s("v1.33.6+k3s1"));
    assert_eq!(read("k3s.cockpit-v1.34.3+k3s1"), fake_k3s("v1.34.3+k3s1"));
    assert!(!dir.path().join("k3s.cockpit-new").exists());
    assert!(!dir.path().join("k3s.cockpit-keep").exists());
    // The list says one thing, the file is another: refused before the swap.
    let next = "v1.35.1+k3s1";
    publish(next, "corrupted\n", &fake_k3s(next));
    let out = run(next);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("k3s-cockpit: sha256 mismatch"), "{stderr}");
    assert_eq!(read("k3s"), fake_k3s("v1.35.0+k3s1"));
    assert!(!dir.path().join("k3s.cockpit-new").exists());
    // A binary that cannot say its version cannot be kept under it.
    publish(next, &fake_k3s(next), &fake_k3s(next));
    stub(&bin, "#!/bin/sh\necho 'Segmentation fault' >&2\nexit 139\n");
    let out = run(next);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot read the version of"), "{stderr}");
    assert!(read("k3s").contains("Segmentation fault"));
}

/// A node name is cluster data: an operator's templates may use `{node}`
/// bare, in double or single quotes, and inside an `sh -c` script.
#[test]
fn hostile_node_name_is_inert_in_every_spot_of_a_resolved_plan() {
    let sandbox = Sandbox::new();
    let name = sandbox.hostile();
    let plan = Plan::from_str(
        r#"target = "v1.34.3+k3s1"
[commands]
restart = "systemctl restart {service} && logger -t k3s-cockpit restarted {node}"
version = "logger \"checking {node}\" && sh -c 'logger checking {node}; k3s --version'"
install = "logger 'installing on {node}' && nohup sh -c 'INSTALL_K3S_VERSION=\"{version}\" sh /tmp/k3s-cockpit-install.sh {role} {node}'"
etcd_snapshot = "k3s etcd-snapshot save --name {snapshot} --node-name={node}"
"#,
        "hostile.toml",
    )
    .unwrap();
    let cluster = [ClusterNode {
        name: name.clone(),
        role: Role::Server,
        version: "v1.33.6+k3s1".parse().unwrap(),
        node_args: None,
        etcd: true,
    }];
    let resolved = plan::resolve(&plan, &cluster).unwrap();
    let node = resolved.node(&name).unwrap();
    let commands = [
        node.restart_command(),
        node.version_command(),
        node.install_command(&"v1.34.3+k3s1".parse().unwrap()),
        node.snapshot_command("k3s-cockpit-20260125T101500Z"),
    ];
    let mut output = String::new();
    for command in &commands {
        shellcheck(command);
        output.push_str(&sandbox.run(command));
    }
    for exact in [
        format!("logger|-t|k3s-cockpit|restarted|{name}|"),
        format!("logger|checking|{name}|"),
        format!("install.sh|server|{name}|INSTALL_K3S_VERSION=v1.34.3+k3s1"),
        format!("--node-name={name}|"),
    ] {
        assert!(output.contains(&exact), "{exact:?} missing from:\n{output}");
    }
}

/// The binary method's rollback script run by a real `sh`: it puts the
/// kept binary of the wanted version back only when it is there and
/// reports that version, takes an older cockpit's single
/// `k3s.cockpit-old` when that is the version, and passes shellcheck.
#[test]
fn reinstate_script_puts_back_only_the_kept_binary_of_the_wanted_version() {
    shellcheck(&method::reinstate_script(K3S_BIN).replace("{version}", "v1.33.6+k3s1"));
    if !common::require("reinstate script run", &["awk"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("k3s");
    std::fs::write(&bin, "new k3s\n").unwrap();
    let run = |version: &str| {
        let script = template::render(
            &method::reinstate_script(&bin.display().to_string()),
            &[("version", version)],
        );
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), stderr)
    };
    let (code, stderr) = run("v1.33.6+k3s1");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("k3s.cockpit-v1.33.6+k3s1 is missing"),
        "{stderr}"
    );
    // Kept under one version, reporting another: refused, binary unchanged.
    stub(
        &dir.path().join("k3s.cockpit-v1.32.9+k3s1"),
        &fake_k3s("v1.33.6+k3s1"),
    );
    let (code, stderr) = run("v1.32.9+k3s1");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("reports v1.33.6+k3s1, not v1.32.9+k3s1"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&bin).unwrap(), "new k3s\n");
    // An older cockpit's single copy serves its own version only.
    let legacy = dir.path().join("k3s.cockpit-old");
    stub(&legacy, &fake_k3s("v1.34.3+k3s1"));
    let (code, stderr) = run("v1.33.6+k3s1");
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(std::fs::read_to_string(&bin).unwrap(), "new k3s\n");
    let (code, stderr) = run("v1.34.3+k3s1");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&bin).unwrap(),
        fake_k3s("v1.34.3+k3s1")
    );
    let kept = dir.path().join("k3s.cockpit-v1.33.6+k3s1");
    stub(&kept, &fake_k3s("v1.33.6+k3s1"));
    let (code, stderr) = run("v1.33.6+k3s1");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&bin).unwrap(),
        fake_k3s("v1.33.6+k3s1")
    );
    assert!(kept.exists(), "the kept binary stays for a second try");
    assert!(!dir.path().join("k3s.cockpit-new").exists());
}
