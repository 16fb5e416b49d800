//! Human durations ("250ms", "30s", "5m", "1h30m") for plans, scenarios and
//! flags: one parser for all of them, and `file:line:column` locations for TOML errors.

use std::time::Duration;

use jiff::SignedDuration;

/// The longest duration any plan, scenario or flag takes. A soak, a timeout
/// or a fault delay beyond a week is a typo (`5000000000h`) that would
/// otherwise park a rollout for ever; refusing it at parse time puts the
/// error on the field that holds it.
pub const MAX_DURATION_HOURS: i64 = 7 * 24;

/// Parses a humane duration: one or more `<integer><unit>` groups with units
/// `h`, `m`, `s`, `ms`, optionally separated by spaces. `"0"` means zero; at
/// most [`MAX_DURATION_HOURS`].
pub fn parse_signed(text: &str) -> Result<SignedDuration, String> {
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
    if total_ms > MAX_DURATION_HOURS * 3_600_000 {
        return Err(format!(
            "invalid duration {text:?}: longer than the {MAX_DURATION_HOURS}h (7 days) maximum"
        ));
    }
    Ok(SignedDuration::from_millis(total_ms))
}

/// [`parse_signed`] as a `std::time::Duration` (the parser has no sign).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let signed = parse_signed(text)?;
    Duration::try_from(signed).map_err(|_| format!("invalid duration {text:?}: negative"))
}

/// Formats a duration the way operators read it: 850ms, 42s, 5m03s, 1h02m.
/// This is the one display form for every duration the cockpit shows or
/// writes for people (screens, timeline, engine events, reports, errors);
/// seconds and minutes are zero-padded so columns of them line up.
/// Journal and plan files use [`crate::upgrade::duration::format`] instead,
/// which keeps every millisecond so the text parses back to the same value.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 if d.as_millis() > 0 => format!("{}ms", d.as_millis()),
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// [`format_duration`] for a signed duration: a negative one gets a `-`.
pub fn format_signed(d: SignedDuration) -> String {
    let sign = if d.is_negative() { "-" } else { "" };
    format!("{sign}{}", format_duration(d.unsigned_abs()))
}

/// serde helper: `#[serde(with = "crate::durations::serde_human")]`.
pub mod serde_human {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }
}

/// Turns a TOML error into `file:line:column: message`.
pub fn toml_error(origin: &str, text: &str, err: &toml::de::Error) -> String {
    let (line, col) = err
        .span()
        .map(|span| line_col(text, span.start))
        .unwrap_or((1, 1));
    format!("{origin}:{line}:{col}: {}", err.message())
}

/// 1-based line and character column of a byte offset in `source`.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_combinations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn absurd_durations_are_refused() {
        assert_eq!(
            parse_duration("168h"),
            Ok(Duration::from_secs(7 * 24 * 3600))
        );
        for absurd in ["5000000000h", "168h1ms", "10081m", "99999999999999999999s"] {
            let e = parse_duration(absurd).unwrap_err();
            assert!(
                e.contains(absurd) && (e.contains("maximum") || e.contains("large")),
                "{e}"
            );
        }
        assert!(
            parse_duration("5000000000h")
                .unwrap_err()
                .contains("7 days")
        );
    }

    #[test]
    fn formats_for_humans() {
        assert_eq!(format_duration(Duration::from_secs(303)), "5m03s");
        assert_eq!(format_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_millis(42_900)), "42s");
        assert_eq!(format_duration(Duration::from_secs(300)), "5m00s");
        assert_eq!(format_duration(Duration::from_secs(3725)), "1h02m");
        assert_eq!(format_signed(SignedDuration::from_secs(303)), "5m03s");
        assert_eq!(format_signed(SignedDuration::from_millis(-250)), "-250ms");
    }

    #[test]
    fn toml_errors_point_at_line_and_column() {
        let text = "a = 1\nb = = 2\n";
        let err = toml::from_str::<toml::Value>(text).unwrap_err();
        assert!(toml_error("x.toml", text, &err).starts_with("x.toml:2:"));
    }
}
