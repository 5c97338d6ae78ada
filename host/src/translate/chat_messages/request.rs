//! An OpenAI Chat Completions request as an Anthropic Messages request.
//!
//! `reasoning_effort` is refused: Anthropic's thinking must come back with
//! its signature on the next turn of a tool loop, and a Chat message has
//! no field to carry it (the Responses API has one, see
//! `responses_messages`).

use super::super::body::{anthropic_tool, invalid, obj, Obj, Turns};
use super::super::fields::{Fields, TranslateError};
use super::super::maps::DEFAULT_MAX_TOKENS;
use serde_json::{json, Map, Value};

pub fn translate(body: &[u8], fields: &mut Fields) -> Result<Vec<u8>, TranslateError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| invalid(format!("the body is not JSON: {e}")))?;
    let req = obj(&v, "body")?;
    let mut out = Obj::new();
    let mut turns = Turns::default();
    let mut max_tokens = None;
    let mut parallel = true;
    for (k, val) in req {
        match k.as_str() {
            "model" | "temperature" | "top_p" | "stream" => {
                out.insert(k.clone(), val.clone());
            }
            "max_tokens" | "max_completion_tokens" => max_tokens = val.as_u64(),
            "stop" => {
                let stops = match val {
                    Value::String(s) => json!([s]),
                    Value::Null => continue,
                    other => other.clone(),
                };
                out.insert("stop_sequences".into(), stops);
            }
            "user" | "safety_identifier" => {
                out.insert("metadata".into(), json!({"user_id": val}));
            }
            "messages" => {}
            "tools" => {
                out.insert("tools".into(), tools(val, fields)?);
            }
            "tool_choice" => {
                out.insert("tool_choice".into(), tool_choice(val)?);
            }
            "parallel_tool_calls" => parallel = val.as_bool() != Some(false),
            // Usage always comes with the last chunk of a translated stream.
            "stream_options" => {}
            "n" if val == 1 => {}
            "response_format" if val["type"] == "text" => {}
            // Anthropic keeps nothing between requests; caching hints do not
            // change the answer.
            "store" | "prompt_cache_key" => {}
            "metadata" if val.as_object().is_some_and(Map::is_empty) => {}
            other => fields.unsupported(other)?,
        }
    }
    let msgs = req
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("`messages` must be an array"))?;
    for m in msgs {
        message(m, &mut turns, fields)?;
    }
    out.insert(
        "max_tokens".into(),
        json!(max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)),
    );
    if !parallel {
        let choice = out
            .entry("tool_choice")
            .or_insert_with(|| json!({"type": "auto"}));
        choice["disable_parallel_tool_use"] = json!(true);
    }
    if !turns.system.is_empty() {
        out.insert("system".into(), Value::Array(turns.system));
    }
    out.insert("messages".into(), Value::Array(turns.messages));
    serde_json::to_vec(&Value::Object(out)).map_err(|e| invalid(e.to_string()))
}

/// One Chat message as Anthropic blocks for its turn (or the system
/// prompt). A message-level `cache_control` (the extension OpenCode and
/// OpenRouter send) marks the end of that message as a cache breakpoint;
/// Anthropic marks blocks, so it goes on the message's last block.
fn message(m: &Value, turns: &mut Turns, fields: &mut Fields) -> Result<(), TranslateError> {
    let m = obj(m, "messages[]")?;
    let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
    for k in m.keys() {
        match k.as_str() {
            "role" | "content" | "tool_calls" | "tool_call_id" | "name" | "cache_control" => {}
            "refusal" if m[k].is_null() => {}
            other => fields.unsupported(format!("messages[].{other}"))?,
        }
    }
    let content = m.get("content").unwrap_or(&Value::Null);
    let (dest, mut blocks) = match role {
        "system" | "developer" => (None, parts(content, fields)?),
        "user" => (Some("user"), parts(content, fields)?),
        "assistant" => {
            let mut blocks = parts(content, fields)?;
            for c in m
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let id = c["id"]
                    .as_str()
                    .ok_or_else(|| invalid("a tool call needs an `id`"))?;
                let args = c["function"]["arguments"].as_str().unwrap_or("{}");
                let input: Value =
                    serde_json::from_str(if args.trim().is_empty() { "{}" } else { args })
                        .map_err(|e| {
                            invalid(format!("tool call `{id}` arguments are not JSON: {e}"))
                        })?;
                turns.issued.insert(id.to_string());
                blocks.push(
                    json!({"type": "tool_use", "id": id, "name": c["function"]["name"], "input": input}),
                );
            }
            (Some("assistant"), blocks)
        }
        "tool" => {
            let id = m
                .get("tool_call_id")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("a `tool` message needs a `tool_call_id`"))?;
            if !turns.issued.contains(id) {
                return Err(invalid(format!(
                    "tool message `tool_call_id` `{id}` names no earlier assistant tool call"
                )));
            }
            let content = match content {
                Value::String(s) => json!(s),
                other => Value::Array(parts(other, fields)?),
            };
            let result = json!({"type": "tool_result", "tool_use_id": id, "content": content});
            (Some("user"), vec![result])
        }
        other => {
            fields.unsupported(format!("messages[].role `{other}`"))?;
            return Ok(());
        }
    };
    if let (Some(cc), Some(last)) = (m.get("cache_control"), blocks.last_mut()) {
        last["cache_control"] = cc.clone();
    }
    match dest {
        None => turns.system.extend(blocks),
        Some(role) => {
            for b in blocks {
                turns.push(role, b);
            }
        }
    }
    Ok(())
}

/// Message content (a string or parts) as Anthropic blocks.
fn parts(content: &Value, fields: &mut Fields) -> Result<Vec<Value>, TranslateError> {
    let list = match content {
        Value::Null => return Ok(Vec::new()),
        Value::String(s) if s.is_empty() => return Ok(Vec::new()),
        Value::String(s) => return Ok(vec![json!({"type": "text", "text": s})]),
        Value::Array(l) => l,
        _ => {
            return Err(invalid(
                "a message's `content` must be a string or an array",
            ))
        }
    };
    let mut out = Vec::new();
    for p in list {
        let p = obj(p, "content[]")?;
        let before = out.len();
        match p.get("type").and_then(Value::as_str).unwrap_or_default() {
            "text" => out
                .push(json!({"type": "text", "text": p.get("text").cloned().unwrap_or_default()})),
            "image_url" => {
                let url = p["image_url"]["url"].as_str().unwrap_or_default();
                let source = match url
                    .strip_prefix("data:")
                    .and_then(|r| r.split_once(";base64,"))
                {
                    Some((media, data)) => {
                        json!({"type": "base64", "media_type": media, "data": data})
                    }
                    None => json!({"type": "url", "url": url}),
                };
                out.push(json!({"type": "image", "source": source}));
            }
            "file" => {
                let data = p["file"]["file_data"].as_str().unwrap_or_default();
                match data.strip_prefix("data:application/pdf;base64,") {
                    Some(b64) => out.push(json!({"type": "document", "source": {
                        "type": "base64", "media_type": "application/pdf", "data": b64}})),
                    None => fields.unsupported("content[].file (only PDF file_data is carried)")?,
                }
            }
            other => fields.unsupported(format!("content[].type `{other}`"))?,
        }
        // A part's own breakpoint (the Anthropic-style extension) stays on
        // the block it became.
        if let (Some(cc), true) = (p.get("cache_control"), out.len() > before) {
            out[before]["cache_control"] = cc.clone();
        }
    }
    Ok(out)
}

fn tools(v: &Value, fields: &mut Fields) -> Result<Value, TranslateError> {
    let mut out = Vec::new();
    for t in v.as_array().into_iter().flatten() {
        let t = obj(t, "tools[]")?;
        if t.get("type").and_then(Value::as_str) != Some("function") {
            fields.unsupported(format!(
                "tools[].type `{}`",
                t.get("type").and_then(Value::as_str).unwrap_or("")
            ))?;
            continue;
        }
        let f = obj(
            t.get("function").unwrap_or(&Value::Null),
            "tools[].function",
        )?;
        for k in f.keys() {
            match k.as_str() {
                "name" | "description" | "parameters" => {}
                "strict" if f[k] != json!(true) => {}
                other => fields.unsupported(format!("tools[].function.{other}"))?,
            }
        }
        out.push(anthropic_tool(f));
    }
    Ok(Value::Array(out))
}

fn tool_choice(v: &Value) -> Result<Value, TranslateError> {
    Ok(match v {
        Value::String(s) if s == "auto" => json!({"type": "auto"}),
        Value::String(s) if s == "required" => json!({"type": "any"}),
        Value::String(s) if s == "none" => json!({"type": "none"}),
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            json!({"type": "tool", "name": o["function"]["name"]})
        }
        other => return Err(invalid(format!("unsupported `tool_choice` {other}"))),
    })
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
    fn a_chat_tool_loop_maps_to_turns() {
        let v = run(json!({"model": "claude", "max_completion_tokens": 100, "stop": "END",
            "user": "u", "parallel_tool_calls": false, "stream": true,
            "stream_options": {"include_usage": true},
            "tools": [{"type": "function", "function": {"name": "get", "parameters": {"type": "object"}}}],
            "messages": [
                {"role": "system", "content": "sys"},
                {"role": "user", "content": [{"type": "text", "text": "hi"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QQ=="}}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get", "arguments": "{\"a\":1}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "get", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "one"},
                {"role": "tool", "tool_call_id": "call_2", "content": "two"}
            ]}))
        .unwrap();
        assert_eq!(v["max_tokens"], 100);
        assert_eq!(v["stop_sequences"], json!(["END"]));
        assert_eq!(v["metadata"]["user_id"], "u");
        assert_eq!(v["tool_choice"]["disable_parallel_tool_use"], true);
        assert_eq!(v["system"], json!([{"type": "text", "text": "sys"}]));
        let m = v["messages"].as_array().unwrap();
        assert_eq!(m[0]["content"][1]["source"]["media_type"], "image/jpeg");
        assert_eq!(m[1]["content"][1]["id"], "call_2");
        assert_eq!(m[2]["content"][0]["tool_use_id"], "call_1");
        assert_eq!(m[2]["content"][1]["tool_use_id"], "call_2");
        assert_eq!(m.len(), 3);
    }

    /// OpenCode's OpenAI-compatible provider marks cache breakpoints on
    /// whole messages; Anthropic marks blocks, so each lands on the
    /// message's last block (a part's own mark stays on its block).
    #[test]
    fn message_and_part_cache_control_become_block_breakpoints() {
        let eph = json!({"type": "ephemeral"});
        let v = run(json!({"model": "claude", "messages": [
            {"role": "system", "content": "be brief", "cache_control": eph},
            {"role": "user", "content": [{"type": "text", "text": "a", "cache_control": eph},
                                          {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": "ok", "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "bash", "arguments": "{}"}}], "cache_control": eph},
            {"role": "tool", "tool_call_id": "c1", "content": "out", "cache_control": eph}
        ]}))
        .unwrap();
        assert_eq!(v["system"][0]["cache_control"], eph);
        let m = v["messages"].as_array().unwrap();
        assert_eq!(m[0]["content"][0]["cache_control"], eph);
        assert!(m[0]["content"][1].get("cache_control").is_none());
        assert!(m[1]["content"][0].get("cache_control").is_none());
        assert_eq!(m[1]["content"][1]["type"], "tool_use");
        assert_eq!(m[1]["content"][1]["cache_control"], eph);
        assert_eq!(m[2]["content"][0]["type"], "tool_result");
        assert_eq!(m[2]["content"][0]["cache_control"], eph);
    }

    #[test]
    fn refusals_name_the_field() {
        for (k, val) in [
            ("reasoning_effort", json!("high")),
            ("logit_bias", json!({})),
            ("n", json!(2)),
        ] {
            let mut b = json!({"model": "m", "messages": []});
            b[k] = val;
            let e = run(b).unwrap_err();
            assert!(e.to_string().contains(&format!("`{k}`")), "{e}");
        }
        let e = run(json!({"model": "m", "messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]}))
            .unwrap_err();
        assert!(e.to_string().contains("`nope`"), "{e}");
    }
}
