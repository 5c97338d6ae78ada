//! Sizes and durations as operators write them in YAML: one grammar for the
//! host's config loader and for every plugin (`sluice_sdk::units`).
//!
//! # Sizes
//! A whole or decimal number, optional `_` separators, an optional space,
//! then an optional unit (case-insensitive):
//!
//! | unit | bytes |
//! | --- | --- |
//! | none, `B` | 1 |
//! | `K`, `KB` | 1,000 |
//! | `M`, `MB` | 1,000,000 |
//! | `G`, `GB` | 1,000,000,000 |
//! | `T`, `TB` | 10^12 |
//! | `Ki`, `KiB` | 1,024 |
//! | `Mi`, `MiB` | 1,048,576 |
//! | `Gi`, `GiB` | 2^30 |
//! | `Ti`, `TiB` | 2^40 |
//!
//! **`MB` is decimal: `1MB` = 1,000,000 bytes; write `1MiB` for 1,048,576.**
//! Why: the grammar has both spellings, so each must mean one thing (the
//! IEC rule, also the Kubernetes quantity rule that agentgateway configs
//! follow: `1M` = 10^6, `1Mi` = 2^20). A limit is a security boundary, and
//! the SI reading is the stricter one. Fractions round down (`1.5KB` = 1500).
//!
//! # Durations
//! [`humantime`]'s grammar: one or more `<whole number><unit>` parts,
//! optionally separated by spaces (`50ms`, `30s`, `5m`, `1h30m`, `1d`,
//! `2 hours`). A unit is required: a bare `30` is refused, since seconds and
//! milliseconds are both plausible readings. Plugins that also accept a YAML
//! number of seconds do so explicitly (`sluice_sdk::config::duration`).

use std::time::Duration;

/// Why a size or duration was refused. The text never repeats more than the
/// value itself, and callers prefix the key path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error(
        "`{0}` is not a size (examples: 1MB = 1,000,000 bytes, 1MiB = 1,048,576, 512KiB, 4096)"
    )]
    Size(String),
    #[error("size `{0}` is too large")]
    SizeTooLarge(String),
    #[error("`{0}` is not a duration ({1}; examples: 50ms, 30s, 5m, 1h30m)")]
    Duration(String, String),
}

/// Parse a size such as `1MB`, `64MiB`, `512 KiB`, `1.5GB`, `1_000` into bytes.
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    let bad = || UnitError::Size(s.to_owned());
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: String = num.chars().filter(|c| *c != '_').collect();
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
        return Err(bad());
    }
    let mult: u64 = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "ki" | "kib" => 1 << 10,
        "mi" | "mib" => 1 << 20,
        "gi" | "gib" => 1 << 30,
        "ti" | "tib" => 1 << 40,
        _ => return Err(bad()),
    };
    if let Ok(n) = num.parse::<u64>() {
        return n
            .checked_mul(mult)
            .ok_or_else(|| UnitError::SizeTooLarge(s.to_owned()));
    }
    let (whole, frac) = num.split_once('.').ok_or_else(bad)?;
    if frac.contains('.') {
        return Err(bad());
    }
    let whole: u64 = whole.parse().map_err(|_| bad())?;
    let frac_bytes = {
        // Exact decimal arithmetic: frac digits / 10^len * mult, rounded down.
        let digits = &frac[..frac.len().min(18)];
        let f: u128 = digits.parse().map_err(|_| bad())?;
        (f * u128::from(mult) / 10u128.pow(digits.len() as u32)) as u64
    };
    whole
        .checked_mul(mult)
        .and_then(|w| w.checked_add(frac_bytes))
        .ok_or_else(|| UnitError::SizeTooLarge(s.to_owned()))
}

/// Parse a duration such as `50ms`, `30s`, `1h30m`, `1d`.
pub fn parse_duration(s: &str) -> Result<Duration, UnitError> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        let why = match e {
            humantime::DurationError::NumberExpected(_) => "a number is expected".to_owned(),
            humantime::DurationError::UnknownUnit { unit, .. } => {
                format!("unknown unit `{unit}`")
            }
            humantime::DurationError::NumberOverflow => "too large".to_owned(),
            humantime::DurationError::Empty => "empty".to_owned(),
            humantime::DurationError::InvalidCharacter(_) => "invalid character".to_owned(),
        };
        let why = if s.trim().chars().all(|c| c.is_ascii_digit()) && !s.trim().is_empty() {
            "a unit is required".to_owned()
        } else {
            why
        };
        UnitError::Duration(s.to_owned(), why)
    })
}

/// [`parse_duration`] in whole milliseconds (sub-millisecond parts round down).
pub fn parse_duration_ms(s: &str) -> Result<u64, UnitError> {
    let d = parse_duration(s)?;
    u64::try_from(d.as_millis())
        .map_err(|_| UnitError::Duration(s.to_owned(), "too large".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_and_binary_sizes() {
        for (s, want) in [
            ("1MB", 1_000_000),
            ("1mb", 1_000_000),
            ("1 MB", 1_000_000),
            ("1M", 1_000_000),
            ("1MiB", 1_048_576),
            ("1Mi", 1_048_576),
            ("64MiB", 64 << 20),
            ("512KiB", 512 << 10),
            ("2KB", 2_000),
            ("2kB", 2_000),
            ("1GB", 1_000_000_000),
            ("1GiB", 1 << 30),
            ("1TB", 1_000_000_000_000),
            ("1.5MB", 1_500_000),
            ("1.5KiB", 1536),
            ("0.5B", 0),
            ("4096", 4096),
            ("100B", 100),
            ("1_000", 1000),
            (" 7 ", 7),
        ] {
            assert_eq!(parse_size(s), Ok(want), "{s}");
        }
    }

    #[test]
    fn bad_sizes() {
        for s in [
            "", "MB", "12XB", "1PB", "-1", "1..5MB", ".5MB", "1.MB", "1e3",
        ] {
            assert!(parse_size(s).is_err(), "{s}");
        }
        assert!(matches!(
            parse_size("99999999999999999999GB"),
            Err(UnitError::SizeTooLarge(_) | UnitError::Size(_))
        ));
        assert_eq!(
            parse_size("20000000TB"),
            Err(UnitError::SizeTooLarge("20000000TB".into()))
        );
        let msg = parse_size("1XB").unwrap_err().to_string();
        assert!(msg.contains("1MB = 1,000,000"), "{msg}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("50ms"), Ok(Duration::from_millis(50)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        for s in ["", "soon", "1w2", "s"] {
            assert!(parse_duration(s).is_err(), "{s}");
        }
        let e = parse_duration("60").unwrap_err().to_string();
        assert!(e.contains("unit is required"), "{e}");
    }
}
