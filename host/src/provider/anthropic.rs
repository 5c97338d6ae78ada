//! Anthropic's API: Messages, token counting and the model list, as Claude
//! Code sends them; the key goes in `x-api-key`.

use super::{Api, Family, KeyScheme};
use crate::config::{AiKind, Provider};

#[derive(Debug)]
pub struct Anthropic;

impl Api for Anthropic {
    fn provider(&self) -> Provider {
        Provider::Anthropic
    }
    fn family(&self, _kind: AiKind) -> Family {
        Family::Anthropic
    }
    fn speaks(&self, kind: AiKind) -> bool {
        matches!(
            kind,
            AiKind::Messages | AiKind::AnthropicTokenCount | AiKind::Models
        )
    }
    fn default_origin(&self) -> String {
        "api.anthropic.com:443".into()
    }
    fn key_scheme(&self) -> KeyScheme {
        KeyScheme::Header("x-api-key")
    }
}
