//! What a failed remote step printed last: kept per node for the node
//! detail and written to the timeline, so the operator sees why an install
//! or restart failed without opening a shell on the node.

use jiff::Timestamp;

use super::Fleet;
use crate::model::timeline::{EntryKind, Severity};
use crate::text::printable;

impl Fleet {
    /// Files the last lines `output` of a failed step on `node`.
    pub fn failed_step_output(&mut self, node: &str, output: &str, now: Timestamp) {
        let lines: Vec<String> = output.lines().map(|l| printable(l).into_owned()).collect();
        self.timeline.push_kind(
            now,
            Severity::Warn,
            node,
            EntryKind::Other,
            format!("the failed step's last {} lines of output:", lines.len()),
        );
        for line in &lines {
            self.timeline.push_kind(
                now,
                Severity::Warn,
                node,
                EntryKind::Other,
                format!("│ {line}"),
            );
        }
        if let Some(state) = self.nodes.get_mut(node) {
            state.failed_output = Some((now, lines));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::ClusterEvent;
    use crate::model::fleet::NodeInfo;

    #[test]
    fn a_failed_steps_output_reaches_the_timeline_and_the_node() {
        let mut f = Fleet::new();
        let t = Timestamp::from_second(1_800_000_000).unwrap();
        f.apply(ClusterEvent::Node(NodeInfo::bare("a", "v1.33.6+k3s1")), t);
        f.failed_step_output(
            "a",
            "[INFO]  Downloading\n[ERROR]  sha256 mismatch\x1b[31m",
            t,
        );
        let (at, lines) = f.nodes["a"].failed_output.clone().unwrap();
        assert_eq!(at, t);
        assert_eq!(lines.len(), 2);
        assert!(!lines[1].contains('\x1b'), "terminal controls are dropped");
        let texts: Vec<&str> = f.timeline.entries().map(|e| e.text.as_str()).collect();
        assert!(
            texts.contains(&"the failed step's last 2 lines of output:"),
            "{texts:?}"
        );
        assert!(
            texts
                .iter()
                .any(|t| t.starts_with("│ [ERROR]  sha256 mismatch")),
            "{texts:?}"
        );
    }
}
