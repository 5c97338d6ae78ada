//! Runtime API keys: created, rotated, edited and revoked through the admin
//! API without a deploy, and honoured by every `apiKey` policy that sets
//! `runtimeKeys: true`.
//!
//! The host keeps the records (hashed; the secret is shown once, at
//! creation or rotation) in the shared state, inside the `api-key` plugin's
//! KV namespace, where the plugin looks a presented key up by its SHA-256
//! when it is not a config key. Config keys always win: the plugin compares
//! them first, and the admin API refuses a runtime key with a config key's
//! hash (409).

pub mod cli;
pub mod config_keys;
pub mod models;
pub mod persist;
pub mod record;
pub mod secret;
pub mod spend;
pub mod store;

pub use config_keys::{ConfigKey, ConfigKeys};
pub use record::{Budget, CreateKey, KeyPatch, KeyRecord, Period};
pub use store::{KeyStore, Minted};

use crate::policy::state::StateUnavailable;

/// Why a key operation failed. Messages never carry a secret.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no such key")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    State(#[from] StateUnavailable),
    #[error("saving the keys: {0}")]
    Persist(String),
    #[error("stored keys unreadable: {0}")]
    Corrupt(String),
}
