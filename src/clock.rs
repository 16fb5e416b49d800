//! The cockpit's clock: wall time read once at start, advanced by the
//! monotonic clock. Heartbeat ages, soaks and timeouts are differences of
//! two readings; an NTP step of the operator's clock mid-session must not
//! age every heartbeat at once (and halt the rollout) or shorten a soak.

use std::sync::OnceLock;
use std::time::Instant;

use jiff::{SignedDuration, Timestamp};

static ANCHOR: OnceLock<(Timestamp, Instant)> = OnceLock::new();

/// Now, as the cockpit counts time.
pub fn now() -> Timestamp {
    let (wall, mono) = *ANCHOR.get_or_init(|| (Timestamp::now(), Instant::now()));
    let elapsed = SignedDuration::try_from(mono.elapsed()).unwrap_or(SignedDuration::MAX);
    wall.checked_add(elapsed).unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_goes_back_and_starts_at_wall_time() {
        let first = now();
        let wall = Timestamp::now();
        assert!(wall.duration_since(first).abs() < SignedDuration::from_secs(5));
        let mut last = first;
        for _ in 0..1000 {
            let t = now();
            assert!(t >= last);
            last = t;
        }
    }
}
