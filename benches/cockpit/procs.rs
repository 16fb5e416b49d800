//! The programs under test, started like an operator would: the cockpit
//! (`k3s-cockpit watch` with the frame log on), kdash and `kubectl get -w`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::lab::LabProc;
use crate::observe::Observed;
use crate::pty::{self, Pty};
use crate::{BIN, Result, now_ns};

pub const COLS: u16 = 120;
pub const ROWS: u16 = 40;

pub struct Cockpit {
    pub pty: Pty,
    pub frame_log: PathBuf,
    pub log: PathBuf,
    pub spawned_ns: u128,
}

impl Cockpit {
    /// `k3s-cockpit watch` on the lab.
    pub fn start(dir: &Path, lab: &LabProc, name: &str, rows: u16) -> Result<Cockpit> {
        let args = [
            OsStr::new("watch"),
            OsStr::new("--kubeconfig"),
            lab.kubeconfig.as_os_str(),
        ];
        Cockpit::spawn(dir, name, rows, &args)
    }

    /// Control mode: `k3s-cockpit upgrade --plan` on the lab's own plan.
    pub fn start_control(dir: &Path, lab: &LabProc, name: &str, rows: u16) -> Result<Cockpit> {
        let plan = lab.plan.as_ref().ok_or("the lab wrote no plan")?;
        let args = [
            OsStr::new("upgrade"),
            OsStr::new("--plan"),
            plan.as_os_str(),
            OsStr::new("--kubeconfig"),
            lab.kubeconfig.as_os_str(),
        ];
        Cockpit::spawn(dir, name, rows, &args)
    }

    /// The binary on a PTY with `args` after the global options, the frame
    /// log on.
    fn spawn(dir: &Path, name: &str, rows: u16, args: &[&OsStr]) -> Result<Cockpit> {
        let frame_log = dir.join(format!("frames-{name}.log"));
        let log = dir.join(format!("cockpit-{name}.log"));
        let mut cmd = Command::new(BIN);
        cmd.arg("--log-file")
            .arg(&log)
            .args(args)
            .env("K3S_COCKPIT_FRAME_LOG", &frame_log)
            .env("HOME", dir)
            .env_remove("NO_COLOR")
            .env_remove("K3S_COCKPIT_LOG_LEVEL");
        let spawned_ns = now_ns();
        let pty = Pty::spawn(&mut cmd, COLS, rows)?;
        Ok(Cockpit {
            pty,
            frame_log,
            log,
            spawned_ns,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pty.pid()
    }

    pub fn quit(self) {
        self.pty.quit("q", Duration::from_secs(3));
    }

    pub fn frames(&self) -> Result<Vec<Frame>> {
        let text = std::fs::read_to_string(&self.frame_log)?;
        let mut frames = Vec::new();
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if let ["frame", _seq, start, render, draw, reason] = f.as_slice() {
                frames.push(Frame {
                    start_ns: start.parse()?,
                    render_ns: render.parse()?,
                    draw_ns: draw.parse()?,
                    reason: reason.to_string(),
                });
            }
        }
        Ok(frames)
    }

    /// `(instant, node)` of every "heartbeat LATE" the model logged.
    pub fn late_flags(&self) -> Result<Vec<(u128, String)>> {
        let text = std::fs::read_to_string(&self.log)?;
        let mut out = Vec::new();
        for line in text.lines() {
            let Some((head, _)) = line.split_once(": heartbeat LATE") else {
                continue;
            };
            let Some(ts) = head.split_whitespace().next() else {
                continue;
            };
            let Some(node) = head.rsplit(' ').next() else {
                continue;
            };
            let at: jiff::Timestamp = ts.parse()?;
            out.push((u128::try_from(at.as_nanosecond())?, node.to_string()));
        }
        Ok(out)
    }
}

#[derive(Debug, Clone)]
pub struct Frame {
    pub start_ns: u128,
    pub render_ns: u128,
    pub draw_ns: u128,
    pub reason: String,
}

/// A node's row in the cockpit's table: (READY word, HEARTBEAT cell).
pub fn node_row(screen: &vt100::Screen, node: &str) -> Option<(String, String)> {
    let row = pty::row_starting(screen, node)?;
    let cells = pty::cells(&row);
    let i = cells
        .iter()
        .position(|w| matches!(*w, "Ready" | "NotReady" | "Unknown" | "?"))?;
    let ready = cells[i].to_string();
    // READY is "word age"; HEARTBEAT follows ("12s", "12s LATE" or "-").
    let hb = cells.get(i + 2..).unwrap_or_default();
    let hb = hb
        .iter()
        .take_while(|w| w.ends_with('s') || matches!(**w, "LATE" | "EXPIRED" | "-"))
        .take(2)
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    Some((ready, hb))
}

/// The node announcing `service` (`namespace/name`) in the services panel.
pub fn announcer(screen: &vt100::Screen, service: &str) -> Option<String> {
    let row = pty::row_starting(screen, service)?;
    pty::cells(&row).get(2).map(|s| s.to_string())
}

/// kdash on its own terminal, configured by KUBECONFIG like a user would;
/// returns it and the seconds until its Nodes tab counted `nodes`.
pub fn start_kdash(kdash: &Path, dir: &Path, lab: &LabProc, nodes: usize) -> Result<(Pty, f64)> {
    let home = dir.join("kdash-home");
    std::fs::create_dir_all(&home)?;
    let mut cmd = Command::new(kdash);
    cmd.env("KUBECONFIG", &lab.kubeconfig)
        .env("HOME", &home)
        .current_dir(&home);
    let spawned = now_ns();
    let mut pty = Pty::spawn(&mut cmd, COLS, ROWS)?;
    let tab = format!("Nodes [{nodes}]");
    let counted = pty
        .screen
        .expect(move |p| p.screen().contents().contains(&tab))
        .ok_or("kdash showed the nodes before it started")?;
    std::thread::sleep(Duration::from_secs(1));
    if let Ok(Some(status)) = pty.child.try_wait() {
        return Err(format!("kdash exited ({status}); its screen:\n{}", pty.contents()).into());
    }
    let shown = counted.wait(Duration::from_secs(120)).ok_or_else(|| {
        format!(
            "kdash never showed {nodes} nodes; its screen:\n{}",
            pty.contents()
        )
    })?;
    Ok((pty, (shown as f64 - spawned as f64) / 1e9))
}

/// `kubectl get nodes -w` on a terminal, as an operator runs it: its
/// output lines, as they arrive.
pub struct KubectlWatch {
    pty: Pty,
}

impl KubectlWatch {
    pub fn start(kubectl: &Path, dir: &Path, lab: &LabProc) -> Result<KubectlWatch> {
        let home = dir.join("kubectl-home");
        std::fs::create_dir_all(&home)?;
        let mut cmd = Command::new(kubectl);
        cmd.env("HOME", &home)
            .arg("--kubeconfig")
            .arg(&lab.kubeconfig)
            .args(["get", "nodes", "-w"]);
        Ok(KubectlWatch {
            pty: Pty::spawn(&mut cmd, COLS, ROWS)?,
        })
    }

    pub fn lines(&self) -> &Observed<String> {
        &self.pty.lines
    }

    pub fn pid(&self) -> u32 {
        self.pty.pid()
    }
}
