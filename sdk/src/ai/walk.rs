//! The one body walker: every string a model reads (in a request) or a
//! client receives (in a response), in the JSON bodies of every AI API
//! Sluice routes.
//!
//! # The rule
//! **Every string value counts, except a short skip-list of fields that are
//! not text for the model.** The walker is generic on purpose: it does not
//! enumerate "prompt fields" (a list that new API features silently outgrow)
//! but excludes the few known non-text ones. So Anthropic `system` (string
//! or blocks), `messages[].content` of every role (including `role: system`),
//! `text`, `thinking`, `tool_use.input` values, `tool_result` content,
//! `document` blocks with a text source (`source.data` of `type: text`),
//! `tools[].description` and every `input_schema` description; OpenAI chat
//! `messages`, `tool_calls[].function.arguments`, `refusal`, `tools`;
//! Responses `instructions`, `input` items of every type
//! (`function_call_output.output`, `reasoning.summary`, ...), `output` items;
//! embeddings and completions `input`/`prompt` strings and lists; and any
//! field added to these APIs later.
//!
//! # Skip-list (strings only; objects and arrays under these keys are still walked)
//! - identifiers: `id` and every key ending in `_id` (`tool_use_id`,
//!   `call_id`, `item_id`, `previous_response_id`, `user_id`...), `model`;
//! - enums: `type`, `role`, `object`, `status`, `stop_reason`,
//!   `finish_reason`, `media_type`, `mime_type`;
//! - opaque blobs: `signature`, `encrypted_content`, `data` (base64 image,
//!   PDF or audio payloads; **except** in a `type: text` source, whose `data`
//!   is the document's text), and any `data:...;base64,` URL;
//! - the whole `cache_control` subtree.
//!
//! Inside free-form subtrees the skip-list does not apply and object keys
//! count too: a tool's `input` object, `input_schema`/`parameters`/`schema`,
//! and the parsed JSON of an `arguments` string (OpenAI tool calls carry
//! their arguments as JSON text: the walker decodes it, so escapes there
//! cannot hide a phrase either, and masking writes it back re-encoded).
//!
//! Match on [`super::normalize`]d text: the walker yields decoded strings as
//! they are.

use serde_json::{Map, Value};

/// String-valued keys that are not text for the model.
pub const SKIP_KEYS: &[&str] = &[
    "id",
    "model",
    "type",
    "role",
    "object",
    "status",
    "stop_reason",
    "finish_reason",
    "media_type",
    "mime_type",
    "signature",
    "encrypted_content",
];

/// Keys whose whole subtree is skipped.
pub const SKIP_SUBTREES: &[&str] = &["cache_control"];

/// Keys that open a free-form subtree (every key and string counts).
const FREE_KEYS: &[&str] = &["input_schema", "parameters", "schema"];

fn skip_string(key: &str, value: &str, parent: &Map<String, Value>) -> bool {
    SKIP_KEYS.contains(&key)
        || key.ends_with("_id")
        || (key == "data" && parent.get("type").and_then(Value::as_str) != Some("text"))
        || is_base64_data_url(value)
}

/// `data:image/png;base64,...` and the like.
pub fn is_base64_data_url(s: &str) -> bool {
    s.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("data:"))
        && s.find(',')
            .is_some_and(|comma| s[..comma].ends_with(";base64"))
}

/// Does `key` (with this value) open a free-form subtree?
fn opens_free(key: &str, value: &Value) -> bool {
    FREE_KEYS.contains(&key) || (key == "input" && value.is_object())
}

/// An `arguments` string holding JSON (an object or array).
fn parsed_arguments(key: &str, value: &str) -> Option<Value> {
    if key != "arguments" {
        return None;
    }
    match serde_json::from_str::<Value>(value) {
        Ok(v @ (Value::Object(_) | Value::Array(_))) => Some(v),
        _ => None,
    }
}

/// Call `f` on every text of `body` (see the module doc), object keys of
/// free-form subtrees included.
pub fn for_each_text(body: &Value, f: &mut dyn FnMut(&str)) {
    visit(body, false, f);
}

fn visit(v: &Value, free: bool, f: &mut dyn FnMut(&str)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().for_each(|i| visit(i, free, f)),
        Value::Object(map) => {
            for (k, val) in map {
                if free {
                    f(k);
                } else if SKIP_SUBTREES.contains(&k.as_str()) {
                    continue;
                }
                match val {
                    Value::String(s) => {
                        if let Some(parsed) = parsed_arguments(k, s) {
                            visit(&parsed, true, f);
                        } else if free || !skip_string(k, s, map) {
                            f(s);
                        }
                    }
                    other => visit(other, free || opens_free(k, other), f),
                }
            }
        }
        _ => {}
    }
}

/// Every text of `body`, copied (see [`for_each_text`]).
pub fn texts(body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for_each_text(body, &mut |s| out.push(s.to_owned()));
    out
}

/// Call `f` on every text string of `body`, mutably (masking rewrites in
/// place). The same strings as [`for_each_text`] except object keys, which
/// are never rewritten. `arguments` JSON is re-encoded only when `f` changed
/// one of its strings.
pub fn for_each_text_mut(body: &mut Value, f: &mut dyn FnMut(&mut String)) {
    visit_mut(body, false, f);
}

fn visit_mut(v: &mut Value, free: bool, f: &mut dyn FnMut(&mut String)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter_mut().for_each(|i| visit_mut(i, free, f)),
        Value::Object(map) => {
            let skipped: Vec<String> = if free {
                Vec::new()
            } else {
                map.iter()
                    .filter(|(k, val)| {
                        SKIP_SUBTREES.contains(&k.as_str())
                            || val.as_str().is_some_and(|s| skip_string(k, s, map))
                    })
                    .map(|(k, _)| k.clone())
                    .collect()
            };
            for (k, val) in map.iter_mut() {
                if skipped.contains(k) {
                    continue;
                }
                if let Value::String(s) = val {
                    if let Some(mut parsed) = parsed_arguments(k, s) {
                        let mut changed = false;
                        visit_mut(&mut parsed, true, &mut |t: &mut String| {
                            let before = t.clone();
                            f(t);
                            changed |= *t != before;
                        });
                        if changed {
                            *s = parsed.to_string();
                        }
                        continue;
                    }
                    f(s);
                } else {
                    let free = free || opens_free(k, val);
                    visit_mut(val, free, f);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn all(v: Value) -> Vec<String> {
        texts(&v)
    }

    #[test]
    fn anthropic_messages_every_field_the_model_reads() {
        let body = json!({
            "model": "claude-sonnet-4-5", "max_tokens": 64, "stream": true,
            "metadata": {"user_id": "user_abc"},
            "system": [{"type": "text", "text": "SYS", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
            "tools": [{"name": "Write", "description": "TOOLDESC",
                "input_schema": {"type": "object", "properties": {
                    "id": {"type": "string", "description": "SCHEMADESC"}}, "required": ["id"]}}],
            "tool_choice": {"type": "auto"},
            "messages": [
                {"role": "system", "content": "ROLESYS"},
                {"role": "user", "content": [
                    {"type": "text", "text": "USER"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "DOCTEXT"}, "title": "TITLE", "context": "CTX"},
                    {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}},
                    {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "DOCBLOCK"}]}},
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "RESULT"}]},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "RESULT2"}]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "THINK", "signature": "c2ln"},
                    {"type": "redacted_thinking", "data": "b3BhcXVl"},
                    {"type": "tool_use", "id": "toolu_1", "name": "Write",
                     "input": {"file_path": "/a", "content": "TOOLINPUT", "id": "INPUTID", "nested": [{"type": "INPUTTYPE"}]}}]}]
        });
        let t = all(body);
        for want in [
            "SYS",
            "TOOLDESC",
            "SCHEMADESC",
            "ROLESYS",
            "USER",
            "DOCTEXT",
            "TITLE",
            "CTX",
            "DOCBLOCK",
            "RESULT",
            "RESULT2",
            "THINK",
            "TOOLINPUT",
            "INPUTID",
            "INPUTTYPE",
            "file_path",
            "Write",
        ] {
            assert!(t.iter().any(|s| s == want), "{want} missing from {t:?}");
        }
        for skipped in [
            "claude-sonnet-4-5",
            "user_abc",
            "ephemeral",
            "1h",
            "iVBORw0KGgo=",
            "JVBERi0=",
            "toolu_1",
            "c2ln",
            "b3BhcXVl",
            "image/png",
            "base64",
            "user",
            "assistant",
            "tool_result",
            "auto",
        ] {
            assert!(
                !t.iter().any(|s| s == skipped),
                "{skipped} should be skipped: {t:?}"
            );
        }
    }

    #[test]
    fn openai_chat_and_embeddings() {
        let t = all(json!({"model": "gpt-4o", "user": "end-user-1",
            "messages": [
                {"role": "system", "content": "SYS"},
                {"role": "developer", "content": [{"type": "text", "text": "DEV"}]},
                {"role": "user", "content": [{"type": "text", "text": "Q"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
                    {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}]},
                {"role": "assistant", "content": null, "refusal": "REFUSAL",
                 "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "f", "arguments": "{\"q\":\"\\u0041RG\",\"n\":[\"ARG2\"]}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "TOOLOUT"}],
            "tools": [{"type": "function", "function": {"name": "f", "description": "FDESC",
                "parameters": {"type": "object", "properties": {"q": {"type": "string", "description": "PDESC"}}}}}]}));
        for want in [
            "SYS",
            "DEV",
            "Q",
            "REFUSAL",
            "ARG",
            "ARG2",
            "q",
            "TOOLOUT",
            "FDESC",
            "PDESC",
            "end-user-1",
        ] {
            assert!(t.iter().any(|s| s == want), "{want} missing from {t:?}");
        }
        for skipped in [
            "gpt-4o",
            "data:image/png;base64,AAAA",
            "UklGRg==",
            "call_1",
            "system",
        ] {
            assert!(
                !t.iter().any(|s| s == skipped),
                "{skipped} should be skipped: {t:?}"
            );
        }
        assert_eq!(
            all(json!({"model": "emb", "input": ["E1", "E2"]})),
            ["E1", "E2"]
        );
        assert_eq!(all(json!({"model": "emb", "input": "E"})), ["E"]);
        assert_eq!(all(json!({"prompt": ["P1"], "suffix": "S"})), ["P1", "S"]);
    }

    #[test]
    fn responses_every_input_item_type() {
        let t = all(json!({"model": "gpt-5-codex", "instructions": "INSTR",
            "previous_response_id": "resp_1", "prompt_cache_key": "k",
            "include": ["reasoning.encrypted_content"],
            "reasoning": {"effort": "high", "summary": "auto"},
            "tools": [{"type": "function", "name": "shell", "description": "SHELLDESC", "strict": false,
                "parameters": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}}}}},
                {"type": "custom", "name": "apply_patch", "description": "PATCHDESC", "format": {"type": "grammar", "definition": "GRAMMAR"}}],
            "input": [
                {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "DEVTEXT"}]},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "USERTEXT"},
                    {"type": "input_image", "image_url": "data:image/jpeg;base64,/9j/"},
                    {"type": "input_file", "filename": "FNAME", "file_data": "data:application/pdf;base64,JVBE"}]},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "ASSIST"}]},
                {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "SUMMARY"}], "encrypted_content": "gAAAA"},
                {"type": "function_call", "call_id": "c1", "name": "shell", "arguments": "{\"command\":[\"CMD\"]}"},
                {"type": "function_call_output", "call_id": "c1", "output": "FCOUT"},
                {"type": "custom_tool_call", "call_id": "c2", "name": "apply_patch", "input": "PATCHIN"},
                {"type": "custom_tool_call_output", "call_id": "c2", "output": "PATCHOUT"},
                {"type": "local_shell_call", "call_id": "c3", "action": {"type": "exec", "command": ["LSCMD"]}},
                {"type": "local_shell_call_output", "call_id": "c3", "output": "LSOUT"},
                {"type": "web_search_call", "action": {"type": "search", "query": "QUERY"}},
                {"type": "item_reference", "id": "msg_1"}]}));
        for want in [
            "INSTR",
            "SHELLDESC",
            "PATCHDESC",
            "GRAMMAR",
            "DEVTEXT",
            "USERTEXT",
            "FNAME",
            "ASSIST",
            "SUMMARY",
            "CMD",
            "FCOUT",
            "PATCHIN",
            "PATCHOUT",
            "LSCMD",
            "LSOUT",
            "QUERY",
            "command",
        ] {
            assert!(t.iter().any(|s| s == want), "{want} missing from {t:?}");
        }
        for skipped in [
            "gpt-5-codex",
            "resp_1",
            "rs_1",
            "gAAAA",
            "c1",
            "msg_1",
            "data:image/jpeg;base64,/9j/",
        ] {
            assert!(
                !t.iter().any(|s| s == skipped),
                "{skipped} should be skipped: {t:?}"
            );
        }
    }

    #[test]
    fn responses_and_messages_answers() {
        let t = all(
            json!({"id": "msg_1", "type": "message", "role": "assistant", "stop_reason": "end_turn",
            "content": [{"type": "text", "text": "ANSWER"}, {"type": "thinking", "thinking": "THOUGHT", "signature": "s"},
                {"type": "tool_use", "id": "t", "name": "n", "input": {"q": "TOOLQ"}}],
            "usage": {"input_tokens": 3}}),
        );
        assert_eq!(t, ["ANSWER", "THOUGHT", "n", "q", "TOOLQ"]);
        let t = all(
            json!({"id": "resp_1", "object": "response", "status": "completed", "output": [
            {"type": "reasoning", "id": "rs", "summary": [{"type": "summary_text", "text": "RSUM"}]},
            {"type": "message", "id": "m", "status": "completed", "role": "assistant",
             "content": [{"type": "output_text", "text": "OUT", "annotations": []}, {"type": "refusal", "refusal": "NO"}]},
            {"type": "function_call", "id": "fc", "call_id": "c", "name": "f", "arguments": "{\"a\":\"FARG\"}"}]}),
        );
        assert_eq!(t, ["RSUM", "OUT", "NO", "f", "a", "FARG"]);
    }

    #[test]
    fn masking_rewrites_texts_and_arguments_only() {
        let mut v = json!({"id": "x@y.io", "model": "m", "content": [{"type": "text", "text": "mail x@y.io"}],
            "choices": [{"message": {"tool_calls": [{"function": {"arguments": "{\"to\": \"x@y.io\", \"n\": 1}"}},
                {"function": {"arguments": "{\"keep\": \"as is\"}"}}]}}]});
        for_each_text_mut(&mut v, &mut |s| {
            if s.contains("x@y.io") {
                *s = s.replace("x@y.io", "<EMAIL>");
            }
        });
        assert_eq!(v["id"], "x@y.io");
        assert_eq!(v["content"][0]["text"], "mail <EMAIL>");
        let args = v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(args).unwrap(),
            json!({"to": "<EMAIL>", "n": 1})
        );
        // Unchanged arguments keep their exact text.
        assert_eq!(
            v["choices"][0]["message"]["tool_calls"][1]["function"]["arguments"],
            "{\"keep\": \"as is\"}"
        );
    }

    #[test]
    fn mutable_and_read_only_walks_agree() {
        let body = json!({"system": "S", "tools": [{"description": "D", "input_schema": {"properties": {"id": {"description": "X"}}}}],
            "messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "text", "data": "T"}}]}]});
        let mut seen = Vec::new();
        let mut copy = body.clone();
        for_each_text_mut(&mut copy, &mut |s| seen.push(s.clone()));
        let ro: Vec<String> = texts(&body);
        // The read-only walk adds the free-form subtree's keys.
        let keys = ["properties", "id", "description"];
        let ro_strings: Vec<String> = ro
            .into_iter()
            .filter(|s| !keys.contains(&s.as_str()))
            .collect();
        assert_eq!(seen, ro_strings);
        assert_eq!(seen, ["S", "D", "X", "T"]);
    }
}
