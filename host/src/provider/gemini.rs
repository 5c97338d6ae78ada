//! The Gemini API (`provider: {gemini: {model?}}`) through its
//! OpenAI-compatible endpoint.
//!
//! Why the compatible endpoint: clients that speak OpenAI Chat Completions
//! (and embeddings, model listing) reach Gemini with no translation, so
//! every policy sees the same OpenAI body it sees on an OpenAI route.
//! Native `generateContent` needs a translation, left to the translation
//! issue. Layout as agentgateway's `crates/llm/src/gemini.rs`:
//! `generativelanguage.googleapis.com`, `/v1beta/openai/...`.
//!
//! The credential: an API key as `Authorization: Bearer <key>`, which the
//! compatible endpoint takes (Google's OpenAI-compatibility guide uses the
//! key as the OpenAI SDK's `api_key`). `x-goog-api-key` is the native
//! endpoints' header; agentgateway moves `AIza…` keys there only for those.
//! Answers are OpenAI's shapes (SSE chunks ending `data: [DONE]`); errors
//! are Google's envelope, often in a one-element array, mapped by
//! [`super::vertex::google_error::to_openai`].

mod api;

use http::{header, HeaderName, HeaderValue};
use serde_json::{Map, Value};

use crate::config::{AiKind, Secret};

/// The API host.
pub const DEFAULT_HOST: &str = "generativelanguage.googleapis.com";
/// Its origin (TLS).
pub const DEFAULT_ORIGIN: &str = "generativelanguage.googleapis.com:443";

/// Why a request cannot go to Gemini as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GeminiError {
    #[error("the Gemini API's OpenAI-compatible endpoint does not serve {0}")]
    Unsupported(&'static str),
    #[error("the request body is not a JSON object")]
    NotAnObject,
    #[error("the API key cannot be sent in a header")]
    BadKey,
}

/// `provider: {gemini: ...}` as configured.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GeminiProvider {
    /// Overrides the client's model.
    pub model: Option<String>,
}

impl GeminiProvider {
    /// The default origin.
    pub fn origin(&self) -> &'static str {
        DEFAULT_ORIGIN
    }

    /// The formats it takes as they are: OpenAI Chat Completions,
    /// Embeddings and the model listing.
    pub fn speaks(&self, kind: AiKind) -> bool {
        matches!(
            kind,
            AiKind::Completions | AiKind::Embeddings | AiKind::Models | AiKind::Passthrough
        )
    }

    /// The upstream path for `kind` (the same streaming or not: the body's
    /// `stream` decides).
    pub fn path(&self, kind: AiKind) -> Result<&'static str, GeminiError> {
        match kind {
            AiKind::Completions => Ok("/v1beta/openai/chat/completions"),
            AiKind::Embeddings => Ok("/v1beta/openai/embeddings"),
            AiKind::Models => Ok("/v1beta/openai/models"),
            other => Err(GeminiError::Unsupported(super::format_name(other))),
        }
    }

    /// Applies the config's `model:` to a request body (unchanged without
    /// one). The endpoint takes the bare id or `models/<id>`.
    pub fn rewrite_json(&self, body: &mut Map<String, Value>) {
        if let Some(m) = &self.model {
            body.insert("model".into(), Value::String(m.clone()));
        }
    }

    /// [`Self::rewrite_json`] on bytes.
    pub fn rewrite_body(&self, body: &[u8]) -> Result<Vec<u8>, GeminiError> {
        if self.model.is_none() {
            return Ok(body.to_vec());
        }
        let mut map: Map<String, Value> =
            serde_json::from_slice(body).map_err(|_| GeminiError::NotAnObject)?;
        self.rewrite_json(&mut map);
        serde_json::to_vec(&map).map_err(|_| GeminiError::NotAnObject)
    }
}

/// The credential header for `backendAuth.key`: `Authorization: Bearer`,
/// marked sensitive.
pub fn credential_header(key: &Secret) -> Result<(HeaderName, HeaderValue), GeminiError> {
    let mut v = HeaderValue::try_from(format!("Bearer {}", key.expose()))
        .map_err(|_| GeminiError::BadKey)?;
    v.set_sensitive(true);
    Ok((header::AUTHORIZATION, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_formats() {
        let g = GeminiProvider::default();
        assert_eq!(g.origin(), "generativelanguage.googleapis.com:443");
        assert_eq!(
            g.path(AiKind::Completions).unwrap(),
            "/v1beta/openai/chat/completions"
        );
        assert_eq!(
            g.path(AiKind::Embeddings).unwrap(),
            "/v1beta/openai/embeddings"
        );
        assert_eq!(g.path(AiKind::Models).unwrap(), "/v1beta/openai/models");
        for k in [
            AiKind::Messages,
            AiKind::AnthropicTokenCount,
            AiKind::Responses,
        ] {
            assert!(!g.speaks(k), "{k:?}");
            assert!(g.path(k).is_err(), "{k:?}");
        }
        assert!(g.speaks(AiKind::Completions) && g.speaks(AiKind::Embeddings));
    }

    #[test]
    fn model_override() {
        let none = GeminiProvider::default();
        let raw = br#"{"model":"gemini-2.5-flash","stream":true}"#;
        assert_eq!(none.rewrite_body(raw).unwrap(), raw.to_vec());
        let pinned = GeminiProvider {
            model: Some("gemini-2.5-pro".into()),
        };
        let out: Value = serde_json::from_slice(&pinned.rewrite_body(raw).unwrap()).unwrap();
        assert_eq!(out["model"], "gemini-2.5-pro");
        assert_eq!(out["stream"], true);
        assert_eq!(pinned.rewrite_body(b"nope"), Err(GeminiError::NotAnObject));
    }

    #[test]
    fn the_key_is_a_sensitive_bearer() {
        let (name, value) = credential_header(&Secret::new("AIzaTEST")).unwrap();
        assert_eq!(name, header::AUTHORIZATION);
        assert_eq!(value.to_str().unwrap(), "Bearer AIzaTEST");
        assert!(value.is_sensitive());
        assert_eq!(
            credential_header(&Secret::new("bad\nkey")),
            Err(GeminiError::BadKey)
        );
    }
}
