//! Body sizes: `1MB`, `2MB`, `512KB`, `1MiB`, `1.5 MB`, plain bytes.
//!
//! Decision: units are binary. `KB`/`KiB`/`K` = 1024, `MB`/`MiB`/`M` =
//! 1,048,576, `GB`/`GiB`/`G` = 2^30. This is what body limits mean in the
//! proxies operators know (nginx `client_max_body_size 1m`, Envoy and
//! agentgateway byte limits quoted as powers of two), and of the two readings
//! it is the lenient one, so the guide's `maxRequestBodySize: 1MB` never
//! refuses a body between 1,000,000 and 1,048,576 bytes that an operator
//! thinking in MiB expects to pass.

use serde_json::Value;

pub fn parse_size(v: &Value) -> Result<u64, String> {
    let n = match v {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| format!("expected a whole number of bytes, got {n}"))?,
        Value::String(s) => parse_size_str(s)?,
        other => return Err(format!("expected a size such as 1MB, got {other}")),
    };
    if n == 0 {
        return Err("must be larger than 0".into());
    }
    Ok(n)
}

fn parse_size_str(s: &str) -> Result<u64, String> {
    let bad = || format!("`{s}` is not a size (examples: 1MB, 512KB, 1MiB, 1048576)");
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: String = num.chars().filter(|c| *c != '_').collect();
    if num.is_empty() {
        return Err(bad());
    }
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(bad()),
    };
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(mult).ok_or_else(bad);
    }
    let f: f64 = num.parse().map_err(|_| bad())?;
    let bytes = (f * mult as f64).floor();
    if !bytes.is_finite() || bytes < 0.0 || bytes >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes() {
        for (v, want) in [
            (json!("1MB"), 1_048_576),
            (json!("2MB"), 2_097_152),
            (json!("512KB"), 524_288),
            (json!("1MiB"), 1_048_576),
            (json!("1 mb"), 1_048_576),
            (json!("1.5MB"), 1_572_864),
            (json!("1G"), 1 << 30),
            (json!("100B"), 100),
            (json!("1048576"), 1_048_576),
            (json!(1000), 1000),
            (json!("1_000"), 1000),
        ] {
            assert_eq!(parse_size(&v).unwrap(), want, "{v}");
        }
        for bad in [
            json!("1TB"),
            json!("MB"),
            json!(""),
            json!(-1),
            json!(0),
            json!("0KB"),
            json!(true),
            json!(1.5),
        ] {
            assert!(parse_size(&bad).is_err(), "{bad}");
        }
    }
}
