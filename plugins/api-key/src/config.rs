//! agentgateway's `LocalAPIKeys`, key for key: `keys: [{key | keyHash,
//! metadata, allowedModels}]`, `mode` and `location`; plus two Sluice
//! extensions: `runtimeKeys: true` (also accept keys created through the
//! admin API; `keys` may then be omitted) and a key's `budgets` (published
//! as `apiKey.budgets` for the budget policy).
//!
//! Compiled once at load: every key becomes its SHA-256 digest, so the
//! plugin never holds a plaintext key after `new` and a request's key is
//! compared digest to digest.

use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::models::Allowed;

/// Why a config is refused; names the offending key, never a key's value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("apiKey: {0}")]
    Shape(String),
    #[error("apiKey.keys[{0}]: set exactly one of `key` and `keyHash`")]
    KeyOrHash(usize),
    #[error("apiKey.keys[{0}].key: empty key")]
    EmptyKey(usize),
    #[error("apiKey.keys[{0}].keyHash: {1}")]
    Hash(usize, &'static str),
    #[error("apiKey.keys[{0}].metadata: must be a map")]
    Metadata(usize),
    #[error("apiKey.keys[{0}]: the same key as keys[{1}]")]
    Duplicate(usize, usize),
    #[error("apiKey.location: `{0}` is not supported by Sluice (use `header`)")]
    Location(String),
    #[error("apiKey.location.header.name: `{0}` is not a header name")]
    HeaderName(String),
    #[error("apiKey: `keys` is required (or set `runtimeKeys: true`)")]
    NoKeys,
    #[error("apiKey.keys[{0}].budgets[{1}]: {2}")]
    Budget(usize, usize, &'static str),
}

/// agentgateway's `APIKeyMode` (default `optional`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Mode {
    /// A valid key is required.
    Strict,
    /// A key, when sent, must be valid; requests without one pass.
    #[default]
    Optional,
    /// Valid keys are decoded; missing or invalid ones pass untouched.
    Permissive,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    keys: Option<Vec<RawKey>>,
    /// Sluice extension: also look presented keys up among the runtime keys
    /// the admin API manages (in this plugin's shared KV).
    #[serde(default, rename = "runtimeKeys")]
    runtime_keys: bool,
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    location: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawKey {
    key: Option<String>,
    key_hash: Option<String>,
    metadata: Option<Value>,
    allowed_models: Option<Vec<String>>,
    /// Sluice extension: the budget policy's limit entries for this key.
    budgets: Option<Vec<RawBudget>>,
}

/// One `budgets` entry, the shape of one `budget` policy limit.
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct RawBudget {
    #[serde(skip_serializing_if = "Option::is_none")]
    usd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tokens: Option<u64>,
    period: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    name: String,
    prefix: Option<String>,
}

/// One accepted key.
#[derive(Debug, Clone)]
pub struct Entry {
    /// SHA-256 of the key.
    pub digest: [u8; 32],
    /// Stable, non-secret id (`apiKey.id`): the first 16 hex digits of the
    /// digest for a config key, the admin API's id for a runtime key.
    pub id: String,
    /// `budgets` as a JSON array, when the key has any.
    pub budgets: Option<String>,
    pub metadata: Map<String, Value>,
    pub allowed: Allowed,
}

/// The compiled policy.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: Mode,
    /// Lowercase header name.
    pub header: String,
    /// Scheme prefix before the key (`Bearer `), matched case-insensitively.
    pub prefix: Option<String>,
    pub keys: Vec<Entry>,
    /// `runtimeKeys: true`.
    pub runtime_keys: bool,
}

/// SHA-256 of a presented or configured key.
pub fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The policy key the host hands the config under.
pub const KEY: &str = "apiKey";

pub fn compile(config: &Value) -> Result<Settings, ConfigError> {
    let inner = match config {
        Value::Object(o) => o.get(KEY).unwrap_or(config),
        _ => config,
    };
    let raw: Raw =
        serde_json::from_value(inner.clone()).map_err(|e| ConfigError::Shape(e.to_string()))?;
    let (header, prefix) = location(raw.location)?;
    let raw_keys = match raw.keys {
        Some(k) => k,
        None if raw.runtime_keys => Vec::new(),
        None => return Err(ConfigError::NoKeys),
    };
    let mut keys: Vec<Entry> = Vec::with_capacity(raw_keys.len());
    for (i, k) in raw_keys.into_iter().enumerate() {
        let digest = match (k.key, k.key_hash) {
            (Some(key), None) if key.is_empty() => return Err(ConfigError::EmptyKey(i)),
            (Some(key), None) => digest(&key),
            (None, Some(h)) => parse_hash(&h).map_err(|why| ConfigError::Hash(i, why))?,
            _ => return Err(ConfigError::KeyOrHash(i)),
        };
        if let Some(j) = keys.iter().position(|e| e.digest == digest) {
            return Err(ConfigError::Duplicate(i, j));
        }
        let metadata = match k.metadata {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m,
            Some(_) => return Err(ConfigError::Metadata(i)),
        };
        let budgets = match k.budgets {
            None => None,
            Some(b) => Some(budgets(i, &b)?),
        };
        keys.push(Entry {
            id: hex::encode(&digest[..8]),
            digest,
            metadata,
            allowed: Allowed::compile(k.allowed_models),
            budgets,
        });
    }
    Ok(Settings {
        mode: raw.mode,
        header,
        prefix,
        keys,
        runtime_keys: raw.runtime_keys,
    })
}

/// `budgets`, checked and as the JSON the budget policy reads.
fn budgets(i: usize, b: &[RawBudget]) -> Result<String, ConfigError> {
    for (j, e) in b.iter().enumerate() {
        match (e.usd, e.tokens) {
            (Some(u), None) if u.is_finite() && u > 0.0 => {}
            (None, Some(t)) if t > 0 => {}
            _ => {
                return Err(ConfigError::Budget(
                    i,
                    j,
                    "exactly one of `usd` (> 0) or `tokens` (> 0)",
                ))
            }
        }
        if !matches!(e.period.as_str(), "day" | "week" | "month") {
            return Err(ConfigError::Budget(i, j, "`period` is day, week or month"));
        }
    }
    serde_json::to_string(b).map_err(|e| ConfigError::Shape(e.to_string()))
}

/// agentgateway's `sha256:<hex>` (64 hex digits, either case).
pub fn parse_hash(h: &str) -> Result<[u8; 32], &'static str> {
    let hex_part = h
        .strip_prefix("sha256:")
        .ok_or("must use the sha256:<hex> format")?;
    let bytes = hex::decode(hex_part).map_err(|_| "not hex after `sha256:`")?;
    bytes
        .try_into()
        .map_err(|_| "sha256 keyHash must decode to 32 bytes")
}

/// `location`: default `Authorization: Bearer <key>`; only `header` is
/// implemented, the other agentgateway locations are refused by name.
fn location(loc: Option<Map<String, Value>>) -> Result<(String, Option<String>), ConfigError> {
    let Some(loc) = loc else {
        return Ok(("authorization".into(), Some("Bearer ".into())));
    };
    let mut it = loc.into_iter();
    let (Some((kind, spec)), None) = (it.next(), it.next()) else {
        return Err(ConfigError::Shape(
            "`location` must have exactly one of header, queryParameter, cookie, expression".into(),
        ));
    };
    if kind != "header" {
        return Err(ConfigError::Location(kind));
    }
    let h: RawHeader = serde_json::from_value(spec)
        .map_err(|e| ConfigError::Shape(format!("location.header: {e}")))?;
    let name = h.name.to_ascii_lowercase();
    let token_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token_char) {
        return Err(ConfigError::HeaderName(h.name));
    }
    Ok((name, h.prefix.filter(|p| !p.is_empty())))
}
