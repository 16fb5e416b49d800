//! The cockpit's commands without a terminal: refused before anything
//! starts, with nothing written to stdout and nothing left behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};

use common::BIN;

#[test]
fn cockpit_commands_refuse_a_pipe_and_write_nothing() {
    for args in [
        vec!["watch", "--kubeconfig", "/nonexistent"],
        vec!["demo"],
        vec!["upgrade", "--plan", "/nonexistent.toml"],
    ] {
        let state = tempfile::tempdir().unwrap();
        let out = Command::new(BIN)
            .args(&args)
            .env("XDG_STATE_HOME", state.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("needs a terminal"), "{args:?}: {err}");
        assert!(
            out.stdout.is_empty(),
            "{args:?} wrote to stdout: {:?}",
            out.stdout
        );
        let left: Vec<_> = std::fs::read_dir(state.path()).unwrap().collect();
        assert!(left.is_empty(), "{args:?} left files behind: {left:?}");
    }
}
