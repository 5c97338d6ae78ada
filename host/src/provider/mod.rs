//! What each provider speaks: the API formats (route kinds) a backend of
//! that provider accepts.
//!
//! Why the gateway asks before forwarding: a client's body in one format
//! sent to a provider that speaks another is never what anyone wants (an
//! Anthropic Messages body posted to OpenAI's host answers with a confusing
//! upstream error at best, and spends the gateway's key). Until the gateway
//! translates between formats, such a request is refused before any policy
//! or upstream sees it, in the client's own error shape.
//!
//! This is where provider specifics gather (issue 21's provider seam): one
//! place asked by the pipeline, which never matches on a provider's name
//! for this decision.

use crate::config::{AiKind, Provider};

/// Whether a backend of `provider` accepts requests of `kind`. A backend
/// without a provider (plain HTTP) and the kind-less `passthrough` accept
/// anything; `models` is a listing every provider answers in its own format.
pub fn speaks(provider: Option<Provider>, kind: AiKind) -> bool {
    let Some(provider) = provider else {
        return true;
    };
    match kind {
        AiKind::Passthrough | AiKind::Models => true,
        AiKind::Messages | AiKind::AnthropicTokenCount => provider == Provider::Anthropic,
        AiKind::Completions | AiKind::Responses | AiKind::Embeddings => {
            provider == Provider::OpenAi
        }
    }
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

/// The provider's name as the config spells it.
pub fn config_name(provider: Provider) -> &'static str {
    match provider {
        Provider::Anthropic => "anthropic",
        Provider::OpenAi => "openAI",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_provider_speaks_its_own_formats() {
        use AiKind::*;
        let a = Some(Provider::Anthropic);
        let o = Some(Provider::OpenAi);
        for k in [Messages, AnthropicTokenCount, Models, Passthrough] {
            assert!(speaks(a, k), "{k:?}");
        }
        for k in [Completions, Responses, Embeddings] {
            assert!(!speaks(a, k), "{k:?}");
            assert!(speaks(o, k), "{k:?}");
        }
        for k in [Messages, AnthropicTokenCount] {
            assert!(!speaks(o, k), "{k:?}");
        }
        assert!(speaks(None, Messages) && speaks(None, Completions));
    }
}

pub mod azure;
pub mod gcp_auth;
pub mod gemini;
pub mod vertex;
