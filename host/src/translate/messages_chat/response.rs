//! A whole Chat Completions answer as an Anthropic message.

use super::super::maps;
use crate::provider::whole::Whole;
use crate::provider::{Transcode, TranscodeError};
use serde_json::{json, Value};

/// Collects the (small) JSON answer and rewrites it at its end.
pub fn transcoder() -> Box<dyn Transcode> {
    Box::new(Whole::new(|b: &[u8]| {
        let v: Value = serde_json::from_slice(b)
            .map_err(|e| TranscodeError(format!("the upstream answer is not JSON: {e}")))?;
        let m = message(&v)?;
        serde_json::to_vec(&m).map_err(|e| TranscodeError(e.to_string()))
    }))
}

/// A `tool_calls[].function.arguments` string as a `tool_use` input object.
pub fn tool_input(args: &str) -> Result<Value, TranscodeError> {
    if args.trim().is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_str(args).map_err(|e| {
        TranscodeError(format!(
            "the upstream's tool call arguments are not JSON: {e}"
        ))
    })
}

pub fn message(v: &Value) -> Result<Value, TranscodeError> {
    let choice = &v["choices"][0];
    let msg = &choice["message"];
    let mut content = Vec::new();
    if let Some(t) = super::stream::reasoning_text(msg) {
        content.push(json!({"type": "thinking", "thinking": t, "signature": ""}));
    }
    if let Some(t) = msg["content"].as_str().filter(|t| !t.is_empty()) {
        content.push(json!({"type": "text", "text": t}));
    }
    if let Some(r) = msg["refusal"].as_str().filter(|t| !t.is_empty()) {
        content.push(json!({"type": "text", "text": r}));
    }
    for c in msg["tool_calls"].as_array().into_iter().flatten() {
        content.push(json!({
            "type": "tool_use",
            "id": c["id"],
            "name": c["function"]["name"],
            "input": tool_input(c["function"]["arguments"].as_str().unwrap_or_default())?,
        }));
    }
    let stop = if msg["refusal"].as_str().is_some_and(|r| !r.is_empty()) {
        "refusal"
    } else {
        maps::stop_reason(choice["finish_reason"].as_str())
    };
    Ok(json!({
        "id": v["id"],
        "type": "message",
        "role": "assistant",
        "model": v["model"],
        "content": content,
        "stop_reason": stop,
        "stop_sequence": null,
        "usage": maps::usage(&v["usage"]),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_tool_calls_and_usage() {
        let v = json!({"id": "chatcmpl-1", "model": "gpt-5", "choices": [{"index": 0,
            "message": {"role": "assistant", "content": "ok", "reasoning_content": "why", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "Read", "arguments": "{\"path\":\"a\"}"}}]},
            "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 4}}});
        let m = message(&v).unwrap();
        assert_eq!(
            m["content"][0],
            json!({"type": "thinking", "thinking": "why", "signature": ""})
        );
        assert_eq!(m["content"][1], json!({"type": "text", "text": "ok"}));
        assert_eq!(m["content"][2]["id"], "call_1");
        assert_eq!(m["content"][2]["input"]["path"], "a");
        assert_eq!(m["stop_reason"], "tool_use");
        assert_eq!(m["usage"]["input_tokens"], 6);
        assert_eq!(m["usage"]["cache_read_input_tokens"], 4);
        let mut t = transcoder();
        t.push(b"not json").unwrap();
        assert!(t.finish().is_err());
    }
}
