//! A whole Anthropic message as a `chat.completion`.

use super::super::maps;
use crate::provider::whole::Whole;
use crate::provider::{Transcode, TranscodeError};
use serde_json::{json, Value};

pub fn transcoder() -> Box<dyn Transcode> {
    Box::new(Whole::new(|b: &[u8]| {
        let v: Value = serde_json::from_slice(b)
            .map_err(|e| TranscodeError(format!("the upstream answer is not JSON: {e}")))?;
        serde_json::to_vec(&completion(&v)).map_err(|e| TranscodeError(e.to_string()))
    }))
}

pub fn completion(v: &Value) -> Value {
    let mut text = String::new();
    let mut calls = Vec::new();
    for b in v["content"].as_array().into_iter().flatten() {
        match b["type"].as_str() {
            Some("text") => text.push_str(b["text"].as_str().unwrap_or_default()),
            Some("tool_use") => calls.push(json!({"id": b["id"], "type": "function",
                "function": {"name": b["name"], "arguments": b["input"].to_string()}})),
            _ => {}
        }
    }
    let mut message = json!({"role": "assistant",
        "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) },
        "refusal": null});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    json!({
        "id": v["id"],
        "object": "chat.completion",
        "created": super::super::responses_messages::response::now(),
        "model": v["model"],
        "choices": [{"index": 0, "message": message, "logprobs": null,
                     "finish_reason": maps::finish_reason(v["stop_reason"].as_str())}],
        "usage": maps::chat_usage(&v["usage"]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_tool_use_become_a_completion() {
        let c = completion(
            &json!({"id": "msg_1", "model": "claude", "stop_reason": "tool_use",
            "content": [{"type": "text", "text": "ok"},
                        {"type": "tool_use", "id": "toolu_1", "name": "get", "input": {"a": 1}}],
            "usage": {"input_tokens": 3, "cache_read_input_tokens": 4, "output_tokens": 2}}),
        );
        assert_eq!(c["choices"][0]["message"]["content"], "ok");
        assert_eq!(c["choices"][0]["message"]["tool_calls"][0]["id"], "toolu_1");
        assert_eq!(
            c["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            r#"{"a":1}"#
        );
        assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(c["usage"]["prompt_tokens"], 7);
        assert_eq!(c["usage"]["prompt_tokens_details"]["cached_tokens"], 4);
    }
}
