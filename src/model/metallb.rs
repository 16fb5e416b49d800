//! What MetalLB's L2 speakers do with the node label the handoff uses.
//!
//! Checked in metallb/metallb `speaker/layer2_controller.go`
//! (`speakersForPool`) and `internal/k8s/nodes/nodes.go`
//! (`IsNodeExcludedFromBalancers`): a speaker leaves a node carrying
//! [`EXCLUDE_LABEL`] (any value) out of the candidates for every IP unless
//! it runs with `--ignore-exclude-lb`; the remaining candidates are sorted
//! by sha256(node + "#" + first IP) and the first announces. The label is
//! honoured from v0.14.0 (PR #2073); the flag exists from v0.14.4 (PR #2280).

/// The well-known label MetalLB (v0.14.0+) honours.
pub const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// The speaker option that makes it announce from labelled nodes anyway.
pub const IGNORE_FLAG: &str = "--ignore-exclude-lb";

/// `(major, minor, patch)` of a speaker image tag such as `v0.14.9` or
/// `quay.io/metallb/speaker:v0.15.2`; None when the tag is not a version.
pub fn version_of(image_or_tag: &str) -> Option<(u32, u32, u32)> {
    let tag = image_or_tag
        .rsplit_once(':')
        .map_or(image_or_tag, |(_, t)| t);
    let tag = tag.strip_prefix('v').unwrap_or(tag);
    let core = tag.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u32>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

/// Whether a speaker of this version honours the label (flag aside).
/// Unknown versions (`latest`, a digest) count as not honouring it.
pub fn honours_exclude_label(image_or_tag: &str) -> bool {
    version_of(image_or_tag).is_some_and(|v| v >= (0, 14, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_label_is_honoured_from_v0_14_0() {
        assert!(!honours_exclude_label("v0.13.12"));
        assert!(honours_exclude_label("v0.14.0"));
        assert!(honours_exclude_label("quay.io/metallb/speaker:v0.15.2"));
        assert!(!honours_exclude_label("quay.io/metallb/speaker:latest"));
        assert_eq!(version_of("v0.14.9-rc1"), Some((0, 14, 9)));
    }
}
