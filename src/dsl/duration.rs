//! Durations as the language writes them: `150ms`, `2s`, `5m`, `1h`, `2d`.

use std::fmt;
use std::str::FromStr;

/// The longest duration the language accepts (about 100 years).
pub(crate) const MAX_MILLIS: u64 = 100 * 365 * 24 * 3_600_000;

/// A duration in whole milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub u64);

/// Why a duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationError {
    Form,
    TooLong,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DurationError::Form => "a duration is a whole number and a unit: 150ms, 2s, 5m, 1h, 2d",
            DurationError::TooLong => "a duration may be at most 100 years",
        })
    }
}

impl Duration {
    pub fn from_millis(ms: u64) -> Self {
        Duration(ms)
    }

    pub fn millis(self) -> u64 {
        self.0
    }

    pub fn std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0)
    }
}

impl Duration {
    /// A duration a template gave at run time (DSL.md B3): text such as `48h`,
    /// or a whole number of milliseconds. The error says what it was instead.
    pub(crate) fn from_value(value: &serde_json::Value) -> Result<Duration, String> {
        let not =
            |shown: String| format!("gave {shown}, which is not a duration (like `48h`, or a number of milliseconds)");
        match value {
            serde_json::Value::String(text) => text.parse().map_err(|e: DurationError| match e {
                DurationError::TooLong => format!("gave `{text}`: {e}"),
                DurationError::Form => not(format!("`{text}`")),
            }),
            serde_json::Value::Number(n) => match n.as_u64() {
                Some(ms) if ms <= MAX_MILLIS => Ok(Duration(ms)),
                Some(_) => Err(format!("gave {n} ms: {}", DurationError::TooLong)),
                None => Err(not(n.to_string())),
            },
            other => Err(not(other.to_string())),
        }
    }
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, DurationError> {
        let split = s.find(|c: char| !c.is_ascii_digit()).ok_or(DurationError::Form)?;
        let (digits, unit) = s.split_at(split);
        if digits.is_empty() {
            return Err(DurationError::Form);
        }
        let factor: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(DurationError::Form),
        };
        let n: u64 = digits.parse().map_err(|_| DurationError::TooLong)?;
        let ms = n.checked_mul(factor).ok_or(DurationError::TooLong)?;
        if ms > MAX_MILLIS {
            return Err(DurationError::TooLong);
        }
        Ok(Duration(ms))
    }
}

impl fmt::Display for Duration {
    /// The largest unit that divides the value evenly: `90s` stays `90s`, `120s` is `2m`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        for (factor, unit) in [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1_000, "s")] {
            if ms >= factor && ms.is_multiple_of(factor) {
                return write!(f, "{}{unit}", ms / factor);
            }
        }
        write!(f, "{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for (text, ms) in
            [("150ms", 150), ("2s", 2000), ("5m", 300_000), ("1h", 3_600_000), ("2d", 172_800_000), ("0s", 0)]
        {
            assert_eq!(text.parse::<Duration>(), Ok(Duration(ms)));
        }
        for bad in ["", "5", "ms", "5 m", "1.5s", "-1s", "5min", "2w"] {
            assert_eq!(bad.parse::<Duration>(), Err(DurationError::Form), "{bad}");
        }
        assert_eq!("99999999999999999999999d".parse::<Duration>(), Err(DurationError::TooLong));
        assert_eq!(Duration(120_000).to_string(), "2m");
        assert_eq!(Duration(90_000).to_string(), "90s");
        assert_eq!(Duration(1500).to_string(), "1500ms");
    }
}
