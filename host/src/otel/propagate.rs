//! W3C Trace Context: reading `traceparent`/`tracestate` from the client and
//! writing them on the request sent upstream.
//!
//! Parsing follows the spec's rules for version 00 and its forward
//! compatibility (a higher version is read by its first four fields); an
//! invalid header is ignored, so the request starts a trace of its own.

use http::{HeaderMap, HeaderValue};

/// A 16-byte trace id; never all zeros.
pub type TraceId = [u8; 16];
/// An 8-byte span id; never all zeros.
pub type SpanId = [u8; 8];

/// The caller's span, as its `traceparent` named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parent {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub sampled: bool,
    /// `tracestate`, passed on as received (bounded by [`MAX_TRACESTATE`]).
    pub tracestate: Option<HeaderValue>,
}

/// Longest `tracestate` passed on; the spec lets a vendor cut at 512.
pub const MAX_TRACESTATE: usize = 512;

/// The caller's parent span, if its `traceparent` is valid.
pub fn extract(headers: &HeaderMap) -> Option<Parent> {
    let mut all = headers.get_all("traceparent").iter();
    let tp = all.next()?;
    if all.next().is_some() {
        // Two traceparents: the spec says to ignore them.
        return None;
    }
    let (trace_id, span_id, flags) = parse_traceparent(tp.to_str().ok()?)?;
    let tracestate = headers
        .get("tracestate")
        .filter(|v| !v.is_empty() && v.len() <= MAX_TRACESTATE)
        .cloned();
    Some(Parent {
        trace_id,
        span_id,
        sampled: flags & 1 == 1,
        tracestate,
    })
}

fn parse_traceparent(s: &str) -> Option<(TraceId, SpanId, u8)> {
    let s = s.trim();
    let mut parts = s.split('-');
    let version = hex_byte(parts.next()?)?;
    let trace = parts.next()?;
    let span = parts.next()?;
    let flags = parts.next()?;
    if version == 0xff || (version == 0 && parts.next().is_some()) {
        return None;
    }
    if trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
        return None;
    }
    let mut trace_id = [0u8; 16];
    for (i, b) in trace_id.iter_mut().enumerate() {
        *b = hex_byte(&trace[2 * i..2 * i + 2])?;
    }
    let mut span_id = [0u8; 8];
    for (i, b) in span_id.iter_mut().enumerate() {
        *b = hex_byte(&span[2 * i..2 * i + 2])?;
    }
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    Some((trace_id, span_id, hex_byte(flags)?))
}

/// Two lower-case hex digits (the spec allows no upper case).
fn hex_byte(s: &str) -> Option<u8> {
    let b = s.as_bytes();
    if b.len() != 2
        || !b
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
    {
        return None;
    }
    u8::from_str_radix(s, 16).ok()
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Set `traceparent` (and `tracestate` when there is one) for the upstream,
/// replacing whatever the client sent.
pub fn inject(
    headers: &mut HeaderMap,
    trace_id: &TraceId,
    span_id: &SpanId,
    sampled: bool,
    tracestate: Option<&HeaderValue>,
) {
    let v = format!(
        "00-{}-{}-{}",
        hex(trace_id),
        hex(span_id),
        if sampled { "01" } else { "00" }
    );
    if let Ok(v) = HeaderValue::from_str(&v) {
        headers.insert("traceparent", v);
    }
    match tracestate {
        Some(ts) => {
            headers.insert("tracestate", ts.clone());
        }
        None => {
            headers.remove("tracestate");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn reads_a_valid_traceparent_and_its_state() {
        let h = map(&[
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            ("tracestate", "congo=t61rcWkgMzE"),
        ]);
        let p = extract(&h).unwrap();
        assert_eq!(hex(&p.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&p.span_id), "00f067aa0ba902b7");
        assert!(p.sampled);
        assert_eq!(p.tracestate.unwrap(), "congo=t61rcWkgMzE");
    }

    #[test]
    fn refuses_invalid_ones() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "garbage",
        ] {
            assert!(extract(&map(&[("traceparent", bad)])).is_none(), "{bad}");
        }
        // A later version with more fields is read by its first four.
        let p = extract(&map(&[(
            "traceparent",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more",
        )]))
        .unwrap();
        assert!(!p.sampled);
    }

    #[test]
    fn injects_ours() {
        let mut h = map(&[("tracestate", "old=1")]);
        inject(&mut h, &[1; 16], &[2; 8], true, None);
        assert_eq!(
            h["traceparent"],
            "00-01010101010101010101010101010101-0202020202020202-01"
        );
        assert!(h.get("tracestate").is_none());
    }
}
