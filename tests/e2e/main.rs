//! End-to-end tests: the real `sluice` binary between real clients and a fake
//! provider upstream on loopback.
mod bypass_request;
mod common;
mod config_cli;
mod errors;
mod forwarding;
mod hot_swap;
mod plugin_input_validation;
mod plugin_jwt_auth;
mod plugin_output_mask;
mod plugin_rate_limit;
mod plugin_transform;
mod policies;
mod production_route;
mod seed_patterns;
mod streaming;
