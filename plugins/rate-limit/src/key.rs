//! Who a limit is counted for: `key:` / `by:` in the config.
//!
//! Forms: `route` (default), `ip`, `global`, `header: NAME` / `"header:NAME"`,
//! `claim: NAME` / `"claim:NAME"` (the JWT plugin's `auth.claims.NAME`
//! attribute), or a list of these to combine them (`[route, ip]`).
//!
//! Identifier values are hashed (SHA-256, truncated) before they go into a
//! counter key: a header such as `x-api-key` holds a credential, and counter
//! keys end up in the shared store (Redis) and its logs.

use serde_json::Value;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPart {
    /// The serving route (`ctx.route`).
    Route,
    /// The client IP (`ctx.client-ip`).
    Ip,
    /// One counter for everything the limit covers.
    Global,
    /// A request header (lowercased name).
    Header(String),
    /// A JWT claim, read from attribute `auth.claims.NAME`.
    Claim(String),
}

impl KeyPart {
    /// Stable text for the limit definition.
    pub fn canonical(&self) -> String {
        match self {
            KeyPart::Route => "route".into(),
            KeyPart::Ip => "ip".into(),
            KeyPart::Global => "global".into(),
            KeyPart::Header(n) => format!("header:{n}"),
            KeyPart::Claim(n) => format!("claim:{n}"),
        }
    }
}

const HELP: &str = "use route, ip, global, {header: NAME}, {claim: NAME} or a list of them";

/// Parse a `key:` value; `at` names it in errors.
pub fn parse(v: &Value, at: &str) -> Result<Vec<KeyPart>, String> {
    let parts = match v {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(format!("`{at}` is empty: {HELP}"));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, item)| parse_one(item, &format!("{at}[{i}]")))
                .collect::<Result<Vec<_>, _>>()?
        }
        _ => vec![parse_one(v, at)?],
    };
    Ok(parts)
}

fn named(kind: &str, name: &str, at: &str) -> Result<KeyPart, String> {
    let name = name.trim();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(format!("`{at}`: `{kind}` needs a name without spaces"));
    }
    Ok(match kind {
        "header" => KeyPart::Header(name.to_ascii_lowercase()),
        _ => KeyPart::Claim(name.to_owned()),
    })
}

fn parse_one(v: &Value, at: &str) -> Result<KeyPart, String> {
    match v {
        Value::String(s) => match s.trim() {
            "route" => Ok(KeyPart::Route),
            "ip" | "clientIp" | "client-ip" => Ok(KeyPart::Ip),
            "global" => Ok(KeyPart::Global),
            other => match other.split_once(':') {
                Some((kind @ ("header" | "claim"), name)) => named(kind, name, at),
                _ => Err(format!("`{at}`: unknown key `{other}`: {HELP}")),
            },
        },
        Value::Object(o) if o.len() == 1 => {
            let (k, val) = o.iter().next().unwrap();
            match (k.as_str(), val.as_str()) {
                (kind @ ("header" | "claim"), Some(name)) => {
                    named(kind, name, &format!("{at}.{k}"))
                }
                _ => Err(format!("`{at}`: unknown key `{k}`: {HELP}")),
            }
        }
        _ => Err(format!("`{at}`: {HELP}")),
    }
}

/// Short, stable, non-reversible digest of an identifier value.
pub fn digest(value: &str) -> String {
    let d = Sha256::digest(value.as_bytes());
    d[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// What a request's identity is made of.
pub struct Subject<'a> {
    pub route: &'a str,
    pub client_ip: &'a str,
    pub header: &'a dyn Fn(&str) -> Option<String>,
    pub claim: &'a dyn Fn(&str) -> Option<String>,
}

/// The request's identity for `parts`. A missing header or claim falls back
/// to the client IP: pooling every such request into one shared counter would
/// let one client starve the others, and skipping the limit would let anyone
/// bypass it by omitting the header.
pub fn identity(parts: &[KeyPart], s: &Subject) -> String {
    let ip = || format!("ip={}", digest(s.client_ip));
    parts
        .iter()
        .map(|p| match p {
            KeyPart::Route => format!("route={}", s.route),
            KeyPart::Ip => ip(),
            KeyPart::Global => "global".into(),
            KeyPart::Header(n) => match (s.header)(n).filter(|v| !v.is_empty()) {
                Some(v) => format!("header:{n}={}", digest(&v)),
                None => format!("header:{n}=missing/{}", ip()),
            },
            KeyPart::Claim(n) => match (s.claim)(n).filter(|v| !v.is_empty()) {
                Some(v) => format!("claim:{n}={}", digest(&v)),
                None => format!("claim:{n}=missing/{}", ip()),
            },
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn forms() {
        assert_eq!(parse(&json!("route"), "k").unwrap(), [KeyPart::Route]);
        assert_eq!(parse(&json!("ip"), "k").unwrap(), [KeyPart::Ip]);
        assert_eq!(
            parse(&json!("header:X-Org-Id"), "k").unwrap(),
            [KeyPart::Header("x-org-id".into())]
        );
        assert_eq!(
            parse(&json!({"claim": "email"}), "k").unwrap(),
            [KeyPart::Claim("email".into())]
        );
        assert_eq!(
            parse(&json!(["route", {"header": "x-user"}]), "k").unwrap(),
            [KeyPart::Route, KeyPart::Header("x-user".into())]
        );
        for bad in [
            json!("cookie"),
            json!([]),
            json!({"header": ""}),
            json!({"path": "x"}),
            json!(3),
        ] {
            assert!(parse(&bad, "rateLimit.key")
                .unwrap_err()
                .contains("rateLimit.key"));
        }
    }

    #[test]
    fn identities_hash_values_and_fall_back_to_ip() {
        let header = |n: &str| (n == "x-org").then(|| "acme".to_string());
        let claim = |_: &str| None;
        let s = Subject {
            route: "claude",
            client_ip: "10.0.0.1",
            header: &header,
            claim: &claim,
        };
        let id = identity(
            &[
                KeyPart::Route,
                KeyPart::Header("x-org".into()),
                KeyPart::Claim("email".into()),
            ],
            &s,
        );
        assert!(id.starts_with("route=claude,header:x-org="), "{id}");
        assert!(!id.contains("acme") && !id.contains("10.0.0.1"), "{id}");
        assert!(
            id.contains(&format!("claim:email=missing/ip={}", digest("10.0.0.1"))),
            "{id}"
        );
        assert_eq!(digest("a"), digest("a"));
        assert_ne!(digest("a"), digest("b"));
        assert_eq!(digest("a").len(), 24);
    }
}
