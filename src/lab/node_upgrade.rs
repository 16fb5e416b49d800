//! The upgrade steps on a simulated node: the binary method's script, the
//! K3s install script, and `k3s etcd-snapshot`. Each changes the node's
//! [`Host`] the way the real step changes the machine, and fails where a
//! real node would (no privilege, no network, wrong sha256, full disk).

use super::host::{self, Failure, Host};
use super::node_exec::Simple;
use super::sim::SimHandle;
use super::ssh::CommandOutcome;
use crate::remote::quote::shell_split;

/// The binary method (see `upgrade::method::binary_script`): the lab reads
/// the script's parameters and carries out its steps in order, with the
/// same messages.
pub async fn binary(sim: &SimHandle, node: &str, script: &str, root: bool) -> CommandOutcome {
    let param = |name: &str| {
        script.lines().find_map(|l| {
            let v = l.strip_prefix(name)?.strip_prefix('=')?;
            shell_split(v).ok()?.into_iter().next()
        })
    };
    let (Some(version), Some(release), Some(bin)) =
        (param("version"), param("release"), param("bin"))
    else {
        return CommandOutcome::fail(2, "sh: 1: version, release or bin is not set\n");
    };
    // Fetching takes the install's time; the swap itself is instant.
    let delay = sim.lock().timing.install;
    tokio::time::sleep(delay).await;
    let done = sim.with_host(node, |h| swap_binary(h, &version, &release, &bin, root));
    match done {
        Ok(Ok(stdout)) => CommandOutcome::ok(stdout),
        Ok(Err((status, stderr))) => CommandOutcome::fail(status, stderr),
        Err(e) => CommandOutcome::fail(255, format!("{e}\n")),
    }
}

/// The binary method's rollback (see `upgrade::method::reinstate_script`):
/// the kept `BIN.cockpit-VERSION` goes back in place, checked first, or
/// the single `BIN.cockpit-old` of older cockpits when it is that version;
/// nothing is fetched.
pub fn reinstate(sim: &SimHandle, node: &str, script: &str, root: bool) -> CommandOutcome {
    let param = |name: &str| {
        script.lines().find_map(|l| {
            let v = l.strip_prefix(name)?.strip_prefix('=')?;
            shell_split(v).ok()?.into_iter().next()
        })
    };
    let (Some(version), Some(bin)) = (param("version"), param("bin")) else {
        return CommandOutcome::fail(2, "sh: 1: version or bin is not set\n");
    };
    let done = sim.with_host(node, |h| put_back(h, &version, &bin, root));
    match done {
        Ok(Ok(stdout)) => CommandOutcome::ok(stdout),
        Ok(Err((status, stderr))) => CommandOutcome::fail(status, stderr),
        Err(e) => CommandOutcome::fail(255, format!("{e}\n")),
    }
}

/// The kept binary of `version` copied over `bin`, or why not (the binary
/// then stays as it was).
fn put_back(h: &mut Host, version: &str, bin: &str, root: bool) -> Result<String, Failure> {
    let kept = format!("{bin}.cockpit-{version}");
    let legacy = format!("{bin}.cockpit-old");
    let reports = |path: &str| {
        let b = h.files.get(path)?;
        Some((b.clone(), host::version_of(b).unwrap_or_default()))
    };
    let (from, binary) = match (reports(&kept), reports(&legacy)) {
        (Some((b, have)), _) if have == version => (kept, b),
        (Some((_, have)), _) => {
            let have = if have.is_empty() {
                "no version".to_string()
            } else {
                have
            };
            return Err(k3s_fail(format!(
                "{kept} reports {have}, not {version}: put {version} back by hand"
            )));
        }
        (None, Some((b, have))) if have == version => (legacy, b),
        (None, _) => {
            return Err(k3s_fail(format!(
                "{kept} is missing: no kept binary of {version} on this node; put {version} back by hand"
            )));
        }
    };
    if !root {
        return Err((
            1,
            format!("cp: cannot create regular file '{bin}.cockpit-new': Permission denied\n"),
        ));
    }
    h.files.insert(bin.to_string(), binary);
    Ok(format!(
        "k3s-cockpit: {bin} is {version} again (from {from})\n"
    ))
}

fn k3s_fail(why: String) -> Failure {
    (1, format!("k3s-cockpit: {why}\n"))
}

fn swap_binary(
    h: &mut Host,
    version: &str,
    release: &str,
    bin: &str,
    root: bool,
) -> Result<String, Failure> {
    let new = format!("{bin}.cockpit-new");
    // Read before anything is fetched, as the script does.
    let have = h
        .files
        .get(bin)
        .and_then(|b| host::version_of(b))
        .ok_or_else(|| {
            k3s_fail(format!(
                "cannot read the version of {bin} (`{bin} --version` gives no \"k3s version vX\" line): it must be kept under its version for a rollback; {bin} left as it was"
            ))
        })?;
    let keep = format!("{bin}.cockpit-{have}");
    let (arch, asset) = host::asset_for(&h.arch)
        .ok_or_else(|| k3s_fail(format!("unsupported architecture {}", h.arch)))?;
    let fetch = |h: &Host, file: &str| {
        let src = format!("{release}/{version}/{file}");
        h.fetch(&src).map_err(|(_, msg)| {
            let verb = if release.starts_with("http") {
                "download"
            } else {
                "copy"
            };
            (1, format!("{msg}k3s-cockpit: cannot {verb} {src}\n"))
        })
    };
    let list = fetch(h, &format!("sha256sum-{arch}.txt"))?;
    if !root {
        return Err((
            1,
            format!(
                "curl: (23) Failure writing output to destination: {new}.sha256: Permission denied\nk3s-cockpit: cannot download {release}/{version}/sha256sum-{arch}.txt\n"
            ),
        ));
    }
    let want = String::from_utf8_lossy(&list)
        .lines()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            let hash = f.next()?;
            (f.next()? == asset).then(|| hash.to_string())
        })
        .ok_or_else(|| {
            k3s_fail(format!(
                "no sha256 for {asset} in sha256sum-{arch}.txt of {version}"
            ))
        })?;
    let content = fetch(h, asset)?;
    h.write_binary(&new, content.clone())?;
    let got = host::sha256_hex(&content);
    h.files.remove(&new);
    if got != want {
        return Err(k3s_fail(format!(
            "sha256 mismatch for {asset} {version}: expected {want}, got {got}; {bin} left as it was"
        )));
    }
    if let Some(current) = h.files.get(bin).cloned() {
        h.files.insert(keep.clone(), current);
    }
    h.files.insert(bin.to_string(), content);
    Ok(format!(
        "k3s-cockpit: {bin} is now {version} ({asset}, sha256 {got}); the previous binary ({have}) is kept as {keep}\n"
    ))
}

/// `sh install.sh ARGS` with `INSTALL_K3S_*` in its environment: installs
/// the binary, rewrites the unit's `ExecStart` from `INSTALL_K3S_EXEC` plus
/// the arguments, rewrites the env file from the `K3S_*` environment, and
/// restarts K3s when something changed unless `INSTALL_K3S_SKIP_START=true`
/// (k3s-io/k3s install.sh: setup_env, create_env_file,
/// service_enable_and_start).
pub async fn install_script(
    sim: &SimHandle,
    node: &str,
    cmd: &Simple,
    sources_env: bool,
    root: bool,
) -> CommandOutcome {
    if !root {
        return CommandOutcome::fail(1, "sudo: a password is required\n");
    }
    let from_pipe = cmd.words[1] == "-";
    if !from_pipe
        && sim
            .with_host(node, |h| !h.files.contains_key(&cmd.words[1]))
            .unwrap_or(true)
    {
        return CommandOutcome::fail(
            2,
            format!("sh: 0: cannot open {}: No such file\n", cmd.words[1]),
        );
    }
    let Some(version) = cmd.env.get("INSTALL_K3S_VERSION").cloned() else {
        return CommandOutcome::fail(
            1,
            "[ERROR]  the lab has no release channel: set INSTALL_K3S_VERSION\n",
        );
    };
    let delay = sim.lock().timing.install;
    tokio::time::sleep(delay).await;
    let changed = sim.with_host(node, |h| apply_install(h, cmd, &version, sources_env));
    let mut log = format!("[INFO]  Using {version} as release\n[INFO]  Downloading binary\n");
    match changed {
        Ok(Ok((exec, changed))) => {
            log.push_str(&format!("[INFO]  Installing k3s to {}\n[INFO]  systemd: Creating service file with ExecStart {}\n", host::BIN, exec));
            let skip = cmd
                .env
                .get("INSTALL_K3S_SKIP_START")
                .is_some_and(|v| v == "true");
            if skip {
                log.push_str("[INFO]  Skipping start: INSTALL_K3S_SKIP_START=true\n");
            } else if !changed {
                log.push_str("[INFO]  No change detected so skipping service start\n");
            } else if let Err(e) = sim.restart(node) {
                return CommandOutcome::fail(1, format!("{log}[ERROR]  {e}\n"));
            } else {
                log.push_str("[INFO]  systemd: Starting k3s\n");
            }
            CommandOutcome::ok(log)
        }
        Ok(Err((status, msg))) => CommandOutcome::fail(status, format!("{log}{msg}")),
        Err(e) => CommandOutcome::fail(255, format!("{e}\n")),
    }
}

/// The install script's changes to the machine; returns the new
/// `ExecStart` and whether the binary or the unit changed.
fn apply_install(
    h: &mut Host,
    cmd: &Simple,
    version: &str,
    sources_env: bool,
) -> Result<(String, bool), Failure> {
    let (_, asset) = host::asset_for(&h.arch)
        .ok_or((1, format!("[ERROR]  Unsupported architecture {}\n", h.arch)))?;
    if h.airgap {
        return Err((1, "[ERROR]  Download failed\n".into()));
    }
    let mut env: std::collections::BTreeMap<String, String> = if sources_env {
        h.env.clone()
    } else {
        Default::default()
    };
    env.extend(
        cmd.env
            .iter()
            .filter(|(k, _)| k.starts_with("K3S_"))
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    let mut words: Vec<String> = cmd
        .env
        .get("INSTALL_K3S_EXEC")
        .map(|e| e.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    words.extend(cmd.words[2..].iter().cloned());
    let role = match words.first().map(String::as_str) {
        Some("server" | "agent") => words.remove(0),
        _ if env.contains_key("K3S_URL") => "agent".to_string(),
        _ => "server".to_string(),
    };
    let mut exec = vec![role.clone()];
    exec.extend(words);
    let binary = host::fake_binary(version, asset);
    let changed = h.files.get(host::BIN) != Some(&binary)
        || h.exec != exec
        || h.unit != host::unit_for(&role);
    h.files.insert(host::BIN.to_string(), binary);
    h.unit = host::unit_for(&role).to_string();
    h.exec = exec.clone();
    h.env = env;
    Ok((exec.join(" "), changed))
}

/// `k3s etcd-snapshot save [--name N]` and `k3s etcd-snapshot ls`. K3s logs
/// through logrus, which writes to stderr: `Snapshot NAME saved.` is on
/// stderr, never stdout (k3s-io/k3s pkg/cli/etcdsnapshot). The name gets
/// the node name and a timestamp appended.
pub fn etcd_snapshot(sim: &SimHandle, node: &str, args: &[&str], root: bool) -> CommandOutcome {
    let now = jiff::Timestamp::now();
    let log = |level: &str, msg: &str| {
        format!(
            "time=\"{}\" level={level} msg=\"{msg}\"\n",
            now.strftime("%Y-%m-%dT%H:%M:%SZ")
        )
    };
    if !root {
        return CommandOutcome::fail(
            1,
            log(
                "fatal",
                "open /var/lib/rancher/k3s/server/token: permission denied",
            ),
        );
    }
    let data = sim.snapshot_data();
    let done = sim.with_host(node, |h| {
        if h.exec.first().is_none_or(|c| c != "server") {
            return CommandOutcome::fail(1, log("fatal", "etcd-snapshot: this node runs no K3s server"));
        }
        if !h.etcd {
            return CommandOutcome::fail(1, log("fatal", "etcd datastore disabled"));
        }
        match args {
            ["save", rest @ ..] => {
                let base = rest.windows(2).find(|w| w[0] == "--name").map_or("on-demand", |w| w[1]);
                let name = format!("{base}-{node}-{}", now.as_second());
                h.snapshots.push(name.clone());
                h.files.insert(format!("{}/snapshots/{name}", super::sim::DB), data.into_bytes());
                CommandOutcome {
                    stdout: String::new(),
                    stderr: log("info", &format!("Saving etcd snapshot to /var/lib/rancher/k3s/server/db/snapshots/{name}"))
                        + &log("info", &format!("Snapshot {name} saved.")),
                    exit_status: 0,
                }
            }
            ["ls" | "list", ..] => {
                let mut out = String::from("Name Location Size Created\n");
                for s in &h.snapshots {
                    out.push_str(&format!("{s} file:///var/lib/rancher/k3s/server/db/snapshots/{s} 5378080 {}\n", now.strftime("%Y-%m-%dT%H:%M:%SZ")));
                }
                CommandOutcome::ok(out)
            }
            _ => CommandOutcome::fail(1, log("fatal", "unknown etcd-snapshot subcommand")),
        }
    });
    done.unwrap_or_else(|e| CommandOutcome::fail(255, format!("{e}\n")))
}
