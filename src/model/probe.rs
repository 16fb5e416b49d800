//! Probe results as the model keeps them: per endpoint (`ip:port`) of a
//! LoadBalancer service, up or down, the last latency, a bounded history for
//! the sparkline, and since when it is down. The probes themselves (I/O) are
//! in [`crate::probe`].
//!
//! One failed probe is not an outage: over Wi-Fi an 800 ms timeout now and
//! then is normal, and a gate that halted on it would halt for nothing. An
//! endpoint turns DOWN after `down_after` failures in a row (default
//! [`DEFAULT_FAILURES`]); each failure before that is a
//! [`ProbeTransition::Failed`] (a timeline entry at Warn), a success before
//! the count is reached resets it, and those failures are counted as flaps.
//! The outage of an endpoint that does turn DOWN is measured from the first
//! failure of its run.

use std::collections::VecDeque;
use std::time::Duration;

use jiff::Timestamp;

/// Results kept per endpoint: one minute at one probe a second.
pub const HISTORY: usize = 60;

/// Failures in a row that turn an endpoint DOWN unless told otherwise
/// (`--probe-failures`, the plan's `gates.probe_failures`).
pub const DEFAULT_FAILURES: u32 = 3;

/// One probe of one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    /// (namespace, name) of the service.
    pub service: (String, String),
    /// `ip:port` probed.
    pub endpoint: String,
    /// `tcp` or `http GET /path`.
    pub check: String,
    pub ok: bool,
    /// Time to connect (TCP) or to the status line (HTTP), or until failure.
    pub latency: Duration,
    pub error: Option<String>,
    /// When the probe was sent.
    pub at: Timestamp,
}

/// A change worth a timeline entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeTransition {
    /// A failure short of DOWN: the `streak`-th in a row of `of` needed.
    Failed {
        error: String,
        streak: u32,
        of: u32,
    },
    /// `failures` in a row: the endpoint is DOWN since the first of them.
    Down {
        error: String,
        since: Timestamp,
        failures: u32,
    },
    Up {
        down_for: Duration,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeState {
    pub check: String,
    /// False only while DOWN (`down_after` failures in a row and no
    /// success since); a failure short of that leaves it true.
    pub up: bool,
    pub last_latency: Option<Duration>,
    pub last_error: Option<String>,
    /// Oldest first; `None` is a failed probe.
    pub history: VecDeque<Option<Duration>>,
    /// The first failure of the run that turned the endpoint DOWN.
    pub down_since: Option<Timestamp>,
    pub last_at: Option<Timestamp>,
    /// Failures in a row that turn the endpoint DOWN (at least 1).
    pub down_after: u32,
    /// Failures in a row so far (0 after a success).
    pub streak: u32,
    /// When the current run of failures began.
    streak_since: Option<Timestamp>,
    /// Failures that did not reach DOWN: a success came first.
    pub flaps: u32,
}

impl ProbeState {
    /// A state that turns DOWN after [`DEFAULT_FAILURES`] failures.
    pub fn new(check: &str) -> Self {
        ProbeState::with_threshold(check, DEFAULT_FAILURES)
    }

    /// A state that turns DOWN after `down_after` failures in a row (1:
    /// every failure is an outage, the behaviour before flap tolerance).
    pub fn with_threshold(check: &str, down_after: u32) -> Self {
        ProbeState {
            check: check.to_string(),
            up: true,
            last_latency: None,
            last_error: None,
            history: VecDeque::with_capacity(HISTORY),
            down_since: None,
            last_at: None,
            down_after: down_after.max(1),
            streak: 0,
            streak_since: None,
            flaps: 0,
        }
    }

    /// Takes one result; returns the transition it caused, if any. A
    /// failure below the threshold is [`ProbeTransition::Failed`]; the
    /// threshold-th is [`ProbeTransition::Down`]; failures while DOWN are
    /// quiet. A first success is quiet.
    pub fn record(&mut self, r: &ProbeResult) -> Option<ProbeTransition> {
        if self.history.len() >= HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(r.ok.then_some(r.latency));
        self.last_at = Some(r.at);
        if r.ok {
            self.last_latency = Some(r.latency);
            self.last_error = None;
            self.up = true;
            let streak = std::mem::take(&mut self.streak);
            self.streak_since = None;
            let Some(since) = self.down_since.take() else {
                // Recovered before the threshold: those failures were flaps.
                self.flaps += streak;
                return None;
            };
            let down_for = Duration::try_from(r.at.duration_since(since)).unwrap_or_default();
            Some(ProbeTransition::Up { down_for })
        } else {
            let error = r.error.clone().unwrap_or_else(|| "failed".into());
            self.last_error = Some(error.clone());
            if self.down_since.is_some() {
                return None;
            }
            self.streak += 1;
            let since = *self.streak_since.get_or_insert(r.at);
            if self.streak < self.down_after {
                return Some(ProbeTransition::Failed {
                    error,
                    streak: self.streak,
                    of: self.down_after,
                });
            }
            self.up = false;
            self.down_since = Some(since);
            Some(ProbeTransition::Down {
                error,
                since,
                failures: self.streak,
            })
        }
    }

    /// Changes the threshold; a run already at the new threshold turns
    /// DOWN with the next failure.
    pub fn set_threshold(&mut self, down_after: u32) {
        self.down_after = down_after.max(1);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn result(at: i64, ok: bool) -> ProbeResult {
        ProbeResult {
            service: ("frigate".into(), "frigate".into()),
            endpoint: "127.77.0.12:5000".into(),
            check: "tcp".into(),
            ok,
            latency: Duration::from_millis(3),
            error: (!ok).then(|| "connection refused".into()),
            at: Timestamp::from_second(1_800_000_000 + at).unwrap(),
        }
    }

    #[test]
    fn down_once_then_up_with_the_outage_length_and_bounded_history() {
        // With a threshold of 1 every failure is an outage (the old way).
        let mut s = ProbeState::with_threshold("tcp", 1);
        assert_eq!(s.record(&result(0, true)), None);
        assert_eq!(
            s.record(&result(1, false)),
            Some(ProbeTransition::Down {
                error: "connection refused".into(),
                since: result(1, false).at,
                failures: 1,
            })
        );
        assert_eq!(s.record(&result(2, false)), None);
        assert_eq!(
            s.record(&result(11, true)),
            Some(ProbeTransition::Up {
                down_for: Duration::from_secs(10)
            })
        );
        for i in 0..200 {
            s.record(&result(20 + i, true));
        }
        assert_eq!(s.history.len(), HISTORY);
        assert!(s.up && s.down_since.is_none());
    }

    /// One failure in ten for five minutes (Wi-Fi): never DOWN, every
    /// failure a `Failed 1/3`, and all of them counted as flaps.
    #[test]
    fn one_failure_in_ten_never_goes_down_and_counts_flaps() {
        let mut s = ProbeState::new("tcp");
        let mut failed = 0;
        for i in 0..300 {
            let ok = i % 10 != 9;
            match s.record(&result(i, ok)) {
                None => {}
                Some(ProbeTransition::Failed { streak, of, .. }) => {
                    assert_eq!((streak, of), (1, DEFAULT_FAILURES));
                    failed += 1;
                }
                other => panic!("at {i}: {other:?}"),
            }
            assert!(s.up, "DOWN at {i}");
            assert!(s.down_since.is_none());
        }
        assert_eq!(failed, 30);
        // The last failure (at 299) has had no success after it yet.
        assert_eq!((s.flaps, s.streak), (29, 1));
    }

    /// Two failures, a success (reset), then three in a row: DOWN since the
    /// first of the three, and the outage measured from it.
    #[test]
    fn three_in_a_row_go_down_from_the_first_and_a_success_resets_the_count() {
        let mut s = ProbeState::new("tcp");
        assert_eq!(s.record(&result(0, true)), None);
        assert!(matches!(
            s.record(&result(1, false)),
            Some(ProbeTransition::Failed {
                streak: 1,
                of: 3,
                ..
            })
        ));
        assert!(matches!(
            s.record(&result(2, false)),
            Some(ProbeTransition::Failed {
                streak: 2,
                of: 3,
                ..
            })
        ));
        assert_eq!(s.record(&result(3, true)), None);
        assert_eq!((s.streak, s.flaps), (0, 2));
        assert!(matches!(
            s.record(&result(4, false)),
            Some(ProbeTransition::Failed { streak: 1, .. })
        ));
        assert!(matches!(
            s.record(&result(5, false)),
            Some(ProbeTransition::Failed { streak: 2, .. })
        ));
        assert!(s.up);
        assert_eq!(
            s.record(&result(6, false)),
            Some(ProbeTransition::Down {
                error: "connection refused".into(),
                since: result(4, false).at,
                failures: 3,
            })
        );
        assert!(!s.up);
        assert_eq!(s.record(&result(7, false)), None, "quiet while DOWN");
        assert_eq!(
            s.record(&result(10, true)),
            Some(ProbeTransition::Up {
                down_for: Duration::from_secs(6)
            })
        );
        assert_eq!(s.flaps, 2, "the outage's failures are not flaps");
    }
}
