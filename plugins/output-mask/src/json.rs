//! Where the text lives in AI JSON bodies, so only text is masked.
//!
//! Ids, usage, tool inputs, signatures and everything else are left alone:
//! masking a tool call's JSON arguments or an encrypted reasoning blob would
//! corrupt it.

use serde_json::Value;

/// A walker: calls the visitor on every text field of a body.
pub type Walk = fn(&mut Value, &mut dyn FnMut(&mut String));

/// Call `f` on every assistant text of a non-streaming response:
/// Anthropic `content[].text` (type `text`), OpenAI chat
/// `choices[].message.content` (string or text parts) and legacy
/// `choices[].text`, Responses `output[].content[].text` (type `output_text`).
pub fn response_texts(v: &mut Value, f: &mut dyn FnMut(&mut String)) {
    let Some(obj) = v.as_object_mut() else {
        return;
    };
    if let Some(Value::Array(blocks)) = obj.get_mut("content") {
        for b in blocks {
            text_of_type(b, &["text"], f);
        }
    }
    if let Some(Value::Array(choices)) = obj.get_mut("choices") {
        for c in choices {
            if let Some(msg) = c.get_mut("message") {
                match msg.get_mut("content") {
                    Some(Value::String(s)) => f(s),
                    Some(Value::Array(parts)) => {
                        for p in parts {
                            text_of_type(p, &["text", "output_text"], f);
                        }
                    }
                    _ => {}
                }
            }
            if let Some(Value::String(s)) = c.get_mut("text") {
                f(s);
            }
        }
    }
    if let Some(Value::Array(items)) = obj.get_mut("output") {
        for item in items {
            responses_item_texts(item, f);
        }
    }
}

/// The `output_text` parts of a Responses output item of type `message`.
pub fn responses_item_texts(item: &mut Value, f: &mut dyn FnMut(&mut String)) {
    if item.get("type").and_then(Value::as_str) != Some("message") {
        return;
    }
    if let Some(Value::Array(parts)) = item.get_mut("content") {
        for p in parts {
            text_of_type(p, &["output_text"], f);
        }
    }
}

/// `f(block.text)` when `block.type` is one of `types`.
pub fn text_of_type(block: &mut Value, types: &[&str], f: &mut dyn FnMut(&mut String)) {
    let ok = block
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| types.contains(&t));
    if ok {
        if let Some(Value::String(s)) = block.get_mut("text") {
            f(s);
        }
    }
}

/// Call `f` on every prompt text of a request: `system`, `instructions`,
/// `prompt`, `messages[].content` and `input` (strings or text parts, and
/// the content of Anthropic `tool_result` blocks).
pub fn request_texts(v: &mut Value, f: &mut dyn FnMut(&mut String)) {
    let Some(obj) = v.as_object_mut() else {
        return;
    };
    for key in ["system", "instructions", "prompt"] {
        if let Some(v) = obj.get_mut(key) {
            content(v, f);
        }
    }
    if let Some(Value::Array(msgs)) = obj.get_mut("messages") {
        for m in msgs {
            if let Some(c) = m.get_mut("content") {
                content(c, f);
            }
        }
    }
    match obj.get_mut("input") {
        Some(Value::String(s)) => f(s),
        Some(Value::Array(items)) => {
            for item in items {
                match item {
                    Value::String(s) => f(s),
                    Value::Object(_) => {
                        if let Some(c) = item.get_mut("content") {
                            content(c, f);
                        } else {
                            text_of_type(item, &["input_text", "output_text", "text"], f);
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// A message content: a string or a list of blocks.
fn content(v: &mut Value, f: &mut dyn FnMut(&mut String)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(blocks) => {
            for b in blocks {
                match b.get("type").and_then(Value::as_str) {
                    Some("tool_result") => {
                        if let Some(c) = b.get_mut("content") {
                            content(c, f);
                        }
                    }
                    _ => text_of_type(b, &["text", "input_text", "output_text"], f),
                }
            }
        }
        _ => {}
    }
}

/// Rewrite the texts of `body` with `mask`; `None` when nothing changed (or
/// the body is not JSON), so untouched bodies are passed as they came.
pub fn rewrite(body: &[u8], walk: Walk, mask: &dyn Fn(&str) -> Option<String>) -> Option<Vec<u8>> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let mut changed = false;
    walk(&mut v, &mut |s: &mut String| {
        if let Some(m) = mask(s) {
            *s = m;
            changed = true;
        }
    });
    if changed {
        serde_json::to_vec(&v).ok()
    } else {
        None
    }
}

/// Whether any text of `body` satisfies `pred`.
pub fn any_text(body: &[u8], walk: Walk, pred: &dyn Fn(&str) -> bool) -> bool {
    let Ok(mut v) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    let mut hit = false;
    walk(&mut v, &mut |s: &mut String| hit = hit || pred(s));
    hit
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn upper(s: &str) -> Option<String> {
        (s.to_uppercase() != s).then(|| s.to_uppercase())
    }

    fn rw(v: Value, walk: Walk) -> Value {
        serde_json::from_slice(&rewrite(v.to_string().as_bytes(), walk, &upper).unwrap()).unwrap()
    }

    #[test]
    fn anthropic_response() {
        let v = rw(
            json!({"id": "msg_a", "content": [{"type": "text", "text": "hi"},
                {"type": "tool_use", "id": "t", "input": {"text": "keep"}},
                {"type": "thinking", "thinking": "x", "signature": "sig"}],
                "usage": {"input_tokens": 1}}),
            response_texts,
        );
        assert_eq!(v["content"][0]["text"], "HI");
        assert_eq!(v["content"][1]["input"]["text"], "keep");
        assert_eq!(v["id"], "msg_a");
    }

    #[test]
    fn openai_responses() {
        let v = rw(
            json!({"id": "c", "choices": [{"index": 0, "message": {"role": "assistant", "content": "a"}},
                {"index": 1, "message": {"content": [{"type": "text", "text": "b"}],
                 "tool_calls": [{"function": {"arguments": "{\"x\":\"y\"}"}}]}}]}),
            response_texts,
        );
        assert_eq!(v["choices"][0]["message"]["content"], "A");
        assert_eq!(v["choices"][1]["message"]["content"][0]["text"], "B");
        assert_eq!(
            v["choices"][1]["message"]["tool_calls"][0]["function"]["arguments"],
            "{\"x\":\"y\"}"
        );
        let v = rw(
            json!({"id": "resp_1", "output": [
                {"type": "reasoning", "id": "r", "summary": [{"type": "summary_text", "text": "s"}]},
                {"type": "message", "id": "m", "content": [{"type": "output_text", "text": "t", "annotations": []}]},
                {"type": "function_call", "arguments": "{}", "call_id": "c"}]}),
            response_texts,
        );
        assert_eq!(v["output"][1]["content"][0]["text"], "T");
        assert_eq!(v["output"][0]["summary"][0]["text"], "s");
    }

    #[test]
    fn key_order_is_kept() {
        let body = br#"{"z":1,"content":[{"type":"text","text":"x"}],"a":2}"#;
        let out = rewrite(body, response_texts, &upper).unwrap();
        assert_eq!(
            out,
            br#"{"z":1,"content":[{"type":"text","text":"X"}],"a":2}"#
        );
    }

    #[test]
    fn untouched_or_non_json() {
        assert!(rewrite(b"not json", response_texts, &upper).is_none());
        assert!(rewrite(
            br#"{"content":[{"type":"text","text":"X"}]}"#,
            response_texts,
            &upper
        )
        .is_none());
    }

    #[test]
    fn request_shapes() {
        let v = rw(
            json!({"system": [{"type": "text", "text": "s", "cache_control": {}}],
                "messages": [{"role": "user", "content": "u"},
                  {"role": "user", "content": [{"type": "text", "text": "b"},
                    {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "r"}]},
                    {"type": "image", "source": {"data": "abc"}}]},
                  {"role": "assistant", "content": [{"type": "tool_use", "input": {"q": "keep"}}]}],
                "metadata": {"user_id": "id"}}),
            request_texts,
        );
        assert_eq!(v["system"][0]["text"], "S");
        assert_eq!(v["messages"][0]["content"], "U");
        assert_eq!(v["messages"][1]["content"][1]["content"][0]["text"], "R");
        assert_eq!(v["messages"][1]["content"][2]["source"]["data"], "abc");
        assert_eq!(v["messages"][2]["content"][0]["input"]["q"], "keep");
        assert_eq!(v["metadata"]["user_id"], "id");
        let v = rw(
            json!({"instructions": "i", "input": [{"role": "user", "content": [{"type": "input_text", "text": "q"}]},
                {"type": "function_call_output", "call_id": "c", "output": "o"}]}),
            request_texts,
        );
        assert_eq!(v["instructions"], "I");
        assert_eq!(v["input"][0]["content"][0]["text"], "Q");
        assert_eq!(v["input"][1]["output"], "o");
    }
}
