//! `--resume` judged against the live cluster before anything runs. The
//! journal says what the cockpit did; the cluster says what is true now.
//! Where they disagree (a node reinstalled or restored by hand, an edited
//! plan), continuing from the journal could install across several minors
//! at once or report "done" with a node behind, so the resume is refused
//! with every difference named.

use std::collections::HashMap;

use crate::upgrade::engine::Phase;
use crate::upgrade::{ClusterNode, K3sVersion, ResolvedPlan, RolloutView};

/// The plan as it is now: its version path and its nodes in order.
pub struct PlanNow<'a> {
    pub target: &'a K3sVersion,
    /// Empty when every node already runs the target.
    pub path: &'a [K3sVersion],
    pub nodes: Vec<&'a str>,
}

impl<'a> From<&'a ResolvedPlan> for PlanNow<'a> {
    fn from(plan: &'a ResolvedPlan) -> Self {
        PlanNow {
            target: &plan.target,
            path: &plan.path,
            nodes: plan.nodes.iter().map(|n| n.name.as_str()).collect(),
        }
    }
}

fn chain(path: &[K3sVersion]) -> String {
    let versions: Vec<String> = path.iter().map(ToString::to_string).collect();
    versions.join(" → ")
}

/// The plan as it is now against the plan the journal recorded: the same
/// target, the same hops still ahead, the same nodes in the same order.
fn plan_differences(journal: &RolloutView, plan: &PlanNow) -> Vec<String> {
    let mut out = Vec::new();
    if journal.path.last() != Some(plan.target) {
        out.push(format!(
            "the plan's target is now {}; the journal's rollout goes to {}",
            plan.target,
            journal
                .path
                .last()
                .map_or("nowhere".to_string(), ToString::to_string)
        ));
    }
    // The live plan's path starts at the cluster's lowest version, so it
    // may be shorter than the journal's (empty once every node runs the
    // target); it must be the journal's tail.
    if !journal.path.ends_with(plan.path) {
        out.push(format!(
            "the plan's version path is now {}; the journal's rollout follows {}",
            chain(plan.path),
            chain(&journal.path)
        ));
    }
    let recorded: Vec<&str> = journal.nodes.iter().map(|n| n.name.as_str()).collect();
    if recorded != plan.nodes {
        out.push(format!(
            "the plan's nodes are now {}; the journal's are {}",
            plan.nodes.join(", "),
            recorded.join(", ")
        ));
    }
    out
}

/// What a node may run given where the journal left it: before its
/// install only the version of its last finished hop; from the install on,
/// that or the hop's target; once uncordoning, the target.
fn allowed(phase: Phase, version: &K3sVersion, target: Option<&K3sVersion>) -> Vec<K3sVersion> {
    match (phase, target) {
        (Phase::Install | Phase::Restart | Phase::WaitVersion, Some(t)) => {
            vec![version.clone(), t.clone()]
        }
        (Phase::WaitReady | Phase::Soak | Phase::Uncordon | Phase::Return, Some(t)) => {
            vec![t.clone()]
        }
        _ => vec![version.clone()],
    }
}

/// Every node the journal knows, against its live version.
fn node_differences(journal: &RolloutView, live: &[ClusterNode]) -> Vec<String> {
    let live: HashMap<&str, &K3sVersion> =
        live.iter().map(|n| (n.name.as_str(), &n.version)).collect();
    let mut out = Vec::new();
    for n in &journal.nodes {
        let Some(&running) = live.get(n.name.as_str()) else {
            out.push(format!(
                "node {} is in the journal but not in the cluster",
                n.name
            ));
            continue;
        };
        let allowed = allowed(n.phase, &n.version, n.target.as_ref());
        if !allowed.contains(running) {
            out.push(format!(
                "node {} runs {running}; the journal left it {} expecting {}",
                n.name,
                n.phase,
                chain(&allowed).replace(" → ", " or ")
            ));
        }
    }
    out
}

/// Why the journal's rollout cannot continue on this cluster with this
/// plan; empty when it can.
pub fn differences(journal: &RolloutView, plan: &PlanNow, live: &[ClusterNode]) -> Vec<String> {
    let mut out = plan_differences(journal, plan);
    out.extend(node_differences(journal, live));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::upgrade::Engine;
    use crate::upgrade::engine::Command;
    use crate::upgrade::plan::Role;
    use crate::upgrade::testkit::*;

    const FROM: &str = "v1.33.6+k3s1";
    const HOPS: [&str; 2] = ["v1.34.3+k3s1", "v1.35.0+k3s1"];

    fn live(versions: &[(&str, &str)]) -> Vec<ClusterNode> {
        versions
            .iter()
            .map(|(n, ver)| ClusterNode {
                name: n.to_string(),
                role: Role::Server,
                version: v(ver),
                node_args: None,
                etcd: true,
            })
            .collect()
    }

    /// A journal's engine after node A finished its first hop, B pending.
    fn a_done_once() -> Engine {
        let cfg = config(&[("A", Role::Server), ("B", Role::Server)], FROM, &HOPS);
        let mut e = Engine::new(cfg.clone());
        let mut s = FakeCluster::new(&cfg, &[]);
        s.observe(&mut e);
        s.command(&mut e, Command::Step);
        let paused = s.run_until(&mut e, secs(10), mins(30), |e, _| {
            *e.state() == crate::upgrade::RolloutState::Paused
        });
        assert!(paused, "{:?}", e.state());
        let view = e.view(s.now);
        assert_eq!(
            (view.nodes[0].phase, &view.nodes[0].version),
            (Phase::Pending, &v(HOPS[0]))
        );
        assert_eq!(view.nodes[1].version, v(FROM));
        e
    }

    fn plan_now(path: &[K3sVersion]) -> PlanNow<'_> {
        PlanNow {
            target: path.last().unwrap(),
            path,
            nodes: vec!["A", "B"],
        }
    }

    #[test]
    fn a_cluster_that_matches_the_journal_resumes() {
        let e = a_done_once();
        let path: Vec<K3sVersion> = HOPS.iter().map(|h| v(h)).collect();
        let found = differences(
            &e.view(t0()),
            &plan_now(&path),
            &live(&[("A", HOPS[0]), ("B", FROM)]),
        );
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn a_node_reset_behind_the_journal_refuses_the_resume() {
        let e = a_done_once();
        let path: Vec<K3sVersion> = HOPS.iter().map(|h| v(h)).collect();
        let found = differences(
            &e.view(t0()),
            &plan_now(&path),
            &live(&[("A", FROM), ("B", FROM)]),
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("node A runs v1.33.6+k3s1") && found[0].contains("v1.34.3+k3s1"),
            "{found:?}"
        );
    }

    #[test]
    fn an_edited_path_or_node_list_refuses_the_resume() {
        let e = a_done_once();
        let edited = vec![v("v1.34.3+k3s1"), v("v1.35.0+k3s1"), v("v1.36.0+k3s1")];
        let mut plan = plan_now(&edited);
        plan.nodes = vec!["B", "A"];
        let found = differences(&e.view(t0()), &plan, &live(&[("A", HOPS[0]), ("B", FROM)]));
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].contains("target is now v1.36.0+k3s1"), "{found:?}");
        assert!(found[1].contains("version path"), "{found:?}");
        assert!(
            found[2].contains("the plan's nodes are now B, A"),
            "{found:?}"
        );
    }

    #[test]
    fn a_shorter_live_path_is_the_journals_tail() {
        let e = a_done_once();
        let tail = vec![v(HOPS[1])];
        assert!(plan_differences(&e.view(t0()), &plan_now(&tail)).is_empty());
        // Every node on the target (a halt in the last soak): nothing ahead.
        let target = v(HOPS[1]);
        let done = PlanNow {
            target: &target,
            path: &[],
            nodes: vec!["A", "B"],
        };
        assert!(plan_differences(&e.view(t0()), &done).is_empty());
    }
}
