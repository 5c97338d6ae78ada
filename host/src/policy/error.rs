//! Errors of the runtime (setup, load, attach) and per-request failures.

/// Setting up the runtime, loading or attaching a plugin failed.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy engine setup failed: {0}")]
    Engine(String),
    #[error("plugin `{plugin}`: not a valid component: {reason}")]
    Compile { plugin: String, reason: String },
    #[error("plugin `{plugin}`: does not implement the sluice:policy@0.1.0 contract: {reason}")]
    Contract { plugin: String, reason: String },
    #[error("plugin `{plugin}`: invalid config: {message}")]
    InvalidConfig { plugin: String, message: String },
    #[error("plugin `{plugin}`: init failed: {message}")]
    Init { plugin: String, message: String },
    #[error("plugin `{plugin}`: {reason}")]
    Runtime { plugin: String, reason: String },
}

/// A fail-closed plugin failed during a request: the pipeline answers 500 in
/// the provider's error shape. (Fail-open failures are skipped in the chain.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy `{plugin}` failed: {reason}")]
pub struct PolicyFailure {
    pub plugin: String,
    pub reason: String,
}
