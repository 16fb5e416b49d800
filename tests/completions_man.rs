//! `completions` and `man`: generated from the same clap definitions as
//! the commands themselves, printed to stdout without a cluster.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::*;

fn run(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn bash_completions_are_valid_bash_and_know_the_subcommands() {
    if !require(
        "bash_completions_are_valid_bash_and_know_the_subcommands",
        &["bash"],
    ) {
        return;
    }
    let script = run(&["completions", "bash"]);
    for word in [
        "upgrade",
        "watch",
        "check-plan",
        "--kubeconfig",
        "--no-bell",
    ] {
        assert!(script.contains(word), "{word} missing from the bash script");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("k3s-cockpit.bash");
    std::fs::write(&file, &script).unwrap();
    let check = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(
        check.status.success(),
        "bash -n rejects the script: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    // Sourced, it registers the completion function for the command.
    let sourced = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && complete -p k3s-cockpit",
            file.display()
        ))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&sourced.stdout).contains("k3s-cockpit"),
        "no completion registered: {}",
        String::from_utf8_lossy(&sourced.stderr)
    );
}

#[test]
fn zsh_and_fish_completions_name_the_subcommands() {
    for shell in ["zsh", "fish"] {
        let script = run(&["completions", shell]);
        assert!(!script.trim().is_empty(), "{shell}: empty");
        assert!(script.contains("upgrade"), "{shell}: no upgrade:\n{script}");
        assert!(script.contains("status"), "{shell}: no status");
    }
    let bad = Command::new(BIN)
        .args(["completions", "cmd.exe"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "an unknown shell is bad input");
}

#[test]
fn man_prints_a_roff_page() {
    let page = run(&["man"]);
    // clap_mangen opens with the standard two-line definition of the
    // apostrophe string (`.ie \n(.g .ds Aq \(aq` / `.el .ds Aq '`), which
    // `\*(Aq` in the text needs; the page itself starts at `.TH`.
    let mut lines = page
        .lines()
        .skip_while(|l| l.starts_with(".ie ") || l.starts_with(".el "));
    let first = lines.next().unwrap_or_default();
    assert!(
        first.starts_with(".TH k3s-cockpit 1"),
        "{}",
        &page[..page.len().min(300)]
    );
    assert!(
        page.lines().take(2).all(|l| l.starts_with('.')),
        "only requests before .TH"
    );
    assert!(page.contains("k3s\\-cockpit"), "names the command");
    assert!(page.contains("upgrade"), "lists the subcommands");
}

#[test]
fn man_page_renders_with_nroff() {
    if !require("man_page_renders_with_nroff", &["nroff"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("k3s-cockpit.1");
    std::fs::write(&file, run(&["man"])).unwrap();
    let out = Command::new("nroff")
        .args(["-man", "-ww"])
        .arg(&file)
        .output()
        .unwrap();
    // Bold and underline come as overstrikes (`N\x08N`): drop them.
    let raw = String::from_utf8_lossy(&out.stdout);
    let mut text = String::new();
    for c in raw.chars() {
        if c == '\x08' {
            text.pop();
        } else {
            text.push(c);
        }
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("NAME"), "{text}");
    assert!(
        text.contains("Watch and drive rolling K3s upgrades"),
        "{text}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).trim().is_empty(),
        "nroff warns: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
