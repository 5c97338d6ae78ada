//! Human-friendly quantities in host-owned fields: byte sizes (`64MiB`,
//! `1MB` = 1,000,000 bytes) and durations (`50ms`).
//!
//! The grammar is `sluice-units` (re-exported to plugins as
//! `sluice_sdk::units`), so a size or duration means the same thing in a
//! host field and in a plugin's config. This module only words the errors
//! for the loader, which already prefixes file, line, key and value.

use std::time::Duration;

use sluice_units::UnitError;

/// Parse `123`, `64MiB`, `1MB`, `512KiB`, `2GB`... into bytes. Decimal units
/// (KB, MB, GB) are powers of 1000, binary ones (KiB, MiB, GiB) powers of 1024.
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    sluice_units::parse_size(s).map_err(|e| e.to_string())
}

pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    sluice_units::parse_duration(s).map_err(|e| match e {
        UnitError::Duration(_, why) => {
            format!("invalid duration ({why}); expected e.g. `50ms`, `30s`, `2m`")
        }
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("12XB").is_err());
        assert!(parse_size("MiB").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("50ms"), Ok(Duration::from_millis(50)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert!(parse_duration("soon")
            .unwrap_err()
            .starts_with("invalid duration"));
    }
}
