//! The Gemini API behind the provider seam, through its OpenAI-compatible
//! endpoint: Chat Completions, embeddings and the model list.

use super::GeminiProvider;
use crate::config::{AiKind, Provider};
use crate::provider::{body, errors_json, Api, Family, Outgoing, ProviderError, Transcode};
use http::header::{HeaderMap, ACCEPT_ENCODING};

impl Api for GeminiProvider {
    fn provider(&self) -> Provider {
        Provider::Gemini
    }
    fn family(&self, _kind: AiKind) -> Family {
        Family::OpenAi
    }
    fn speaks(&self, kind: AiKind) -> bool {
        GeminiProvider::speaks(self, kind)
    }
    fn default_origin(&self) -> String {
        self.origin().to_string()
    }
    fn shape(&self, out: &mut Outgoing) -> Result<(), ProviderError> {
        out.headers.remove(ACCEPT_ENCODING);
        body::put_model(out)
    }
    fn path(&self, out: &Outgoing) -> Result<Option<String>, ProviderError> {
        GeminiProvider::path(self, out.kind)
            .map(|p| Some(p.to_string()))
            .map_err(|e| ProviderError::BadRequest(e.to_string()))
    }
    fn transcoder(
        &self,
        kind: AiKind,
        status: u16,
        headers: &mut HeaderMap,
    ) -> Option<Box<dyn Transcode>> {
        errors_json::google(self.family(kind), status, headers)
    }
}
