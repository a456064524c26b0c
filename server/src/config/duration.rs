//! Durations in the config: whole seconds, or a number with a unit.

use std::time::Duration;

use serde::Deserialize;

use super::error::{ConfigError, invalid};

/// The longest duration the config accepts: a year. Anything longer is a
/// mistake, and would overflow clock arithmetic later.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// A duration in the config: an integer (seconds) or a string such as
/// `"250ms"`, `"30s"`, `"5m"`, `"1h"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawDuration {
    /// Whole seconds.
    Seconds(u64),
    /// A number with a unit.
    Text(String),
}

impl RawDuration {
    pub(crate) fn parse(&self, key: &str) -> Result<Duration, ConfigError> {
        let d = match self {
            RawDuration::Seconds(s) => Duration::from_secs(*s),
            RawDuration::Text(t) => parse_duration(t).ok_or_else(|| {
                invalid(
                    key,
                    format!(
                        "`{t}` is not a duration (use e.g. \"250ms\", \"30s\", \"5m\", \"1h\")"
                    ),
                )
            })?,
        };
        if d > MAX_DURATION {
            return Err(invalid(key, "longer than a year; use a shorter duration"));
        }
        Ok(d)
    }
}

/// Parses `"250ms"`, `"30s"`, `"5m"`, `"1h"` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    match unit.trim() {
        "" | "s" => Some(Duration::from_secs(n)),
        "ms" => Some(Duration::from_millis(n)),
        "m" | "min" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}
