//! The report's "user-visible outage per upgraded node": probe downtime
//! overlapping each node's working phases, and the rollout's total (see
//! `crate::model::outage`).

use serde_json::{Value, json};

use super::{Report, cell, precise, secs};
use crate::model::outage::OutageMeter;

/// The meter fed with every entry of the report's journal.
pub fn meter(report: &Report) -> OutageMeter {
    let mut m = OutageMeter::default();
    for e in &report.journal.entries {
        m.feed(e);
    }
    m
}

pub fn push_markdown(md: &mut String, report: &Report) {
    let m = meter(report);
    let per = m.per_node(report.journal_end());
    if per.is_empty() {
        return;
    }
    md.push_str("\n### User-visible outage per upgraded node\n\n");
    md.push_str("Probe downtime while the node was being worked on (handoff to return).\n\n");
    md.push_str("| Node | Outage |\n|---|---|\n");
    for n in &per {
        md.push_str(&format!("| {} | {} |\n", cell(&n.node), precise(n.outage)));
    }
    md.push_str(&format!(
        "\nRollout total: {}\n",
        precise(m.total(report.journal_end()))
    ));
}

pub fn json(report: &Report) -> Value {
    let m = meter(report);
    let end = report.journal_end();
    json!({
        "total_secs": secs(m.total(end)),
        "nodes": m.per_node(end).iter().map(|n| json!({
            "node": n.node, "secs": secs(n.outage), "finished": n.finished,
        })).collect::<Vec<_>>(),
    })
}
