//! Opt-in prompt and answer content (`config.tracing.content`):
//! `gen_ai.input.messages` and `gen_ai.output.messages`.
//!
//! Both are taken where the policies are done with them, so a trace holds
//! what the policies let through and nothing else: the request body as it
//! goes upstream (after request policies), and the answer as it leaves the
//! response filters for the client (masked by `outputFilter`), never the
//! upstream's own bytes. Each is kept up to [`MAX_CONTENT`] bytes; past it
//! the text is cut and `sluice.content.truncated` says so.

use serde_json::{json, Value};

use crate::stream::sse::Framer;

/// Bytes of request body, and of answer, kept per request.
pub const MAX_CONTENT: usize = 64 * 1024;

/// Bytes captured on their way through, bounded.
#[derive(Debug, Default)]
pub struct Tap {
    buf: Vec<u8>,
    truncated: bool,
}

impl Tap {
    pub fn push(&mut self, data: &[u8]) {
        let room = MAX_CONTENT.saturating_sub(self.buf.len());
        if data.len() > room {
            self.truncated = true;
        }
        self.buf.extend_from_slice(&data[..data.len().min(room)]);
    }

    pub fn truncated(&self) -> bool {
        self.truncated
    }
}

/// `gen_ai.input.messages`: the body's `messages` (Anthropic, OpenAI chat)
/// with Anthropic's `system` first, or Responses' `input`, as JSON. A body
/// cut at the bound, or not JSON, is recorded as its (lossy UTF-8) text.
pub fn input_messages(tap: &Tap) -> String {
    if !tap.truncated {
        if let Ok(v) = serde_json::from_slice::<Value>(&tap.buf) {
            let mut out = Vec::new();
            if let Some(s) = v.get("system").filter(|s| !s.is_null()) {
                out.push(json!({"role": "system", "content": s}));
            }
            match v.get("messages").or_else(|| v.get("input")) {
                Some(Value::Array(m)) => out.extend(m.iter().cloned()),
                Some(Value::String(s)) => out.push(json!({"role": "user", "content": s})),
                _ => {}
            }
            if !out.is_empty() {
                return bounded(Value::Array(out).to_string());
            }
        }
    }
    String::from_utf8_lossy(&tap.buf).into_owned()
}

/// `llm.prompt` for `fields.add` expressions, as agentgateway gives it: a
/// list of `{role, content}` with each message's text (its text blocks
/// joined), the system prompt first. Empty when the body cannot be read.
pub fn prompt(tap: &Tap) -> Value {
    let Ok(v) = serde_json::from_slice::<Value>(&tap.buf) else {
        return Value::Array(Vec::new());
    };
    let mut out = Vec::new();
    let mut push = |role: &str, content: &Value| {
        let text = plain_text(content);
        if !text.is_empty() {
            out.push(json!({"role": role, "content": text}));
        }
    };
    if let Some(s) = v.get("system").or_else(|| v.get("instructions")) {
        push("system", s);
    }
    match v.get("messages").or_else(|| v.get("input")) {
        Some(Value::Array(m)) => {
            for msg in m {
                let role = msg.get("role").and_then(Value::as_str).unwrap_or("user");
                push(role, msg.get("content").unwrap_or(&Value::Null));
            }
        }
        Some(s @ Value::String(_)) => push("user", s),
        _ => {}
    }
    Value::Array(out)
}

/// `llm.completion`: the answer's text as the client received it, one
/// string per answer (agentgateway's shape).
pub fn completion(tap: &Tap, sse: bool) -> Value {
    let text = if sse {
        sse_text(&tap.buf)
    } else {
        serde_json::from_slice::<Value>(&tap.buf)
            .ok()
            .and_then(|v| json_text(&v))
            .unwrap_or_default()
    };
    json!([text])
}

/// A message's text: a string, or the `text` of its blocks, joined.
fn plain_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// `gen_ai.output.messages`: the answer's text as the client received it,
/// as one assistant message (`[{"role":"assistant","parts":[{"type":"text",
/// "content":...}],"finish_reason":...}]`).
pub fn output_messages(tap: &Tap, sse: bool, finish_reason: Option<&str>) -> String {
    let text = if sse {
        sse_text(&tap.buf)
    } else {
        serde_json::from_slice::<Value>(&tap.buf)
            .ok()
            .and_then(|v| json_text(&v))
            .unwrap_or_else(|| String::from_utf8_lossy(&tap.buf).into_owned())
    };
    let mut m = json!({"role": "assistant", "parts": [{"type": "text", "content": text}]});
    if let Some(r) = finish_reason {
        m["finish_reason"] = Value::String(r.to_string());
    }
    bounded(Value::Array(vec![m]).to_string())
}

/// The text of a whole answer: Anthropic `content[].text`, OpenAI chat
/// `choices[].message.content`, Responses `output[].content[].text`.
fn json_text(v: &Value) -> Option<String> {
    let mut out = String::new();
    let texts = |arr: Option<&Value>, out: &mut String| {
        for part in arr.and_then(Value::as_array).into_iter().flatten() {
            if let Some(t) = part.get("text").and_then(Value::as_str) {
                out.push_str(t);
            }
        }
    };
    texts(v.get("content"), &mut out);
    for c in v
        .get("choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(t) = c.pointer("/message/content").and_then(Value::as_str) {
            out.push_str(t);
        }
    }
    for item in v
        .get("output")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        texts(item.get("content"), &mut out);
    }
    (!out.is_empty()).then_some(out)
}

/// The text deltas of a stream: Anthropic `content_block_delta`, OpenAI
/// chat `choices[].delta.content`, Responses `response.output_text.delta`.
fn sse_text(buf: &[u8]) -> String {
    let mut framer = Framer::new();
    framer.push(buf);
    let mut out = String::new();
    let mut take = |data: &str| {
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return;
        };
        match v.get("type").and_then(Value::as_str) {
            Some("content_block_delta") => {
                if let Some(t) = v.pointer("/delta/text").and_then(Value::as_str) {
                    out.push_str(t);
                }
            }
            Some("response.output_text.delta") => {
                if let Some(t) = v.get("delta").and_then(Value::as_str) {
                    out.push_str(t);
                }
            }
            _ => {
                for c in v
                    .get("choices")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(t) = c.pointer("/delta/content").and_then(Value::as_str) {
                        out.push_str(t);
                    }
                }
            }
        }
    };
    while let Some(ev) = framer.next_event() {
        take(&ev.data);
    }
    if let Some(ev) = framer.finish() {
        take(&ev.data);
    }
    out
}

/// Cut at [`MAX_CONTENT`] bytes, on a character boundary.
fn bounded(mut s: String) -> String {
    if s.len() > MAX_CONTENT {
        let mut at = MAX_CONTENT;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tap(b: &[u8]) -> Tap {
        let mut t = Tap::default();
        t.push(b);
        t
    }

    #[test]
    fn tap_is_bounded() {
        let mut t = Tap::default();
        t.push(&vec![b'a'; MAX_CONTENT - 1]);
        assert!(!t.truncated());
        t.push(b"bc");
        assert!(t.truncated());
        assert_eq!(t.buf.len(), MAX_CONTENT);
    }

    #[test]
    fn input_takes_system_and_messages() {
        let t = tap(
            br#"{"model":"m","system":"be brief","messages":[{"role":"user","content":"hi"}]}"#,
        );
        let v: Value = serde_json::from_str(&input_messages(&t)).unwrap();
        assert_eq!(v[0]["role"], "system");
        assert_eq!(v[1]["content"], "hi");
        let t = tap(br#"{"model":"m","input":"hello"}"#);
        let v: Value = serde_json::from_str(&input_messages(&t)).unwrap();
        assert_eq!(v[0]["content"], "hello");
    }

    #[test]
    fn output_text_from_json_and_streams() {
        let t =
            tap(br#"{"choices":[{"message":{"content":"mail <EMAIL>"},"finish_reason":"stop"}]}"#);
        let v: Value = serde_json::from_str(&output_messages(&t, false, Some("stop"))).unwrap();
        assert_eq!(v[0]["parts"][0]["content"], "mail <EMAIL>");
        assert_eq!(v[0]["finish_reason"], "stop");
        let t = tap(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"a\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"b\"}}\n\n");
        let v: Value = serde_json::from_str(&output_messages(&t, true, None)).unwrap();
        assert_eq!(v[0]["parts"][0]["content"], "ab");
    }
}
