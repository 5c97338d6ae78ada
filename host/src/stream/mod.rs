//! Reading responses as they stream: SSE framing, decompression and usage.
pub mod decode;
pub mod sse;
pub mod usage;
#[cfg(test)]
mod props;
