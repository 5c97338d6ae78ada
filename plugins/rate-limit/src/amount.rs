//! Numbers and durations as operators write them in YAML.
//!
//! The guide's prose says "max 1M tokens/day", so limits accept suffixed
//! counts (`1M`, `500k`, `1_000_000`) as well as plain numbers. Counts are
//! decimal (SI): `1M` = 1,000,000, the way token budgets are quoted.

/// Parse a count: a JSON number, or a string like `100`, `1M`, `2.5k`, `1_000`.
pub fn parse_count(v: &serde_json::Value) -> Result<u64, String> {
    match v {
        serde_json::Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Ok(u)
            } else if let Some(f) = n.as_f64() {
                if f >= 0.0 && f.fract() == 0.0 && f < u64::MAX as f64 {
                    Ok(f as u64)
                } else {
                    Err(format!("expected a whole number >= 0, got {n}"))
                }
            } else {
                Err(format!("expected a whole number >= 0, got {n}"))
            }
        }
        serde_json::Value::String(s) => parse_count_str(s),
        other => Err(format!("expected a number, got {other}")),
    }
}

fn parse_count_str(s: &str) -> Result<u64, String> {
    let t: String = s
        .trim()
        .chars()
        .filter(|c| *c != '_' && *c != ',')
        .collect();
    let bad = || format!("`{s}` is not a count (examples: 100, 1M, 500k)");
    if t.is_empty() {
        return Err(bad());
    }
    let (num, mult) = match t.chars().last().unwrap() {
        'k' | 'K' => (&t[..t.len() - 1], 1_000f64),
        'm' | 'M' => (&t[..t.len() - 1], 1_000_000f64),
        'g' | 'G' | 'b' | 'B' => (&t[..t.len() - 1], 1_000_000_000f64),
        _ => (t.as_str(), 1f64),
    };
    if let Ok(u) = num.parse::<u64>() {
        return u.checked_mul(mult as u64).ok_or_else(bad);
    }
    let f: f64 = num.parse().map_err(|_| bad())?;
    let total = f * mult;
    if !f.is_finite() || f < 0.0 || total.fract() != 0.0 || total >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(total as u64)
}

/// Parse a duration such as `1s`, `60s`, `500ms`, `1m`, `1h30m`, `1d`
/// (agentgateway's `fillInterval`): the SDK's one grammar. A unit is required.
pub fn parse_duration_ms(s: &str) -> Result<u64, String> {
    sluice_sdk::units::parse_duration_ms(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts() {
        assert_eq!(parse_count(&json!(100)).unwrap(), 100);
        assert_eq!(parse_count(&json!(100.0)).unwrap(), 100);
        assert_eq!(parse_count(&json!("1M")).unwrap(), 1_000_000);
        assert_eq!(parse_count(&json!("1m")).unwrap(), 1_000_000);
        assert_eq!(parse_count(&json!("500k")).unwrap(), 500_000);
        assert_eq!(parse_count(&json!("2.5k")).unwrap(), 2_500);
        assert_eq!(parse_count(&json!("1_000_000")).unwrap(), 1_000_000);
        assert_eq!(parse_count(&json!(" 42 ")).unwrap(), 42);
        assert!(parse_count(&json!(-1)).is_err());
        assert!(parse_count(&json!(1.5)).is_err());
        assert!(parse_count(&json!("lots")).is_err());
        assert!(parse_count(&json!("")).is_err());
        assert!(parse_count(&json!(true)).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("1s").unwrap(), 1_000);
        assert_eq!(parse_duration_ms("60s").unwrap(), 60_000);
        assert_eq!(parse_duration_ms("500ms").unwrap(), 500);
        assert_eq!(parse_duration_ms("1m").unwrap(), 60_000);
        assert_eq!(parse_duration_ms("1h30m").unwrap(), 5_400_000);
        assert_eq!(parse_duration_ms("1d").unwrap(), 86_400_000);
        assert!(parse_duration_ms("60").is_err());
        assert!(parse_duration_ms("s").is_err());
        assert!(parse_duration_ms("1x").is_err());
        assert!(parse_duration_ms("").is_err());
    }
}
