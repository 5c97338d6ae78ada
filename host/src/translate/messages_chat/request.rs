//! An Anthropic Messages request as an OpenAI Chat Completions request.
//!
//! Every top-level field is either carried, mapped, or handed to
//! [`Fields::unsupported`]: nothing unknown passes silently. `cache_control`
//! is accepted and not forwarded: OpenAI caches prompt prefixes on its own,
//! so the model's answer does not change.

use super::super::body::{invalid, obj, Obj};
use super::super::fields::{Fields, TranslateError};
use super::super::maps;
use serde_json::{json, Value};
use std::collections::HashSet;

/// Translate the body; `fields` decides on what has no equivalent.
pub fn translate(body: &[u8], fields: &mut Fields) -> Result<Vec<u8>, TranslateError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| invalid(format!("the body is not JSON: {e}")))?;
    let req = obj(&v, "body")?;
    let mut out = Obj::new();
    let mut messages = Vec::new();
    let mut stream = false;
    for (k, val) in req {
        match k.as_str() {
            "model" => {
                out.insert("model".into(), val.clone());
            }
            "max_tokens" => {
                out.insert("max_completion_tokens".into(), val.clone());
            }
            "temperature" | "top_p" => {
                out.insert(k.clone(), val.clone());
            }
            "stop_sequences" => {
                out.insert("stop".into(), val.clone());
            }
            "stream" => {
                stream = val.as_bool() == Some(true);
                out.insert("stream".into(), json!(stream));
            }
            "system" => messages.insert(0, system(val, fields)?),
            "messages" => {}
            "metadata" => {
                for (mk, mv) in obj(val, "metadata")? {
                    match mk.as_str() {
                        "user_id" if !mv.is_null() => {
                            out.insert("user".into(), mv.clone());
                        }
                        "user_id" => {}
                        other => fields.unsupported(format!("metadata.{other}"))?,
                    }
                }
            }
            "tools" => {
                out.insert("tools".into(), tools(val, fields)?);
            }
            "tool_choice" => tool_choice(val, &mut out, fields)?,
            "thinking" => thinking(val, &mut out, fields)?,
            "context_management" => context_management(val, fields)?,
            "output_config" => output_config(val, &mut out, fields)?,
            other => fields.unsupported(other)?,
        }
    }
    let msgs = req
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("`messages` must be an array"))?;
    conversation(msgs, &mut messages, fields)?;
    out.insert("messages".into(), Value::Array(messages));
    if stream {
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    serde_json::to_vec(&Value::Object(out)).map_err(|e| invalid(e.to_string()))
}

/// `system`: a string, or text blocks (each kept as its own part).
fn system(v: &Value, fields: &mut Fields) -> Result<Value, TranslateError> {
    let content = match v {
        Value::String(s) => json!(s),
        Value::Array(blocks) => {
            let mut parts = Vec::new();
            for b in blocks {
                let b = obj(b, "system[]")?;
                for k in b.keys() {
                    match k.as_str() {
                        "type" | "text" | "cache_control" => {}
                        other => fields.unsupported(format!("system[].{other}"))?,
                    }
                }
                if b.get("type").and_then(Value::as_str) != Some("text") {
                    return Err(invalid("`system` blocks must be text"));
                }
                parts.push(
                    json!({"type": "text", "text": b.get("text").cloned().unwrap_or_default()}),
                );
            }
            text_content(parts)
        }
        _ => {
            return Err(invalid(
                "`system` must be a string or an array of text blocks",
            ))
        }
    };
    Ok(json!({"role": "system", "content": content}))
}

/// One text part as a plain string (what every Chat server reads), else parts.
fn text_content(mut parts: Vec<Value>) -> Value {
    if parts.len() == 1 && parts[0]["type"] == "text" {
        return parts.remove(0)["text"].take();
    }
    Value::Array(parts)
}

fn conversation(
    msgs: &[Value],
    out: &mut Vec<Value>,
    fields: &mut Fields,
) -> Result<(), TranslateError> {
    // Tool-use ids the assistant has issued so far: a tool result must name one.
    let mut issued: HashSet<String> = HashSet::new();
    for (i, m) in msgs.iter().enumerate() {
        let m = obj(m, "messages[]")?;
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        for k in m.keys() {
            if k != "role" && k != "content" {
                fields.unsupported(format!("messages[].{k}"))?;
            }
        }
        let content = m.get("content").unwrap_or(&Value::Null);
        match role {
            "user" => user(content, &issued, out, fields)?,
            "assistant" => out.push(assistant(content, &mut issued, fields)?),
            other => {
                return Err(invalid(format!(
                    "messages[{i}].role `{other}` is neither `user` nor `assistant`"
                )))
            }
        }
    }
    Ok(())
}

fn user(
    content: &Value,
    issued: &HashSet<String>,
    out: &mut Vec<Value>,
    fields: &mut Fields,
) -> Result<(), TranslateError> {
    let blocks = match content {
        Value::String(s) => {
            out.push(json!({"role": "user", "content": s}));
            return Ok(());
        }
        Value::Array(b) => b,
        _ => {
            return Err(invalid(
                "a message's `content` must be a string or an array",
            ))
        }
    };
    let mut parts = Vec::new();
    for b in blocks {
        let bo = obj(b, "content[]")?;
        match bo.get("type").and_then(Value::as_str).unwrap_or_default() {
            "text" => parts.push(text_part(bo, fields)?),
            "image" => parts.push(image_part(bo, fields)?),
            "document" => parts.push(document_part(bo, fields)?),
            // Chat wants tool answers as their own messages, right after the
            // assistant's calls: they go before the user's other content.
            "tool_result" => out.push(tool_message(bo, issued, fields)?),
            other => fields.unsupported(format!("content[].type `{other}`"))?,
        }
    }
    if !parts.is_empty() {
        out.push(json!({"role": "user", "content": text_content(parts)}));
    }
    Ok(())
}

fn check_keys(
    b: &Obj,
    allowed: &[&str],
    what: &str,
    fields: &mut Fields,
) -> Result<(), TranslateError> {
    for k in b.keys() {
        if !allowed.contains(&k.as_str()) && k != "cache_control" {
            fields.unsupported(format!("{what}.{k}"))?;
        }
    }
    Ok(())
}

fn text_part(b: &Obj, fields: &mut Fields) -> Result<Value, TranslateError> {
    check_keys(b, &["type", "text"], "text", fields)?;
    Ok(json!({"type": "text", "text": b.get("text").cloned().unwrap_or_default()}))
}

fn image_part(b: &Obj, fields: &mut Fields) -> Result<Value, TranslateError> {
    check_keys(b, &["type", "source"], "image", fields)?;
    let src = obj(b.get("source").unwrap_or(&Value::Null), "image.source")?;
    let url = match src.get("type").and_then(Value::as_str) {
        Some("base64") => format!(
            "data:{};base64,{}",
            src.get("media_type")
                .and_then(Value::as_str)
                .unwrap_or("image/png"),
            src.get("data").and_then(Value::as_str).unwrap_or_default()
        ),
        Some("url") => src
            .get("url")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        other => {
            fields.unsupported(format!("image.source.type `{}`", other.unwrap_or("")))?;
            return Ok(json!({"type": "text", "text": ""}));
        }
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// A base64 PDF becomes a Chat `file` part; other documents have no equivalent.
fn document_part(b: &Obj, fields: &mut Fields) -> Result<Value, TranslateError> {
    check_keys(b, &["type", "source", "title"], "document", fields)?;
    let src = obj(b.get("source").unwrap_or(&Value::Null), "document.source")?;
    let media = src.get("media_type").and_then(Value::as_str);
    if src.get("type").and_then(Value::as_str) == Some("base64") && media == Some("application/pdf")
    {
        let name = b
            .get("title")
            .and_then(Value::as_str)
            .unwrap_or("document.pdf");
        let data = src.get("data").and_then(Value::as_str).unwrap_or_default();
        return Ok(json!({"type": "file", "file": {
            "filename": name,
            "file_data": format!("data:application/pdf;base64,{data}"),
        }}));
    }
    fields.unsupported("document.source (only base64 PDF is carried)")?;
    Ok(json!({"type": "text", "text": ""}))
}

/// A `tool_result` block as a Chat `tool` message. An error result is
/// marked in the text: Chat has no flag for it.
fn tool_message(
    b: &Obj,
    issued: &HashSet<String>,
    fields: &mut Fields,
) -> Result<Value, TranslateError> {
    check_keys(
        b,
        &["type", "tool_use_id", "content", "is_error"],
        "tool_result",
        fields,
    )?;
    let id = b
        .get("tool_use_id")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("a `tool_result` needs a `tool_use_id`"))?;
    if !issued.contains(id) {
        return Err(invalid(format!(
            "tool_result `tool_use_id` `{id}` names no earlier assistant `tool_use`"
        )));
    }
    let mut text = match b.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            let mut t = Vec::new();
            for p in parts {
                let p = obj(p, "tool_result.content[]")?;
                match p.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        t.push(p.get("text").and_then(Value::as_str).unwrap_or_default())
                    }
                    other => fields.unsupported(format!(
                        "tool_result.content[].type `{}`",
                        other.unwrap_or("")
                    ))?,
                }
            }
            t.join("\n")
        }
        Some(_) => {
            return Err(invalid(
                "a `tool_result`'s `content` must be a string or an array",
            ))
        }
    };
    if b.get("is_error").and_then(Value::as_bool) == Some(true) {
        text = format!("Error: {text}");
    }
    Ok(json!({"role": "tool", "tool_call_id": id, "content": text}))
}

/// An assistant turn: text, and `tool_use` as `tool_calls` with their ids.
/// Thinking blocks are left out: their signature is for Anthropic alone,
/// and a Chat model never produced them.
fn assistant(
    content: &Value,
    issued: &mut HashSet<String>,
    fields: &mut Fields,
) -> Result<Value, TranslateError> {
    let blocks = match content {
        Value::String(s) => return Ok(json!({"role": "assistant", "content": s})),
        Value::Array(b) => b,
        _ => {
            return Err(invalid(
                "a message's `content` must be a string or an array",
            ))
        }
    };
    let mut text = Vec::new();
    let mut calls = Vec::new();
    for b in blocks {
        let bo = obj(b, "content[]")?;
        match bo.get("type").and_then(Value::as_str).unwrap_or_default() {
            "text" => text.push(text_part(bo, fields)?),
            "tool_use" => {
                check_keys(bo, &["type", "id", "name", "input"], "tool_use", fields)?;
                let id = bo
                    .get("id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("a `tool_use` needs an `id`"))?;
                issued.insert(id.to_string());
                let args = bo.get("input").cloned().unwrap_or_else(|| json!({}));
                calls.push(json!({"id": id, "type": "function", "function": {
                    "name": bo.get("name").cloned().unwrap_or_default(),
                    "arguments": args.to_string(),
                }}));
            }
            "thinking" | "redacted_thinking" => {}
            other => fields.unsupported(format!("content[].type `{other}`"))?,
        }
    }
    let mut m = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { text_content(text) }});
    if !calls.is_empty() {
        m["tool_calls"] = Value::Array(calls);
    }
    Ok(m)
}

fn tools(v: &Value, fields: &mut Fields) -> Result<Value, TranslateError> {
    let list = v
        .as_array()
        .ok_or_else(|| invalid("`tools` must be an array"))?;
    let mut out = Vec::with_capacity(list.len());
    for t in list {
        let t = obj(t, "tools[]")?;
        if let Some(ty) = t
            .get("type")
            .and_then(Value::as_str)
            .filter(|t| *t != "custom")
        {
            // A server tool (web search, code execution…) runs at Anthropic.
            fields.unsupported(format!("tools[].type `{ty}`"))?;
            continue;
        }
        // A deferred tool is not shown to the model until a tool search
        // finds it; Chat has no tool search, so the model sees what
        // Anthropic's would before one: the tools not deferred.
        if t.get("defer_loading").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        check_keys(
            t,
            &[
                "type",
                "name",
                "description",
                "input_schema",
                "defer_loading",
                // Fine-grained tool streaming: Anthropic then streams the
                // input unbuffered. Chat always streams the arguments as
                // they come, so the flag is already honoured (OpenCode
                // sets it on every tool).
                "eager_input_streaming",
            ],
            "tools[]",
            fields,
        )?;
        let mut f = json!({"name": t.get("name").cloned().unwrap_or_default()});
        if let Some(d) = t.get("description") {
            f["description"] = d.clone();
        }
        f["parameters"] = t
            .get("input_schema")
            .cloned()
            .unwrap_or_else(|| json!({"type": "object"}));
        out.push(json!({"type": "function", "function": f}));
    }
    Ok(Value::Array(out))
}

fn tool_choice(v: &Value, out: &mut Obj, fields: &mut Fields) -> Result<(), TranslateError> {
    let c = obj(v, "tool_choice")?;
    check_keys(
        c,
        &["type", "name", "disable_parallel_tool_use"],
        "tool_choice",
        fields,
    )?;
    let choice = match c.get("type").and_then(Value::as_str) {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => {
            json!({"type": "function", "function": {"name": c.get("name").cloned().unwrap_or_default()}})
        }
        other => return Err(invalid(format!("unknown `tool_choice.type` {other:?}"))),
    };
    out.insert("tool_choice".into(), choice);
    if c.get("disable_parallel_tool_use").and_then(Value::as_bool) == Some(true) {
        out.insert("parallel_tool_calls".into(), json!(false));
    }
    Ok(())
}

/// `output_config.effort` (how hard the model works) is Chat's
/// `reasoning_effort`; it wins over a thinking budget's mapping, being the
/// client's own word for it.
fn output_config(v: &Value, out: &mut Obj, fields: &mut Fields) -> Result<(), TranslateError> {
    for (k, val) in obj(v, "output_config")? {
        match (k.as_str(), val.as_str()) {
            ("effort", Some(e @ ("low" | "medium" | "high"))) => {
                out.insert("reasoning_effort".into(), json!(e));
            }
            ("effort", other) => {
                fields.unsupported(format!("output_config.effort `{}`", other.unwrap_or("")))?
            }
            (other, _) => fields.unsupported(format!("output_config.{other}"))?,
        }
    }
    Ok(())
}

/// `context_management` edits: clearing thinking holds by construction (no
/// thinking block is ever sent to a Chat model); any other edit would
/// change the context the model reads, and Chat has none to make.
fn context_management(v: &Value, fields: &mut Fields) -> Result<(), TranslateError> {
    let c = obj(v, "context_management")?;
    for (k, val) in c {
        if k != "edits" {
            fields.unsupported(format!("context_management.{k}"))?;
            continue;
        }
        for e in val.as_array().into_iter().flatten() {
            let ty = e["type"].as_str().unwrap_or_default();
            if !ty.starts_with("clear_thinking_") {
                fields.unsupported(format!("context_management.edits[].type `{ty}`"))?;
            }
        }
    }
    Ok(())
}

/// `thinking.budget_tokens` → `reasoning_effort`; disabled thinking sends none.
/// (`display` only says whether Anthropic returns the thinking text; a
/// Chat model returns none.)
fn thinking(v: &Value, out: &mut Obj, fields: &mut Fields) -> Result<(), TranslateError> {
    let t = obj(v, "thinking")?;
    match t.get("type").and_then(Value::as_str) {
        Some("enabled") => {
            let budget = t.get("budget_tokens").and_then(Value::as_u64).unwrap_or(0);
            out.entry("reasoning_effort")
                .or_insert_with(|| json!(maps::reasoning_effort(budget)));
        }
        Some("disabled") => {}
        other => fields.unsupported(format!("thinking.type `{}`", other.unwrap_or("")))?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UnsupportedFields;

    fn run(body: Value) -> Result<Value, TranslateError> {
        let mut f = Fields::new(UnsupportedFields::Reject);
        translate(&serde_json::to_vec(&body).unwrap(), &mut f)
            .map(|b| serde_json::from_slice(&b).unwrap())
    }

    #[test]
    fn a_full_request_maps_field_by_field() {
        let v = run(json!({
            "model": "gpt-5", "max_tokens": 100, "temperature": 0.5, "top_p": 0.9,
            "stop_sequences": ["END"], "stream": true, "metadata": {"user_id": "u1"},
            "thinking": {"type": "enabled", "budget_tokens": 8000},
            "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
            "tools": [{"name": "Read", "description": "read a file",
                       "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA"}},
                    {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hm", "signature": "sig"},
                    {"type": "text", "text": "reading"},
                    {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"path": "a"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "nope", "is_error": true},
                    {"type": "text", "text": "go on"}]}
            ]
        }))
        .unwrap();
        assert_eq!(v["max_completion_tokens"], 100);
        assert_eq!(v["stop"], json!(["END"]));
        assert_eq!(v["user"], "u1");
        assert_eq!(v["reasoning_effort"], "medium");
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["tool_choice"], "required");
        assert_eq!(v["parallel_tool_calls"], false);
        assert_eq!(
            v["tools"][0]["function"]["parameters"]["properties"]["path"]["type"],
            "string"
        );
        let m = v["messages"].as_array().unwrap();
        assert_eq!(m[0], json!({"role": "system", "content": "be brief"}));
        assert_eq!(
            m[1]["content"][1]["image_url"]["url"],
            "data:image/png;base64,AAA"
        );
        assert_eq!(m[1]["content"][2]["image_url"]["url"], "https://x/y.png");
        assert_eq!(m[2]["content"], "reading");
        assert_eq!(m[2]["tool_calls"][0]["id"], "toolu_1");
        assert_eq!(
            m[2]["tool_calls"][0]["function"]["arguments"],
            r#"{"path":"a"}"#
        );
        assert_eq!(
            m[3],
            json!({"role": "tool", "tool_call_id": "toolu_1", "content": "Error: nope"})
        );
        assert_eq!(m[4], json!({"role": "user", "content": "go on"}));
    }

    #[test]
    fn what_has_no_equivalent_is_refused_by_name_or_dropped() {
        let e =
            run(json!({"model": "m", "max_tokens": 1, "top_k": 5, "messages": []})).unwrap_err();
        assert!(e.to_string().contains("`top_k`"), "{e}");
        let e = run(json!({"model": "m", "max_tokens": 1, "messages": [],
            "tools": [{"type": "web_search_20250305", "name": "web_search"}]}))
        .unwrap_err();
        assert!(e.to_string().contains("web_search_20250305"), "{e}");
        let mut f = Fields::new(UnsupportedFields::Drop);
        let b = translate(
            br#"{"model":"m","max_tokens":1,"top_k":5,"service_tier":"auto","messages":[]}"#,
            &mut f,
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert!(v.get("top_k").is_none() && v.get("service_tier").is_none());
        assert_eq!(f.into_dropped(), ["top_k", "service_tier"]);
    }

    #[test]
    fn claude_codes_context_editing_and_deferred_tools() {
        let v = run(json!({"model": "m", "max_tokens": 1, "messages": [],
            "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
            "tools": [{"name": "Read", "input_schema": {"type": "object"}},
                      {"name": "Later", "input_schema": {"type": "object"}, "defer_loading": true}]}))
        .unwrap();
        assert_eq!(v["tools"].as_array().unwrap().len(), 1);
        assert!(v.get("context_management").is_none());
        for body in [
            json!({"model": "m", "max_tokens": 1, "messages": [], "output_config": {"effort": "low"},
                   "thinking": {"type": "enabled", "budget_tokens": 30000}}),
            json!({"model": "m", "max_tokens": 1, "messages": [],
                   "thinking": {"type": "enabled", "budget_tokens": 30000}, "output_config": {"effort": "low"}}),
        ] {
            assert_eq!(run(body).unwrap()["reasoning_effort"], "low");
        }
        let e = run(json!({"model": "m", "max_tokens": 1, "messages": [],
            "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]}}))
        .unwrap_err();
        assert!(e.to_string().contains("clear_tool_uses_20250919"), "{e}");
    }

    /// OpenCode's Anthropic provider asks for fine-grained tool streaming
    /// on every tool; Chat streams arguments as they come anyway.
    #[test]
    fn eager_input_streaming_is_accepted_and_not_forwarded() {
        let v = run(json!({"model": "m", "max_tokens": 1, "messages": [],
            "tools": [{"name": "bash", "input_schema": {"type": "object"}, "eager_input_streaming": true}]}))
        .unwrap();
        assert_eq!(v["tools"][0]["function"]["name"], "bash");
        assert!(v["tools"][0].get("eager_input_streaming").is_none());
        assert!(v["tools"][0]["function"]
            .get("eager_input_streaming")
            .is_none());
    }

    #[test]
    fn a_tool_result_must_answer_an_issued_call() {
        let e = run(json!({"model": "m", "max_tokens": 1, "messages": [
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_x", "content": "x"}]}]}))
        .unwrap_err();
        assert!(e.to_string().contains("toolu_x"), "{e}");
    }
}
