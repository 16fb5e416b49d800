//! Humane durations ("5m", "30s", "250ms", "1h30m") for plans and the journal.
//!
//! Plans are written by people, so timings read like people write them. The
//! same text form is used when the engine configuration is written to the
//! journal, so a journal line stays readable (`"soak":"5m"` rather than an
//! ISO 8601 `PT5M`). Only fixed-length units are accepted (h, m, s, ms):
//! a day or a month has no fixed length and has no place in a timeout.

use jiff::SignedDuration;
use serde::{Deserialize, Deserializer, Serializer};

/// Parses a humane duration: one or more `<integer><unit>` groups with units
/// `h`, `m`, `s`, `ms`, optionally separated by spaces. `"0"` means zero.
pub fn parse(text: &str) -> Result<SignedDuration, String> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() {
        return Err("empty duration; write e.g. \"5m\", \"30s\" or \"250ms\"".into());
    }
    if compact == "0" {
        return Ok(SignedDuration::ZERO);
    }
    let mut total_ms: i64 = 0;
    let mut rest = compact.as_str();
    while !rest.is_empty() {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(format!(
                "invalid duration {text:?}: expected a number before {rest:?} (e.g. \"5m\", \"30s\", \"250ms\")"
            ));
        }
        let (number, after) = rest.split_at(digits);
        let value: i64 = number
            .parse()
            .map_err(|_| format!("invalid duration {text:?}: number too large"))?;
        let unit_len = after
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .count();
        let (unit, after) = after.split_at(unit_len);
        let factor_ms = match unit {
            "h" => 3_600_000,
            "m" => 60_000,
            "s" => 1_000,
            "ms" => 1,
            "" => {
                return Err(format!(
                    "invalid duration {text:?}: missing unit after {number} (use h, m, s or ms)"
                ));
            }
            other => {
                return Err(format!(
                    "invalid duration {text:?}: unknown unit {other:?} (use h, m, s or ms)"
                ));
            }
        };
        total_ms = value
            .checked_mul(factor_ms)
            .and_then(|v| total_ms.checked_add(v))
            .ok_or_else(|| format!("invalid duration {text:?}: too large"))?;
        rest = after;
    }
    Ok(SignedDuration::from_millis(total_ms))
}

/// Formats a duration the way [`parse`] reads it, shortest form first:
/// 300 s is `"5m"`, 90 s is `"1m30s"`, 250 ms is `"250ms"`.
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
