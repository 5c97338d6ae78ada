//! Anthropic Messages → OpenAI Chat Completions: the request one way, the
//! answer (whole or streamed) back.

pub mod request;
pub mod response;
pub mod stream;
