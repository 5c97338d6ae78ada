//! End-to-end tests: the real `sluice` binary between real clients and a fake
//! provider upstream on loopback.

mod authorization;
mod bypass_policies;
mod bypass_request;
mod common;
mod config_cli;
mod coverage_admin;
mod coverage_policy;
mod coverage_proxy;
mod dashboard;
mod errors;
mod forwarding;
mod hardening;
mod hardening_admin;
mod hardening_limits;
mod header_set;
mod hot_swap;
mod hot_swap_busy;
mod k8s_manifests;
mod lang_examples;
mod lifecycle;
mod plugin_fetch;
mod plugin_input_validation;
mod plugin_jwt_auth;
mod plugin_output_mask;
mod plugin_rate_limit;
mod plugin_transform;
mod policies;
mod production_route;
mod provider_formats;
mod rate_limit_window;
mod redis_state;
mod seed_patterns;
mod streaming;
mod tracing;
mod workbench;
