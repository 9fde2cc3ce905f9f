//! authentik's duration grammar (`timedelta_from_string`): `hours=1;minutes=30`.
//!
//! Pairs are separated by `;` only; keys are compared case-insensitively and are not
//! trimmed; unknown keys are ignored; values are anything Python's `float()` accepts.

use thiserror::Error;

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DurationError {
    /// A pair without exactly one `=`, or a value that is not a number.
    #[error("{0} is not in the correct format of 'hours=3;minutes=1'.")]
    Format(String),
    /// No allowed key remained (authentik: "No valid keys to pass to timedelta").
    #[error("{0} is not in the correct format of 'hours=3;minutes=1'. (No valid keys to pass to timedelta)")]
    NoValidKeys(String),
    /// The total is infinite or beyond ±999,999,999 days. authentik answers HTTP 500
    /// here; we report it as a validation error.
    #[error("{0} is out of range: a duration must stay within 999999999 days")]
    Overflow(String),
}

/// A signed duration with microsecond resolution (Python's `timedelta`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration {
    micros: i64,
}

const MAX_DAYS: f64 = 999_999_999.0;

impl Duration {
    /// Total length in whole milliseconds (truncated toward zero).
    pub fn as_millis(self) -> i64 {
        self.micros / 1000
    }
    /// Total length in whole seconds, truncated like Python's `int(td.total_seconds())`.
    pub fn whole_seconds(self) -> i64 {
        self.micros / 1_000_000
    }
    /// Builds a duration from milliseconds.
    pub fn from_millis(ms: i64) -> Self {
        Self {
            micros: ms.saturating_mul(1000),
        }
    }
}

fn unit_seconds(key: &str) -> Option<f64> {
    Some(match key {
        "microseconds" => 1e-6,
        "milliseconds" => 1e-3,
        "seconds" => 1.0,
        "minutes" => 60.0,
        "hours" => 3600.0,
        "days" => 86400.0,
        "weeks" => 604800.0,
        _ => return None,
    })
}

/// Parses a value the way Python's `float()` does (after trimming).
fn python_float(raw: &str) -> Option<f64> {
    let s = raw.trim();
    if s.is_empty() {
        return None;
    }
    let cleaned;
    let s = if s.contains('_') {
        let b = s.as_bytes();
        for (i, &c) in b.iter().enumerate() {
            if c == b'_' {
                let ok = i > 0
                    && i + 1 < b.len()
                    && b[i - 1].is_ascii_digit()
                    && b[i + 1].is_ascii_digit();
                if !ok {
                    return None;
                }
            }
        }
        cleaned = s.replace('_', "");
        cleaned.as_str()
    } else {
        s
    };
    // Rust accepts the same spellings Python does (`inf`, `infinity`, `nan`, `1e2`,
    // `.5`, `5.`), case-insensitively, and nothing Python refuses.
    s.parse::<f64>().ok()
}

/// Parses `hours=1;minutes=2;seconds=3`.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let mut values: Vec<(&'static str, f64)> = Vec::new();
    for piece in input.split(';') {
        let mut parts = piece.split('=');
        let (Some(key), Some(value), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(DurationError::Format(input.to_string()));
        };
        let key = key.to_lowercase();
        let Some(unit) = unit_seconds(&key) else {
            continue;
        };
        let v = python_float(value).ok_or_else(|| DurationError::Format(input.to_string()))?;
        let name: &'static str = match key.as_str() {
            "microseconds" => "microseconds",
            "milliseconds" => "milliseconds",
            "seconds" => "seconds",
            "minutes" => "minutes",
            "hours" => "hours",
            "days" => "days",
            _ => "weeks",
        };
        // Duplicate keys: the last one wins.
        values.retain(|(k, _)| *k != name);
        values.push((name, v * unit));
    }
    if values.is_empty() {
        return Err(DurationError::NoValidKeys(input.to_string()));
    }
    let mut total = 0f64;
    for (_, v) in &values {
        if v.is_nan() {
            return Err(DurationError::Format(input.to_string()));
        }
        total += v;
    }
    if total.is_nan() {
        return Err(DurationError::Format(input.to_string()));
    }
    if !total.is_finite() || total.abs() > MAX_DAYS * 86400.0 {
        return Err(DurationError::Overflow(input.to_string()));
    }
    Ok(Duration {
        micros: (total * 1e6).round() as i64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> f64 {
        parse(s).unwrap().micros as f64 / 1e6
    }

    #[test]
    fn spec_examples() {
        assert_eq!(secs("minutes=30"), 1800.0);
        assert_eq!(secs("hours=1;minutes=2;seconds=3"), 3723.0);
        assert_eq!(secs("HOURS=1"), 3600.0);
        assert_eq!(secs("seconds=120"), 120.0);
        assert_eq!(secs("minutes=1.5"), 90.0);
        assert_eq!(secs("minutes=-5"), -300.0);
        assert_eq!(secs("foo=1;minutes=5"), 300.0);
        assert_eq!(secs(" minutes=5;seconds=1"), 1.0);
        assert_eq!(secs("minutes=1;minutes=2"), 120.0);
        assert_eq!(secs("seconds=1e2"), 100.0);
        assert_eq!(secs("seconds=1_0"), 10.0);
        assert_eq!(secs("seconds= 7 "), 7.0);
        assert_eq!(secs("weeks=1"), 604800.0);
        assert_eq!(secs("milliseconds=1500"), 1.5);
    }

    #[test]
    fn spec_errors() {
        for bad in [
            "hours=3,minutes=17,seconds=300",
            "",
            "minutes=5;",
            "minutes",
            "minutes=abc",
            "minutes=nan",
            "seconds=_1",
            "seconds=1__0",
        ] {
            assert!(
                matches!(parse(bad), Err(DurationError::Format(_))),
                "{bad:?} gave {:?}",
                parse(bad)
            );
        }
        assert_eq!(
            parse("foo=1"),
            Err(DurationError::NoValidKeys("foo=1".into()))
        );
        assert!(matches!(
            parse("minutes=inf"),
            Err(DurationError::Overflow(_))
        ));
        assert!(matches!(
            parse("days=1e10"),
            Err(DurationError::Overflow(_))
        ));
    }

    #[test]
    fn validator_message_is_authentiks() {
        assert_eq!(
            parse("x").unwrap_err().to_string(),
            "x is not in the correct format of 'hours=3;minutes=1'."
        );
    }

    #[test]
    fn truncation() {
        assert_eq!(parse("seconds=0.9").unwrap().whole_seconds(), 0);
        assert_eq!(parse("minutes=5").unwrap().as_millis(), 300_000);
    }
}
