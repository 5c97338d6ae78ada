//! The proxy: routing, forwarding and the request pipeline.
pub mod billing;
pub mod budget;
pub mod client;
pub mod errors;
pub mod guard;
pub mod headers;
pub mod pipeline;
pub mod response_body;
pub mod router;
pub mod session;
pub mod snapshot;
pub mod target;
