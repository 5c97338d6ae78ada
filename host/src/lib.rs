//! Sluice: an AI-agent gateway whose every policy runs as a sandboxed WebAssembly component.
pub mod config;
pub mod policy;
