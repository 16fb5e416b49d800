//! Human durations ("250ms", "30s", "5m", "1h30m") for plans, scenarios and
//! flags, and `file:line:column` locations for TOML errors.

use std::time::Duration;

/// Parses "250ms", "30s", "5m", "2h", or combinations like "1m30s".
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("duration {text:?} needs a unit (ms, s, m, h)"))?;
        if digits == 0 {
            return Err(format!("invalid duration {text:?}"));
        }
        let value: f64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid number in duration {text:?}"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_len] {
            "ms" => value / 1000.0,
            "s" => value,
            "m" => value * 60.0,
            "h" => value * 3600.0,
            u => {
                return Err(format!(
                    "unknown unit {u:?} in duration {text:?} (use ms, s, m, h)"
                ));
            }
        };
        total += Duration::from_secs_f64(secs);
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// Formats a duration the way operators read it: 850ms, 42s, 5m03s, 1h02m.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 if d.as_millis() > 0 => format!("{}ms", d.as_millis()),
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
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

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
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
    fn formats_for_humans() {
        assert_eq!(format_duration(Duration::from_secs(303)), "5m03s");
        assert_eq!(format_duration(Duration::from_millis(850)), "850ms");
    }

    #[test]
    fn toml_errors_point_at_line_and_column() {
        let text = "a = 1\nb = = 2\n";
        let err = toml::from_str::<toml::Value>(text).unwrap_err();
        assert!(toml_error("x.toml", text, &err).starts_with("x.toml:2:"));
    }
}
