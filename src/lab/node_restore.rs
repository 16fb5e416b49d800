//! The cluster restore's commands on a simulated node: `systemctl stop`
//! and `start`, `k3s server --cluster-reset --cluster-reset-restore-path`,
//! `rm -rf` of the datastore and `test -e`. Each refuses where K3s or the
//! shell would: no privilege, no unit, no such snapshot, K3s still running.

use super::host::Host;
use super::sim::{DB, SimHandle};
use super::ssh::CommandOutcome;

pub async fn stop_start(
    sim: &SimHandle,
    node: &str,
    verb: &str,
    unit: &str,
    exists: bool,
    root: bool,
) -> CommandOutcome {
    let verb_cap = if verb == "stop" { "stop" } else { "start" };
    if !exists {
        return CommandOutcome::fail(
            5,
            format!("Failed to {verb_cap} {unit}.service: Unit {unit}.service not found.\n"),
        );
    }
    if !root {
        return CommandOutcome::fail(
            1,
            format!("Failed to {verb_cap} {unit}.service: Interactive authentication required.\n"),
        );
    }
    let done = match verb {
        "stop" => sim.stop_k3s(node),
        // Type=notify: start returns once K3s has started (or failed to).
        _ => sim.start_k3s(node).await,
    };
    match done {
        Ok(()) => CommandOutcome::ok(""),
        Err(e) => CommandOutcome::fail(1, format!("{e}\n")),
    }
}

/// `k3s server --cluster-reset --cluster-reset-restore-path=PATH`; K3s
/// logs on stderr and exits 0 once the membership is reset.
pub async fn cluster_reset(
    sim: &SimHandle,
    node: &str,
    restore: &str,
    root: bool,
) -> CommandOutcome {
    let Some(path) = restore.strip_prefix("--cluster-reset-restore-path=") else {
        return CommandOutcome::fail(
            1,
            "level=fatal msg=\"the lab resets only with --cluster-reset-restore-path=PATH\"\n",
        );
    };
    if !root {
        return CommandOutcome::fail(
            1,
            "level=fatal msg=\"open /var/lib/rancher/k3s/server/token: permission denied\"\n",
        );
    }
    // The reset starts etcd and waits for it, about as long as a restart.
    let delay = sim.lock().timing.restart_down;
    tokio::time::sleep(delay).await;
    match sim.cluster_reset(node, path) {
        Ok(log) => CommandOutcome {
            stdout: String::new(),
            stderr: log,
            exit_status: 0,
        },
        Err(e) => CommandOutcome::fail(1, e),
    }
}

/// `rm -rf PATH` under the datastore: the whole directory resets the
/// member; a path inside it simply goes.
pub fn remove(sim: &SimHandle, node: &str, path: &str, root: bool) -> CommandOutcome {
    let path = path.trim_end_matches('/');
    if !root {
        return CommandOutcome::fail(
            1,
            format!("rm: cannot remove '{path}': Permission denied\n"),
        );
    }
    let done = if path == DB {
        sim.clear_db(node)
    } else {
        sim.with_host(node, |h| {
            h.files
                .retain(|f, _| f != path && !f.starts_with(&format!("{path}/")));
        })
    };
    match done {
        Ok(()) => CommandOutcome::ok(""),
        Err(e) => CommandOutcome::fail(255, format!("{e}\n")),
    }
}

/// `test -e PATH`: exit 0 when it exists, 1 otherwise, silently.
pub fn exists(h: &mut Host, path: &str) -> CommandOutcome {
    let flag = path == format!("{DB}/reset-flag") && h.reset_flag;
    if flag || h.files.contains_key(path) {
        CommandOutcome::ok("")
    } else {
        CommandOutcome::fail(1, "")
    }
}
