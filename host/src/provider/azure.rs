//! Azure OpenAI and Azure AI Foundry (`provider: {azure: {resourceName,
//! resourceType: openAI|foundry|aiServices, apiVersion?, projectName?,
//! model?}}`), with agentgateway's exact layout (`crates/llm/src/azure.rs`).
//!
//! Hosts: `{resourceName}.openai.azure.com` (`openAI`) and
//! `{resourceName}.services.ai.azure.com` (`foundry`, alias `aiServices`).
//!
//! Paths on an `openAI` resource depend on `apiVersion` (default `v1`):
//! - `v1`: the v1 surface, `/openai/v1/{chat/completions|responses|embeddings}`;
//! - `preview`: the same with `?api-version=preview`;
//! - a dated version (`2024-10-21`): the deployment-scoped paths,
//!   `/openai/deployments/{model}/{suffix}?api-version=...`, except
//!   Responses, which is `/openai/responses?api-version=...` (the model
//!   stays in the body).
//!
//! On a Foundry resource: `/api/projects/{projectName or resourceName}/openai/v1/{suffix}`,
//! and for Claude models Anthropic's native endpoint, `/anthropic/v1/messages`
//! (and `/count_tokens`), which also needs `anthropic-version`.
//!
//! Formats taken as they are: OpenAI Chat Completions, Responses and
//! Embeddings; Anthropic Messages and token counting for Claude on Foundry.
//! The credential for `backendAuth.key` is the `api-key` header.

mod api;

use http::{HeaderName, HeaderValue};

use super::vertex::is_safe_segment;
use crate::config::{AiKind, Secret};

/// The API version when the config names none.
pub const DEFAULT_API_VERSION: &str = "v1";
/// The Anthropic API version Foundry's Claude endpoint requires.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// `resourceType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AzureResourceType {
    /// `openAI`: Azure OpenAI Service.
    OpenAi,
    /// `foundry` (or `aiServices`): Azure AI Foundry.
    Foundry,
}

impl AzureResourceType {
    /// The config's spelling, `aiServices` included.
    pub fn from_config(s: &str) -> Option<Self> {
        match s {
            "openAI" => Some(AzureResourceType::OpenAi),
            "foundry" | "aiServices" => Some(AzureResourceType::Foundry),
            _ => None,
        }
    }
}

/// Why a request cannot go to Azure as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AzureError {
    #[error("Azure does not serve {format} for model {model:?} on this resource")]
    Unsupported { format: &'static str, model: String },
    #[error(
        "the request names no model and the azure provider sets none (a deployment name is needed)"
    )]
    NoModel,
    #[error("model {0:?} cannot be a deployment name in a URL path")]
    UnsafeModel(String),
    #[error("the API key cannot be sent in a header")]
    BadKey,
}

/// `provider: {azure: ...}` as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureProvider {
    pub resource_name: String,
    pub resource_type: AzureResourceType,
    pub api_version: Option<String>,
    pub project_name: Option<String>,
    /// Overrides the client's model (and names the deployment).
    pub model: Option<String>,
}

impl AzureProvider {
    pub fn host(&self) -> String {
        match self.resource_type {
            AzureResourceType::OpenAi => format!("{}.openai.azure.com", self.resource_name),
            AzureResourceType::Foundry => format!("{}.services.ai.azure.com", self.resource_name),
        }
    }

    /// The default origin, `host:443` (TLS).
    pub fn origin(&self) -> String {
        format!("{}:443", self.host())
    }

    pub fn api_version(&self) -> &str {
        self.api_version.as_deref().unwrap_or(DEFAULT_API_VERSION)
    }

    /// The model served: the config's `model:` over the client's.
    pub fn model<'a>(&'a self, request_model: Option<&'a str>) -> Option<&'a str> {
        self.model.as_deref().or(request_model)
    }

    /// A Claude model on a Foundry resource, served by Anthropic's endpoint.
    pub fn is_foundry_claude(&self, request_model: Option<&str>) -> bool {
        self.resource_type == AzureResourceType::Foundry
            && self
                .model(request_model)
                .is_some_and(|m| m.to_ascii_lowercase().starts_with("claude"))
    }

    /// Whether a request of `kind` goes upstream without translation.
    /// Foundry's Claude models answer only Anthropic's format (its
    /// OpenAI-compatible endpoints refuse them).
    pub fn speaks(&self, kind: AiKind, request_model: Option<&str>) -> bool {
        match kind {
            AiKind::Passthrough => true,
            AiKind::Messages | AiKind::AnthropicTokenCount => self.is_foundry_claude(request_model),
            AiKind::Completions | AiKind::Responses | AiKind::Embeddings => {
                !self.is_foundry_claude(request_model)
            }
            AiKind::Models => false,
        }
    }

    /// The upstream path and query for a request of `kind` (streaming
    /// does not change it: the body's `stream` decides).
    pub fn path(&self, kind: AiKind, request_model: Option<&str>) -> Result<String, AzureError> {
        let unsupported = || AzureError::Unsupported {
            format: super::format_name(kind),
            model: self.model(request_model).unwrap_or_default().to_string(),
        };
        if !self.speaks(kind, request_model) || kind == AiKind::Passthrough {
            return Err(unsupported());
        }
        let suffix = match kind {
            AiKind::Messages => return Ok("/anthropic/v1/messages".into()),
            AiKind::AnthropicTokenCount => return Ok("/anthropic/v1/messages/count_tokens".into()),
            AiKind::Embeddings => "embeddings",
            AiKind::Responses => "responses",
            _ => "chat/completions",
        };
        match self.resource_type {
            AzureResourceType::Foundry => {
                let project = self.project_name.as_deref().unwrap_or(&self.resource_name);
                Ok(format!("/api/projects/{project}/openai/v1/{suffix}"))
            }
            AzureResourceType::OpenAi => match self.api_version() {
                "v1" => Ok(format!("/openai/v1/{suffix}")),
                "preview" => Ok(format!("/openai/v1/{suffix}?api-version=preview")),
                version => {
                    let version = encode_query(version);
                    if kind == AiKind::Responses {
                        return Ok(format!("/openai/responses?api-version={version}"));
                    }
                    let model = self.model(request_model).ok_or(AzureError::NoModel)?;
                    if !is_safe_segment(model) {
                        return Err(AzureError::UnsafeModel(model.to_string()));
                    }
                    Ok(format!(
                        "/openai/deployments/{model}/{suffix}?api-version={version}"
                    ))
                }
            },
        }
    }

    /// Headers the request needs besides the credential:
    /// `anthropic-version` on Foundry's Claude endpoint.
    pub fn extra_headers(
        &self,
        kind: AiKind,
        request_model: Option<&str>,
    ) -> Vec<(HeaderName, HeaderValue)> {
        if matches!(kind, AiKind::Messages | AiKind::AnthropicTokenCount)
            && self.is_foundry_claude(request_model)
        {
            vec![(
                HeaderName::from_static("anthropic-version"),
                HeaderValue::from_static(ANTHROPIC_VERSION),
            )]
        } else {
            Vec::new()
        }
    }
}

/// A config value made safe for a query string.
fn encode_query(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// The credential header for `backendAuth.key`: `api-key`, sensitive.
pub fn credential_header(key: &Secret) -> Result<(HeaderName, HeaderValue), AzureError> {
    let mut v = HeaderValue::from_str(key.expose()).map_err(|_| AzureError::BadKey)?;
    v.set_sensitive(true);
    Ok((HeaderName::from_static("api-key"), v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn az(kind: AzureResourceType, version: Option<&str>, project: Option<&str>) -> AzureProvider {
        AzureProvider {
            resource_name: "res".into(),
            resource_type: kind,
            api_version: version.map(Into::into),
            project_name: project.map(Into::into),
            model: None,
        }
    }

    #[test]
    fn hosts_by_resource_type() {
        assert_eq!(
            az(AzureResourceType::OpenAi, None, None).origin(),
            "res.openai.azure.com:443"
        );
        assert_eq!(
            az(AzureResourceType::Foundry, None, None).host(),
            "res.services.ai.azure.com"
        );
        assert_eq!(
            AzureResourceType::from_config("aiServices"),
            Some(AzureResourceType::Foundry)
        );
        assert_eq!(AzureResourceType::from_config("openai"), None);
    }

    #[test]
    fn openai_resource_paths_by_api_version() {
        use AiKind::*;
        let m = Some("gpt-4o-mini");
        let v1 = az(AzureResourceType::OpenAi, None, None);
        assert_eq!(
            v1.path(Completions, m).unwrap(),
            "/openai/v1/chat/completions"
        );
        assert_eq!(v1.path(Responses, m).unwrap(), "/openai/v1/responses");
        assert_eq!(v1.path(Embeddings, m).unwrap(), "/openai/v1/embeddings");
        let pre = az(AzureResourceType::OpenAi, Some("preview"), None);
        assert_eq!(
            pre.path(Responses, m).unwrap(),
            "/openai/v1/responses?api-version=preview"
        );
        let dated = az(AzureResourceType::OpenAi, Some("2024-10-21"), None);
        assert_eq!(
            dated.path(Completions, m).unwrap(),
            "/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(
            dated
                .path(Embeddings, Some("text-embedding-3-small"))
                .unwrap(),
            "/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21"
        );
        assert_eq!(
            dated.path(Responses, m).unwrap(),
            "/openai/responses?api-version=2024-10-21"
        );
        assert_eq!(dated.path(Completions, None), Err(AzureError::NoModel));
        assert!(matches!(
            dated.path(Completions, Some("gpt/../../x")),
            Err(AzureError::UnsafeModel(_))
        ));
        let pinned = AzureProvider {
            model: Some("my-deploy".into()),
            ..dated
        };
        assert!(pinned
            .path(Completions, m)
            .unwrap()
            .starts_with("/openai/deployments/my-deploy/"));
        assert!(v1.path(Messages, m).is_err() && !v1.speaks(Messages, Some("claude-x")));
    }

    #[test]
    fn foundry_paths_and_claude() {
        use AiKind::*;
        let f = az(AzureResourceType::Foundry, None, None);
        assert_eq!(
            f.path(Completions, Some("gpt-4o-mini")).unwrap(),
            "/api/projects/res/openai/v1/chat/completions"
        );
        let named = az(AzureResourceType::Foundry, None, Some("proj"));
        assert_eq!(
            named.path(Embeddings, Some("e")).unwrap(),
            "/api/projects/proj/openai/v1/embeddings"
        );
        let c = Some("claude-haiku-4-5");
        assert_eq!(f.path(Messages, c).unwrap(), "/anthropic/v1/messages");
        assert_eq!(
            f.path(AnthropicTokenCount, c).unwrap(),
            "/anthropic/v1/messages/count_tokens"
        );
        assert!(!f.speaks(Completions, c) && f.path(Completions, c).is_err());
        assert!(!f.speaks(Messages, Some("gpt-4o")));
        let h = f.extra_headers(Messages, c);
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].0, "anthropic-version");
        assert!(f.extra_headers(Completions, Some("gpt-4o")).is_empty());
    }

    #[test]
    fn the_key_goes_in_api_key() {
        let (n, v) = credential_header(&Secret::new("k3y")).unwrap();
        assert_eq!(n, "api-key");
        assert_eq!(v.to_str().unwrap(), "k3y");
        assert!(v.is_sensitive());
        assert_eq!(
            credential_header(&Secret::new("a\r\nb")),
            Err(AzureError::BadKey)
        );
    }
}
