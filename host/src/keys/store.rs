//! [`KeyStore`]: runtime keys in the shared state, in the `api-key`
//! plugin's own KV namespace, so every replica sharing the state backend
//! sees a change at its next request (no cache: a revoked key is refused on
//! every replica as soon as the write returns).
//!
//! Layout (inside the plugin's namespace, `api-key:`):
//! - `rk:<sha256 hex>`: what the plugin reads for a presented key that is
//!   not a config key: `{id, metadata, allowedModels?, budgets?}`, or
//!   `{"revoked": true}` once revoked or rotated away;
//! - `rk-index`: every record (the admin API's listing and source of truth).
//!
//! The KV has no delete, so entries are written with a TTL far beyond any
//! gateway's life and revocation overwrites instead of removing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::config_keys::{ConfigKeys, PLUGIN};
use super::persist;
use super::record::{
    check_budgets, check_metadata, check_models, parse_hash, CreateKey, KeyPatch, KeyRecord,
};
use super::secret::{digest_hex, mint, new_id};
use super::KeyError;
use crate::policy::state::StateStore;

/// The index entry.
pub const INDEX: &str = "rk-index";
/// "Forever" for the KV (100 years).
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The KV key the plugin reads for a key with this lowercase hex digest.
pub fn lookup_key(hex: &str) -> String {
    format!("rk:{hex}")
}

/// A key just minted: the secret is in this answer and nowhere else.
#[derive(Debug, serde::Serialize)]
pub struct Minted {
    #[serde(flatten)]
    pub record: KeyRecord,
    /// Shown once; `None` when the key was registered by its hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

pub struct KeyStore {
    state: Arc<StateStore>,
    file: Option<PathBuf>,
    /// Serialises this replica's read-modify-write of the index.
    lock: parking_lot::Mutex<()>,
}

impl KeyStore {
    /// `file`: `keys.json` to persist to (memory state with `path`).
    pub fn new(state: Arc<StateStore>, file: Option<PathBuf>) -> Self {
        KeyStore {
            state,
            file,
            lock: parking_lot::Mutex::new(()),
        }
    }

    /// Load `keys.json` into the state at startup (memory state only).
    /// Returns how many records were restored.
    pub fn restore(&self) -> Result<usize, KeyError> {
        let Some(file) = &self.file else {
            return Ok(0);
        };
        let records = persist::load(file)?;
        let _g = self.lock.lock();
        for r in &records {
            self.publish(r)?;
        }
        self.write_index(&records)?;
        Ok(records.len())
    }

    pub fn list(&self) -> Result<Vec<KeyRecord>, KeyError> {
        self.read_index()
    }

    pub fn get(&self, id: &str) -> Result<KeyRecord, KeyError> {
        self.read_index()?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or(KeyError::NotFound)
    }

    pub fn create(&self, req: CreateKey, config: &ConfigKeys) -> Result<Minted, KeyError> {
        let metadata = req.metadata.unwrap_or_default();
        check_metadata(&metadata)?;
        check_models(&req.allowed_models)?;
        let budgets = req.budgets.unwrap_or_default();
        check_budgets(&budgets)?;
        let (secret, hex) = match &req.key_hash {
            Some(h) => (None, parse_hash(h)?),
            None => {
                let s = mint();
                let hex = digest_hex(&s);
                (Some(s), hex)
            }
        };
        conflict(config, &hex)?;
        let _g = self.lock.lock();
        let mut all = self.read_index()?;
        if all.iter().any(|r| r.hash.ends_with(&hex)) {
            return Err(KeyError::Conflict(
                "a runtime key with this hash already exists".into(),
            ));
        }
        let record = KeyRecord {
            id: new_id(),
            hash: format!("sha256:{hex}"),
            metadata,
            allowed_models: req.allowed_models,
            budgets,
            created: now(),
            rotated: None,
            revoked: None,
        };
        all.push(record.clone());
        self.commit(&all, &[&record])?;
        tracing::info!(id = %record.id, "runtime API key created");
        Ok(Minted { record, secret })
    }

    pub fn update(
        &self,
        id: &str,
        patch: KeyPatch,
        config: &ConfigKeys,
    ) -> Result<KeyRecord, KeyError> {
        if let Some(m) = &patch.metadata {
            check_metadata(m)?;
        }
        if let Some(m) = &patch.allowed_models {
            check_models(m)?;
        }
        if let Some(b) = &patch.budgets {
            check_budgets(b)?;
        }
        let _g = self.lock.lock();
        let mut all = self.read_index()?;
        let r = all
            .iter_mut()
            .find(|r| r.id == id)
            .ok_or(KeyError::NotFound)?;
        self.live(r)?;
        conflict(config, &hex_of(&r.hash))?;
        if let Some(m) = patch.metadata {
            r.metadata = m;
        }
        if let Some(m) = patch.allowed_models {
            r.allowed_models = m;
        }
        if let Some(b) = patch.budgets {
            r.budgets = b;
        }
        let record = r.clone();
        self.commit(&all, &[&record])?;
        tracing::info!(id, "runtime API key updated");
        Ok(record)
    }

    /// A new secret for the key; the old one is refused from now on.
    pub fn rotate(&self, id: &str, config: &ConfigKeys) -> Result<Minted, KeyError> {
        let secret = mint();
        let hex = digest_hex(&secret);
        conflict(config, &hex)?;
        let _g = self.lock.lock();
        let mut all = self.read_index()?;
        let r = all
            .iter_mut()
            .find(|r| r.id == id)
            .ok_or(KeyError::NotFound)?;
        self.live(r)?;
        let old = hex_of(&r.hash);
        r.hash = format!("sha256:{hex}");
        r.rotated = Some(now());
        let record = r.clone();
        // The new secret works before the old one stops: no gap for a
        // client switching over.
        self.commit(&all, &[&record])?;
        self.set(&lookup_key(&old), &json!({"revoked": true}))?;
        tracing::info!(id, "runtime API key rotated");
        Ok(Minted {
            record,
            secret: Some(secret),
        })
    }

    pub fn revoke(&self, id: &str) -> Result<KeyRecord, KeyError> {
        let _g = self.lock.lock();
        let mut all = self.read_index()?;
        let r = all
            .iter_mut()
            .find(|r| r.id == id)
            .ok_or(KeyError::NotFound)?;
        if r.revoked.is_none() {
            r.revoked = Some(now());
        }
        let record = r.clone();
        self.commit(&all, &[&record])?;
        tracing::info!(id, "runtime API key revoked");
        Ok(record)
    }

    /// Write the changed records' lookup entries, then the index, then the
    /// file.
    fn commit(&self, all: &[KeyRecord], changed: &[&KeyRecord]) -> Result<(), KeyError> {
        for r in changed {
            self.publish(r)?;
        }
        self.write_index(all)?;
        if let Some(file) = &self.file {
            persist::save(file, all)?;
        }
        Ok(())
    }

    /// Refuse to edit a revoked key. The lookup entry is checked too: it is
    /// what the plugin obeys, and another replica's concurrent index write
    /// may have lost the revocation from the index (never from the entry),
    /// which an edit must not undo.
    fn live(&self, r: &KeyRecord) -> Result<(), KeyError> {
        let revoked = r.revoked.is_some()
            || self
                .state
                .kv_get_strict(PLUGIN, &lookup_key(&hex_of(&r.hash)))?
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .is_some_and(|v| v["revoked"] == Value::Bool(true));
        if revoked {
            return Err(KeyError::Conflict("the key is revoked".into()));
        }
        Ok(())
    }

    /// The entry the plugin reads for `r`.
    fn publish(&self, r: &KeyRecord) -> Result<(), KeyError> {
        let v = if r.revoked.is_some() {
            json!({"revoked": true})
        } else {
            let mut v = json!({"id": r.id, "metadata": r.metadata});
            if let Some(m) = &r.allowed_models {
                v["allowedModels"] = json!(m);
            }
            if !r.budgets.is_empty() {
                v["budgets"] = json!(r.budgets);
            }
            v
        };
        self.set(&lookup_key(&hex_of(&r.hash)), &v)
    }

    fn set(&self, key: &str, v: &Value) -> Result<(), KeyError> {
        let bytes = serde_json::to_vec(v).map_err(|e| KeyError::Corrupt(e.to_string()))?;
        self.state.kv_set_strict(PLUGIN, key, bytes, FOREVER)?;
        Ok(())
    }

    fn read_index(&self) -> Result<Vec<KeyRecord>, KeyError> {
        match self.state.kv_get_strict(PLUGIN, INDEX)? {
            None => Ok(Vec::new()),
            Some(b) => serde_json::from_slice(&b)
                .map_err(|e| KeyError::Corrupt(format!("stored key index: {e}"))),
        }
    }

    fn write_index(&self, all: &[KeyRecord]) -> Result<(), KeyError> {
        let bytes = serde_json::to_vec(all).map_err(|e| KeyError::Corrupt(e.to_string()))?;
        self.state.kv_set_strict(PLUGIN, INDEX, bytes, FOREVER)?;
        Ok(())
    }
}

/// A config key with this digest wins: refuse to shadow it.
fn conflict(config: &ConfigKeys, hex: &str) -> Result<(), KeyError> {
    match config.by_digest(hex) {
        Some(c) => Err(KeyError::Conflict(format!(
            "config key {} (routes: {}) has the same hash; config keys win, so this runtime key \
             would never be used",
            c.id,
            c.routes.join(", ")
        ))),
        None => Ok(()),
    }
}

fn hex_of(hash: &str) -> String {
    hash.strip_prefix("sha256:").unwrap_or(hash).to_owned()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::config_keys::ConfigKey;

    fn store(file: Option<PathBuf>) -> (Arc<StateStore>, KeyStore) {
        let state = Arc::new(StateStore::memory());
        (state.clone(), KeyStore::new(state, file))
    }

    fn entry(state: &StateStore, secret: &str) -> Option<Value> {
        let b = state
            .kv_get(PLUGIN, &lookup_key(&digest_hex(secret)))
            .unwrap()?;
        Some(serde_json::from_slice(&b).unwrap())
    }

    #[test]
    fn lifecycle_in_the_plugin_namespace() {
        let (state, keys) = store(None);
        let none = ConfigKeys::default();
        let req = CreateKey {
            metadata: Some(json!({"user": "carol"}).as_object().unwrap().clone()),
            allowed_models: Some(vec!["gpt-*".into()]),
            ..Default::default()
        };
        let m = keys.create(req, &none).unwrap();
        let secret = m.secret.unwrap();
        let e = entry(&state, &secret).unwrap();
        assert_eq!(e["id"], m.record.id.as_str());
        assert_eq!(e["metadata"]["user"], "carol");
        assert_eq!(e["allowedModels"], json!(["gpt-*"]));
        // The index never holds the secret.
        let index = state.kv_get(PLUGIN, INDEX).unwrap().unwrap();
        assert!(!String::from_utf8_lossy(&index).contains(&secret));

        let r = keys.rotate(&m.record.id, &none).unwrap();
        let new = r.secret.unwrap();
        assert_eq!(entry(&state, &secret).unwrap(), json!({"revoked": true}));
        assert_eq!(entry(&state, &new).unwrap()["id"], m.record.id.as_str());

        keys.revoke(&m.record.id).unwrap();
        assert_eq!(entry(&state, &new).unwrap(), json!({"revoked": true}));
        assert!(matches!(
            keys.rotate(&m.record.id, &none),
            Err(KeyError::Conflict(_))
        ));
        assert!(matches!(keys.get("key_nope"), Err(KeyError::NotFound)));
        // An index that lost the revocation (a concurrent write on another
        // replica) cannot bring the key back through an edit.
        let mut stale = keys.list().unwrap();
        stale[0].revoked = None;
        keys.write_index(&stale).unwrap();
        assert!(matches!(
            keys.update(&m.record.id, KeyPatch::default(), &none),
            Err(KeyError::Conflict(_))
        ));
        assert_eq!(entry(&state, &new).unwrap(), json!({"revoked": true}));
        assert_eq!(keys.list().unwrap().len(), 1);
    }

    #[test]
    fn config_keys_win() {
        let (_, keys) = store(None);
        let hex = digest_hex("sk-config");
        let config = ConfigKeys {
            keys: vec![ConfigKey {
                id: "c".into(),
                hash: format!("sha256:{hex}"),
                metadata: Default::default(),
                allowed_models: None,
                budgets: None,
                routes: vec!["r".into()],
            }],
            runtime_enabled: true,
        };
        let req = CreateKey {
            key_hash: Some(format!("sha256:{hex}")),
            ..Default::default()
        };
        let e = keys.create(req, &config).unwrap_err();
        assert!(
            matches!(&e, KeyError::Conflict(m) if m.contains("config keys win")),
            "{e}"
        );
        // Registered before the config gained the key: edits are refused.
        let req = CreateKey {
            key_hash: Some(format!("sha256:{hex}")),
            ..Default::default()
        };
        let r = keys.create(req, &ConfigKeys::default()).unwrap();
        assert!(r.secret.is_none());
        let e = keys.update(&r.record.id, KeyPatch::default(), &config);
        assert!(matches!(e, Err(KeyError::Conflict(_))));
    }

    #[test]
    fn restored_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = persist::path_in(dir.path());
        let (_, keys) = store(Some(file.clone()));
        let m = keys
            .create(CreateKey::default(), &ConfigKeys::default())
            .unwrap();
        let secret = m.secret.unwrap();
        let (state, again) = store(Some(file));
        assert_eq!(again.restore().unwrap(), 1);
        assert_eq!(entry(&state, &secret).unwrap()["id"], m.record.id.as_str());
        assert_eq!(again.list().unwrap(), vec![m.record]);
    }
}
