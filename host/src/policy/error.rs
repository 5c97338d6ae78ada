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

/// A fail-closed plugin failed during a request: the pipeline answers
/// `status` in the provider's error shape: 500, or 503 when the shared state
/// store is down and fails closed. (Fail-open failures are skipped in the
/// chain.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy `{plugin}` failed: {reason}")]
pub struct PolicyFailure {
    pub plugin: String,
    pub reason: String,
    pub status: u16,
}

impl PolicyFailure {
    /// What the client is told (the reason stays in the logs).
    pub fn client_message(&self) -> String {
        if self.status == 503 {
            format!(
                "policy {} unavailable: the shared state store is unreachable; retry later",
                self.plugin
            )
        } else {
            format!("policy {} failed", self.plugin)
        }
    }
}
