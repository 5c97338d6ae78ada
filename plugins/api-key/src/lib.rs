//! `api-key`: agentgateway's `apiKey` policy, per-user API keys for Sluice
//! routes.
//!
//! ```yaml
//! policies:
//!   apiKey:
//!     mode: strict                 # strict | optional (default) | permissive
//!     # location: {header: {name: x-api-key}}   # default Authorization: Bearer
//!     keys:
//!     - keyHash: "sha256:<hex>"    # or key: $ALICE_KEY (expanded by the loader)
//!       metadata: {user: alice, team: platform}
//!       allowedModels: [claude-sonnet-*, gpt-5*]
//! ```
//!
//! - The presented key is hashed with SHA-256 and its digest compared with
//!   **every** configured digest in constant time ([`lookup`]): neither the
//!   byte where a guess diverges nor which key matched shows in the timing.
//! - On success the credential header is removed (the client's key is a
//!   gateway credential and never goes upstream) and the key's metadata is
//!   published as request attributes: `apiKey.metadata` (the map as JSON)
//!   and `apiKey.<name>` per entry (strings as-is, other values as JSON), so
//!   `apiKey.user`/`apiKey.team` reach later policies, header templates
//!   (`$(apiKey.user)`) and the host's access log and traces.
//! - Modes are agentgateway's: `strict` refuses a missing key, `optional`
//!   lets a request without a key pass, and both refuse an unknown key with
//!   401; `permissive` passes a missing or unknown key untouched (its header
//!   too: it may be a provider credential).
//! - `allowedModels` is checked on the body hook, where the host has already
//!   applied `ai.modelAliases`: the model actually served must match a
//!   pattern, or the request gets 403 and reaches no upstream.

pub mod config;
pub mod models;

use serde_json::Value;
use sluice_sdk::prelude::*;
use sluice_sdk::template::value_text;
use sluice_sdk::text::truncate;
use subtle::{ConditionallySelectable, ConstantTimeEq};

use config::{Entry, Mode, Settings};

/// The attribute carrying the matched key's `allowedModels` to the body hook.
pub const ALLOWED_ATTR: &str = "apiKey.allowedModels";

pub struct ApiKey {
    s: Settings,
}

/// Why a request's credential was not accepted (never carries the key).
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    Missing,
    Invalid,
    Multiple,
}

impl Failure {
    fn message(&self) -> &'static str {
        match self {
            Failure::Missing => "no API key found",
            Failure::Invalid => "invalid credentials",
            Failure::Multiple => "more than one API key header",
        }
    }
}

impl Policy for ApiKey {
    type Config = Value;

    fn validate(config: &Value) -> Result<(), String> {
        config::compile(config)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn new(config: Value) -> Result<Self, String> {
        Ok(ApiKey {
            s: config::compile(&config).map_err(|e| e.to_string())?,
        })
    }

    fn hooks(&self) -> Hooks {
        let mut h = Hooks::REQUEST_HEADERS;
        if self.s.keys.iter().any(|k| !k.allowed.is_any()) {
            h |= Hooks::REQUEST_BODY;
        }
        h
    }

    fn reads_headers(&self) -> Option<Vec<String>> {
        Some(vec![self.s.header.clone()])
    }

    fn on_request_headers(&self, _ctx: &RequestContext, headers: &Headers) -> HeadersAction {
        let presented = match extract(&self.s, headers) {
            Ok(Some(k)) => k,
            Ok(None) if self.s.mode == Mode::Strict => return reject(Failure::Missing),
            Ok(None) => return HeaderOps::new().proceed(),
            Err(f) if self.s.mode == Mode::Permissive => {
                host::debug(&format!("apiKey: {} (permissive: passing)", f.message()));
                return HeaderOps::new().proceed();
            }
            Err(f) => return reject(f),
        };
        match lookup(&self.s.keys, &config::digest(presented)) {
            Some(entry) => self.accept(entry),
            None if self.s.mode == Mode::Permissive => {
                host::debug("apiKey: unknown key (permissive: passing)");
                HeaderOps::new().proceed()
            }
            None => reject(Failure::Invalid),
        }
    }

    fn on_request_body(&self, ctx: &RequestContext, _h: &Headers, body: Vec<u8>) -> BodyAction {
        let Some(allowed) = host::get_attr(ALLOWED_ATTR) else {
            return BodyAction::Continue;
        };
        let patterns: Vec<String> = serde_json::from_str(&allowed).unwrap_or_default();
        let allowed = models::Allowed::compile(Some(patterns));
        // The context's model is the one served (after aliases); the body's
        // is what goes upstream. Both must be allowed, and a body without a
        // string `model` cannot show it is.
        let from_body = match models::body_model(&body) {
            models::BodyModel::Named(m) => Some(m),
            models::BodyModel::None => None,
            models::BodyModel::Repeated => {
                return Respond::status(403)
                    .message("the request names its model more than once")
                    .into()
            }
        };
        let models: Vec<&str> = ctx
            .model
            .iter()
            .chain(from_body.iter())
            .map(String::as_str)
            .collect();
        if !models.is_empty() && models.iter().all(|m| allowed.allows(m)) {
            return BodyAction::Continue;
        }
        host::info("apiKey: model not allowed for this key");
        host::metric_counter("api_key_model_refusals", 1);
        Respond::status(403)
            .message(match models.first() {
                Some(m) => format!(
                    "model `{}` is not allowed for this API key",
                    truncate(m, 200)
                ),
                None => {
                    "this API key is restricted to some models and the request names none".into()
                }
            })
            .into()
    }
}

sluice_sdk::export_policy!(ApiKey);

impl ApiKey {
    fn accept(&self, entry: &Entry) -> HeadersAction {
        let meta = Value::Object(entry.metadata.clone());
        // A stable, non-secret id: the first 16 hex digits of the key's
        // SHA-256 (what budgets with `scope: key` are kept under).
        host::set_attr("apiKey.id", &hex::encode(&entry.digest[..8]));
        host::set_attr("apiKey.metadata", &meta.to_string());
        for (name, v) in &entry.metadata {
            host::set_attr(&format!("apiKey.{name}"), &value_text(v));
        }
        host::metric_counter("api_key_accepted", 1);
        let ops = HeaderOps::new().remove(self.s.header.clone());
        if entry.allowed.is_any() {
            return ops.proceed();
        }
        // The model is in the body: ask for it (the host hands it over
        // after `ai.modelAliases`).
        host::set_attr(ALLOWED_ATTR, &entry.allowed.to_json());
        ops.need_body()
    }
}

/// The configured key whose digest equals `presented`. Every entry is
/// compared, each in constant time, and the match is selected without a
/// branch on the comparison: the time taken depends on the number of keys
/// only.
pub fn lookup<'a>(keys: &'a [Entry], presented: &[u8; 32]) -> Option<&'a Entry> {
    let mut found = subtle::Choice::from(0);
    let mut index = 0u64;
    for (i, k) in keys.iter().enumerate() {
        let eq = k.digest.ct_eq(presented);
        index = u64::conditional_select(&index, &(i as u64), eq);
        found |= eq;
    }
    bool::from(found).then(|| &keys[index as usize])
}

/// The key in the configured header, if any. Two headers are refused (a
/// client must not show one key to the gateway and another upstream); the
/// scheme prefix is matched case-insensitively (`bearer` = `Bearer`) and
/// surrounding whitespace is ignored.
pub fn extract<'a>(s: &'a Settings, headers: &'a Headers) -> Result<Option<&'a str>, Failure> {
    let mut values = header_all(headers, &s.header);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Failure::Multiple);
    }
    let value = value.trim();
    let key = match &s.prefix {
        None => value,
        Some(prefix) => {
            let p = prefix.trim_end();
            let Some(head) = value.get(..p.len()) else {
                return Err(Failure::Invalid);
            };
            if !head.eq_ignore_ascii_case(p) {
                // Another scheme (`Basic ...`): not an API key.
                return Err(Failure::Invalid);
            }
            let rest = &value[p.len()..];
            if p.len() < prefix.len() && !rest.starts_with([' ', '\t']) {
                return Err(Failure::Invalid);
            }
            rest.trim()
        }
    };
    if key.is_empty() {
        return Err(Failure::Missing);
    }
    Ok(Some(key))
}

/// 401 in the client's provider shape (the host wraps the message).
fn reject(f: Failure) -> HeadersAction {
    host::debug(&format!("apiKey rejected: {}", f.message()));
    host::metric_counter("api_key_rejected", 1);
    Respond::status(401)
        .message(f.message())
        .error_type("authentication_error")
        .into()
}

#[cfg(test)]
mod tests;
