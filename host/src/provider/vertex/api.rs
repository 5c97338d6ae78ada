//! Vertex AI behind the provider seam: Claude models through
//! `rawPredict`/`streamRawPredict` in Anthropic's format, Gemini models
//! through Vertex's OpenAI-compatible endpoint. The model (the backend's,
//! else the client's) decides which; a format the model's family does not
//! take is refused before anything is sent.

use super::VertexProvider;
use crate::config::{AiKind, Provider};
use crate::provider::{errors_json, Api, Family, Outgoing, ProviderError, Transcode};
use bytes::Bytes;
use http::header::{HeaderMap, ACCEPT_ENCODING};

impl Api for VertexProvider {
    fn provider(&self) -> Provider {
        Provider::Vertex
    }
    fn family(&self, kind: AiKind) -> Family {
        // Claude answers in Anthropic's format, the rest in OpenAI's.
        Family::of(kind)
    }
    fn speaks(&self, kind: AiKind) -> bool {
        // The model's family is checked once the body is read (`path`).
        matches!(
            kind,
            AiKind::Messages | AiKind::AnthropicTokenCount | AiKind::Completions
        )
    }
    fn default_origin(&self) -> String {
        self.origin()
    }
    fn needs_body(&self, _kind: AiKind) -> bool {
        true
    }
    fn shape(&self, out: &mut Outgoing) -> Result<(), ProviderError> {
        let body = out.body.as_deref().unwrap_or_default();
        let rewritten = self
            .rewrite_body(out.kind, out.model.as_deref(), body)
            .map_err(|e| ProviderError::BadRequest(e.to_string()))?;
        out.body = Some(Bytes::from(rewritten));
        // Errors are rewritten: ask for them unencoded.
        out.headers.remove(ACCEPT_ENCODING);
        Ok(())
    }
    fn path(&self, out: &Outgoing) -> Result<Option<String>, ProviderError> {
        self.path(out.kind, out.stream, out.model.as_deref())
            .map(Some)
            .map_err(|e| ProviderError::BadRequest(e.to_string()))
    }
    fn transcoder(
        &self,
        kind: AiKind,
        status: u16,
        headers: &mut HeaderMap,
    ) -> Option<Box<dyn Transcode>> {
        errors_json::google(Api::family(self, kind), status, headers)
    }
}
