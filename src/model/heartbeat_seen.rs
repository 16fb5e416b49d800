//! Heartbeats judged by when the cockpit saw them, not by the time the
//! kubelet wrote into them. `renewTime` is stamped with the node's clock; a
//! node whose clock runs behind would look late on every renewal. The node
//! lifecycle controller avoids this the same way: it keeps its own
//! `probeTimestamp`, set from its clock whenever the lease's renewTime
//! changes, and starts it at "now" for a node it has not seen before
//! (kubernetes/kubernetes, pkg/controller/nodelifecycle,
//! `tryUpdateNodeHealth`).

use jiff::{SignedDuration, Timestamp};

/// Offsets kept for the skew estimate.
const SAMPLES: usize = 8;

/// Skew over which the node detail warns.
pub const SKEW_WARNING: SignedDuration = SignedDuration::from_secs(2);

/// One node's heartbeat as observed.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatSeen {
    /// The heartbeat instant last reported (node's clock) and when the
    /// cockpit saw it change (its own clock).
    last: Option<(Timestamp, Timestamp)>,
    /// Recent `seen - reported`, in milliseconds: the node clock's offset
    /// plus the delivery delay of each renewal.
    offsets: [i64; SAMPLES],
    count: usize,
}

impl HeartbeatSeen {
    /// Records the heartbeat the node reports now. A changed instant is a
    /// renewal seen at `now`; the same instant again (a relist, an update
    /// of another field) changes nothing.
    pub fn report(&mut self, reported: Option<Timestamp>, now: Timestamp) {
        let Some(reported) = reported else {
            self.last = None;
            return;
        };
        match self.last {
            Some((previous, _)) if previous == reported => {}
            Some(_) => {
                let offset = now.duration_since(reported).as_millis();
                self.offsets[self.count % SAMPLES] =
                    i64::try_from(offset).unwrap_or(if offset < 0 { i64::MIN } else { i64::MAX });
                self.count += 1;
                self.last = Some((reported, now));
            }
            // First sight: when it was renewed is unknown, so it counts from
            // now; a kubelet that is already dead shows late one renew
            // interval later.
            None => self.last = Some((reported, now)),
        }
    }

    /// When the cockpit last saw the heartbeat renew.
    pub fn at(&self) -> Option<Timestamp> {
        self.last.map(|(_, seen)| seen)
    }

    /// The heartbeat instant as the node reported it.
    pub fn reported(&self) -> Option<Timestamp> {
        self.last.map(|(reported, _)| reported)
    }

    /// How far the node's clock runs behind ours (negative: ahead), from
    /// the renewals seen so far. Each offset is the skew plus a delivery
    /// delay that is never negative, so the smallest is the best estimate.
    pub fn skew(&self) -> Option<SignedDuration> {
        let kept = self.count.min(SAMPLES);
        let min = self.offsets[..kept].iter().min()?;
        Some(SignedDuration::from_millis(*min))
    }
}

/// The skew as the node detail says it: "node clock 30.0s behind".
pub fn describe_skew(skew: SignedDuration) -> String {
    let secs = skew.as_secs_f64();
    let side = if secs >= 0.0 { "behind" } else { "ahead" };
    format!("node clock {:.1}s {side}", secs.abs())
}

/// Whether the skew is large enough to say so.
pub fn skew_is_notable(skew: SignedDuration) -> bool {
    skew.abs() > SKEW_WARNING
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(1_800_000_000_000 + ms).unwrap()
    }

    #[test]
    fn age_counts_from_the_observed_change_not_the_reported_time() {
        let mut hb = HeartbeatSeen::default();
        // The node's clock is 30 s behind: it reports t(-30 s) at t(0).
        hb.report(Some(t(-30_000)), t(0));
        assert_eq!(hb.at(), Some(t(0)));
        // A relist brings the same renewTime: still seen at t(0).
        hb.report(Some(t(-30_000)), t(5_000));
        assert_eq!(hb.at(), Some(t(0)));
        hb.report(Some(t(-20_000)), t(10_050));
        assert_eq!(hb.at(), Some(t(10_050)));
        assert_eq!(hb.reported(), Some(t(-20_000)));
    }

    #[test]
    fn skew_is_the_smallest_offset_seen() {
        let mut hb = HeartbeatSeen::default();
        hb.report(Some(t(0)), t(31_000));
        assert_eq!(hb.skew(), None, "first sight says nothing of the skew");
        hb.report(Some(t(10_000)), t(40_200));
        hb.report(Some(t(20_000)), t(50_030));
        hb.report(Some(t(30_000)), t(60_900));
        assert_eq!(hb.skew(), Some(SignedDuration::from_millis(30_030)));
        assert_eq!(describe_skew(hb.skew().unwrap()), "node clock 30.0s behind");
        assert!(skew_is_notable(hb.skew().unwrap()));
        assert_eq!(
            describe_skew(SignedDuration::from_millis(-2_500)),
            "node clock 2.5s ahead"
        );
        assert!(!skew_is_notable(SignedDuration::from_millis(1_900)));
    }

    #[test]
    fn old_offsets_age_out_of_the_estimate() {
        let mut hb = HeartbeatSeen::default();
        hb.report(Some(t(0)), t(0));
        for i in 1..=20 {
            // The node's clock was corrected: offsets move from 0 s to 5 s.
            let offset = if i <= 10 { 0 } else { 5_000 };
            hb.report(Some(t(i * 10_000)), t(i * 10_000 + offset));
        }
        assert_eq!(hb.skew(), Some(SignedDuration::from_secs(5)));
    }

    #[test]
    fn a_lost_heartbeat_forgets_the_observation() {
        let mut hb = HeartbeatSeen::default();
        hb.report(Some(t(0)), t(0));
        hb.report(None, t(1_000));
        assert_eq!(hb.at(), None);
    }
}
