//! The proxy: routing, forwarding and the request pipeline.
pub mod attempts;
pub mod backends;
pub mod billing;
pub mod budget;
pub mod client;
pub mod errors;
pub mod guard;
pub mod headers;
pub mod health;
pub mod model_router;
pub mod models;
pub mod path;
pub mod pipeline;
#[cfg(test)]
mod props;
pub mod request_body;
pub mod request_decode;
pub mod response_body;
pub mod retry_after;
pub mod router;
pub mod session;
pub mod snapshot;
pub mod strict_json;
pub mod target;
