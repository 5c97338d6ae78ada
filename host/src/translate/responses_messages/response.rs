//! A whole Anthropic message as a Responses object; the item builders are
//! shared with the stream.

use super::super::envelope::{self, Thinking};
use super::super::maps;
use crate::provider::whole::Whole;
use crate::provider::{Transcode, TranscodeError};
use serde_json::{json, Value};

pub fn transcoder() -> Box<dyn Transcode> {
    Box::new(Whole::new(|b: &[u8]| {
        let v: Value = serde_json::from_slice(b)
            .map_err(|e| TranscodeError(format!("the upstream answer is not JSON: {e}")))?;
        serde_json::to_vec(&response(&v)).map_err(|e| TranscodeError(e.to_string()))
    }))
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The Responses id for an Anthropic message id.
pub fn response_id(msg_id: &Value) -> String {
    format!("resp_{}", msg_id.as_str().unwrap_or_default())
}

pub fn message_item(id: &str, text: &str, status: &str) -> Value {
    let content = if status == "completed" {
        json!([{"type": "output_text", "text": text, "annotations": []}])
    } else {
        json!([])
    };
    json!({"type": "message", "id": id, "status": status, "role": "assistant", "content": content})
}

pub fn reasoning_item(id: &str, summary: &str, sealed: Option<String>) -> Value {
    let summary = if summary.is_empty() {
        json!([])
    } else {
        json!([{"type": "summary_text", "text": summary}])
    };
    let mut item = json!({"type": "reasoning", "id": id, "summary": summary});
    if let Some(s) = sealed {
        item["encrypted_content"] = json!(s);
    }
    item
}

pub fn call_item(call_id: &str, name: &Value, arguments: &str, status: &str) -> Value {
    json!({"type": "function_call", "id": format!("fc_{call_id}"), "call_id": call_id,
           "name": name, "arguments": arguments, "status": status})
}

/// The Responses object around `output`.
pub fn envelope(
    id: &str,
    model: &Value,
    status: &str,
    output: Vec<Value>,
    usage: Value,
    stop_reason: Option<&str>,
) -> Value {
    let mut r = json!({"id": id, "object": "response", "created_at": now(), "status": status,
        "model": model, "output": output, "usage": usage, "error": null,
        "incomplete_details": null});
    if let Some(reason) = maps::incomplete_reason(stop_reason) {
        if status != "in_progress" {
            r["status"] = json!("incomplete");
            r["incomplete_details"] = json!({"reason": reason});
        }
    }
    r
}

pub fn response(v: &Value) -> Value {
    let mut output = Vec::new();
    let msg_id = v["id"].as_str().unwrap_or_default();
    for (i, b) in v["content"].as_array().into_iter().flatten().enumerate() {
        let item_id = format!("{msg_id}_{i}");
        match b["type"].as_str() {
            Some("text") => output.push(message_item(
                &format!("msg_{item_id}"),
                b["text"].as_str().unwrap_or_default(),
                "completed",
            )),
            Some("thinking") => {
                let t = Thinking::Thinking {
                    thinking: b["thinking"].as_str().unwrap_or_default().into(),
                    signature: b["signature"].as_str().unwrap_or_default().into(),
                };
                output.push(reasoning_item(
                    &format!("rs_{item_id}"),
                    b["thinking"].as_str().unwrap_or_default(),
                    Some(envelope::seal(&t)),
                ));
            }
            Some("redacted_thinking") => {
                let t = Thinking::RedactedThinking {
                    data: b["data"].as_str().unwrap_or_default().into(),
                };
                output.push(reasoning_item(
                    &format!("rs_{item_id}"),
                    "",
                    Some(envelope::seal(&t)),
                ));
            }
            Some("tool_use") => output.push(call_item(
                b["id"].as_str().unwrap_or_default(),
                &b["name"],
                &b["input"].to_string(),
                "completed",
            )),
            _ => {}
        }
    }
    envelope(
        &response_id(&v["id"]),
        &v["model"],
        "completed",
        output,
        maps::responses_usage(&v["usage"]),
        v["stop_reason"].as_str(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinking_text_and_tool_use_become_items() {
        let r = response(
            &json!({"id": "msg_1", "model": "claude", "stop_reason": "tool_use",
            "content": [
                {"type": "thinking", "thinking": "hm", "signature": "S1"},
                {"type": "text", "text": "calling"},
                {"type": "tool_use", "id": "toolu_1", "name": "shell", "input": {"cmd": "ls"}}],
            "usage": {"input_tokens": 5, "cache_read_input_tokens": 10, "output_tokens": 3}}),
        );
        assert_eq!(r["object"], "response");
        assert_eq!(r["status"], "completed");
        let o = r["output"].as_array().unwrap();
        assert_eq!(o[0]["type"], "reasoning");
        assert_eq!(o[0]["summary"][0]["text"], "hm");
        let back = envelope::open(o[0]["encrypted_content"].as_str().unwrap()).unwrap();
        assert_eq!(
            back,
            Thinking::Thinking {
                thinking: "hm".into(),
                signature: "S1".into()
            }
        );
        assert_eq!(o[1]["content"][0]["text"], "calling");
        assert_eq!(o[2]["call_id"], "toolu_1");
        assert_eq!(o[2]["arguments"], r#"{"cmd":"ls"}"#);
        assert_eq!(r["usage"]["input_tokens"], 15);
        assert_eq!(r["usage"]["input_tokens_details"]["cached_tokens"], 10);
        let r = response(&json!({"id": "m", "stop_reason": "max_tokens", "content": []}));
        assert_eq!(r["status"], "incomplete");
        assert_eq!(r["incomplete_details"]["reason"], "max_output_tokens");
    }
}
