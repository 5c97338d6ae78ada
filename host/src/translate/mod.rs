//! Translation between AI API formats, for a backend that does not speak
//! the format the client wrote in (Claude Code on a GPT model).
//!
//! Why a module apart from the providers: a provider says which formats it
//! speaks; translation is between formats, whoever serves them. The
//! pipeline asks [`direction`] whether a request can reach a backend at all,
//! has [`request`] rewrite the body (request policies already saw it as the
//! client sent it), and puts [`transcoder`]'s output between the upstream
//! and the response policies, so those see what the client will read,
//! event by event.
//!
//! Directions: Anthropic Messages → OpenAI Chat Completions, OpenAI
//! Responses → Anthropic Messages, OpenAI Chat Completions → Anthropic
//! Messages, and OpenAI Responses → Chat Completions (for a backend that
//! speaks Chat alone: Responses → Messages → Chat, both steps in a row).

mod body;
mod chain;
mod chat_messages;
mod envelope;
mod errors;
mod events;
mod fields;
mod maps;
mod messages_chat;
mod responses_messages;

pub use fields::{Fields, TranslateError};

use crate::config::{AiKind, UnsupportedFields};
use crate::provider::{Api, Outgoing, Transcode};
use http::header::{HeaderMap, HeaderValue, ACCEPT_ENCODING};

/// The response header naming the fields a translation dropped
/// (`ai.translation.unsupportedFields: drop`).
pub const DROPPED_HEADER: &str = "sluice-dropped-fields";

/// A supported translation: the client's format and the backend's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Anthropic Messages to OpenAI Chat Completions.
    MessagesToChat,
    /// OpenAI Responses to Anthropic Messages.
    ResponsesToMessages,
    /// OpenAI Chat Completions to Anthropic Messages.
    ChatToMessages,
    /// OpenAI Responses to OpenAI Chat Completions, through Messages.
    ResponsesToChat,
}

impl Direction {
    /// The format the backend is sent.
    pub fn upstream_kind(self) -> AiKind {
        match self {
            Direction::MessagesToChat | Direction::ResponsesToChat => AiKind::Completions,
            Direction::ResponsesToMessages | Direction::ChatToMessages => AiKind::Messages,
        }
    }
}

/// How a request of `kind` reaches a backend of `api` by translation, when
/// the backend does not speak `kind` itself.
pub fn direction(api: &dyn Api, kind: AiKind) -> Option<Direction> {
    if api.speaks(kind) {
        return None;
    }
    match kind {
        AiKind::Messages if api.speaks(AiKind::Completions) => Some(Direction::MessagesToChat),
        AiKind::Responses if api.speaks(AiKind::Messages) => Some(Direction::ResponsesToMessages),
        AiKind::Responses if api.speaks(AiKind::Completions) => Some(Direction::ResponsesToChat),
        AiKind::Completions if api.speaks(AiKind::Messages) => Some(Direction::ChatToMessages),
        _ => None,
    }
}

/// Why a request cannot be translated for its backend, when it cannot: the
/// refusal's wording, more precise than "not spoken".
pub fn why_not(kind: AiKind) -> Option<&'static str> {
    match kind {
        AiKind::AnthropicTokenCount => Some(
            "token counting is not translated: this backend has no Anthropic counting endpoint, \
             and the gateway does not guess a count",
        ),
        _ => None,
    }
}

/// Rewrite the outgoing request for the backend's format: body, kind,
/// path and the headers of the client's API. Returns the fields dropped.
pub fn request(
    dir: Direction,
    out: &mut Outgoing,
    mode: UnsupportedFields,
) -> Result<Vec<String>, TranslateError> {
    let body = out
        .body
        .as_ref()
        .ok_or_else(|| TranslateError::Invalid("the request body was not read".into()))?;
    let mut fields = Fields::new(mode);
    let translated = match dir {
        Direction::MessagesToChat => messages_chat::request::translate(body, &mut fields)?,
        Direction::ResponsesToMessages => {
            responses_messages::request::translate(body, &mut fields)?
        }
        Direction::ChatToMessages => chat_messages::request::translate(body, &mut fields)?,
        Direction::ResponsesToChat => responses_chat(body, &mut fields)?,
    };
    out.body = Some(translated.into());
    out.kind = dir.upstream_kind();
    out.path = match dir {
        Direction::MessagesToChat | Direction::ResponsesToChat => "/v1/chat/completions".into(),
        Direction::ResponsesToMessages | Direction::ChatToMessages => "/v1/messages".into(),
    };
    // The client's query (Claude Code's `?beta=true`) is for its own API.
    out.query = None;
    match dir {
        Direction::MessagesToChat | Direction::ResponsesToChat => {
            // `x-api-key` is an Anthropic credential: never sent to another
            // provider (a backend key, if configured, goes on later).
            for h in [
                "anthropic-version",
                "anthropic-beta",
                "openai-beta",
                "x-api-key",
            ] {
                out.headers.remove(h);
            }
        }
        Direction::ResponsesToMessages | Direction::ChatToMessages => {
            out.headers.remove("openai-beta");
            out.headers.insert(
                "anthropic-version",
                HeaderValue::from_static(ANTHROPIC_VERSION),
            );
        }
    }
    // The transcoder reads the answer's bytes: ask for them unencoded.
    out.headers.remove(ACCEPT_ENCODING);
    Ok(fields.into_dropped())
}

/// Responses → Messages → Chat. The Messages step must name a
/// `max_tokens` and fit a thinking budget under it; Chat needs neither:
/// `reasoning.effort` goes to `reasoning_effort` as it is (one vocabulary),
/// and when the client named no limit, Chat is sent none either.
fn responses_chat(body: &[u8], fields: &mut Fields) -> Result<Vec<u8>, TranslateError> {
    use serde_json::Value;
    let bad = |e: serde_json::Error| TranslateError::Invalid(format!("the body is not JSON: {e}"));
    let mut req: Value = serde_json::from_slice(body).map_err(bad)?;
    let effort = req
        .as_object_mut()
        .and_then(|o| o.get_mut("reasoning"))
        .and_then(Value::as_object_mut)
        .and_then(|r| r.remove("effort"));
    let limited = req.get("max_output_tokens").is_some_and(|m| !m.is_null());
    let stage1 = serde_json::to_vec(&req).map_err(bad)?;
    let messages = responses_messages::request::translate(&stage1, fields)?;
    let chat = messages_chat::request::translate(&messages, fields)?;
    let mut v: Value = serde_json::from_slice(&chat).map_err(bad)?;
    if let Some(o) = v.as_object_mut() {
        if !limited {
            o.remove("max_completion_tokens");
        }
        if let Some(e) = effort.filter(|e| !e.is_null()) {
            o.insert("reasoning_effort".into(), e);
        }
    }
    serde_json::to_vec(&v).map_err(bad)
}

/// The `anthropic-version` a translated request is sent with.
const ANTHROPIC_VERSION: &str = "2023-06-01";

/// The transcoder for the answer to a translated request, fixing status
/// and headers for what it produces. `inner` is the backend provider's own
/// (Bedrock's event-stream into Anthropic SSE), run first; the headers
/// given are the ones it already fixed.
pub fn transcoder(
    dir: Direction,
    inner: Option<Box<dyn Transcode>>,
    status: &mut http::StatusCode,
    headers: &mut HeaderMap,
    dropped: &[String],
) -> Box<dyn Transcode> {
    if !dropped.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&dropped.join(",")) {
            headers.insert(DROPPED_HEADER, v);
        }
    }
    let sse = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let outer: Box<dyn Transcode> = match (dir, status.as_u16() >= 400, sse) {
        (Direction::ResponsesToChat, true, _) => {
            let first = errors::to_anthropic(status);
            Box::new(chain::Chain::new(first, errors::to_openai(status)))
        }
        (Direction::ResponsesToChat, false, true) => Box::new(chain::Chain::new(
            Box::new(messages_chat::stream::ChunksToEvents::default()),
            Box::new(responses_messages::stream::EventsToResponses::default()),
        )),
        (Direction::ResponsesToChat, false, false) => Box::new(chain::Chain::new(
            messages_chat::response::transcoder(),
            responses_messages::response::transcoder(),
        )),
        (Direction::MessagesToChat, true, _) => errors::to_anthropic(status),
        (Direction::MessagesToChat, false, true) => {
            Box::new(messages_chat::stream::ChunksToEvents::default())
        }
        (Direction::MessagesToChat, false, false) => messages_chat::response::transcoder(),
        (Direction::ResponsesToMessages | Direction::ChatToMessages, true, _) => {
            errors::to_openai(status)
        }
        (Direction::ChatToMessages, false, true) => {
            Box::new(chat_messages::stream::EventsToChunks::default())
        }
        (Direction::ChatToMessages, false, false) => chat_messages::response::transcoder(),
        (Direction::ResponsesToMessages, false, true) => {
            Box::new(responses_messages::stream::EventsToResponses::default())
        }
        (Direction::ResponsesToMessages, false, false) => {
            responses_messages::response::transcoder()
        }
    };
    match inner {
        Some(first) => Box::new(chain::Chain::new(first, outer)),
        None => outer,
    }
}
