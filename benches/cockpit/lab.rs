//! The lab as a child process (`k3s-cockpit lab`), like an operator runs it,
//! and what it records (`--commit-log`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{BIN, Result};

pub struct LabProc {
    child: Child,
    pub kubeconfig: PathBuf,
    pub commit_log: Option<PathBuf>,
    /// The upgrade plan the lab wrote (`--plan-out`).
    pub plan: Option<PathBuf>,
    /// From spawn to serving.
    pub startup: Duration,
}

impl Drop for LabProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct LabSpec<'a> {
    /// A scenario's TOML text, or a built-in name when `builtin`.
    pub scenario: &'a str,
    pub builtin: bool,
    pub nodes: Option<usize>,
    pub commit_log: bool,
    /// Also write an upgrade plan for the lab's nodes (control mode).
    pub plan_out: bool,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl LabProc {
    pub fn start(dir: &Path, spec: &LabSpec) -> Result<LabProc> {
        let scenario = if spec.builtin {
            spec.scenario.to_string()
        } else {
            let path = dir.join("scenario.toml");
            std::fs::write(&path, spec.scenario)?;
            path.display().to_string()
        };
        let kubeconfig = dir.join("lab.kubeconfig");
        let _ = std::fs::remove_file(&kubeconfig);
        let port = free_port()?;
        let mut cmd = Command::new(BIN);
        cmd.args(["lab", "--scenario", &scenario])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--kubeconfig-out")
            .arg(&kubeconfig)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("lab.stderr"))?);
        if let Some(n) = spec.nodes {
            cmd.args(["--nodes", &n.to_string()]);
        }
        let commit_log = spec.commit_log.then(|| dir.join("commits.log"));
        if let Some(p) = &commit_log {
            cmd.arg("--commit-log").arg(p);
        }
        let plan = spec.plan_out.then(|| dir.join("plan.toml"));
        if let Some(p) = &plan {
            let _ = std::fs::remove_file(p);
            cmd.arg("--plan-out").arg(p);
        }
        let started = Instant::now();
        let child = cmd.spawn()?;
        let mut lab = LabProc {
            child,
            kubeconfig,
            commit_log,
            plan,
            startup: Duration::ZERO,
        };
        while started.elapsed() < Duration::from_secs(60) {
            if lab.kubeconfig.exists()
                && lab.plan.as_ref().is_none_or(|p| p.exists())
                && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            {
                lab.startup = started.elapsed();
                return Ok(lab);
            }
            if let Ok(Some(status)) = lab.child.try_wait() {
                return Err(format!(
                    "lab exited ({status}); see {}",
                    dir.join("lab.stderr").display()
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err("lab did not start within 60 s".into())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Commit instants (Unix ns) by resourceVersion, and the last commit
    /// per object (`Kind namespace/name`).
    pub fn commits(&self) -> Result<Commits> {
        let path = self.commit_log.as_ref().ok_or("no commit log")?;
        let text = std::fs::read_to_string(path)?;
        let mut by_rv = HashMap::new();
        let mut last = HashMap::new();
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if let [rv, ns, kind, object, _type] = f.as_slice() {
                let (rv, ns): (u64, u128) = (rv.parse()?, ns.parse()?);
                by_rv.insert(rv, ns);
                last.insert(format!("{kind} {object}"), ns);
            }
        }
        Ok(Commits { by_rv, last })
    }
}

pub struct Commits {
    pub by_rv: HashMap<u64, u128>,
    pub last: HashMap<String, u128>,
}
