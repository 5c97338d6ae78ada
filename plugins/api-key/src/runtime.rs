//! Runtime keys (`runtimeKeys: true`): keys the gateway's admin API
//! created, looked up by digest in this plugin's shared KV, where the host
//! writes them (`rk:<sha256 hex>`). Read on every request that presents a
//! key the config does not list, never cached: a revoked key is refused on
//! every replica at its next request.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::Entry;
use crate::models::Allowed;

/// The KV key for a digest (the host's `keys::store::lookup_key`).
pub fn kv_key(digest: &[u8; 32]) -> String {
    format!("rk:{}", hex::encode(digest))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stored {
    #[serde(default)]
    revoked: bool,
    id: Option<String>,
    #[serde(default)]
    metadata: Map<String, Value>,
    allowed_models: Option<Vec<String>>,
    budgets: Option<Value>,
}

/// The runtime key stored as `bytes`, unless revoked or unreadable (both
/// refuse the key: a record the plugin cannot read must not let it in with
/// fewer restrictions than it has).
pub fn decode(digest: [u8; 32], bytes: &[u8]) -> Option<Entry> {
    let s: Stored = serde_json::from_slice(bytes).ok()?;
    if s.revoked {
        return None;
    }
    Some(Entry {
        digest,
        id: s.id?,
        metadata: s.metadata,
        allowed: Allowed::compile(s.allowed_models),
        budgets: s
            .budgets
            .filter(|b| b.as_array().is_some_and(|a| !a.is_empty()))
            .map(|b| b.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        let d = [7u8; 32];
        let e = decode(
            d,
            br#"{"id":"key_a","metadata":{"team":"t"},"allowedModels":["gpt-*"],"budgets":[{"usd":5,"period":"day"}]}"#,
        )
        .unwrap();
        assert_eq!(e.id, "key_a");
        assert!(e.allowed.allows("gpt-5") && !e.allowed.allows("claude"));
        assert_eq!(e.budgets.as_deref(), Some(r#"[{"usd":5,"period":"day"}]"#));
        assert!(decode(d, br#"{"revoked":true}"#).is_none());
        assert!(decode(d, b"garbage").is_none());
        assert!(decode(d, br#"{"metadata":{}}"#).is_none(), "no id");
        assert!(decode(d, br#"{"id":"k","allowedModels":"gpt-*"}"#).is_none());
    }
}
