//! Sluice: an AI-agent gateway whose every policy runs as a sandboxed WebAssembly component.
//!
//! The host knows HTTP, routing, providers, streaming and how to run
//! components; every policy lives in a plugin. A request's whole path is in
//! [`proxy::pipeline`].
pub mod admin;
pub mod app;
pub mod budget;
pub mod config;
pub mod genai_metrics;
pub mod keys;
pub mod llm_cel;
pub mod memtrim;
pub mod metrics;
pub mod otel;
pub mod plugins;
pub mod policy;
pub mod pricing;
pub mod probes;
pub mod provider;
pub mod proxy;
pub mod reload;
pub mod server;
pub mod stream;
pub mod trace_cel;
pub mod translate;
pub mod watch;
pub mod workbench;
