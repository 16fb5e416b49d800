//! Where the cockpit keeps its files: logs, session journals, the demo's lab.

use std::path::PathBuf;

/// `$XDG_STATE_HOME/k3s-cockpit` (or `~/.local/state/k3s-cockpit`).
pub fn state_dir() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("k3s-cockpit")
}

/// Where running cockpits keep their state for `k3s-cockpit status`.
pub fn status_dir() -> PathBuf {
    state_dir().join("status")
}
