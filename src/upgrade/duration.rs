//! Humane durations ("5m", "30s", "250ms", "1h30m") for plans and the journal.
//!
//! Plans are written by people, so timings read like people write them. The
//! same text form is used when the engine configuration is written to the
//! journal, so a journal line stays readable (`"soak":"5m"` rather than an
//! ISO 8601 `PT5M`). Only fixed-length units are accepted (h, m, s, ms):
//! a day or a month has no fixed length and has no place in a timeout.

use jiff::SignedDuration;
use serde::{Deserialize, Deserializer, Serializer};

/// Parses a humane duration; the one parser is shared with scenarios and
/// flags in [`crate::durations`].
pub use crate::durations::parse_signed as parse;

/// Encodes a duration the way [`parse`] reads it back exactly, shortest
/// form first: 300 s is `"5m"`, 90 s is `"1m30s"`, 250 ms is `"250ms"`.
/// For files (journal, plans), not for display: people are shown
/// [`crate::durations::format_duration`].
pub fn format(duration: SignedDuration) -> String {
    let sign = if duration.is_negative() { "-" } else { "" };
    let mut ms = duration.as_millis().unsigned_abs();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::from(sign);
    for (unit, size) in [("h", 3_600_000u128), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

/// `#[serde(with = "duration::humane")]` for a [`SignedDuration`] field.
pub mod humane {
    use super::*;

    pub fn serialize<S: Serializer>(d: &SignedDuration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SignedDuration, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(serde::de::Error::custom)
    }
}

/// `#[serde(with = "duration::humane_opt")]` for an `Option<SignedDuration>`.
pub mod humane_opt {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<SignedDuration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&format(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SignedDuration>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| parse(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_humane_units() {
        assert_eq!(parse("5m"), Ok(SignedDuration::from_mins(5)));
        assert_eq!(parse("30s"), Ok(SignedDuration::from_secs(30)));
        assert_eq!(parse("250ms"), Ok(SignedDuration::from_millis(250)));
        assert_eq!(parse("1h30m"), Ok(SignedDuration::from_mins(90)));
        assert_eq!(parse("1m 30s"), Ok(SignedDuration::from_secs(90)));
        assert_eq!(parse("0"), Ok(SignedDuration::ZERO));
        assert_eq!(parse("0s"), Ok(SignedDuration::ZERO));
    }

    #[test]
    fn rejects_unclear_durations() {
        for bad in ["", "5", "m", "5d", "1.5m", "-5m", "5 mins"] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(parse("5d").unwrap_err().contains("unknown unit \"d\""));
    }

    #[test]
    fn format_round_trips() {
        for text in [
            "5m", "30s", "250ms", "1h30m", "1m30s", "0s", "2h", "1s500ms",
        ] {
            let d = parse(text).unwrap();
            assert_eq!(format(d), text);
            assert_eq!(parse(&format(d)), Ok(d));
        }
    }
}
