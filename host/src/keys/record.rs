//! A runtime key's record and the admin API's request bodies, decoded
//! strictly: a body the API cannot read one way only is refused, because a
//! key's metadata ends up in logs, metrics labels and budget scopes.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::KeyError;

/// Most metadata fields on one key (they become request attributes).
pub const MAX_FIELDS: usize = 32;
/// Longest metadata field name.
pub const MAX_FIELD_NAME: usize = 64;
/// Longest metadata string value (team labels, user names...).
pub const MAX_VALUE: usize = 256;
/// Most `allowedModels` patterns and `budgets` entries on one key.
pub const MAX_MODELS: usize = 64;
pub const MAX_BUDGETS: usize = 16;
/// Longest model pattern.
pub const MAX_MODEL: usize = 256;

/// Attribute names the plugin publishes itself: metadata may not shadow them.
const RESERVED: &[&str] = &["id", "metadata", "budgets", "allowedModels"];

/// One stored runtime key. Holds the key's SHA-256, never the key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyRecord {
    pub id: String,
    /// `sha256:<hex>` of the current secret.
    pub hash: String,
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// `None`: any model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_models: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub budgets: Vec<Budget>,
    /// Unix seconds.
    pub created: u64,
    /// Unix seconds of the last rotation, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated: Option<u64>,
    /// Unix seconds of the revocation; a revoked key is kept for the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<u64>,
}

/// One budget entry, in exactly the shape of the `budget` policy's limits
/// (without `scope`: a key's budgets are scoped to the key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    pub period: Period,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Day,
    Week,
    Month,
}

/// `POST /keys`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateKey {
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    #[serde(default)]
    pub budgets: Option<Vec<Budget>>,
    /// Register an existing key by its `sha256:<hex>` instead of minting
    /// one (no secret is returned). This is how a conflict with a config
    /// key can arise, and why creation checks for one.
    #[serde(default)]
    pub key_hash: Option<String>,
}

/// `PATCH /keys/{id}`: each field present replaces the stored one;
/// `allowedModels: null` lifts the model restriction.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyPatch {
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "present")]
    pub allowed_models: Option<Option<Vec<String>>>,
    #[serde(default)]
    pub budgets: Option<Vec<Budget>>,
}

/// `Some(None)` for an explicit `null`, `None` (via `default`) when absent.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Metadata the gateway can carry safely: a few short scalar fields whose
/// names are plain identifiers (they become `apiKey.<name>` attributes and
/// `$(apiKey.<name>)` template variables).
pub fn check_metadata(m: &Map<String, Value>) -> Result<(), KeyError> {
    if m.len() > MAX_FIELDS {
        return Err(KeyError::Invalid(format!(
            "metadata: at most {MAX_FIELDS} fields"
        )));
    }
    for (name, v) in m {
        let plain = !name.is_empty()
            && name.len() <= MAX_FIELD_NAME
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
        if !plain {
            return Err(KeyError::Invalid(format!(
                "metadata: field names are 1 to {MAX_FIELD_NAME} letters, digits, `_` or `-`"
            )));
        }
        if RESERVED.contains(&name.as_str()) {
            return Err(KeyError::Invalid(format!(
                "metadata.{name}: reserved (the gateway sets apiKey.{name} itself)"
            )));
        }
        match v {
            Value::String(s) if s.len() > MAX_VALUE || s.chars().any(char::is_control) => {
                return Err(KeyError::Invalid(format!(
                    "metadata.{name}: strings are at most {MAX_VALUE} bytes without control characters"
                )))
            }
            Value::String(_) | Value::Bool(_) => {}
            Value::Number(n) if n.as_f64().is_some_and(f64::is_finite) => {}
            _ => {
                return Err(KeyError::Invalid(format!(
                    "metadata.{name}: only strings, numbers and booleans"
                )))
            }
        }
    }
    Ok(())
}

pub fn check_models(models: &Option<Vec<String>>) -> Result<(), KeyError> {
    let Some(ms) = models else { return Ok(()) };
    if ms.len() > MAX_MODELS {
        return Err(KeyError::Invalid(format!(
            "allowedModels: at most {MAX_MODELS} patterns"
        )));
    }
    if ms
        .iter()
        .any(|m| m.is_empty() || m.len() > MAX_MODEL || m.chars().any(char::is_control))
    {
        return Err(KeyError::Invalid(format!(
            "allowedModels: patterns are 1 to {MAX_MODEL} bytes without control characters"
        )));
    }
    Ok(())
}

pub fn check_budgets(budgets: &[Budget]) -> Result<(), KeyError> {
    if budgets.len() > MAX_BUDGETS {
        return Err(KeyError::Invalid(format!(
            "budgets: at most {MAX_BUDGETS} entries"
        )));
    }
    for (i, b) in budgets.iter().enumerate() {
        match (b.usd, b.tokens) {
            (Some(u), None) if u.is_finite() && u > 0.0 && u <= 1e9 => {}
            (None, Some(t)) if t > 0 => {}
            _ => {
                return Err(KeyError::Invalid(format!(
                    "budgets[{i}]: exactly one of `usd` (0 < usd <= 1e9) or `tokens` (> 0)"
                )))
            }
        }
    }
    Ok(())
}

/// `sha256:<64 hex>` → lowercase hex.
pub fn parse_hash(h: &str) -> Result<String, KeyError> {
    let hex = h
        .strip_prefix("sha256:")
        .filter(|x| x.len() == 64 && x.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| KeyError::Invalid("keyHash: expected sha256:<64 hex digits>".into()))?;
    Ok(hex.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn metadata_is_short_scalar_and_plain() {
        assert!(check_metadata(&meta(json!({"user": "alice", "team": "p", "level": 3}))).is_ok());
        for bad in [
            json!({"user": "x".repeat(MAX_VALUE + 1)}),
            json!({"user": {"nested": 1}}),
            json!({"user": [1]}),
            json!({"user": null}),
            json!({"bad name": "x"}),
            json!({"id": "forged"}),
            json!({"budgets": "x"}),
            json!({"user": "a\nb"}),
        ] {
            assert!(check_metadata(&meta(bad.clone())).is_err(), "{bad}");
        }
        let many: Map<String, Value> = (0..=MAX_FIELDS)
            .map(|i| (format!("f{i}"), json!(1)))
            .collect();
        assert!(check_metadata(&many).is_err());
    }

    #[test]
    fn budgets_have_one_amount() {
        let b = |v: Value| serde_json::from_value::<Vec<Budget>>(v);
        let ok = b(json!([{"usd": 25, "period": "month"}, {"tokens": 1000, "period": "day"}]));
        assert!(check_budgets(&ok.unwrap()).is_ok());
        for bad in [
            json!([{"usd": 1, "tokens": 1, "period": "day"}]),
            json!([{"period": "day"}]),
            json!([{"usd": -1, "period": "day"}]),
            json!([{"usd": 0, "period": "day"}]),
        ] {
            assert!(check_budgets(&b(bad.clone()).unwrap()).is_err(), "{bad}");
        }
        assert!(b(json!([{"usd": 1, "period": "year"}])).is_err());
        assert!(b(json!([{"usd": 1, "period": "day", "scope": "team"}])).is_err());
    }

    #[test]
    fn patch_tells_null_from_absent() {
        let p: KeyPatch = serde_json::from_value(json!({"allowedModels": null})).unwrap();
        assert_eq!(p.allowed_models, Some(None));
        let p: KeyPatch = serde_json::from_value(json!({})).unwrap();
        assert_eq!(p.allowed_models, None);
    }

    #[test]
    fn hashes() {
        let h = format!("sha256:{}", "AB".repeat(32));
        assert_eq!(parse_hash(&h).unwrap(), "ab".repeat(32));
        assert!(parse_hash("sha256:abc").is_err());
        assert!(parse_hash(&"ab".repeat(32)).is_err());
    }
}
