//! How long a rate-limited provider asks to be left alone, read from the
//! headers of its answer.
//!
//! Providers say it differently: `retry-after` (seconds or an HTTP date),
//! `retry-after-ms`, OpenAI's `x-ratelimit-reset-{requests,tokens}` (Go
//! durations such as `6m0s`, `1s`, `20ms`) and Anthropic's
//! `anthropic-ratelimit-{requests,tokens,...}-reset` (an RFC 3339 time).
//! Whatever the provider says, the wait is capped at [`MAX_EVICTION`]: a
//! broken or hostile upstream must not take a backend out for ten years.

use http::HeaderMap;
use std::time::{Duration, SystemTime};

/// Longest a provider's hint can keep a backend out of rotation.
pub const MAX_EVICTION: Duration = Duration::from_secs(3600);

/// The wait the answer's headers ask for, capped at [`MAX_EVICTION`];
/// `None` when they name none. The explicit `retry-after-ms` and
/// `retry-after` win over the per-limit reset times. Of those, the limits
/// the answer says are exhausted (`remaining` is 0) decide, and the longest
/// of them; when none says so, the shortest reset is taken (the backend is
/// tried again as soon as any limit frees up).
pub fn retry_after(h: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let found = text("retry-after-ms")
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|ms| *ms >= 0.0)
        .map(|ms| Duration::try_from_secs_f64(ms / 1000.0).unwrap_or(Duration::MAX))
        .or_else(|| text("retry-after").and_then(|v| seconds_or_date(v, now)))
        .or_else(|| resets(h, now));
    found.map(|d| d.min(MAX_EVICTION))
}

/// Every `*-reset` header the providers send, exhausted ones first.
fn resets(h: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let mut exhausted = Vec::new();
    let mut other = Vec::new();
    for (name, value) in h {
        let name = name.as_str();
        let Ok(v) = value.to_str() else { continue };
        let (d, remaining) = if let Some(limit) = name.strip_prefix("x-ratelimit-reset") {
            let remaining = format!("x-ratelimit-remaining{limit}");
            (go_duration(v.trim()), remaining)
        } else if let Some(limit) = name
            .strip_prefix("anthropic-ratelimit-")
            .and_then(|n| n.strip_suffix("-reset"))
        {
            let at = humantime::parse_rfc3339_weak(v.trim()).ok();
            let d = at.map(|t| t.duration_since(now).unwrap_or(Duration::ZERO));
            (d, format!("anthropic-ratelimit-{limit}-remaining"))
        } else {
            continue;
        };
        let Some(d) = d else { continue };
        let out = h
            .get(remaining.as_str())
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == "0");
        if out {
            exhausted.push(d)
        } else {
            other.push(d)
        }
    }
    exhausted.into_iter().max().or(other.into_iter().min())
}

/// `Retry-After`: delay-seconds or an HTTP date (RFC 9110 §10.2.3).
fn seconds_or_date(v: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A Go duration (`6m0s`, `1.5s`, `20ms`, `1h2m`), as OpenAI sends its
/// reset times; a bare number is seconds.
pub fn go_duration(s: &str) -> Option<Duration> {
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn at(rfc3339: &str) -> SystemTime {
        humantime::parse_rfc3339(rfc3339).unwrap()
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(go_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(go_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(
            go_duration("1h2m3.5s"),
            Some(Duration::from_millis(3_723_500))
        );
        assert_eq!(go_duration("2"), Some(Duration::from_secs(2)));
        for bad in ["", "s", "5x", "1m-2s", "-1s", "nan"] {
            assert_eq!(go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_providers_spelling() {
        let now = at("2026-01-01T00:00:00Z");
        let d = |pairs: &[(&str, &str)]| retry_after(&headers(pairs), now);
        assert_eq!(d(&[("retry-after", "2")]), Some(Duration::from_secs(2)));
        assert_eq!(
            d(&[("retry-after", "Thu, 01 Jan 2026 00:00:30 GMT")]),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            d(&[("retry-after", "Wed, 31 Dec 2025 23:00:00 GMT")]),
            Some(Duration::ZERO)
        );
        assert_eq!(
            d(&[("retry-after-ms", "1500"), ("retry-after", "9")]),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            d(&[
                ("x-ratelimit-reset-requests", "1s"),
                ("x-ratelimit-reset-tokens", "6m0s"),
                ("x-ratelimit-remaining-tokens", "0"),
            ]),
            Some(Duration::from_secs(360))
        );
        assert_eq!(
            d(&[
                ("x-ratelimit-reset-requests", "20ms"),
                ("x-ratelimit-reset-tokens", "6m0s"),
            ]),
            Some(Duration::from_millis(20))
        );
        assert_eq!(
            d(&[
                ("anthropic-ratelimit-tokens-reset", "2026-01-01T00:00:45Z"),
                ("anthropic-ratelimit-tokens-remaining", "0"),
                ("anthropic-ratelimit-requests-reset", "2026-01-01T00:00:01Z"),
            ]),
            Some(Duration::from_secs(45))
        );
        assert_eq!(d(&[("retry-after", "soon")]), None);
        assert_eq!(d(&[]), None);
    }

    #[test]
    fn absurd_waits_are_capped() {
        let now = at("2026-01-01T00:00:00Z");
        let h = headers(&[("retry-after", "315360000")]);
        assert_eq!(retry_after(&h, now), Some(MAX_EVICTION));
        let h = headers(&[("retry-after", "Fri, 01 Jan 2100 00:00:00 GMT")]);
        assert_eq!(retry_after(&h, now), Some(MAX_EVICTION));
        let h = headers(&[("retry-after-ms", "1e300")]);
        assert_eq!(retry_after(&h, now), Some(MAX_EVICTION));
    }
}
