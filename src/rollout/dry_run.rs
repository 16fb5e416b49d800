//! `upgrade --dry-run`: the whole rollout played against a simulated,
//! perfectly healthy copy of the cluster on a virtual clock, printing every
//! phase and the exact commands that would be sent. Nothing is sent.

use jiff::{SignedDuration, Timestamp};

use super::executor::transport;
use crate::remote::redact_command;
use crate::upgrade::{
    Action, Command, Engine, Input, NodeObservation, Observation, ResolvedPlan, ServiceObservation,
};

/// Upper bound on simulated seconds (a day): a plan that never finishes is
/// reported instead of looping.
const MAX_SECONDS: i64 = 86_400;

pub fn simulate(plan: &ResolvedPlan, start: Timestamp) -> Vec<String> {
    let mut engine = Engine::new(plan.engine_config());
    let mut obs = Observation {
        nodes: plan
            .nodes
            .iter()
            .map(|n| NodeObservation::healthy(&n.name, &n.version.to_string()))
            .collect(),
        services: plan
            .gates
            .services
            .iter()
            .map(|s| ServiceObservation {
                name: s.clone(),
                announced_by: plan.nodes.first().map(|n| n.name.clone()),
                probe_ok: None,
                announcer_unknown: false,
            })
            .collect(),
        api_reachable: true,
    };
    let mut out = vec![format!("dry run of {}: nothing will be sent", plan.origin)];
    let mut now = start;
    let mut printed = 0;
    let mut queue: Vec<Action> = engine.step(Input::Observe(obs.clone()), now);
    queue.extend(engine.step(Input::Command(Command::Start), now));
    while now.duration_since(start) < SignedDuration::from_secs(MAX_SECONDS) {
        for e in &engine.events()[printed..] {
            let at = crate::durations::format_duration(
                std::time::Duration::try_from(e.at.duration_since(start)).unwrap_or_default(),
            );
            out.push(format!("+{at:>8}  {}", e.text));
        }
        printed = engine.events().len();
        if engine.state().is_terminal()
            || matches!(engine.state(), crate::upgrade::RolloutState::Halted(_))
        {
            out.push(format!("final state: {}", engine.state()));
            return out;
        }
        if let Some(action) = queue.pop() {
            out.extend(describe(plan, &action));
            let mut output = None;
            if let Some(n) = obs.nodes.iter_mut().find(|n| n.name == action.node()) {
                match &action {
                    Action::Cordon { .. } => n.unschedulable = true,
                    Action::Uncordon { .. } => n.unschedulable = false,
                    Action::Install { version, .. } => n.version = version.to_string(),
                    Action::EtcdSnapshot { name, .. } => output = Some(name.clone()),
                    _ => {}
                }
            }
            if let Action::Label { node, .. } = &action {
                hand_off(&mut obs, node);
            }
            let id = action.id();
            queue.extend(engine.step(
                Input::ActionFinished {
                    id,
                    result: Ok(()),
                    output,
                },
                now,
            ));
            queue.extend(engine.step(Input::Observe(obs.clone()), now));
            continue;
        }
        now += SignedDuration::from_secs(1);
        queue.extend(engine.step(Input::Tick, now));
    }
    out.push(format!(
        "the simulation did not finish within a day; state {}",
        engine.state()
    ));
    out
}

fn describe(plan: &ResolvedPlan, action: &Action) -> Vec<String> {
    let node = action.node();
    let Some(n) = plan.node(node) else {
        return vec![format!("          {node}: {action:?}")];
    };
    let via = transport(n);
    let remote = |cmd: String| {
        vec![format!(
            "          $ {}  # via {}",
            redact_command(&via.wire_command(&n.privileged(&cmd))),
            via.describe()
        )]
    };
    match action {
        Action::Cordon { .. } => vec![format!(
            "          PATCH /api/v1/nodes/{node} {{\"spec\":{{\"unschedulable\":true}}}}"
        )],
        Action::Uncordon { .. } => vec![format!(
            "          PATCH /api/v1/nodes/{node} {{\"spec\":{{\"unschedulable\":false}}}}"
        )],
        Action::Drain { .. } => vec![format!(
            "          POST .../pods/NAME/eviction for each pod on {node} (DaemonSets and mirror pods skipped, disruption budgets respected)"
        )],
        Action::Install {
            version, reinstate, ..
        } => {
            let mut lines = Vec::new();
            if let (Some(dir), false) = (&plan.artifacts, reinstate) {
                let stage = super::upload::stage_dir(&version.to_string());
                lines.push(format!(
                    "          copy {}/{version}/ASSET and sha256sum-ARCH.txt (by the node's uname -m) into {stage} over SSH:",
                    dir.display()
                ));
                lines.extend(remote(super::upload::receive_command(&stage, "FILE")));
            }
            lines.extend(remote(n.action_command(action).unwrap_or_default()));
            lines
        }
        Action::Restart { .. }
        | Action::EtcdSnapshot { .. }
        | Action::StopK3s { .. }
        | Action::StartK3s { .. }
        | Action::ClusterReset { .. }
        | Action::ClearDb { .. } => remote(n.action_command(action).unwrap_or_default()),
        Action::Label { .. } => vec![format!(
            "          PATCH /api/v1/nodes/{node} {{\"metadata\":{{\"labels\":{{\"{}\":\"true\"}}}}}}",
            crate::model::metallb::EXCLUDE_LABEL
        )],
        Action::Unlabel { .. } => vec![format!(
            "          PATCH /api/v1/nodes/{node} {{\"metadata\":{{\"labels\":{{\"{}\":null}}}}}}",
            crate::model::metallb::EXCLUDE_LABEL
        )],
    }
}

/// What MetalLB does with the label, simulated: the node's IPs move to the
/// first other node.
fn hand_off(obs: &mut crate::upgrade::Observation, node: &str) {
    let other = obs
        .nodes
        .iter()
        .find(|n| n.name != node)
        .map(|n| n.name.clone());
    for s in &mut obs.services {
        if s.announced_by.as_deref() == Some(node) {
            s.announced_by = other.clone();
        }
    }
}
