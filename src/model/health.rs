//! Heartbeat health derived from the node Lease: pure functions of the
//! lease's own timings and `now`, so the thresholds follow whatever the
//! cluster configured instead of constants.

use std::time::Duration;

use jiff::Timestamp;

/// The kubelet renews every quarter of the lease duration
/// (`nodeLeaseRenewIntervalFraction = 0.25`).
pub const RENEW_FRACTION: f64 = 0.25;
/// The kubelet adds up to 4 % jitter to each renewal period.
const JITTER: f64 = 0.04;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Heartbeat {
    /// Renewed within one renew interval (plus jitter and slack).
    Fresh,
    /// At least one renewal was missed.
    Late,
    /// Older than the lease duration: the lease has run out; the node
    /// lifecycle controller will mark the node NotReady at its grace period.
    Expired,
    /// No heartbeat seen (no lease, or no access to leases).
    Unknown,
}

impl Heartbeat {
    pub fn label(self) -> &'static str {
        match self {
            Heartbeat::Fresh => "fresh",
            Heartbeat::Late => "LATE",
            Heartbeat::Expired => "EXPIRED",
            Heartbeat::Unknown => "?",
        }
    }
}

/// Slack for watch delivery, the lease watcher's pacing and clock skew.
/// None of them shrinks with the lease, so neither does the slack: a lab
/// compressed ten-fold renews every second on a loaded 2-core machine.
const SLACK: Duration = Duration::from_secs(1);

/// When a heartbeat counts as late: one renew interval plus jitter, plus
/// [`SLACK`].
pub fn late_after(lease_duration: Duration) -> Duration {
    let renew = lease_duration.mul_f64(RENEW_FRACTION);
    renew.mul_f64(1.0 + JITTER) + SLACK
}

/// Classifies a heartbeat `renewed` at that instant, seen at `now`.
pub fn classify(renewed: Option<Timestamp>, lease_duration: Duration, now: Timestamp) -> Heartbeat {
    let Some(renewed) = renewed else {
        return Heartbeat::Unknown;
    };
    let age = age(renewed, now);
    if age > lease_duration {
        Heartbeat::Expired
    } else if age > late_after(lease_duration) {
        Heartbeat::Late
    } else {
        Heartbeat::Fresh
    }
}

/// Missed renewals in a row at which the rollout's gate halts.
pub const DEFAULT_MISSED_RENEWALS: u32 = 2;

/// Renewals missed by a heartbeat of this `age`: none while it is within
/// [`late_after`], then one more for every renew interval (with jitter) that
/// passes without one. The gate halts at a configurable count, so one slow
/// renewal (a loaded node, a watch event late over Wi-Fi) is an alert, not
/// a halt.
pub fn missed_renewals(age: Duration, lease_duration: Duration) -> u32 {
    let late = late_after(lease_duration);
    if age <= late {
        return 0;
    }
    let period = lease_duration.mul_f64(RENEW_FRACTION * (1.0 + JITTER));
    if period.is_zero() {
        return 1;
    }
    let more = (age - late).as_secs_f64() / period.as_secs_f64();
    1 + more.min(f64::from(u16::MAX)) as u32
}

/// Non-negative age (a renewTime slightly ahead of our clock reads as 0).
pub fn age(at: Timestamp, now: Timestamp) -> Duration {
    let span = now.duration_since(at);
    Duration::try_from(span).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    #[test]
    fn default_kubelet_lease_thresholds() {
        let lease = Duration::from_secs(40);
        assert_eq!(late_after(lease), Duration::from_millis(11_400));
        assert_eq!(classify(Some(t(0)), lease, t(10)), Heartbeat::Fresh);
        // 10 s renew + 4 % jitter must never read as late.
        assert_eq!(classify(Some(t(0)), lease, t(11)), Heartbeat::Fresh);
        assert_eq!(classify(Some(t(0)), lease, t(12)), Heartbeat::Late);
        assert_eq!(classify(Some(t(0)), lease, t(40)), Heartbeat::Late);
        assert_eq!(classify(Some(t(0)), lease, t(41)), Heartbeat::Expired);
    }

    #[test]
    fn compressed_lab_lease_scales_thresholds() {
        let lease = Duration::from_secs(10);
        assert_eq!(classify(Some(t(0)), lease, t(3)), Heartbeat::Fresh);
        assert_eq!(classify(Some(t(0)), lease, t(4)), Heartbeat::Late);
        assert_eq!(classify(Some(t(0)), lease, t(11)), Heartbeat::Expired);
        // The tests' lab: 4 s leases renewed every second, late after 2.04 s.
        assert_eq!(
            late_after(Duration::from_secs(4)),
            Duration::from_millis(2040)
        );
    }

    #[test]
    fn missed_renewals_count_one_per_renew_interval_after_late() {
        let lease = Duration::from_secs(40);
        let at = |ms: u64| missed_renewals(Duration::from_millis(ms), lease);
        assert_eq!(at(11_400), 0);
        assert_eq!(at(11_401), 1);
        // 10.4 s later the second renewal is missed too.
        assert_eq!(at(21_799), 1);
        assert_eq!(at(21_801), 2);
        assert_eq!(at(40_000), 3);
    }

    #[test]
    fn future_renew_time_is_age_zero_and_missing_is_unknown() {
        assert_eq!(age(t(5), t(0)), Duration::ZERO);
        assert_eq!(
            classify(None, Duration::from_secs(40), t(0)),
            Heartbeat::Unknown
        );
    }
}
