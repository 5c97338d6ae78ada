//! OpenAI Chat Completions → Anthropic Messages (the OpenAI SDK, OpenCode
//! on Claude): the request one way, the answer (whole or streamed) back.

pub mod request;
pub mod response;
pub mod stream;
