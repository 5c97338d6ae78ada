//! Reading responses as they stream: SSE framing, decompression and usage.
pub mod decode;
#[cfg(test)]
mod props;
pub mod sse;
pub mod usage;
