//! The policy runtime: every Sluice policy is a sandboxed WebAssembly
//! component implementing `wit/policy.wit`.
//!
//! The pipeline only needs [`PolicyRuntime`] (load and attach plugins) and
//! [`Chain`] (run an ordered list of attachments at each hook). Everything else
//! is one small module per concern, in the spirit of `wasmtime-wasi-http`:
//!
//! - [`bindings`]: `bindgen!` output for world `policy-plugin`;
//! - [`engine`]: the shared `Engine` (epoch ticker) and the `Linker`;
//! - [`cache`]: compiled components on disk, keyed by wasm hash + engine;
//! - [`state`]: the counters/buckets/KV store behind the host imports
//!   (memory or Redis), namespaced per plugin;
//! - [`imports`]: the one host-state struct and a module per host capability;
//! - [`metrics`]: Prometheus metrics of the runtime and of plugins;
//! - [`plugin`]: a compiled plugin with its limits and failure mode;
//! - [`pool`]: a pool of initialized instances per attachment;
//! - [`chain`]: the hook-by-hook API the pipeline calls;
//! - [`bundled`]: plugins built from `plugins/*` and embedded in the binary.

pub mod bindings;
pub mod bundled;
pub mod cache;
pub mod chain;
pub mod engine;
mod error;
pub mod imports;
pub mod metrics;
pub mod plugin;
pub mod pool;
pub mod runtime;
pub mod state;
pub mod types;

#[doc(hidden)]
pub mod testing;
#[cfg(test)]
mod tests;

pub use chain::{Chain, HeadersOutcome};
pub use error::{PolicyError, PolicyFailure};
pub use metrics::PolicyMetrics;
pub use plugin::{FailureMode, Limits, Plugin};
pub use pool::Attachment;
pub use runtime::{PolicyRuntime, RuntimeOptions};
pub use state::{MemoryState, SharedState, StateStore, WindowCount};
pub use types::{
    AiKind, Completion, Hooks, ImmediateResponse, Provider, RequestContext, RequestScope, SseEvent,
    TokenUsage, Usage,
};
