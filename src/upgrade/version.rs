//! K3s versions and the upgrade path between them.
//!
//! Kubernetes only supports upgrading one minor version at a time, and the
//! post-mortem's operators did exactly that by hand (v1.33 → v1.34 → v1.35).
//! [`version_path`] computes that path offline: it cannot ask a release
//! channel which patch release to use for an intermediate minor, so the plan
//! must name every intermediate hop and a missing one is an error, not a guess.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A K3s release such as `v1.33.6+k3s1` or `v1.29.1-rc2+k3s1`.
///
/// The `+k3sN` suffix is required: it is part of what the install script
/// downloads and of what the kubelet reports, so a version without it cannot
/// be installed or compared against a node.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct K3sVersion {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    /// Pre-release tag without the dash, e.g. `rc2`.
    pub pre: Option<String>,
    /// The K3s packaging revision, the `1` in `+k3s1`.
    pub k3s: u64,
}

impl K3sVersion {
    /// `v1.34`, used in messages about minor versions.
    pub fn minor_label(&self) -> String {
        format!("v{}.{}", self.major, self.minor)
    }

    /// True if `other` has the same major and minor version.
    pub fn same_minor(&self, other: &K3sVersion) -> bool {
        self.major == other.major && self.minor == other.minor
    }
}

/// Why a string is not a K3s version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseVersionError {
    pub input: String,
    pub reason: &'static str,
}

impl fmt::Display for ParseVersionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid K3s version {:?}: {} (expected e.g. v1.33.6+k3s1)",
            self.input, self.reason
        )
    }
}

impl std::error::Error for ParseVersionError {}

impl FromStr for K3sVersion {
    type Err = ParseVersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| ParseVersionError {
            input: s.to_string(),
            reason,
        };
        let body = s.trim().strip_prefix('v').unwrap_or(s.trim());
        let (core_pre, build) = body
            .split_once('+')
            .ok_or_else(|| err("missing the +k3sN suffix"))?;
        let k3s = build
            .strip_prefix("k3s")
            .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
            .ok_or_else(|| err("the build suffix must be k3s followed by a number"))?
            .parse()
            .map_err(|_| err("k3s revision too large"))?;
        let (core, pre) = match core_pre.split_once('-') {
            Some((core, pre)) => {
                if pre.is_empty() || !pre.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
                    return Err(err("invalid pre-release tag"));
                }
                (core, Some(pre.to_string()))
            }
            None => (core_pre, None),
        };
        let mut parts = core.split('.');
        let mut number = |what| -> Result<u64, ParseVersionError> {
            let part = parts.next().ok_or_else(|| err(what))?;
            if part.is_empty() || !part.chars().all(|c| c.is_ascii_digit()) {
                return Err(err(what));
            }
            part.parse().map_err(|_| err(what))
        };
        let major = number("major version is not a number")?;
        let minor = number("minor version is not a number")?;
        let patch = number("patch version is not a number")?;
        if parts.next().is_some() {
            return Err(err("too many version components"));
        }
        Ok(K3sVersion {
            major,
            minor,
            patch,
            pre,
            k3s,
        })
    }
}

impl fmt::Display for K3sVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(pre) = &self.pre {
            write!(f, "-{pre}")?;
        }
        write!(f, "+k3s{}", self.k3s)
    }
}

/// Compares pre-release tags so that `rc2 < rc10` (a plain string compare
/// would say otherwise): runs of digits compare as numbers.
fn compare_pre(a: &str, b: &str) -> Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(cb.iter()) {
        let ord = match (x, y) {
            ((true, x), (true, y)) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then_with(|| x.cmp(y))
            }
            ((_, x), (_, y)) => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    ca.len().cmp(&cb.len())
}

impl Ord for K3sVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (&self.pre, &other.pre) {
                // A release sorts after its own release candidates.
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => compare_pre(a, b),
            })
            .then_with(|| self.k3s.cmp(&other.k3s))
    }
}

impl PartialOrd for K3sVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Serialize for K3sVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for K3sVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Why no upgrade path could be planned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathError {
    /// No node versions were given.
    NoNodes,
    /// A node runs a newer version than the target.
    Downgrade {
        current: K3sVersion,
        target: K3sVersion,
    },
    /// The nodes are more than one minor version apart already.
    Skew {
        oldest: K3sVersion,
        newest: K3sVersion,
    },
    /// The target changes the major version.
    MajorChange {
        current: K3sVersion,
        target: K3sVersion,
    },
    /// An intermediate minor version has no hop in the plan.
    MissingHop { minor: String, target: K3sVersion },
    /// A hop in the plan cannot be used.
    BadHop { hop: K3sVersion, reason: String },
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::NoNodes => write!(f, "no nodes to upgrade"),
            PathError::Downgrade { current, target } => write!(
                f,
                "refusing to downgrade: a node runs {current}, newer than the target {target} (use rollback, not a plan, to go back)"
            ),
            PathError::Skew { oldest, newest } => write!(
                f,
                "refusing: nodes are more than one minor version apart ({oldest} and {newest}); bring the oldest nodes to {} first",
                newest_minus_one(newest)
            ),
            PathError::MajorChange { current, target } => write!(
                f,
                "refusing: {current} to {target} changes the major version"
            ),
            PathError::MissingHop { minor, target } => write!(
                f,
                "the path to {target} goes through {minor} but the plan names no {minor}.x release; add one to hops, e.g. hops = [\"{minor}.0+k3s1\"] (releases cannot be looked up offline)"
            ),
            PathError::BadHop { hop, reason } => write!(f, "hop {hop}: {reason}"),
        }
    }
}

fn newest_minus_one(v: &K3sVersion) -> String {
    format!("v{}.{}", v.major, v.minor.saturating_sub(1))
}

impl std::error::Error for PathError {}

/// The versions to install, in order, to bring every node to `target`, one
/// minor version at a time.
///
/// `hops` supplies the concrete release for each intermediate minor version
/// (e.g. `v1.34.3+k3s1` on the way from v1.33 to v1.35). Hops at or below the
/// oldest node's minor are dropped: the cluster is already past them. The
/// returned path always ends with `target` unless every node already runs it,
/// in which case it is empty.
pub fn version_path(
    current_versions: &[K3sVersion],
    target: &K3sVersion,
    hops: &[K3sVersion],
) -> Result<Vec<K3sVersion>, PathError> {
    let oldest = current_versions.iter().min().ok_or(PathError::NoNodes)?;
    let newest = current_versions.iter().max().ok_or(PathError::NoNodes)?;
    if oldest.major != target.major || newest.major != target.major {
        let current = if oldest.major != target.major {
            oldest
        } else {
            newest
        };
        return Err(PathError::MajorChange {
            current: current.clone(),
            target: target.clone(),
        });
    }
    if newest > target {
        return Err(PathError::Downgrade {
            current: newest.clone(),
            target: target.clone(),
        });
    }
    if newest.minor - oldest.minor > 1 {
        return Err(PathError::Skew {
            oldest: oldest.clone(),
            newest: newest.clone(),
        });
    }
    let mut by_minor = std::collections::BTreeMap::new();
    for hop in hops {
        if hop.major != target.major {
            return Err(PathError::BadHop {
                hop: hop.clone(),
                reason: format!("major version differs from the target {target}"),
            });
        }
        if hop.minor >= target.minor {
            return Err(PathError::BadHop {
                hop: hop.clone(),
                reason: format!(
                    "hops are the intermediate releases below the target {target}; remove it or make it the target"
                ),
            });
        }
        if let Some(other) = by_minor.insert(hop.minor, hop.clone()) {
            return Err(PathError::BadHop {
                hop: hop.clone(),
                reason: format!("{other} is already the hop for {}", hop.minor_label()),
            });
        }
    }
    if current_versions.iter().all(|v| v == target) {
        return Ok(Vec::new());
    }
    let mut path = Vec::new();
    for minor in oldest.minor + 1..target.minor {
        let hop = by_minor.get(&minor).ok_or_else(|| PathError::MissingHop {
            minor: format!("v{}.{}", target.major, minor),
            target: target.clone(),
        })?;
        path.push(hop.clone());
    }
    path.push(target.clone());
    Ok(path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn v(s: &str) -> K3sVersion {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_displays() {
        let x = v("v1.33.6+k3s1");
        assert_eq!((x.major, x.minor, x.patch, x.k3s), (1, 33, 6, 1));
        assert_eq!(x.pre, None);
        assert_eq!(x.to_string(), "v1.33.6+k3s1");
        let rc = v("v1.29.1-rc2+k3s1");
        assert_eq!(rc.pre.as_deref(), Some("rc2"));
        assert_eq!(rc.to_string(), "v1.29.1-rc2+k3s1");
        assert_eq!(v("1.35.0+k3s2").to_string(), "v1.35.0+k3s2");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "v1.33.6",
            "v1.33+k3s1",
            "v1.33.6+k3s",
            "v1.33.6+rke2r1",
            "v1.x.6+k3s1",
            "v1.33.6.1+k3s1",
            "v1.33.6-+k3s1",
            "latest",
        ] {
            assert!(bad.parse::<K3sVersion>().is_err(), "{bad:?} accepted");
        }
        let e = "v1.33.6".parse::<K3sVersion>().unwrap_err().to_string();
        assert!(e.contains("+k3sN"), "{e}");
    }

    #[test]
    fn orders_like_releases() {
        let mut list = [
            v("v1.34.0+k3s1"),
            v("v1.33.10+k3s1"),
            v("v1.33.6+k3s2"),
            v("v1.33.6+k3s1"),
            v("v1.34.0-rc10+k3s1"),
            v("v1.34.0-rc2+k3s1"),
        ];
        list.sort();
        let sorted: Vec<String> = list.iter().map(|x| x.to_string()).collect();
        assert_eq!(
            sorted,
            [
                "v1.33.6+k3s1",
                "v1.33.6+k3s2",
                "v1.33.10+k3s1",
                "v1.34.0-rc2+k3s1",
                "v1.34.0-rc10+k3s1",
                "v1.34.0+k3s1"
            ]
        );
    }

    #[test]
    fn path_one_minor_at_a_time() {
        let path = version_path(
            &[v("v1.33.6+k3s1"), v("v1.33.6+k3s1")],
            &v("v1.35.0+k3s1"),
            &[v("v1.34.3+k3s1")],
        )
        .unwrap();
        assert_eq!(path, vec![v("v1.34.3+k3s1"), v("v1.35.0+k3s1")]);
    }

    #[test]
    fn path_within_a_minor_and_already_done() {
        let t = v("v1.33.7+k3s1");
        assert_eq!(
            version_path(&[v("v1.33.6+k3s1")], &t, &[]).unwrap(),
            vec![t.clone()]
        );
        assert_eq!(
            version_path(std::slice::from_ref(&t), &t, &[]).unwrap(),
            vec![]
        );
    }

    #[test]
    fn missing_hop_names_the_minor() {
        let e = version_path(&[v("v1.33.6+k3s1")], &v("v1.35.0+k3s1"), &[]).unwrap_err();
        assert_eq!(
            e,
            PathError::MissingHop {
                minor: "v1.34".into(),
                target: v("v1.35.0+k3s1")
            }
        );
        assert!(e.to_string().contains("v1.34"));
    }

    #[test]
    fn refuses_downgrade_skew_and_bad_hops() {
        let e = version_path(
            &[v("v1.35.1+k3s1"), v("v1.35.0+k3s1")],
            &v("v1.35.0+k3s1"),
            &[],
        )
        .unwrap_err();
        assert!(matches!(e, PathError::Downgrade { .. }));
        assert!(e.to_string().contains("downgrade"));

        let e = version_path(
            &[v("v1.32.1+k3s1"), v("v1.34.0+k3s1")],
            &v("v1.35.0+k3s1"),
            &[],
        )
        .unwrap_err();
        assert!(matches!(e, PathError::Skew { .. }), "{e}");
        assert!(e.to_string().contains("v1.32.1+k3s1"));

        let e = version_path(
            &[v("v1.33.6+k3s1")],
            &v("v1.35.0+k3s1"),
            &[v("v1.35.0+k3s1")],
        )
        .unwrap_err();
        assert!(matches!(e, PathError::BadHop { .. }), "{e}");

        let e = version_path(
            &[v("v1.33.6+k3s1")],
            &v("v1.35.0+k3s1"),
            &[v("v1.34.1+k3s1"), v("v1.34.2+k3s1")],
        )
        .unwrap_err();
        assert!(e.to_string().contains("already the hop for v1.34"), "{e}");

        let e = version_path(&[v("v1.33.6+k3s1")], &v("v2.0.0+k3s1"), &[]).unwrap_err();
        assert!(matches!(e, PathError::MajorChange { .. }));
        assert_eq!(
            version_path(&[], &v("v1.35.0+k3s1"), &[]),
            Err(PathError::NoNodes)
        );
    }

    #[test]
    fn skewed_by_one_starts_from_the_oldest() {
        // One node already on v1.34: the v1.34 hop is still needed for the
        // v1.33 node; hops below the oldest minor are simply not used.
        let path = version_path(
            &[v("v1.33.6+k3s1"), v("v1.34.1+k3s1")],
            &v("v1.35.0+k3s1"),
            &[v("v1.34.3+k3s1"), v("v1.32.9+k3s1")],
        )
        .unwrap();
        assert_eq!(path, vec![v("v1.34.3+k3s1"), v("v1.35.0+k3s1")]);
    }
}
