//! Header rules for forwarding: what a proxy must drop, add and replace.
//!
//! Every end-to-end header reaches the upstream unchanged (Claude Code's
//! `anthropic-beta` list changes with every release, so it is forwarded, never
//! rebuilt). Hop-by-hop headers are dropped, `Host` is left for the client to set
//! from the upstream URI, and the client's address is appended to
//! `x-forwarded-for`.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::net::IpAddr;

/// Headers that only describe one connection (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Drop hop-by-hop headers, including any the `Connection` header names.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in HOP_BY_HOP.iter() {
        h.remove(n);
    }
    h.remove(header::PROXY_AUTHORIZATION);
}

/// Prepare request headers for the upstream.
pub fn prepare_request(h: &mut HeaderMap, client_ip: IpAddr) {
    strip_hop_by_hop(h);
    h.remove(header::HOST);
    let xff = match h.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {client_ip}"),
        None => client_ip.to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        h.insert(HeaderName::from_static("x-forwarded-for"), v);
    }
}

/// Codings the host can decode in a response (see `stream::decode`).
const DECODABLE: [&str; 5] = ["gzip", "x-gzip", "deflate", "br", "zstd"];

/// Keep only the `Accept-Encoding` codings the host can decode, so a response
/// policy never meets a body it cannot read. Quality values are kept; with
/// nothing left the header is removed (identity).
pub fn limit_accept_encoding(h: &mut HeaderMap) {
    let kept: Vec<String> = h
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| {
            let coding = t
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            DECODABLE.contains(&coding.as_str()) || coding == "identity"
        })
        .map(str::to_string)
        .collect();
    h.remove(header::ACCEPT_ENCODING);
    if kept.is_empty() {
        return;
    }
    if let Ok(v) = HeaderValue::from_str(&kept.join(", ")) {
        h.insert(header::ACCEPT_ENCODING, v);
    }
}

/// Prepare response headers for the client.
pub fn prepare_response(h: &mut HeaderMap) {
    strip_hop_by_hop(h);
}

/// A copy of headers safe to log: credentials replaced.
pub fn redacted(h: &HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(k, v)| {
            let secret = crate::config::is_credential_header(k.as_str());
            let value = if secret {
                "<redacted>".to_string()
            } else {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            };
            (k.as_str().to_string(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_hop_by_hop_keeps_end_to_end() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, x-private".parse().unwrap());
        h.insert("x-private", "1".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        h.insert("host", "localhost:4001".parse().unwrap());
        h.insert("anthropic-beta", "a,b,c".parse().unwrap());
        prepare_request(&mut h, "10.0.0.9".parse().unwrap());
        assert!(h.get("x-private").is_none());
        assert!(h.get("transfer-encoding").is_none());
        assert!(h.get("host").is_none());
        assert_eq!(h["anthropic-beta"], "a,b,c");
        assert_eq!(h["x-forwarded-for"], "10.0.0.9");
    }

    #[test]
    fn accept_encoding_keeps_only_decodable_codings() {
        let mut h = HeaderMap::new();
        h.append(
            "accept-encoding",
            "gzip, compress;q=0.5, BR".parse().unwrap(),
        );
        h.append("accept-encoding", "snappy, zstd;q=0.1".parse().unwrap());
        limit_accept_encoding(&mut h);
        assert_eq!(h["accept-encoding"], "gzip, BR, zstd;q=0.1");
        let mut h = HeaderMap::new();
        h.insert("accept-encoding", "compress, snappy".parse().unwrap());
        limit_accept_encoding(&mut h);
        assert!(h.get("accept-encoding").is_none());
    }

    #[test]
    fn connection_named_headers_go_before_policies_see_them() {
        let mut h = HeaderMap::new();
        h.insert("connection", "x-gateway-version, close".parse().unwrap());
        h.insert("x-gateway-version", "client".parse().unwrap());
        h.insert("te", "trailers".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert!(h.is_empty(), "{h:?}");
    }
}
