//! What draining a node would do, as last judged: kept per node so the
//! rollout panel and the node detail show it before the drain comes, not
//! only in the preflight lines that scrolled by at the start.

use jiff::Timestamp;

use super::Fleet;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainNote {
    /// The drain refuses (or the plan blocks on) this pod.
    pub blocks: bool,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainOutlook {
    /// When the pods were listed.
    pub at: Timestamp,
    /// Pods the drain would evict.
    pub evicts: usize,
    pub notes: Vec<DrainNote>,
}

impl DrainOutlook {
    pub fn blocks(&self) -> usize {
        self.notes.iter().filter(|n| n.blocks).count()
    }

    /// `evicts 4 · 1 block · 2 warn`.
    pub fn counts(&self) -> String {
        let blocks = self.blocks();
        let warns = self.notes.len() - blocks;
        let mut out = format!("evicts {}", self.evicts);
        if blocks > 0 {
            out.push_str(&format!(" · {blocks} block"));
        }
        if warns > 0 {
            out.push_str(&format!(" · {warns} warn"));
        }
        out
    }

    /// `evicts 3 · 1 block · 1 warn: <the worst note>`.
    pub fn summary(&self) -> String {
        match self.worst() {
            Some(n) => format!("{}: {}", self.counts(), n.text),
            None => self.counts(),
        }
    }

    /// The note that matters most: the first block, else the first warning.
    pub fn worst(&self) -> Option<&DrainNote> {
        self.notes
            .iter()
            .find(|n| n.blocks)
            .or_else(|| self.notes.first())
    }
}

impl Fleet {
    /// Files the drain outlook of `node` (a node not in the fleet is
    /// ignored: the report lists pods of plan nodes only).
    pub fn set_drain_outlook(&mut self, node: &str, outlook: DrainOutlook) {
        if let Some(state) = self.nodes.get_mut(node) {
            state.drain = Some(outlook);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn note(blocks: bool, text: &str) -> DrainNote {
        DrainNote {
            blocks,
            text: text.into(),
        }
    }

    #[test]
    fn the_worst_note_is_the_first_block_and_the_counts_say_how_many() {
        let o = DrainOutlook {
            at: Timestamp::UNIX_EPOCH,
            evicts: 3,
            notes: vec![note(false, "w1"), note(true, "b1"), note(false, "w2")],
        };
        assert_eq!(o.counts(), "evicts 3 · 1 block · 2 warn");
        assert_eq!(o.worst().unwrap().text, "b1");
        let quiet = DrainOutlook { notes: vec![], ..o };
        assert_eq!(quiet.counts(), "evicts 3");
        assert!(quiet.worst().is_none());
    }
}
