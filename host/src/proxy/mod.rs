//! The proxy: routing, forwarding and the request pipeline.
pub mod client;
pub mod errors;
pub mod headers;
pub mod pipeline;
pub mod response_body;
pub mod router;
pub mod session;
pub mod snapshot;
pub mod target;
