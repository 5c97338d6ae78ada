//! Azure OpenAI and Foundry behind the provider seam: the deployment or v1
//! paths, the `api-key` header, and Claude on Foundry in Anthropic's format.

use super::AzureProvider;
use crate::config::{AiKind, Provider};
use crate::provider::{body, Api, Family, KeyScheme, Outgoing, ProviderError};

impl Api for AzureProvider {
    fn provider(&self) -> Provider {
        Provider::Azure
    }
    fn family(&self, kind: AiKind) -> Family {
        // Claude answers in Anthropic's format, the rest in OpenAI's.
        Family::of(kind)
    }
    fn speaks(&self, kind: AiKind) -> bool {
        // Which of these the model takes is checked once the body is read.
        matches!(
            kind,
            AiKind::Messages
                | AiKind::AnthropicTokenCount
                | AiKind::Completions
                | AiKind::Responses
                | AiKind::Embeddings
        )
    }
    fn default_origin(&self) -> String {
        self.origin()
    }
    fn needs_body(&self, _kind: AiKind) -> bool {
        // The model names the deployment (and Foundry's Claude endpoint).
        true
    }
    fn shape(&self, out: &mut Outgoing) -> Result<(), ProviderError> {
        for (name, value) in self.extra_headers(out.kind, out.model.as_deref()) {
            out.headers.entry(name).or_insert(value);
        }
        body::put_model(out)
    }
    fn path(&self, out: &Outgoing) -> Result<Option<String>, ProviderError> {
        AzureProvider::path(self, out.kind, out.model.as_deref())
            .map(Some)
            .map_err(|e| ProviderError::BadRequest(e.to_string()))
    }
    fn key_scheme(&self) -> KeyScheme {
        KeyScheme::Header("api-key")
    }
}
