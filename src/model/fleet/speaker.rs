//! MetalLB speaker pods: how they are recognised and what they run.

use super::PodInfo;

/// A MetalLB speaker's image and the option that decides the handoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeakerBuild {
    pub image: String,
    /// Started with `--ignore-exclude-lb`.
    pub ignore_exclude_lb: bool,
}

impl PodInfo {
    /// A MetalLB speaker, as labelled by the manifests (`component`) or
    /// the Helm chart (`app.kubernetes.io/component`).
    pub fn is_speaker(&self) -> bool {
        ["component", "app.kubernetes.io/component"]
            .iter()
            .any(|k| self.labels.get(*k).is_some_and(|c| c == "speaker"))
    }
}
