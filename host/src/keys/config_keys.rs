//! The keys written in the config files (`policies.apiKey.keys`), as the
//! admin API sees them: their digests (to refuse a runtime key that would
//! clash with one) and a read-only listing. Config keys win on conflict: the
//! plugin compares them first, and the admin API refuses to create or edit
//! a runtime key with the same digest.

use serde::Serialize;
use serde_json::{Map, Value};

use super::secret::{config_id, digest_hex};
use crate::config::Config;

/// The bundled plugin behind `policies.apiKey`.
pub const PLUGIN: &str = "api-key";

/// One config key, never its secret.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigKey {
    pub id: String,
    /// `sha256:<hex>`.
    pub hash: String,
    pub metadata: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_models: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budgets: Option<Value>,
    /// The routes and layers whose `apiKey` lists it.
    pub routes: Vec<String>,
}

/// Every config key, and whether any `apiKey` policy accepts runtime keys.
#[derive(Debug, Default, Clone)]
pub struct ConfigKeys {
    pub keys: Vec<ConfigKey>,
    pub runtime_enabled: bool,
}

impl ConfigKeys {
    pub fn of(config: &Config) -> ConfigKeys {
        let mut out = ConfigKeys::default();
        for route in config.routes.iter().chain(config.layers.iter()) {
            for a in &route.policies.attachments {
                if a.plugin != PLUGIN {
                    continue;
                }
                let inner = a.config.get("apiKey").unwrap_or(&a.config);
                out.runtime_enabled |= inner.get("runtimeKeys") == Some(&Value::Bool(true));
                let keys = inner.get("keys").and_then(Value::as_array);
                for k in keys.into_iter().flatten() {
                    let Some(hex) = key_digest(k) else { continue };
                    match out.keys.iter_mut().find(|c| c.hash.ends_with(&hex)) {
                        Some(c) => c.routes.push(route.name.clone()),
                        None => out.keys.push(ConfigKey {
                            id: config_id(&hex),
                            hash: format!("sha256:{hex}"),
                            metadata: k
                                .get("metadata")
                                .and_then(Value::as_object)
                                .cloned()
                                .unwrap_or_default(),
                            allowed_models: k.get("allowedModels").cloned(),
                            budgets: k.get("budgets").cloned(),
                            routes: vec![route.name.clone()],
                        }),
                    }
                }
            }
        }
        out
    }

    /// The config key with this lowercase hex digest.
    pub fn by_digest(&self, hex: &str) -> Option<&ConfigKey> {
        let want = format!("sha256:{hex}");
        self.keys.iter().find(|c| c.hash == want)
    }

    pub fn by_id(&self, id: &str) -> Option<&ConfigKey> {
        self.keys.iter().find(|c| c.id == id)
    }
}

/// Lowercase hex digest of a config entry (`key` after env expansion, or
/// `keyHash`); `None` for an entry the plugin would refuse anyway.
fn key_digest(k: &Value) -> Option<String> {
    if let Some(key) = k.get("key").and_then(Value::as_str) {
        return Some(digest_hex(key));
    }
    let h = k.get("keyHash").and_then(Value::as_str)?;
    super::record::parse_hash(h).ok()
}
