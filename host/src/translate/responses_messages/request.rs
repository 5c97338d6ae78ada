//! An OpenAI Responses request as an Anthropic Messages request.
//!
//! Input items become alternating user/assistant turns: messages,
//! `function_call` → `tool_use`, `function_call_output` → `tool_result`
//! (ids kept), and `reasoning` items this gateway produced → the thinking
//! blocks they carry, signature intact. `instructions` and system or
//! developer messages become the system prompt.

use super::super::body::{anthropic_tool, invalid, obj, Obj, Turns};
use super::super::envelope::{self, Thinking};
use super::super::fields::{Fields, TranslateError};
use super::super::maps;
use serde_json::{json, Map, Value};

use super::super::maps::DEFAULT_MAX_TOKENS;

pub fn translate(body: &[u8], fields: &mut Fields) -> Result<Vec<u8>, TranslateError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| invalid(format!("the body is not JSON: {e}")))?;
    let req = obj(&v, "body")?;
    let mut out = Obj::new();
    let mut turns = Turns::default();
    let mut max_tokens = None;
    let mut effort = None;
    let mut parallel = true;
    for (k, val) in req {
        match k.as_str() {
            "model" | "temperature" | "top_p" | "stream" => {
                out.insert(k.clone(), val.clone());
            }
            "max_output_tokens" => max_tokens = val.as_u64(),
            "instructions" => {
                if let Some(s) = val.as_str() {
                    turns.system.push(json!({"type": "text", "text": s}));
                }
            }
            "input" => {}
            "tools" => {
                out.insert("tools".into(), tools(val, fields)?);
            }
            "tool_choice" => {
                out.insert("tool_choice".into(), tool_choice(val)?);
            }
            "parallel_tool_calls" => parallel = val.as_bool() != Some(false),
            "reasoning" => {
                let r = obj(val, "reasoning")?;
                for (rk, rv) in r {
                    match rk.as_str() {
                        "effort" => effort = rv.as_str().map(str::to_string),
                        // Claude's thinking comes back summarized already.
                        "summary" | "generate_summary" => {}
                        other => fields.unsupported(format!("reasoning.{other}"))?,
                    }
                }
            }
            "user" | "safety_identifier" => {
                out.insert("metadata".into(), json!({"user_id": val}));
            }
            // Anthropic keeps nothing between requests either way; the
            // client sends the whole conversation (Codex: `store: false`).
            "store" => {}
            // The envelope is always in the answer; no other inclusion is.
            "include" => {
                for i in val.as_array().into_iter().flatten() {
                    if i != "reasoning.encrypted_content" {
                        fields.unsupported(format!("include `{}`", i.as_str().unwrap_or("")))?;
                    }
                }
            }
            // A caching hint: Anthropic caches what `cache_control` marks,
            // the answer is the same either way.
            "prompt_cache_key" => {}
            // Codex's telemetry about itself (session, turn and window
            // ids): OpenAI does not show it to the model, so leaving it
            // out changes nothing the model sees. Refusing it would refuse
            // every Codex request.
            "client_metadata" => {}
            "truncation" if val == "disabled" => {}
            "text" => text(val, fields)?,
            "metadata" if val.as_object().is_some_and(Map::is_empty) => {}
            other => fields.unsupported(other)?,
        }
    }
    match req.get("input") {
        Some(Value::String(s)) => turns.push("user", json!({"type": "text", "text": s})),
        Some(Value::Array(items)) => {
            for item in items {
                input_item(item, &mut turns, fields)?;
            }
        }
        _ => return Err(invalid("`input` must be a string or an array of items")),
    }
    let max_tokens = max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    out.insert("max_tokens".into(), json!(max_tokens));
    if let Some(t) = thinking(effort.as_deref(), max_tokens, fields)? {
        out.insert("thinking".into(), t);
    }
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

/// `reasoning.effort` → a thinking budget under `max_tokens`.
fn thinking(
    effort: Option<&str>,
    max_tokens: u64,
    fields: &mut Fields,
) -> Result<Option<Value>, TranslateError> {
    let Some(effort) = effort.filter(|e| *e != "none") else {
        return Ok(None);
    };
    let Some(want) = maps::thinking_budget(effort) else {
        fields.unsupported(format!("reasoning.effort `{effort}`"))?;
        return Ok(None);
    };
    // Anthropic: 1024 ≤ budget_tokens < max_tokens.
    let budget = want.min(max_tokens.saturating_sub(1024));
    if budget < 1024 {
        fields.unsupported(
            "reasoning.effort (max_output_tokens under 2048 leaves no thinking budget)",
        )?;
        return Ok(None);
    }
    Ok(Some(json!({"type": "enabled", "budget_tokens": budget})))
}

fn text(v: &Value, fields: &mut Fields) -> Result<(), TranslateError> {
    for (k, val) in obj(v, "text")? {
        match k.as_str() {
            "format" if val["type"] == "text" => {}
            other => fields.unsupported(format!("text.{other}"))?,
        }
    }
    Ok(())
}

fn input_item(item: &Value, turns: &mut Turns, fields: &mut Fields) -> Result<(), TranslateError> {
    let it = obj(item, "input[]")?;
    let ty = it.get("type").and_then(Value::as_str).unwrap_or("message");
    match ty {
        "message" => message(it, turns, fields),
        "function_call" => {
            let id = it
                .get("call_id")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("a `function_call` needs a `call_id`"))?;
            let args = it.get("arguments").and_then(Value::as_str).unwrap_or("{}");
            let input: Value =
                serde_json::from_str(if args.trim().is_empty() { "{}" } else { args }).map_err(
                    |e| invalid(format!("function_call `{id}` arguments are not JSON: {e}")),
                )?;
            turns.issued.insert(id.to_string());
            turns.push(
                "assistant",
                json!({"type": "tool_use", "id": id, "name": it.get("name").cloned().unwrap_or_default(), "input": input}),
            );
            Ok(())
        }
        "function_call_output" => {
            let id = it
                .get("call_id")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("a `function_call_output` needs a `call_id`"))?;
            if !turns.issued.contains(id) {
                return Err(invalid(format!(
                    "function_call_output `call_id` `{id}` names no earlier `function_call`"
                )));
            }
            let content = match it.get("output") {
                Some(Value::String(s)) => json!(s),
                Some(Value::Array(parts)) => {
                    let mut blocks = Vec::new();
                    for p in parts {
                        blocks.push(content_part(p, fields)?);
                    }
                    Value::Array(blocks)
                }
                _ => json!(""),
            };
            turns.push(
                "user",
                json!({"type": "tool_result", "tool_use_id": id, "content": content}),
            );
            Ok(())
        }
        "reasoning" => {
            let sealed = it.get("encrypted_content").and_then(Value::as_str);
            match sealed.and_then(envelope::open) {
                Some(Thinking::Thinking { thinking, signature }) => turns.push(
                    "assistant",
                    json!({"type": "thinking", "thinking": thinking, "signature": signature}),
                ),
                Some(Thinking::RedactedThinking { data }) => turns.push(
                    "assistant",
                    json!({"type": "redacted_thinking", "data": data}),
                ),
                // Reasoning only another backend can read (or none kept).
                None => fields.unsupported(
                    "input[].reasoning (encrypted_content not from this gateway's Anthropic backend)",
                )?,
            }
            Ok(())
        }
        other => fields.unsupported(format!("input[].type `{other}`")),
    }
}

fn message(it: &Obj, turns: &mut Turns, fields: &mut Fields) -> Result<(), TranslateError> {
    let role = it.get("role").and_then(Value::as_str).unwrap_or_default();
    let parts: Vec<Value> = match it.get("content") {
        Some(Value::String(s)) => vec![json!({"type": "text", "text": s})],
        Some(Value::Array(ps)) => {
            let mut out = Vec::new();
            for p in ps {
                out.push(content_part(p, fields)?);
            }
            out
        }
        _ => {
            return Err(invalid(
                "a message's `content` must be a string or an array",
            ))
        }
    };
    match role {
        "system" | "developer" => turns.system.extend(parts),
        "user" | "assistant" => {
            for p in parts {
                turns.push(role, p);
            }
        }
        other => return Err(invalid(format!("unknown message role `{other}`"))),
    }
    Ok(())
}

/// A content part (`input_text`, `output_text`, `input_image`, a PDF
/// `input_file`) as an Anthropic block.
fn content_part(p: &Value, fields: &mut Fields) -> Result<Value, TranslateError> {
    let p = obj(p, "content[]")?;
    match p.get("type").and_then(Value::as_str).unwrap_or_default() {
        "input_text" | "output_text" | "text" => {
            Ok(json!({"type": "text", "text": p.get("text").cloned().unwrap_or_default()}))
        }
        "input_image" => {
            let url = p
                .get("image_url")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if let Some((media, data)) = data_url(url) {
                return Ok(
                    json!({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}),
                );
            }
            if url.starts_with("https://") || url.starts_with("http://") {
                return Ok(json!({"type": "image", "source": {"type": "url", "url": url}}));
            }
            fields.unsupported("input_image.file_id")?;
            Ok(json!({"type": "text", "text": ""}))
        }
        "input_file" => {
            let data = p
                .get("file_data")
                .and_then(Value::as_str)
                .unwrap_or_default();
            match data_url(data) {
                Some(("application/pdf", b64)) => Ok(json!({"type": "document", "source": {
                    "type": "base64", "media_type": "application/pdf", "data": b64}})),
                _ => {
                    fields.unsupported("input_file (only PDF file_data is carried)")?;
                    Ok(json!({"type": "text", "text": ""}))
                }
            }
        }
        other => {
            fields.unsupported(format!("content[].type `{other}`"))?;
            Ok(json!({"type": "text", "text": ""}))
        }
    }
}

/// `data:<media>;base64,<data>`.
fn data_url(s: &str) -> Option<(&str, &str)> {
    let rest = s.strip_prefix("data:")?;
    let (media, data) = rest.split_once(";base64,")?;
    Some((media, data))
}

fn tools(v: &Value, fields: &mut Fields) -> Result<Value, TranslateError> {
    let mut out = Vec::new();
    for t in v.as_array().into_iter().flatten() {
        let t = obj(t, "tools[]")?;
        let ty = t.get("type").and_then(Value::as_str).unwrap_or_default();
        if ty != "function" {
            fields.unsupported(format!("tools[].type `{ty}`"))?;
            continue;
        }
        for k in t.keys() {
            match k.as_str() {
                "type" | "name" | "description" | "parameters" => {}
                "strict" if t[k] != json!(true) => {}
                other => fields.unsupported(format!("tools[].{other}"))?,
            }
        }
        out.push(anthropic_tool(t));
    }
    Ok(Value::Array(out))
}

fn tool_choice(v: &Value) -> Result<Value, TranslateError> {
    Ok(match v {
        Value::String(s) if s == "auto" => json!({"type": "auto"}),
        Value::String(s) if s == "required" => json!({"type": "any"}),
        Value::String(s) if s == "none" => json!({"type": "none"}),
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            json!({"type": "tool", "name": o.get("name").cloned().unwrap_or_default()})
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
    fn a_codex_turn_with_tools_and_reasoning_round_trips() {
        let sealed = envelope::seal(&Thinking::Thinking {
            thinking: "plan".into(),
            signature: "SIG/+=".into(),
        });
        let v = run(json!({
            "model": "claude-sonnet-4-5", "instructions": "You are Codex.", "stream": true,
            "store": false, "include": ["reasoning.encrypted_content"],
            "reasoning": {"effort": "medium", "summary": "auto"}, "max_output_tokens": 20000,
            "parallel_tool_calls": false, "tool_choice": "auto", "prompt_cache_key": "k",
            "client_metadata": {"x-codex-turn-metadata": "{}", "session_id": "s"},
            "tools": [{"type": "function", "name": "shell", "description": "run",
                       "parameters": {"type": "object"}, "strict": false}],
            "input": [
                {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "be careful"}]},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "list files"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AAA"}]},
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": sealed},
                {"type": "function_call", "call_id": "toolu_1", "name": "shell", "arguments": "{\"cmd\":\"ls\"}"},
                {"type": "function_call_output", "call_id": "toolu_1", "output": "a.txt"},
                {"role": "assistant", "content": "done"}
            ]
        }))
        .unwrap();
        assert_eq!(v["max_tokens"], 20000);
        assert!(v.get("client_metadata").is_none() && v.get("metadata").is_none());
        assert_eq!(
            v["thinking"],
            json!({"type": "enabled", "budget_tokens": 8192})
        );
        assert_eq!(
            v["tool_choice"],
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
        assert_eq!(v["system"][0]["text"], "You are Codex.");
        assert_eq!(v["system"][1]["text"], "be careful");
        assert_eq!(v["tools"][0]["input_schema"], json!({"type": "object"}));
        let m = v["messages"].as_array().unwrap();
        assert_eq!(m[0]["content"][1]["source"]["data"], "AAA");
        assert_eq!(m[1]["role"], "assistant");
        assert_eq!(
            m[1]["content"][0],
            json!({"type": "thinking", "thinking": "plan", "signature": "SIG/+="})
        );
        assert_eq!(m[1]["content"][1]["id"], "toolu_1");
        assert_eq!(m[1]["content"][1]["input"]["cmd"], "ls");
        assert_eq!(
            m[2]["content"][0],
            json!({"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.txt"})
        );
        assert_eq!(
            m[3],
            json!({"role": "assistant", "content": [{"type": "text", "text": "done"}]})
        );
    }

    #[test]
    fn refusals_name_the_field() {
        let e = run(json!({"model": "m", "input": "hi", "previous_response_id": "resp_1"}))
            .unwrap_err();
        assert!(e.to_string().contains("`previous_response_id`"), "{e}");
        let e = run(json!({"model": "m", "input": "hi", "tools": [{"type": "web_search"}]}))
            .unwrap_err();
        assert!(e.to_string().contains("web_search"), "{e}");
        let e = run(
            json!({"model": "m", "input": [{"type": "reasoning", "encrypted_content": "gAAAA"}]}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("reasoning"), "{e}");
        let e = run(json!({"model": "m", "input": [{"type": "function_call_output", "call_id": "x", "output": "o"}]})).unwrap_err();
        assert!(e.to_string().contains("`x`"), "{e}");
        let v = run(json!({"model": "m", "input": "hi"})).unwrap();
        assert_eq!(v["max_tokens"], DEFAULT_MAX_TOKENS);
        assert!(v.get("thinking").is_none());
    }
}
