//! OpenAI's API: Chat Completions, Responses, embeddings and the model
//! list; the key goes in `Authorization: Bearer`.

use super::{Api, Family};
use crate::config::{AiKind, Provider};

#[derive(Debug)]
pub struct OpenAi;

impl Api for OpenAi {
    fn provider(&self) -> Provider {
        Provider::OpenAi
    }
    fn family(&self, _kind: AiKind) -> Family {
        Family::OpenAi
    }
    fn speaks(&self, kind: AiKind) -> bool {
        matches!(
            kind,
            AiKind::Completions | AiKind::Responses | AiKind::Embeddings | AiKind::Models
        )
    }
    fn default_origin(&self) -> String {
        "api.openai.com:443".into()
    }
}
