//! Probe results as the model keeps them: per endpoint (`ip:port`) of a
//! LoadBalancer service, up or down, the last latency, a bounded history for
//! the sparkline, and since when it is down. The probes themselves (I/O) are
//! in [`crate::probe`].

use std::collections::VecDeque;
use std::time::Duration;

use jiff::Timestamp;

/// Results kept per endpoint: one minute at one probe a second.
pub const HISTORY: usize = 60;

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
    Down { error: String },
    Up { down_for: Duration },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeState {
    pub check: String,
    /// The last result.
    pub up: bool,
    pub last_latency: Option<Duration>,
    pub last_error: Option<String>,
    /// Oldest first; `None` is a failed probe.
    pub history: VecDeque<Option<Duration>>,
    pub down_since: Option<Timestamp>,
    pub last_at: Option<Timestamp>,
}

impl ProbeState {
    pub fn new(check: &str) -> Self {
        ProbeState {
            check: check.to_string(),
            up: false,
            last_latency: None,
            last_error: None,
            history: VecDeque::with_capacity(HISTORY),
            down_since: None,
            last_at: None,
        }
    }

    /// Takes one result; returns the transition it caused, if any. A first
    /// result that fails counts as going down; a first success is quiet.
    pub fn record(&mut self, r: &ProbeResult) -> Option<ProbeTransition> {
        if self.history.len() >= HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(r.ok.then_some(r.latency));
        self.up = r.ok;
        self.last_at = Some(r.at);
        if r.ok {
            self.last_latency = Some(r.latency);
            self.last_error = None;
            let since = self.down_since.take()?;
            let down_for = Duration::try_from(r.at.duration_since(since)).unwrap_or_default();
            Some(ProbeTransition::Up { down_for })
        } else {
            let error = r.error.clone().unwrap_or_else(|| "failed".into());
            self.last_error = Some(error.clone());
            if self.down_since.is_some() {
                return None;
            }
            self.down_since = Some(r.at);
            Some(ProbeTransition::Down { error })
        }
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
        let mut s = ProbeState::new("tcp");
        assert_eq!(s.record(&result(0, true)), None);
        assert_eq!(
            s.record(&result(1, false)),
            Some(ProbeTransition::Down {
                error: "connection refused".into()
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
}
