//! Token checks, pure: parse, pick keys, verify the signature, check claims.
//!
//! The order is deliberate: nothing from the payload is trusted or reported
//! before the signature verified, so a forged token only ever learns
//! "signature invalid". Time comes in as an argument (the host clock), which
//! keeps tests deterministic.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use crate::keys::{self, Key, Material};
use sluice_sdk::host;

/// Longest token accepted; real ones are a few KB.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Why a token was refused. `message` is what the client sees: it names the
/// failed check and never contains the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Missing,
    Multiple,
    Malformed(&'static str),
    UnsupportedAlg(String),
    AlgNotAllowed(String),
    UnsupportedCrit,
    /// The token names a `kid` no key has.
    UnknownKid,
    /// No key of the token's algorithm (kid matched or absent).
    NoKeyForAlg(String),
    BadSignature,
    MissingExp,
    Expired,
    NotYetValid,
    IssuerMismatch,
    AudienceMismatch,
}

impl Failure {
    pub fn message(&self) -> String {
        match self {
            Failure::Missing => "missing bearer token".into(),
            Failure::Multiple => "more than one bearer token".into(),
            Failure::Malformed(why) => format!("malformed token: {why}"),
            Failure::UnsupportedAlg(a) => format!("unsupported algorithm {a}"),
            Failure::AlgNotAllowed(a) => format!("algorithm {a} is not allowed"),
            Failure::UnsupportedCrit => "unsupported critical header parameter".into(),
            Failure::UnknownKid => "unknown signing key id".into(),
            Failure::NoKeyForAlg(a) => format!("no signing key for algorithm {a}"),
            Failure::BadSignature => "signature invalid".into(),
            Failure::MissingExp => "token has no exp claim".into(),
            Failure::Expired => "token expired".into(),
            Failure::NotYetValid => "token not yet valid".into(),
            Failure::IssuerMismatch => "issuer mismatch".into(),
            Failure::AudienceMismatch => "audience mismatch".into(),
        }
    }
}

/// A token split into its parts, header decoded, payload not yet trusted.
#[derive(Debug)]
pub struct Token<'a> {
    pub alg: Algorithm,
    pub kid: Option<String>,
    /// `header.payload`, what the signature covers.
    pub signing_input: &'a str,
    pub payload: &'a str,
    pub signature: &'a str,
}

fn b64_json(part: &str, what: &'static str) -> Result<Value, Failure> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Failure::Malformed(what))?;
    serde_json::from_slice(&bytes).map_err(|_| Failure::Malformed(what))
}

/// Split and decode the header; checks `alg` against `allowed`.
pub fn parse<'a>(token: &'a str, allowed: &[Algorithm]) -> Result<Token<'a>, Failure> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(Failure::Malformed("too long"));
    }
    let mut it = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(Failure::Malformed("not a compact JWS"));
    };
    let header = b64_json(h, "bad header")?;
    let header = header.as_object().ok_or(Failure::Malformed("bad header"))?;
    let alg_name = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(Failure::Malformed("no alg"))?;
    let alg = keys::algorithm(alg_name).ok_or_else(|| {
        // `none`, `None`, `NONE`: all the unsigned form; name it plainly.
        let shown = if alg_name.eq_ignore_ascii_case("none") {
            "none".to_owned()
        } else {
            // Attacker-chosen text ends up in a header: keep it tame.
            alg_name
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .take(32)
                .collect()
        };
        Failure::UnsupportedAlg(shown)
    })?;
    if !allowed.contains(&alg) {
        return Err(Failure::AlgNotAllowed(alg_name.to_owned()));
    }
    // RFC 7515 §4.1.11: extensions we don't understand must be refused.
    if header.contains_key("crit") {
        return Err(Failure::UnsupportedCrit);
    }
    if s.is_empty() {
        return Err(Failure::Malformed("empty signature"));
    }
    Ok(Token {
        alg,
        kid: header.get("kid").and_then(Value::as_str).map(str::to_owned),
        signing_input: &token[..h.len() + 1 + p.len()],
        payload: p,
        signature: s,
    })
}

/// Verify the signature against the keys that fit the token's kid and alg.
/// A key without a `kid` (the `secret`, or an anonymous JWK) is a candidate
/// for every token.
pub fn verify(token: &Token, keys: &[&Key]) -> Result<(), Failure> {
    let candidates: Vec<&&Key> = keys
        .iter()
        .filter(|k| match (&token.kid, &k.kid) {
            (Some(t), Some(k)) => t == k,
            _ => true,
        })
        .filter(|k| k.accepts(token.alg))
        .collect();
    if candidates.is_empty() {
        if token.kid.is_some() && !keys.iter().any(|k| k.kid == token.kid) {
            return Err(Failure::UnknownKid);
        }
        return Err(Failure::NoKeyForAlg(format!("{:?}", token.alg)));
    }
    // A bad signature encoding or key is just "doesn't verify".
    let raw_sig = URL_SAFE_NO_PAD.decode(token.signature).ok();
    for k in candidates {
        let ok = match (&k.material, keys::scheme(token.alg), &raw_sig) {
            (Material::Hmac(secret), None, _) => matches!(
                jsonwebtoken::crypto::verify(
                    token.signature,
                    token.signing_input.as_bytes(),
                    secret,
                    token.alg,
                ),
                Ok(true)
            ),
            (Material::Public(public), Some(scheme), Some(sig)) => {
                host::verify_signature(scheme, public, token.signing_input.as_bytes(), sig)
            }
            _ => false,
        };
        if ok {
            return Ok(());
        }
    }
    Err(Failure::BadSignature)
}

/// What the claim checks need.
#[derive(Debug, Clone, Default)]
pub struct ClaimRules {
    pub issuer: Option<String>,
    pub audiences: Vec<String>,
    pub leeway_s: u64,
    pub require_exp: bool,
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// Decode the (verified) payload and check exp, nbf, iss and aud.
pub fn claims(
    token: &Token,
    rules: &ClaimRules,
    now_s: u64,
) -> Result<Map<String, Value>, Failure> {
    let claims = decode_claims(token)?;
    check_claims(&claims, rules, now_s)?;
    Ok(claims)
}

/// The payload as a JSON object (call only once the signature verified).
pub fn decode_claims(token: &Token) -> Result<Map<String, Value>, Failure> {
    match b64_json(token.payload, "bad payload")? {
        Value::Object(claims) => Ok(claims),
        _ => Err(Failure::Malformed("payload is not a JSON object")),
    }
}

/// Check exp, nbf, iss and aud of decoded claims at `now_s`.
pub fn check_claims(
    claims: &Map<String, Value>,
    rules: &ClaimRules,
    now_s: u64,
) -> Result<(), Failure> {
    let now = now_s as f64;
    let leeway = rules.leeway_s as f64;
    match claims.get("exp") {
        None if rules.require_exp => return Err(Failure::MissingExp),
        None => {}
        Some(v) => {
            let exp = num(v).ok_or(Failure::Malformed("exp is not a number"))?;
            if now > exp + leeway {
                return Err(Failure::Expired);
            }
        }
    }
    if let Some(v) = claims.get("nbf") {
        let nbf = num(v).ok_or(Failure::Malformed("nbf is not a number"))?;
        if now + leeway < nbf {
            return Err(Failure::NotYetValid);
        }
    }
    if let Some(want) = &rules.issuer {
        let got = claims.get("iss").and_then(Value::as_str);
        if got.map(trim_slash) != Some(trim_slash(want)) {
            return Err(Failure::IssuerMismatch);
        }
    }
    if !rules.audiences.is_empty() {
        let ok = match claims.get("aud") {
            Some(Value::String(a)) => rules.audiences.contains(a),
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .any(|a| rules.audiences.iter().any(|w| w == a)),
            _ => false,
        };
        if !ok {
            return Err(Failure::AudienceMismatch);
        }
    }
    Ok(())
}

/// Issuers compare equal with or without one trailing slash (IdPs differ).
pub fn trim_slash(s: &str) -> &str {
    s.strip_suffix('/').unwrap_or(s)
}
