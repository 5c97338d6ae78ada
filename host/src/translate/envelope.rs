//! Anthropic thinking carried through an OpenAI client as a Responses
//! `reasoning` item's `encrypted_content`, and read back on the next turn.
//!
//! Why an envelope: the client (Codex) keeps `encrypted_content` opaque and
//! sends it back unchanged; Anthropic needs each thinking block with its
//! exact signature (or a redacted block's exact data) to continue a tool
//! loop with thinking. The envelope is a tagged base64 of a small JSON
//! object, so nothing in it is altered on the way and a foreign value (a
//! real OpenAI ciphertext) is recognised and refused, not misread.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

const TAG: &str = "sluice.anthropic.v1:";

/// One Anthropic thinking block, as it must come back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Thinking {
    Thinking { thinking: String, signature: String },
    RedactedThinking { data: String },
}

pub fn seal(t: &Thinking) -> String {
    let json = serde_json::to_vec(t).expect("a thinking block always serializes");
    format!(
        "{TAG}{}",
        base64::engine::general_purpose::STANDARD.encode(json)
    )
}

/// The block inside `s`, or `None` when `s` is not one of this gateway's.
pub fn open(s: &str) -> Option<Thinking> {
    let b64 = s.strip_prefix(TAG)?;
    let json = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    serde_json::from_slice(&json).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_survives_byte_for_byte() {
        let t = Thinking::Thinking {
            thinking: "let me think \u{2014} \"quotes\"\n".into(),
            signature: "EqQBCkYIBhgCIkD+/==".into(),
        };
        assert_eq!(open(&seal(&t)), Some(t));
        let r = Thinking::RedactedThinking {
            data: "opaque==".into(),
        };
        assert_eq!(open(&seal(&r)), Some(r));
        assert_eq!(open("gAAAAABo-openai-ciphertext"), None);
        assert_eq!(open("sluice.anthropic.v1:!!!"), None);
    }
}
