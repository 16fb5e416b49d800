//! Resolution of a plan against the cluster's nodes, one named step at a
//! time: which nodes, their order, the version path, the nodes left out,
//! each node's transport and commands, and the gates.

use super::*;
use crate::upgrade::method;

/// Combines a plan with the cluster's nodes: which nodes, in which order,
/// through which versions, with which commands and transports.
pub fn resolve(plan: &Plan, cluster_nodes: &[ClusterNode]) -> Result<ResolvedPlan, PlanError> {
    let mut cluster: Vec<&ClusterNode> = cluster_nodes.iter().collect();
    cluster.sort_by(|a, b| a.name.cmp(&b.name));
    let target = plan
        .target()
        .ok_or_else(|| plan.error_at(None, "the plan has no target"))?;
    let order = plan
        .order
        .as_ref()
        .map_or(Order::default(), |o| *o.get_ref());
    let included = included_nodes(plan, &cluster)?;
    let ordered = ordered_nodes(plan, order, &included)?;
    check_overrides(plan, &cluster)?;
    let path = resolve_path(plan, &cluster, &target)?;
    let excluded = excluded_nodes(plan, &cluster, &ordered, &target)?;
    let nodes = ordered
        .iter()
        .map(|n| resolve_node(plan, n, &path))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ResolvedPlan {
        origin: plan.origin.clone(),
        target,
        channel: plan.channel.as_ref().map(|c| c.get_ref().clone()),
        path,
        order,
        datastore: resolve_datastore(plan, &cluster)?,
        method: plan.method,
        release: release(plan).to_string(),
        artifacts: plan.artifacts.as_ref().map(|a| a.get_ref().clone()),
        agent_hops: plan.agent_hops,
        nodes,
        excluded,
        timings: plan.timings.clone(),
        gates: resolve_gates(plan),
        handoff: plan.handoff,
        drain: plan.drain.clone(),
    })
}

/// Where the binary method takes the release from: the staging directory
/// on the node when artifacts are copied there, else the plan's release.
fn release(plan: &Plan) -> &str {
    match (&plan.artifacts, &plan.release) {
        (Some(_), _) => method::ARTIFACTS_STAGE,
        (None, Some(r)) => r.get_ref().as_str(),
        (None, None) => method::GITHUB_RELEASES,
    }
}

/// The cluster node called `name`, if any.
fn find<'a>(cluster: &[&'a ClusterNode], name: &str) -> Option<&'a ClusterNode> {
    cluster.iter().copied().find(|n| n.name == name)
}

/// The nodes the plan lists, in its order, or the whole cluster by name.
fn included_nodes<'a>(
    plan: &Plan,
    cluster: &[&'a ClusterNode],
) -> Result<Vec<&'a ClusterNode>, PlanError> {
    let Some(names) = &plan.nodes else {
        return Ok(cluster.to_vec());
    };
    let mut list = Vec::new();
    for name in names {
        let node = find(cluster, name.get_ref()).ok_or_else(|| {
            plan.error_at(
                Some(name.span()),
                format!(
                    "node {:?} is not in the cluster (nodes: {})",
                    name.get_ref(),
                    cluster
                        .iter()
                        .map(|n| n.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
        list.push(node);
    }
    Ok(list)
}

/// The rollout order. An explicit order is kept as written but may not put
/// an agent before a server: a kubelet must never be newer than the API server.
fn ordered_nodes<'a>(
    plan: &Plan,
    order: Order,
    included: &[&'a ClusterNode],
) -> Result<Vec<&'a ClusterNode>, PlanError> {
    match order {
        Order::ServersFirst => {
            let mut list = included.to_vec();
            list.sort_by(|a, b| (a.role, &a.name).cmp(&(b.role, &b.name)));
            Ok(list)
        }
        Order::Explicit => {
            if let Some(pos) = included.iter().position(|n| n.role == Role::Agent)
                && let Some(server) = included[pos..].iter().find(|n| n.role == Role::Server)
            {
                let span = plan.order.as_ref().map(|o| o.span());
                return Err(plan.error_at(
                    span,
                    format!(
                        "explicit order puts agent {} before server {}: a kubelet must never be newer than the API server",
                        included[pos].name, server.name
                    ),
                ));
            }
            Ok(included.to_vec())
        }
    }
}

/// Every `[node.NAME]` section must name a node of the cluster.
fn check_overrides(plan: &Plan, cluster: &[&ClusterNode]) -> Result<(), PlanError> {
    for (name, over) in &plan.node {
        if find(cluster, name).is_none() {
            return Err(plan.error_at(
                Some(over.span()),
                format!("[node.{name}]: no node {name:?} in the cluster"),
            ));
        }
    }
    Ok(())
}

/// The version path, judged on the cluster's servers (API servers must be
/// within one minor of each other and may not skip one), excluded ones
/// included; agents are checked against the kubelet skew policy.
fn resolve_path(
    plan: &Plan,
    cluster: &[&ClusterNode],
    target: &K3sVersion,
) -> Result<Vec<K3sVersion>, PlanError> {
    let servers: Vec<&ClusterNode> = cluster
        .iter()
        .copied()
        .filter(|n| n.role == Role::Server)
        .collect();
    let judged = if servers.is_empty() {
        cluster
    } else {
        &servers[..]
    };
    let versions: Vec<K3sVersion> = judged.iter().map(|n| n.version.clone()).collect();
    let hops: Vec<K3sVersion> = match &plan.target {
        Some(_) => plan.hops.iter().map(|h| h.get_ref().clone()).collect(),
        None => plan
            .hops
            .iter()
            .map(|h| h.get_ref().clone())
            .filter(|h| h != target)
            .collect(),
    };
    let mut path =
        version_path(&versions, target, &hops).map_err(|e| path_error(plan, cluster, e))?;
    check_agent_skew(plan, cluster, target)?;
    if path.is_empty() && cluster.iter().any(|n| n.version < *target) {
        path.push(target.clone());
    }
    Ok(path)
}

/// What the cluster shows about its datastore, with the evidence: an
/// external one in a server's `--datastore-endpoint`, embedded etcd in the
/// etcd role label, SQLite on a single server without it.
pub fn detect_datastore(cluster: &[&ClusterNode]) -> Option<(Datastore, String)> {
    let servers: Vec<&&ClusterNode> = cluster.iter().filter(|n| n.role == Role::Server).collect();
    let external = servers.iter().find(|n| {
        n.node_args
            .iter()
            .flatten()
            .any(|a| a == "--datastore-endpoint" || a.starts_with("--datastore-endpoint="))
    });
    if let Some(n) = external {
        return Some((
            Datastore::External,
            format!("server {} runs with --datastore-endpoint", n.name),
        ));
    }
    if let Some(n) = cluster.iter().find(|n| n.etcd) {
        return Some((
            Datastore::Etcd,
            format!("{} carries node-role.kubernetes.io/etcd", n.name),
        ));
    }
    match servers.as_slice() {
        [only] => Some((
            Datastore::Sqlite,
            format!("the only server, {}, is no etcd member", only.name),
        )),
        _ => None,
    }
}

/// The plan's datastore must be the one the cluster shows; absent, the
/// detected one (embedded etcd when nothing shows).
fn resolve_datastore(plan: &Plan, cluster: &[&ClusterNode]) -> Result<Datastore, PlanError> {
    let detected = detect_datastore(cluster);
    let name = |d: Datastore| match d {
        Datastore::Etcd => "etcd",
        Datastore::Sqlite => "sqlite",
        Datastore::External => "external",
    };
    match (&plan.datastore, detected) {
        (Some(said), Some((seen, why))) if *said.get_ref() != seen => Err(plan.error_at(
            Some(said.span()),
            format!(
                "datastore = \"{}\" but the cluster's datastore is {}: {why}; set datastore = \"{}\" or leave it out",
                name(*said.get_ref()),
                name(seen),
                name(seen)
            ),
        )),
        (Some(said), _) => Ok(*said.get_ref()),
        (None, Some((seen, _))) => Ok(seen),
        (None, None) => Ok(Datastore::Etcd),
    }
}

/// Kubernetes' version skew policy: a kubelet may be up to three minor
/// versions older than the API server (two before v1.25), never newer
/// (kubernetes.io/docs/setup/version-skew-policy). Agents move after the
/// servers, so each must be within that range of the target.
fn check_agent_skew(
    plan: &Plan,
    cluster: &[&ClusterNode],
    target: &K3sVersion,
) -> Result<(), PlanError> {
    let span = plan.target.as_ref().map(|t| t.span());
    for a in cluster.iter().filter(|n| n.role == Role::Agent) {
        let allowed = if a.version.minor < 25 { 2 } else { 3 };
        if a.version > *target {
            return Err(plan.error_at(
                span,
                format!("agent {} runs {}, newer than the target {target}: a kubelet must not be newer than the API server", a.name, a.version),
            ));
        }
        if a.version.major != target.major || target.minor - a.version.minor > allowed {
            return Err(plan.error_at(
                span,
                format!(
                    "agent {} runs {}: its kubelet would be more than {allowed} minor versions older than the API servers on {target} (Kubernetes version skew policy); upgrade it to v1.{}.x first",
                    a.name,
                    a.version,
                    target.minor - allowed
                ),
            ));
        }
    }
    Ok(())
}

/// A path error pointed at the hop or target it is about, naming the nodes
/// on the offending version.
fn path_error(plan: &Plan, cluster: &[&ClusterNode], e: PathError) -> PlanError {
    let span = match &e {
        PathError::BadHop { hop, .. } => plan
            .hops
            .iter()
            .find(|h| h.get_ref() == hop)
            .map(|h| h.span()),
        _ => plan
            .target
            .as_ref()
            .map(|t| t.span())
            .or_else(|| plan.channel.as_ref().map(|c| c.span())),
    };
    let mut message = e.to_string();
    if let PathError::Downgrade { current, .. }
    | PathError::Skew {
        oldest: current, ..
    } = &e
    {
        let names: Vec<&str> = cluster
            .iter()
            .filter(|n| n.version == *current)
            .map(|n| n.name.as_str())
            .collect();
        message.push_str(&format!(" [{current} on {}]", names.join(", ")));
    }
    plan.error_at(span, message)
}

/// Cluster nodes the plan leaves out. A server may not be left where it
/// would end more than one minor version behind the target.
fn excluded_nodes(
    plan: &Plan,
    cluster: &[&ClusterNode],
    ordered: &[&ClusterNode],
    target: &K3sVersion,
) -> Result<Vec<String>, PlanError> {
    let excluded: Vec<String> = cluster
        .iter()
        .filter(|n| !ordered.iter().any(|o| o.name == n.name))
        .map(|n| n.name.clone())
        .collect();
    for name in &excluded {
        if let Some(n) = find(cluster, name)
            && n.role == Role::Server
            && n.version.minor + 1 < target.minor
        {
            return Err(plan.error_at(
                plan.nodes.as_ref().and_then(|l| l.first()).map(|s| s.span()),
                format!(
                    "server {name} ({}) is not in nodes but would end more than one minor version behind {target}",
                    n.version
                ),
            ));
        }
    }
    Ok(excluded)
}

/// One node's hops, transport (the plan's, overlaid by its `[node.NAME]`)
/// and rendered commands.
fn resolve_node(
    plan: &Plan,
    n: &ClusterNode,
    path: &[K3sVersion],
) -> Result<ResolvedNode, PlanError> {
    let over = plan.node.get(&n.name).map(|o| o.get_ref());
    let spec = match over.and_then(|o| o.transport.as_ref()) {
        Some(t) => plan.transport.overlay(t),
        None => plan.transport.clone(),
    };
    let span = plan.node.get(&n.name).map(|o| o.span());
    let transport = resolve_transport(plan, &n.name, &spec, span)?;
    let over_commands = over.and_then(|o| o.commands.as_ref());
    let install = resolve_install(plan, over_commands, n)?;
    // The binary method kept every binary it replaced, by version: going
    // back puts the one of the wanted version in place. An install script
    // or the operator's own install is run again.
    let reinstate = (plan.method == Method::Binary && install.is_some())
        .then(|| method::reinstate_script(method::K3S_BIN));
    let mut commands = resolve_commands(&plan.commands, over_commands, n, install);
    commands.reinstate = reinstate;
    // Agents go after every server: to the target, or through each hop.
    let hops = match n.role {
        Role::Agent => plan.agent_hops.versions(path, &n.version),
        Role::Server => path.iter().filter(|h| n.version < **h).cloned().collect(),
    };
    let escalate = resolve_become(plan, &spec)?;
    check_artifacts_reach(plan, &n.name, &transport)?;
    Ok(ResolvedNode {
        escalate,
        name: n.name.clone(),
        role: n.role,
        version: n.version.clone(),
        hops,
        transport,
        commands,
    })
}

/// Artifacts are streamed over SSH; `qm guest exec` cannot carry them.
fn check_artifacts_reach(plan: &Plan, node: &str, transport: &Transport) -> Result<(), PlanError> {
    match (&plan.artifacts, transport) {
        (Some(dir), Transport::Proxmox { vmid, .. }) => Err(plan.error_at(
            Some(dir.span()),
            format!(
                "node {node}: artifacts cannot be copied to VM {vmid} through its Proxmox host: {}; stage the release on the VM and set release to that directory instead",
                crate::remote::proxmox::NO_STDIN_STREAM
            ),
        )),
        _ => Ok(()),
    }
}

/// `become` must not wait for a password: there is no terminal to type it.
fn resolve_become(plan: &Plan, spec: &TransportSpec) -> Result<Option<String>, PlanError> {
    let Some(b) = &spec.escalate else {
        return Ok(None);
    };
    let words: Vec<&str> = b.get_ref().split_whitespace().collect();
    match words.as_slice() {
        [] => Err(plan.error_at(Some(b.span()), "become must not be empty (e.g. \"sudo -n\")")),
        ["sudo", rest @ ..] if !rest.contains(&"-n") => Err(plan.error_at(
            Some(b.span()),
            "become = \"sudo\" would wait for a password no one can type: use \"sudo -n\" with NOPASSWD for this user",
        )),
        _ => Ok(Some(words.join(" "))),
    }
}

/// Gated services: the listed ones, then any service probed but not listed.
fn resolve_gates(plan: &Plan) -> ResolvedGates {
    let mut services: Vec<String> = plan
        .gates
        .services
        .iter()
        .map(|s| s.get_ref().clone())
        .collect();
    for p in &plan.gates.probes {
        if !services.contains(p.service.get_ref()) {
            services.push(p.service.get_ref().clone());
        }
    }
    let probes = plan
        .gates
        .probes
        .iter()
        .map(|p| Probe {
            service: p.service.get_ref().clone(),
            port: p.port,
            http: (p.kind == ProbeKind::Http).then(|| HttpProbe {
                path: p
                    .path
                    .as_ref()
                    .map_or("/".to_string(), |s| s.get_ref().clone()),
                expect_status: p.expect_status.as_ref().map_or(200, |s| *s.get_ref()),
            }),
        })
        .collect();
    ResolvedGates {
        services,
        probes,
        global_gate: plan.gates.global_gate,
        probe_failures: plan
            .gates
            .probe_failures
            .as_ref()
            .map_or(crate::model::probe::DEFAULT_FAILURES, |n| *n.get_ref()),
        missed_renewals: plan
            .gates
            .missed_renewals
            .as_ref()
            .map_or(crate::model::health::DEFAULT_MISSED_RENEWALS, |n| {
                *n.get_ref()
            }),
    }
}

fn resolve_transport(
    plan: &Plan,
    node: &str,
    spec: &TransportSpec,
    span: Option<Range<usize>>,
) -> Result<Transport, PlanError> {
    let ssh = SshTarget {
        host: spec.host.clone().unwrap_or_else(|| node.to_string()),
        port: spec.port.unwrap_or(22),
        user: spec.user.clone().unwrap_or_else(|| "root".to_string()),
        key: spec.key.clone(),
        known_hosts: spec.known_hosts.clone(),
        accept_unknown_host_keys: spec.accept_unknown_host_keys.unwrap_or(false),
    };
    match spec.kind.unwrap_or(TransportKind::Ssh) {
        TransportKind::Ssh => {
            if let Some(vmid) = &spec.vmid {
                return Err(plan.error_at(
                    Some(vmid.span()),
                    format!("node {node}: vmid is only for kind = \"proxmox\""),
                ));
            }
            Ok(Transport::Ssh(ssh))
        }
        TransportKind::Proxmox => match &spec.vmid {
            Some(vmid) => Ok(Transport::Proxmox {
                host: ssh,
                vmid: *vmid.get_ref(),
            }),
            None => Err(plan.error_at(
                span,
                format!(
                    "node {node}: kind = \"proxmox\" needs the VM id: add vmid under [node.{node}.transport]"
                ),
            )),
        },
    }
}

/// The install template: the operator's own, or the plan's method. The
/// install-script method needs the node's arguments to give them back.
fn resolve_install(
    plan: &Plan,
    over: Option<&CommandsSpec>,
    node: &ClusterNode,
) -> Result<Option<String>, PlanError> {
    if over.and_then(|o| o.install.as_ref()).is_some() || plan.commands.install.is_some() {
        return Ok(None);
    }
    match plan.method {
        Method::Binary => Ok(Some(method::binary_script(release(plan), method::K3S_BIN))),
        Method::InstallScript => {
            let why = match &node.node_args {
                None => Some(
                    "it has no k3s.io/node-args annotation to rebuild its arguments from"
                        .to_string(),
                ),
                Some(args) => method::unrebuildable(args),
            };
            match (why, &node.node_args) {
                (None, Some(args)) => Ok(Some(method::install_script_command(node.role.service(), args))),
                (why, _) => Err(plan.error_at(
                    None,
                    format!(
                        "method = \"install-script\" cannot keep node {}'s configuration: {}; use method = \"binary\" (the default), which never touches the unit",
                        node.name,
                        why.unwrap_or_default()
                    ),
                )),
            }
        }
    }
}

fn resolve_commands(
    defaults: &CommandsSpec,
    over: Option<&CommandsSpec>,
    node: &ClusterNode,
    method_install: Option<String>,
) -> NodeCommands {
    let pick = |get: fn(&CommandsSpec) -> &Option<Spanned<String>>, fallback: &str| -> String {
        let text = over
            .and_then(|o| get(o).as_ref())
            .or_else(|| get(defaults).as_ref())
            .map_or(fallback.to_string(), |s| s.get_ref().clone());
        template::render(
            &text,
            &[
                ("service", node.role.service()),
                ("role", node.role.as_str()),
                ("node", &node.name),
            ],
        )
    };
    NodeCommands {
        install: match method_install {
            Some(generated) => generated,
            None => pick(|c| &c.install, ""),
        },
        restart: pick(|c| &c.restart, DEFAULT_RESTART),
        version: pick(|c| &c.version, DEFAULT_VERSION),
        etcd_snapshot: pick(|c| &c.etcd_snapshot, DEFAULT_ETCD_SNAPSHOT),
        reinstate: None,
    }
}
