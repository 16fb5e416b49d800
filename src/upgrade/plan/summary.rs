//! The `check-plan` summary: a resolved plan written out for people, step
//! by step, with the exact commands each node will run.

use super::*;

fn fmt_path(path: &[K3sVersion]) -> String {
    path.iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(" -> ")
}

impl fmt::Display for ResolvedPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_overview(f)?;
        self.fmt_gates(f)?;
        self.fmt_nodes(f)
    }
}

impl ResolvedPlan {
    /// Target, version path, order and what happens to the datastore.
    fn fmt_overview(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "plan {}", self.origin)?;
        match &self.channel {
            Some(c) => writeln!(f, "target    {} (channel {c}, from hops)", self.target)?,
            None => writeln!(f, "target    {}", self.target)?,
        }
        if self.path.is_empty() {
            writeln!(f, "path      nothing to do: every node runs the target")?;
        } else {
            writeln!(f, "path      {}", fmt_path(&self.path))?;
        }
        let order = match self.order {
            Order::ServersFirst => "servers first, one node at a time, every server per version",
            Order::Explicit => "explicit, one node at a time, every server per version",
        };
        let agents = match self.agent_hops {
            AgentHops::Target => "straight to the target (agent_hops = \"target\")",
            AgentHops::Every => "through every hop (agent_hops = \"every\")",
        };
        writeln!(f, "order     {order}; then agents, {agents}")?;
        let method = match self.method {
            Method::Binary => {
                "binary: stage the release binary, verify its sha256, keep the old one, swap; unit, env file and config.yaml untouched"
            }
            Method::InstallScript => {
                "install-script: re-run the K3s install script with each node's own arguments (k3s.io/node-args), no start; the cockpit restarts once"
            }
        };
        writeln!(
            f,
            "method    {method} (the flag check compares k3s.io/node-args before and after each node)"
        )?;
        if let Some(dir) = &self.artifacts {
            writeln!(
                f,
                "release   airgap: each node's asset and sha256 list copied from {} (this machine) over SSH to {}, verified on the node",
                dir.display(),
                self.release
            )?;
        }
        match (self.datastore, self.snapshot_node()) {
            (Datastore::Etcd, Some(n)) => writeln!(
                f,
                "datastore etcd: snapshot on {} before the first server is touched",
                n.name
            )?,
            (Datastore::Etcd, None) => writeln!(f, "datastore etcd: no server to upgrade")?,
            (Datastore::Sqlite, _) => writeln!(
                f,
                "datastore sqlite: no snapshot taken; back up the server's database first"
            )?,
            (Datastore::External, _) => writeln!(
                f,
                "datastore external: no snapshot taken; back up the database first"
            )?,
        }
        Ok(())
    }

    /// Timings and what the gate judges.
    fn fmt_gates(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.timings;
        let d = crate::durations::format_signed;
        writeln!(
            f,
            "timings   drain {}, install {}, commands {}, version {}, ready {}, soak {}, canary soak {}, between nodes {}, heartbeat {}",
            d(t.drain_timeout),
            d(t.install_timeout),
            d(t.command_timeout),
            d(t.version_timeout),
            d(t.ready_timeout),
            d(t.soak),
            d(t.canary_soak),
            d(t.pause_between),
            t.max_heartbeat_age.map_or("from node lease".to_string(), d)
        )?;
        if self.gates.global_gate {
            writeln!(
                f,
                "gate      global: every node Ready with fresh heartbeats, services announced, probes green"
            )?;
        } else {
            writeln!(
                f,
                "gate      LEGACY: only the node being upgraded is checked (global_gate = false)"
            )?;
        }
        match self.handoff {
            crate::upgrade::engine::HandoffMode::Auto => writeln!(
                f,
                "handoff   auto: announced LoadBalancer IPs move off a node before its cordon (settle {}, timeout {})",
                d(t.handoff_settle),
                d(t.handoff_timeout)
            )?,
            crate::upgrade::engine::HandoffMode::Off => writeln!(
                f,
                "handoff   off: announcers are restarted in place (their IPs go dark)"
            )?,
        }
        if !self.gates.services.is_empty() {
            writeln!(f, "services  {}", self.gates.services.join(", "))?;
        }
        for p in &self.gates.probes {
            match &p.http {
                Some(h) => writeln!(
                    f,
                    "probe     http {} port {} path {} expect {}",
                    p.service, p.port, h.path, h.expect_status
                )?,
                None => writeln!(f, "probe     tcp {} port {}", p.service, p.port)?,
            }
        }
        if !self.excluded.is_empty() {
            writeln!(
                f,
                "excluded  {} (not upgraded, still gated)",
                self.excluded.join(", ")
            )?;
        }
        Ok(())
    }

    /// Each node with its commands, then the numbered steps.
    fn fmt_nodes(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "nodes")?;
        for (i, n) in self.nodes.iter().enumerate() {
            writeln!(
                f,
                "  {}. {} ({}) {} via {}",
                i + 1,
                n.name,
                n.role.as_str(),
                n.version,
                n.transport
            )?;
            if n.hops.is_empty() {
                writeln!(f, "       already at the target")?;
            }
            for hop in &n.hops {
                writeln!(f, "       {hop}: install  {}", n.install_command(hop))?;
            }
            if !n.hops.is_empty() {
                writeln!(f, "       then restart  {}", n.restart_command())?;
                writeln!(f, "       version check {}", n.version_command())?;
            }
        }
        if let Some(n) = self.snapshot_node() {
            writeln!(
                f,
                "snapshot  on {}: {}",
                n.name,
                n.snapshot_command("k3s-cockpit-<timestamp>")
            )?;
        }
        writeln!(f, "steps")?;
        let mut step = 0;
        for hop in &self.path {
            for n in self.nodes.iter().filter(|n| n.hops.contains(hop)) {
                step += 1;
                writeln!(
                    f,
                    "  {step:>3}. {hop} {}: cordon, drain, install, restart, wait version, wait Ready, soak, uncordon",
                    n.name
                )?;
            }
        }
        Ok(())
    }
}
