//! Typed access to Anthropic / OpenAI request bodies (JSON).

use serde_json::Value;

/// A parsed AI request body: Anthropic Messages, OpenAI Chat Completions or
/// OpenAI Responses.
#[derive(Debug, Clone)]
pub struct AiRequest(pub Value);

impl AiRequest {
    /// Parse a body; `None` if it is not a JSON object.
    pub fn parse(body: &[u8]) -> Option<Self> {
        match serde_json::from_slice(body).ok()? {
            v @ Value::Object(_) => Some(AiRequest(v)),
            _ => None,
        }
    }
    pub fn model(&self) -> Option<&str> {
        self.0.get("model").and_then(Value::as_str)
    }
    pub fn stream(&self) -> bool {
        self.0
            .get("stream")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
    /// Every piece of prompt text: `system`, `instructions`, `messages[].content`
    /// and `input`, as strings or text blocks.
    pub fn prompt_texts(&self) -> impl Iterator<Item = &str> {
        let mut out = Vec::new();
        for key in ["system", "instructions"] {
            if let Some(v) = self.0.get(key) {
                texts(v, &mut out);
            }
        }
        if let Some(Value::Array(msgs)) = self.0.get("messages") {
            for m in msgs {
                if let Some(c) = m.get("content") {
                    texts(c, &mut out);
                }
            }
        }
        if let Some(v) = self.0.get("input") {
            texts(v, &mut out);
        }
        out.into_iter()
    }
    /// Serialize back to bytes (for `BodyAction::Replace`).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.0).unwrap_or_default()
    }
}

/// Collect text from a string, a text block (`{"text": ..}`), a message with
/// `content`, or an array of those.
fn texts<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|i| texts(i, out)),
        Value::Object(o) => {
            if let Some(Value::String(t)) = o.get("text") {
                out.push(t);
            } else if let Some(c) = o.get("content") {
                texts(c, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_and_openai_texts() {
        let a = AiRequest::parse(br#"{"model":"m","stream":true,"system":[{"type":"text","text":"S"}],
            "messages":[{"role":"user","content":"hi"},{"role":"user","content":[{"type":"text","text":"yo"}]}]}"#).unwrap();
        assert_eq!(a.model(), Some("m"));
        assert!(a.stream());
        assert_eq!(a.prompt_texts().collect::<Vec<_>>(), ["S", "hi", "yo"]);
        let r = AiRequest::parse(br#"{"instructions":"I","input":[{"role":"user","content":[{"type":"input_text","text":"q"}]}]}"#).unwrap();
        assert_eq!(r.prompt_texts().collect::<Vec<_>>(), ["I", "q"]);
    }
}
