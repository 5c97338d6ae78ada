//! Providers: what is specific to each AI API the gateway forwards to.
//!
//! Why a seam: a provider decides its default origin, the path layout of
//! each API it serves, where a credential goes, whether the body must be
//! rewritten on the way (Bedrock and Vertex take the model in the URL, not
//! the body), and how its answers are framed (Bedrock streams in AWS
//! event-stream, not SSE). The pipeline asks the route's provider through
//! [`Api`] and never matches on a provider's name, so adding a provider is
//! one module here plus its config decoding (`config::decode_provider`) and
//! one line in [`build`].
//!
//! Modelled on agentgateway's `llm/` (one small module per provider).

pub mod anthropic;
pub mod auth;
pub mod azure;
pub mod bedrock;
pub mod body;
mod errors_json;
pub mod gcp_auth;
pub mod gemini;
pub mod openai;
pub mod vertex;
pub mod whole;

use crate::config::{AiBackend, AiKind, Provider};
use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use std::sync::Arc;

/// The error and stream envelope a provider's answers use, which is what a
/// plugin sees as the request's `provider` (WIT `types.provider`): a
/// plugin built against `sluice:policy@0.1.0` keeps working when a provider
/// is added, because every provider answers in one of these two families.
/// The provider's exact name is the request attribute `backend.provider`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Anthropic,
    OpenAi,
}

impl Family {
    /// The family a request of `kind` is written in: the envelope a client
    /// of that format reads errors in.
    pub fn of(kind: AiKind) -> Family {
        match kind {
            AiKind::Messages | AiKind::AnthropicTokenCount => Family::Anthropic,
            _ => Family::OpenAi,
        }
    }
}

/// Where an API key goes on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyScheme {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// The key alone in this header (`x-api-key`, `api-key`, `x-goog-api-key`).
    Header(&'static str),
}

/// The request on its way to one backend, for the provider to shape.
#[derive(Debug)]
pub struct Outgoing {
    pub kind: AiKind,
    /// The path after the route's rewrite, without the query.
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    /// The body, when read whole (always when [`Api::needs_body`] said so).
    pub body: Option<Bytes>,
    /// The model the upstream serves: the backend's `model`, else the client's.
    pub model: Option<String>,
    /// The client asked for a stream (`"stream": true`).
    pub stream: bool,
}

/// A provider could not shape the request; the client gets a 400 (or 500
/// when the config is at fault) in its own error shape.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("{0}")]
    BadRequest(String),
    #[error("cannot build the upstream request: {0}")]
    Internal(String),
    /// A credential could not be had (a token endpoint down): 503, the
    /// client may try again.
    #[error("{0}")]
    Unavailable(String),
}

/// Turns an upstream answer's framing into the client's, chunk by chunk
/// (Bedrock's event-stream into Anthropic SSE). Output is forwarded as soon
/// as it is produced: nothing is held back beyond an incomplete frame.
pub trait Transcode: Send {
    fn push(&mut self, bytes: &[u8]) -> Result<Vec<u8>, TranscodeError>;
    fn finish(&mut self) -> Result<Vec<u8>, TranscodeError>;
}

#[derive(Debug, thiserror::Error)]
#[error("upstream stream framing: {0}")]
pub struct TranscodeError(pub String);

/// One provider's behaviour. Defaults fit a provider that takes the
/// client's request as it is (Anthropic, OpenAI).
pub trait Api: Send + Sync + std::fmt::Debug {
    /// The provider, as the config names it (labels, logs, messages).
    fn provider(&self) -> Provider;
    /// The envelope an answer to a request of `kind` comes back in (the
    /// same for every kind, but for providers serving several formats).
    fn family(&self, kind: AiKind) -> Family;
    /// Whether a request of `kind` can be sent to this provider as it is.
    fn speaks(&self, kind: AiKind) -> bool;
    /// `host:port` or `https://host[:port]` when no `hostOverride` is set.
    fn default_origin(&self) -> String;
    /// Whether forwarding a `kind` request needs the whole body in hand
    /// (rewritten or signed). A backend `model` override always does.
    fn needs_body(&self, _kind: AiKind) -> bool {
        false
    }
    /// Rewrite the body and headers for this provider (called first). The
    /// default puts the backend's model override into the body's `model`.
    fn shape(&self, out: &mut Outgoing) -> Result<(), ProviderError> {
        body::put_model(out)
    }
    /// The upstream path for the shaped request, replacing the client's;
    /// `None` keeps the client's path under the backend's `/v1` base.
    fn path(&self, _out: &Outgoing) -> Result<Option<String>, ProviderError> {
        Ok(None)
    }
    /// Where a `backendAuth.key` goes.
    fn key_scheme(&self) -> KeyScheme {
        KeyScheme::Bearer
    }
    /// A transcoder for an answer the client cannot read as it is: a
    /// framing it does not speak (Bedrock's event-stream), or an error
    /// envelope that is not the family's. It fixes the headers (content
    /// type) for what it produces. A provider that transcodes asks for an
    /// unencoded answer in [`Api::shape`].
    fn transcoder(
        &self,
        _kind: AiKind,
        _status: u16,
        _headers: &mut HeaderMap,
    ) -> Option<Box<dyn Transcode>> {
        None
    }
}

/// The provider behind an AI backend.
pub fn build(b: &AiBackend) -> Result<Arc<dyn Api>, ProviderError> {
    Ok(match b.provider {
        Provider::Anthropic => Arc::new(anthropic::Anthropic),
        Provider::OpenAi => Arc::new(openai::OpenAi),
        Provider::Bedrock => Arc::new(
            bedrock::Bedrock::new(
                b.params.region.as_deref().unwrap_or_default(),
                b.model.clone(),
            )
            .map_err(|e| ProviderError::Internal(e.to_string()))?,
        ),
        Provider::Vertex => Arc::new(vertex::VertexProvider {
            project_id: b.params.project_id.clone().unwrap_or_default(),
            region: b.params.region.clone(),
            model: b.model.clone(),
        }),
        Provider::Gemini => Arc::new(gemini::GeminiProvider {
            model: b.model.clone(),
        }),
        Provider::Azure => Arc::new(azure::AzureProvider {
            resource_name: b.params.resource_name.clone().unwrap_or_default(),
            resource_type: b
                .params
                .resource_type
                .as_deref()
                .and_then(azure::AzureResourceType::from_config)
                .unwrap_or(azure::AzureResourceType::OpenAi),
            api_version: b.params.api_version.clone(),
            project_name: b.params.project_name.clone(),
            model: b.model.clone(),
        }),
        #[allow(unreachable_patterns)]
        other => {
            return Err(ProviderError::Internal(format!(
                "provider `{}` is not built into this gateway",
                other.config_name()
            )))
        }
    })
}

/// Put `key` where `scheme` says, replacing whatever credential the client
/// sent. The value is marked sensitive so it never appears in a debug dump.
pub fn put_key(h: &mut HeaderMap, scheme: KeyScheme, key: &str) -> Result<(), ProviderError> {
    for name in ["authorization", "x-api-key", "api-key", "x-goog-api-key"] {
        h.remove(name);
    }
    let (name, value) = match scheme {
        KeyScheme::Bearer => (http::header::AUTHORIZATION, format!("Bearer {key}")),
        KeyScheme::Header(n) => (HeaderName::from_static(n), key.to_string()),
    };
    let mut v = HeaderValue::from_str(&value).map_err(|_| {
        ProviderError::Internal("the backend key has characters a header cannot carry".into())
    })?;
    v.set_sensitive(true);
    h.insert(name, v);
    Ok(())
}

/// The format `kind` is written in, for messages.
pub fn format_name(kind: AiKind) -> &'static str {
    match kind {
        AiKind::Messages => "Anthropic Messages",
        AiKind::AnthropicTokenCount => "Anthropic token counting",
        AiKind::Completions => "OpenAI Chat Completions",
        AiKind::Responses => "OpenAI Responses",
        AiKind::Embeddings => "OpenAI Embeddings",
        AiKind::Models => "model listing",
        AiKind::Passthrough => "passthrough",
    }
}

/// Whether a backend of `provider` (`None`: plain HTTP) accepts `kind`.
pub fn speaks(provider: Option<&dyn Api>, kind: AiKind) -> bool {
    match provider {
        None => true,
        Some(_) if matches!(kind, AiKind::Passthrough) => true,
        Some(p) => p.speaks(kind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_provider_speaks_its_own_formats() {
        use AiKind::*;
        let a = anthropic::Anthropic;
        let o = openai::OpenAi;
        for k in [Messages, AnthropicTokenCount, Models, Passthrough] {
            assert!(speaks(Some(&a), k), "{k:?}");
        }
        for k in [Completions, Responses, Embeddings] {
            assert!(!speaks(Some(&a), k), "{k:?}");
            assert!(speaks(Some(&o), k), "{k:?}");
        }
        for k in [Messages, AnthropicTokenCount] {
            assert!(!speaks(Some(&o), k), "{k:?}");
        }
        assert!(speaks(None, Messages) && speaks(None, Completions));
    }

    #[test]
    fn a_key_replaces_every_client_credential() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer client".parse().unwrap());
        h.insert("x-api-key", "client".parse().unwrap());
        h.insert("api-key", "client".parse().unwrap());
        put_key(&mut h, KeyScheme::Header("x-api-key"), "sk-ant").unwrap();
        assert_eq!(h.get("x-api-key").unwrap(), "sk-ant");
        assert!(h.get("x-api-key").unwrap().is_sensitive());
        assert!(h.get("authorization").is_none() && h.get("api-key").is_none());
        put_key(&mut h, KeyScheme::Bearer, "sk-oai").unwrap();
        assert_eq!(h.get("authorization").unwrap(), "Bearer sk-oai");
        assert!(h.get("x-api-key").is_none());
        assert!(put_key(&mut h, KeyScheme::Bearer, "bad\nkey").is_err());
    }
}
