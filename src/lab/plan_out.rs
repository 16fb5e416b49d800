//! `lab --plan-out`: an upgrade plan for the running lab, so that
//! `k3s-cockpit upgrade --plan PATH --kubeconfig LAB` works with no editing.
//! Nodes are reached over the lab's SSH endpoints, one through the
//! simulated Proxmox host as the post-mortem's automation did.

use std::fmt::Write;
use std::time::Duration;

use super::scenario::Scenario;
use super::shell::SshEndpoints;

/// Soak after each node and for the canary, in cluster time (compressed by
/// the scenario's time scale like every lab duration): long enough to see
/// the incident's delayed kubelet failures (140 s and 150 s after the
/// upgrade, caught one renewal later), which the old 30 s wait missed.
const SOAK: Duration = Duration::from_secs(200);
const CANARY_SOAK: Duration = Duration::from_secs(240);
/// The whole cluster watched after the last node, before "done". Shorter
/// than a real maintenance window's 10 minutes, so that the demo ends.
const FINAL_SOAK: Duration = Duration::from_secs(120);
/// How long probes must stay green after a handoff moved the IPs.
const HANDOFF_SETTLE: Duration = Duration::from_secs(10);

fn toml_str(s: &str) -> String {
    // TOML basic strings share JSON's escapes for what paths contain.
    serde_json::Value::String(s.to_string()).to_string()
}

fn scaled(d: Duration, scale: f64) -> String {
    let ms = (d.as_secs_f64() * 1000.0 / scale).round().max(1.0);
    format!("{ms}ms")
}

/// The plan's text. Target and hops come from the scenario's `[replay]`
/// versions (the post-mortem's path); without them the plan targets the
/// newest version already running, which leaves nothing to do.
pub fn plan_toml(scenario: &Scenario, ssh: &SshEndpoints) -> String {
    let versions: Vec<String> = match &scenario.replay {
        Some(r) if !r.versions.is_empty() => r.versions.clone(),
        _ => scenario
            .nodes
            .iter()
            .map(|n| n.version.clone())
            .max()
            .into_iter()
            .collect(),
    };
    let (target, hops) = versions
        .split_last()
        .map_or((String::new(), &[][..]), |(t, h)| (t.clone(), h));
    let proxmox_node = ssh
        .proxmox
        .and_then(|_| scenario.nodes.iter().rev().find(|n| n.vmid.is_some()));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Upgrade plan for the k3s-cockpit lab (scenario {}), written by `k3s-cockpit lab --plan-out`.\n\
         # Run it:  k3s-cockpit upgrade --plan THIS_FILE --kubeconfig LAB_KUBECONFIG\n\
         # Every field is documented in assets/plans/example.toml.",
        scenario.name
    );
    let _ = writeln!(out, "target = {}", toml_str(&target));
    let hops: Vec<String> = hops.iter().map(|h| toml_str(h)).collect();
    let _ = writeln!(out, "hops = [{}]", hops.join(", "));
    // No datastore line: check-plan detects it from the nodes.
    let _ = writeln!(out, "order = \"servers-first\"\n");
    let _ = writeln!(
        out,
        "[transport]\nkind = \"ssh\"\nhost = \"127.0.0.1\"\nuser = \"root\""
    );
    let _ = writeln!(
        out,
        "key = {}",
        toml_str(&ssh.keys.client_key_path.display().to_string())
    );
    let _ = writeln!(
        out,
        "known_hosts = {}\naccept_unknown_host_keys = false",
        toml_str(&ssh.keys.known_hosts_path.display().to_string())
    );
    for (node, addr) in &ssh.nodes {
        let _ = writeln!(out, "\n[node.{}.transport]", toml_str(node));
        match (proxmox_node, ssh.proxmox) {
            (Some(p), Some(pve)) if &p.name == node => {
                let _ = writeln!(
                    out,
                    "# Reached like the post-mortem's automation: SSH to the Proxmox host, then qm guest exec.\n\
                     kind = \"proxmox\"\nport = {}\nvmid = {}",
                    pve.port(),
                    p.vmid.unwrap_or_default()
                );
            }
            _ => {
                let _ = writeln!(out, "port = {}", addr.port());
            }
        }
    }
    let scale = scenario.time_scale;
    let _ = writeln!(
        out,
        "\n[timings]\n# Cluster time compressed {scale}x like the lab's.\nsoak = \"{}\"\ncanary_soak = \"{}\"\nfinal_soak = \"{}\"\nhandoff_settle = \"{}\"\ndrain_timeout = \"1m\"\ninstall_timeout = \"2m\"\ncommand_timeout = \"1m\"\nrestart_timeout = \"2m\"\nversion_timeout = \"2m\"\nready_timeout = \"2m\"",
        scaled(SOAK, scale),
        scaled(CANARY_SOAK, scale),
        scaled(FINAL_SOAK, scale),
        scaled(HANDOFF_SETTLE, scale)
    );
    let services: Vec<String> = scenario
        .services
        .iter()
        .map(|s| toml_str(&format!("{}/{}", s.namespace, s.name)))
        .collect();
    let _ = writeln!(out, "\n[gates]\nservices = [{}]", services.join(", "));
    out
}
