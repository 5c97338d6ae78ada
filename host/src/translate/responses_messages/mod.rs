//! OpenAI Responses → Anthropic Messages (Codex on Claude): the request
//! one way, the answer (whole or streamed) back, thinking carried through
//! the client in [`super::envelope`]s.

pub mod request;
pub mod response;
pub mod stream;
