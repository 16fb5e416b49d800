//! File commands of a simulated node's shell that the airgap copy uses:
//! `cat > FILE` writes what arrives on stdin, `mkdir -p` (the lab keeps
//! files by path, so directories always exist) and `rm -rf` of the
//! cockpit's staging directory.

use super::host::Failure;
use super::sim::SimHandle;
use super::ssh::{CommandOutcome, LabStdin};
use crate::upgrade::method::ARTIFACTS_STAGE;

/// `cat > FILE` (or `cat >FILE`) as split into words, if `words` is one.
pub(super) fn cat_into(words: &[String]) -> Option<&str> {
    match words {
        [cat, redirect, file] if cat == "cat" && redirect == ">" => Some(file),
        [cat, redirect] if cat == "cat" => redirect.strip_prefix('>').filter(|f| !f.is_empty()),
        _ => None,
    }
}

/// Writes stdin to `file` on the node; only root may write outside /tmp.
pub(super) async fn receive(
    sim: &SimHandle,
    node: &str,
    file: &str,
    root: bool,
    stdin: &mut LabStdin,
) -> CommandOutcome {
    if !root && !file.starts_with("/tmp/") {
        return CommandOutcome::fail(
            1,
            format!("sh: 1: cannot create {file}: Permission denied\n"),
        );
    }
    let data = stdin.read_to_end().await;
    let written = sim.with_host(node, |h| -> Result<(), Failure> {
        let room = h.free_mib.saturating_mul(1024 * 1024);
        if data.len() as u64 > room {
            return Err((
                1,
                format!("cat: write error: No space left on device ({file})\n"),
            ));
        }
        h.files.insert(file.to_string(), data);
        Ok(())
    });
    match written {
        Ok(Ok(())) => CommandOutcome::ok(""),
        Ok(Err((status, stderr))) => CommandOutcome::fail(status, stderr),
        Err(e) => CommandOutcome::fail(255, format!("{e}\n")),
    }
}

/// `mkdir -p DIR...` and `rm -rf PATH...`; None for any other command.
pub(super) fn dirs(
    sim: &SimHandle,
    node: &str,
    words: &[&str],
    root: bool,
) -> Option<CommandOutcome> {
    // The lab removes only what the cockpit stages; any other rm is a
    // command it does not know (exit 127), as before.
    let ours = |p: &&str| p.starts_with(&format!("{ARTIFACTS_STAGE}/"));
    let (verb, paths) = match words {
        ["mkdir", "-p", paths @ ..] => ("mkdir", paths),
        ["rm", "-rf" | "-f", paths @ ..] if paths.iter().all(ours) => ("rm", paths),
        _ => return None,
    };
    if let Some(p) = paths.iter().find(|p| !root && !p.starts_with("/tmp/")) {
        let why = format!("{verb}: cannot {verb} '{p}': Permission denied\n");
        return Some(CommandOutcome::fail(1, why));
    }
    if verb == "rm" {
        let removed = sim.with_host(node, |h| {
            for p in paths {
                let dir = format!("{}/", p.trim_end_matches('/'));
                h.files.retain(|f, _| f != p && !f.starts_with(&dir));
            }
        });
        if let Err(e) = removed {
            return Some(CommandOutcome::fail(255, format!("{e}\n")));
        }
    }
    Some(CommandOutcome::ok(""))
}
