//! Whether the cluster's MetalLB will honour the handoff's exclude label
//! (speaker version and `--ignore-exclude-lb`, see `crate::model::metallb`),
//! and what users lose when it will not.

use std::collections::BTreeSet;

use super::preflight::{Finding, Level, finding};
use crate::model::fleet::Fleet;
use crate::model::metallb;
use crate::upgrade::engine::HandoffMode;
use crate::upgrade::{Observation, ResolvedPlan};

/// What the speakers will do with the label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Support {
    /// Every speaker runs a version that honours it, without the flag.
    Honoured(String),
    /// A speaker will keep announcing from a labelled node; the reason.
    No(String),
    /// Not known (no speaker pod seen, or an image tag that is no version).
    Unknown(String),
}

/// Judged from the speaker pods the fleet saw.
pub fn support(fleet: &Fleet) -> Support {
    let builds: Vec<_> = fleet.pods().filter_map(|p| p.speaker.clone()).collect();
    if builds.is_empty() {
        return Support::Unknown("no MetalLB speaker pod seen".into());
    }
    if let Some(b) = builds.iter().find(|b| b.ignore_exclude_lb) {
        return Support::No(format!(
            "the speakers run with {} ({})",
            metallb::IGNORE_FLAG,
            b.image
        ));
    }
    let images: BTreeSet<&str> = builds.iter().map(|b| b.image.as_str()).collect();
    for image in &images {
        match metallb::version_of(image) {
            None => return Support::Unknown(format!("speaker image {image} names no version")),
            Some(v) if !metallb::honours_exclude_label(image) => {
                return Support::No(format!(
                    "speaker image {image} is MetalLB v{}.{}.{}, older than v0.14.0",
                    v.0, v.1, v.2
                ));
            }
            Some(_) => {}
        }
    }
    Support::Honoured(images.into_iter().collect::<Vec<_>>().join(", "))
}

/// The plan with the handoff turned off when MetalLB will not honour it:
/// the rollout goes on, restarting announcers in place.
pub fn effective_handoff(fleet: &Fleet, plan: &ResolvedPlan) -> HandoffMode {
    match (plan.handoff, support(fleet)) {
        (HandoffMode::Auto, Support::No(_)) => HandoffMode::Off,
        (mode, _) => mode,
    }
}

pub fn check(fleet: &Fleet, plan: &ResolvedPlan, obs: &Observation, out: &mut Vec<Finding>) {
    let label = metallb::EXCLUDE_LABEL;
    let (level, text) = match (plan.handoff, support(fleet)) {
        // `open` turned the plan's auto off for this reason.
        (_, Support::No(why)) => (
            Level::Warn,
            format!("handoff skipped: MetalLB will not honour {label}: {why}"),
        ),
        (HandoffMode::Off, _) => (
            Level::Warn,
            "handoff is off in the plan: announcers are restarted in place".to_string(),
        ),
        (HandoffMode::Auto, Support::Honoured(images)) => (
            Level::Ok,
            format!(
                "handoff: MetalLB ({images}) honours {label}; announced IPs move before a node is touched"
            ),
        ),
        (HandoffMode::Auto, Support::Unknown(why)) => (
            Level::Warn,
            format!(
                "handoff: cannot tell whether MetalLB honours {label} ({why}); a handoff that does not move the IPs halts"
            ),
        ),
    };
    out.push(finding(level, text));
    if effective_handoff(fleet, plan) == HandoffMode::Off {
        expected_outages(plan, obs, out);
    }
}

/// Without the handoff, every announced IP is dark while its announcer's
/// K3s restarts (the install's restart and the explicit one, each hop).
fn expected_outages(plan: &ResolvedPlan, obs: &Observation, out: &mut Vec<Finding>) {
    for s in &obs.services {
        let Some(node) = s.announced_by.as_deref() else {
            continue;
        };
        let Some(n) = plan.node(node) else { continue };
        out.push(finding(
            Level::Warn,
            format!(
                "expected outage: {} is dark while {node} restarts K3s, twice per hop ({} hop{}), until its service rules are programmed again",
                s.name,
                n.hops.len(),
                if n.hops.len() == 1 { "" } else { "s" }
            ),
        ));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::ClusterEvent;
    use crate::model::fleet::{L2Info, LeaseInfo, NodeInfo, PodInfo, ServiceInfo, SpeakerBuild};
    use crate::upgrade::plan::{ClusterNode, Plan, Role, resolve};

    fn t(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_769_378_700 + s).unwrap()
    }

    fn plan(handoff: &str) -> ResolvedPlan {
        let text = format!(
            "handoff = \"{handoff}\"\ntarget = \"v1.34.3+k3s1\"\n[transport]\nhost = \"h\"\nuser = \"root\"\n\
             [gates]\nservices = [\"frigate/frigate\"]\n"
        );
        let plan = Plan::from_str(&text, "plan.toml").unwrap();
        let cluster: Vec<ClusterNode> = ["a", "b"]
            .iter()
            .map(|n| ClusterNode {
                name: n.to_string(),
                role: Role::Server,
                version: "v1.33.6+k3s1".parse().unwrap(),
                node_args: None,
                etcd: true,
            })
            .collect();
        resolve(&plan, &cluster).unwrap()
    }

    /// Two Ready nodes with Helm-labelled speakers of `image`, frigate
    /// announced from a.
    fn fleet(image: &str, args_ignore: bool) -> Fleet {
        let mut f = Fleet::new();
        f.apply(ClusterEvent::ApiOk, t(0));
        for n in ["a", "b"] {
            let mut node = NodeInfo::bare(n, "v1.33.6+k3s1");
            node.conditions = vec![crate::model::fleet::Condition {
                kind: "Ready".into(),
                status: crate::model::fleet::Tri::True,
                reason: String::new(),
                message: String::new(),
                last_transition: Some(t(0)),
                last_heartbeat: Some(t(0)),
            }];
            f.apply(ClusterEvent::Node(node), t(0));
            f.apply(ClusterEvent::Lease(LeaseInfo::renewed_at(n, t(0))), t(0));
            f.apply(
                ClusterEvent::Pod(PodInfo {
                    namespace: "metallb-system".into(),
                    name: format!("metallb-speaker-{n}"),
                    node: n.into(),
                    labels: [(
                        "app.kubernetes.io/component".to_string(),
                        "speaker".to_string(),
                    )]
                    .into(),
                    ready: true,
                    speaker: Some(SpeakerBuild {
                        image: image.into(),
                        ignore_exclude_lb: args_ignore,
                    }),
                }),
                t(0),
            );
        }
        f.apply(
            ClusterEvent::Service(ServiceInfo {
                namespace: "frigate".into(),
                name: "frigate".into(),
                ips: vec!["127.77.0.12".into()],
                ports: vec![5000],
                selector: Default::default(),
            }),
            t(0),
        );
        f.apply(
            ClusterEvent::L2(L2Info {
                object: "metallb-system/l2-x".into(),
                node: "a".into(),
                service: ("frigate".into(), "frigate".into()),
            }),
            t(0),
        );
        f
    }

    fn findings(f: &Fleet, p: &ResolvedPlan) -> Vec<Finding> {
        super::super::preflight::run(f, p, t(1))
    }

    #[test]
    fn a_helm_labelled_speaker_daemonset_passes_preflight_with_the_handoff() {
        let f = fleet("quay.io/metallb/speaker:v0.14.9", false);
        let out = findings(&f, &plan("auto"));
        assert!(out.iter().all(|x| x.level == Level::Ok), "{out:#?}");
        assert!(out.iter().any(|x| {
            x.text
                .starts_with("handoff: MetalLB (quay.io/metallb/speaker:v0.14.9) honours")
        }));
        assert_eq!(effective_handoff(&f, &plan("auto")), HandoffMode::Auto);
    }

    #[test]
    fn old_metallb_or_the_ignore_flag_turns_the_handoff_off_and_names_the_outage() {
        for (image, ignore, why) in [
            (
                "quay.io/metallb/speaker:v0.13.12",
                false,
                "older than v0.14.0",
            ),
            (
                "quay.io/metallb/speaker:v0.15.2",
                true,
                "--ignore-exclude-lb",
            ),
        ] {
            let f = fleet(image, ignore);
            assert_eq!(effective_handoff(&f, &plan("auto")), HandoffMode::Off);
            let out = findings(&f, &plan("off"));
            let texts: Vec<&str> = out.iter().map(|x| x.text.as_str()).collect();
            assert!(
                texts
                    .iter()
                    .any(|t| t.starts_with("handoff skipped") && t.contains(why)),
                "{texts:#?}"
            );
            assert!(
                texts.iter().any(|t| t
                    .starts_with("expected outage: frigate/frigate is dark while a restarts K3s")),
                "{texts:#?}"
            );
            assert!(out.iter().all(|x| x.level != Level::Block), "{out:#?}");
        }
    }

    /// Events-only MetalLB whose last nodeAssigned event for frigate
    /// expired: preflight says the announcer is unknown and does not block.
    #[test]
    fn a_service_whose_last_event_expired_does_not_block_preflight() {
        let mut f = fleet("quay.io/metallb/speaker:v0.13.12", false);
        f.apply(ClusterEvent::L2Deleted("metallb-system/l2-x".into()), t(0));
        f.apply(
            ClusterEvent::Unavailable(
                crate::model::fleet::ResourceKind::L2Statuses,
                "not found".into(),
            ),
            t(0),
        );
        let out = findings(&f, &plan("auto"));
        assert!(out.iter().all(|x| x.level != Level::Block), "{out:#?}");
        assert!(
            out.iter().any(|x| x.text
                == "service frigate/frigate: announcer unknown (no recent event); the probes are the gate's evidence"),
            "{out:#?}"
        );
    }
}
