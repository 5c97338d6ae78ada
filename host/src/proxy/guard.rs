//! Listener admission: which listener a request arrived on, and whether that
//! listener lets it in, before any route is chosen.
//!
//! A gateway that injects provider keys spends money for whoever reaches it,
//! so each listener refuses, by default, what an honest CLI or SDK never
//! sends:
//! - a `Host` that is neither loopback nor a configured hostname on a loopback
//!   bind (DNS rebinding: a web page whose name now resolves to 127.0.0.1);
//! - an `Origin` header (a browser) unless `allowedOrigins` lists it;
//! - a missing or wrong gateway client key when `auth.keys` is set. The key
//!   that matched is removed, so it never reaches the provider.

use super::snapshot::{BindTable, ListenerTable, Snapshot};
use http::{header, HeaderMap, Request};
use std::net::IpAddr;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The configured port of the bind a connection was accepted on (set by
/// the listener task on every request).
#[derive(Debug, Clone, Copy)]
pub struct BindPort(pub u16);

/// The TLS SNI name the client sent, if any (set by the listener task).
#[derive(Debug, Clone)]
pub struct Sni(pub String);

/// Why a request was refused before routing.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

fn refuse(status: u16, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
    }
}

/// Pick the request's listener and apply its access rules.
pub fn admit<B>(snap: &Snapshot, req: &mut Request<B>) -> Result<Arc<ListenerTable>, Refusal> {
    let Some(BindPort(port)) = req.extensions().get::<BindPort>().copied() else {
        return Err(refuse(
            421,
            "request did not arrive on a configured listener",
        ));
    };
    let Some(bind) = snap.binds.get(&port) else {
        return Err(refuse(421, "this port is no longer configured"));
    };
    let host = request_host(req);
    let sni = req
        .extensions()
        .get::<Sni>()
        .map(|s| s.0.to_ascii_lowercase());
    let table = select(bind, sni.as_deref().or(host.as_deref()))
        .ok_or_else(|| refuse(421, "no listener on this port answers for this host"))?;
    if bind.loopback {
        if let Some(h) = host.as_deref() {
            if !is_loopback_name(h) && !bind.listeners.iter().any(|l| names(l, h)) {
                return Err(refuse(
                    421,
                    "this gateway only answers for localhost (Host header names another host)",
                ));
            }
        }
    }
    check_origin(&table, req.headers())?;
    check_client_key(&table, req.headers_mut())?;
    Ok(table)
}

/// The listener for `host`: an exact hostname, then a wildcard, then one
/// without a hostname.
fn select(bind: &BindTable, host: Option<&str>) -> Option<Arc<ListenerTable>> {
    if let Some(h) = host {
        if let Some(l) = bind
            .listeners
            .iter()
            .find(|l| l.hostname.as_deref() == Some(h))
        {
            return Some(l.clone());
        }
        if let Some(l) = bind.listeners.iter().find(|l| names(l, h)) {
            return Some(l.clone());
        }
    }
    bind.listeners
        .iter()
        .find(|l| l.hostname.is_none())
        .cloned()
}

/// Does listener `l`'s hostname cover `host`?
fn names(l: &ListenerTable, host: &str) -> bool {
    match l.hostname.as_deref() {
        None => false,
        Some(pat) => match pat.strip_prefix("*.") {
            Some(suffix) => host
                .strip_suffix(suffix)
                .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
            None => pat == host,
        },
    }
}

/// The host the client addressed (`:authority` or `Host`), lowercase,
/// without port, brackets or a trailing dot.
fn request_host<B>(req: &Request<B>) -> Option<String> {
    let raw = match req.uri().authority() {
        Some(a) => a.as_str().to_string(),
        None => req.headers().get(header::HOST)?.to_str().ok()?.to_string(),
    };
    Some(strip_port(&raw).trim_end_matches('.').to_ascii_lowercase())
}

fn strip_port(authority: &str) -> &str {
    let a = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(rest) = a.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(h, _)| h);
    }
    match a.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => a,
    }
}

/// `localhost`, `*.localhost` (RFC 6761), 127.0.0.0/8, `::1`.
fn is_loopback_name(host: &str) -> bool {
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    host.parse::<IpAddr>().is_ok_and(|ip| match ip {
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        IpAddr::V4(v4) => v4.is_loopback(),
    })
}

/// Browsers send `Origin`; CLIs and SDKs don't. Refuse unless allowed.
fn check_origin(l: &ListenerTable, h: &HeaderMap) -> Result<(), Refusal> {
    let origins: Vec<&[u8]> = h
        .get_all(header::ORIGIN)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    if origins.is_empty() {
        return Ok(());
    }
    let allowed = |o: &[u8]| {
        let o = String::from_utf8_lossy(o)
            .trim_end_matches('/')
            .to_ascii_lowercase();
        l.allowed_origins.iter().any(|a| a == "*" || *a == o)
    };
    if origins.len() == 1 && allowed(origins[0]) {
        return Ok(());
    }
    Err(refuse(
        403,
        "requests from web pages are refused (Origin not in this listener's allowedOrigins)",
    ))
}

/// With `auth.keys`: the client must present one, as `x-api-key` or
/// `Authorization: Bearer`; the header that carried it is removed.
fn check_client_key(l: &ListenerTable, h: &mut HeaderMap) -> Result<(), Refusal> {
    if l.auth_keys.is_empty() {
        return Ok(());
    }
    let matches = |presented: &str| {
        l.auth_keys.iter().fold(false, |hit, k| {
            hit | bool::from(k.expose().as_bytes().ct_eq(presented.as_bytes()))
        })
    };
    let api_key = h.get("x-api-key").and_then(|v| v.to_str().ok());
    if api_key.is_some_and(matches) {
        h.remove("x-api-key");
        return Ok(());
    }
    let bearer = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    if bearer.is_some_and(matches) {
        h.remove(header::AUTHORIZATION);
        return Ok(());
    }
    Err(refuse(
        401,
        "this gateway requires a client key (x-api-key or Authorization: Bearer)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(hostname: Option<&str>, origins: &[&str], keys: &[&str]) -> ListenerTable {
        ListenerTable {
            name: "l".into(),
            hostname: hostname.map(str::to_string),
            routes: Vec::new(),
            layers: Vec::new(),
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            auth_keys: keys
                .iter()
                .map(|k| crate::config::Secret::new(*k))
                .collect(),
            models: None,
        }
    }

    #[test]
    fn hosts() {
        assert_eq!(strip_port("localhost:4001"), "localhost");
        assert_eq!(strip_port("[::1]:4001"), "::1");
        assert_eq!(strip_port("127.0.0.1"), "127.0.0.1");
        assert!(is_loopback_name("localhost"));
        assert!(is_loopback_name("a.localhost"));
        assert!(is_loopback_name("127.0.0.1"));
        assert!(is_loopback_name("127.1.2.3"));
        assert!(is_loopback_name("::1"));
        assert!(!is_loopback_name("evil.example"));
        assert!(!is_loopback_name("localhost.evil.example"));
        assert!(!is_loopback_name("10.0.0.1"));
    }

    #[test]
    fn wildcard_hostnames() {
        let l = table(Some("*.example.com"), &[], &[]);
        assert!(names(&l, "api.example.com"));
        assert!(!names(&l, "example.com"));
        assert!(!names(&l, "evilexample.com"));
        let l = table(Some("api.example.com"), &[], &[]);
        assert!(names(&l, "api.example.com"));
        assert!(!names(&l, "x.api.example.com"));
    }

    #[test]
    fn origins() {
        let mut h = HeaderMap::new();
        let closed = table(None, &[], &[]);
        assert!(check_origin(&closed, &h).is_ok());
        h.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert_eq!(check_origin(&closed, &h).unwrap_err().status, 403);
        let open = table(None, &["https://app.example.com"], &[]);
        assert!(check_origin(&open, &h).is_err());
        h.insert(header::ORIGIN, "https://APP.example.com".parse().unwrap());
        assert!(check_origin(&open, &h).is_ok());
    }

    #[test]
    fn client_keys() {
        let l = table(None, &[], &["gw-key-1", "gw-key-2"]);
        let mut h = HeaderMap::new();
        assert_eq!(check_client_key(&l, &mut h).unwrap_err().status, 401);
        h.insert("x-api-key", "gw-key-2".parse().unwrap());
        assert!(check_client_key(&l, &mut h).is_ok());
        assert!(h.get("x-api-key").is_none());
        h.insert(header::AUTHORIZATION, "Bearer gw-key-1".parse().unwrap());
        assert!(check_client_key(&l, &mut h).is_ok());
        assert!(h.get(header::AUTHORIZATION).is_none());
        h.insert(header::AUTHORIZATION, "Bearer gw-key-".parse().unwrap());
        assert!(check_client_key(&l, &mut h).is_err());
    }
}
