//! k3s-cockpit: watch and drive rolling K3s upgrades from the terminal.
//!
//! The crate is split so that pure logic (model, upgrade engine) never does I/O,
//! and the edges (cluster, remote, lab, tui) turn I/O into messages.

pub mod cli;
pub mod clock;
pub mod cluster;
pub mod durations;
pub mod lab;
pub mod logging;
pub mod model;
pub mod paths;
pub mod probe;
pub mod remote;
pub mod report;
pub mod rollout;
pub mod status_file;
pub mod text;
pub mod tui;
pub mod upgrade;
