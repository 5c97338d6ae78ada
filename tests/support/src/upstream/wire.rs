//! The providers' wire formats, as the fake upstream emits them.
//!
//! Kept apart from the server so the shapes can be read against the providers' docs and
//! `clients.md` in one place: Anthropic Messages (JSON and SSE), OpenAI Chat Completions,
//! Responses, Embeddings and Models, and each provider's error body.

use base64::Engine as _;
use serde_json::{json, Value};

use super::script::Script;

/// Which provider's conventions a request follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Anthropic,
    OpenAi,
}

/// The endpoints the fake upstream knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Messages,
    CountTokens,
    ChatCompletions,
    Responses,
    Embeddings,
    Models,
    NotFound,
}

/// Routes on the path suffix (any prefix is accepted, like a provider behind a base path).
/// Vertex AI's Anthropic methods (`…/models/count-tokens:rawPredict`, `…/models/{m}:rawPredict`,
/// `…:streamRawPredict`) answer in Anthropic's format.
pub fn route(method: &str, path: &str) -> Endpoint {
    let path = path.trim_end_matches('/');
    match (method, path) {
        ("POST", p) if p.ends_with("/models/count-tokens:rawPredict") => Endpoint::CountTokens,
        ("POST", p) if p.ends_with(":rawPredict") || p.ends_with(":streamRawPredict") => {
            Endpoint::Messages
        }
        ("POST", p) if p.ends_with("/messages/count_tokens") => Endpoint::CountTokens,
        ("POST", p) if p.ends_with("/messages") => Endpoint::Messages,
        ("POST", p) if p.ends_with("/chat/completions") => Endpoint::ChatCompletions,
        ("POST", p) if p.ends_with("/responses") => Endpoint::Responses,
        ("POST", p) if p.ends_with("/embeddings") => Endpoint::Embeddings,
        ("GET", p) if p.ends_with("/models") => Endpoint::Models,
        _ => Endpoint::NotFound,
    }
}

/// Whether a Vertex method streams (`Some(true)` for `:streamRawPredict`); `None` off Vertex,
/// where the body's `stream` decides.
pub fn vertex_streams(path: &str) -> Option<bool> {
    if path.ends_with(":streamRawPredict") {
        Some(true)
    } else if path.ends_with(":rawPredict") {
        Some(false)
    } else {
        None
    }
}

/// The model a Vertex publisher path names (`…/models/{model}:method`): Vertex bodies carry none.
pub fn vertex_model(path: &str) -> Option<String> {
    let (_, tail) = path.rsplit_once("/models/")?;
    let (model, _) = tail.split_once(':')?;
    Some(model.to_string())
}

/// One SSE event to send: optional `event:` name and the `data:` payload.
pub type Event = (Option<String>, String);

/// Everything a response builder needs besides the script.
pub struct Ctx<'a> {
    pub body: &'a Value,
    pub seq: usize,
    pub flavor: Flavor,
    pub script: &'a Script,
    /// The model named by the path (Vertex), used when the body names none.
    pub path_model: Option<String>,
}

impl Ctx<'_> {
    fn model(&self) -> String {
        self.body
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| self.path_model.clone())
            .unwrap_or_else(|| "test-model".to_string())
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn ev(name: &str, data: Value) -> Event {
    (Some(name.to_string()), data.to_string())
}

/// The provider's error body for `status`.
pub fn error_body(flavor: Flavor, status: u16, message: &str) -> Value {
    match flavor {
        Flavor::Anthropic => {
            let kind = match status {
                400 => "invalid_request_error",
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                413 => "request_too_large",
                429 => "rate_limit_error",
                529 => "overloaded_error",
                _ => "api_error",
            };
            json!({"type": "error", "error": {"type": kind, "message": message}})
        }
        Flavor::OpenAi => {
            let (kind, code) = match status {
                404 => ("invalid_request_error", json!("unknown_url")),
                401 => ("invalid_request_error", json!("invalid_api_key")),
                429 => ("requests", json!("rate_limit_exceeded")),
                _ => ("server_error", Value::Null),
            };
            json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
        }
    }
}

// ---------- Anthropic ----------

pub fn anthropic_json(c: &Ctx) -> Value {
    let s = c.script;
    json!({
        "id": format!("msg_test_{}", c.seq),
        "type": "message",
        "role": "assistant",
        "model": c.model(),
        "content": [{"type": "text", "text": s.text}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": {
            "input_tokens": s.input_tokens,
            "cache_creation_input_tokens": s.cache_write_tokens,
            "cache_read_input_tokens": s.cache_read_tokens,
            "output_tokens": s.output_tokens
        }
    })
}

pub fn anthropic_events(c: &Ctx) -> Vec<Event> {
    let s = c.script;
    let mut out = vec![
        ev(
            "message_start",
            json!({"type": "message_start", "message": {
                "id": format!("msg_test_{}", c.seq), "type": "message", "role": "assistant",
                "model": c.model(), "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": s.input_tokens,
                          "cache_creation_input_tokens": s.cache_write_tokens,
                          "cache_read_input_tokens": s.cache_read_tokens, "output_tokens": 1}}}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
                   "content_block": {"type": "text", "text": ""}}),
        ),
    ];
    for d in s.delta_list() {
        out.push(ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
                   "delta": {"type": "text_delta", "text": d}}),
        ));
    }
    out.push(ev(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    out.push(ev(
        "message_delta",
        json!({"type": "message_delta",
               "delta": {"stop_reason": "end_turn", "stop_sequence": null},
               "usage": {"output_tokens": s.output_tokens}}),
    ));
    out.push(ev("message_stop", json!({"type": "message_stop"})));
    out
}

pub fn count_tokens(c: &Ctx) -> Value {
    json!({"input_tokens": c.script.input_tokens})
}

// ---------- OpenAI Chat Completions ----------

pub fn chat_json(c: &Ctx) -> Value {
    let s = c.script;
    json!({
        "id": format!("chatcmpl-test{}", c.seq),
        "object": "chat.completion",
        "created": now_secs(),
        "model": c.model(),
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": s.text, "refusal": null},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": chat_usage(s)
    })
}

/// Chat `usage`: OpenAI counts cached tokens inside `prompt_tokens` and
/// names them in `prompt_tokens_details` (only when the script has some).
fn chat_usage(s: &Script) -> Value {
    let prompt = s.input_tokens + s.cache_read_tokens;
    let mut u = json!({"prompt_tokens": prompt, "completion_tokens": s.output_tokens,
                       "total_tokens": prompt + s.output_tokens});
    if s.cache_read_tokens > 0 {
        u["prompt_tokens_details"] = json!({"cached_tokens": s.cache_read_tokens});
    }
    u
}

pub fn chat_events(c: &Ctx) -> Vec<Event> {
    let s = c.script;
    let include_usage = c.body["stream_options"]["include_usage"].as_bool() == Some(true);
    let id = format!("chatcmpl-test{}", c.seq);
    let created = now_secs();
    let model = c.model();
    let chunk = |choices: Value| {
        let mut v = json!({"id": id, "object": "chat.completion.chunk", "created": created,
                           "model": model, "choices": choices});
        if include_usage {
            v["usage"] = Value::Null;
        }
        (None, v.to_string())
    };
    let mut out = vec![chunk(json!([{"index": 0,
        "delta": {"role": "assistant", "content": "", "refusal": null},
        "logprobs": null, "finish_reason": null}]))];
    for d in s.delta_list() {
        out.push(chunk(json!([{"index": 0, "delta": {"content": d},
                               "logprobs": null, "finish_reason": null}])));
    }
    out.push(chunk(
        json!([{"index": 0, "delta": {}, "logprobs": null, "finish_reason": "stop"}]),
    ));
    if include_usage {
        let v = json!({"id": id, "object": "chat.completion.chunk", "created": created,
            "model": model, "choices": [], "usage": chat_usage(s)});
        out.push((None, v.to_string()));
    }
    out.push((None, "[DONE]".to_string()));
    out
}

// ---------- OpenAI Responses ----------

fn response_obj(c: &Ctx, status: &str, done: bool) -> Value {
    let s = c.script;
    let output = if done {
        json!([message_item(c, "completed", &s.text)])
    } else {
        json!([])
    };
    let usage = if done {
        json!({"input_tokens": s.input_tokens,
               "input_tokens_details": {"cached_tokens": 0},
               "output_tokens": s.output_tokens,
               "output_tokens_details": {"reasoning_tokens": 0},
               "total_tokens": s.input_tokens + s.output_tokens})
    } else {
        Value::Null
    };
    json!({
        "id": format!("resp_test{}", c.seq),
        "object": "response",
        "created_at": now_secs(),
        "status": status,
        "model": c.model(),
        "output": output,
        "usage": usage
    })
}

fn message_item(c: &Ctx, status: &str, text: &str) -> Value {
    let content = if status == "completed" {
        json!([{"type": "output_text", "text": text, "annotations": []}])
    } else {
        json!([])
    };
    json!({"type": "message", "id": format!("msg_test{}", c.seq), "status": status,
           "role": "assistant", "content": content})
}

pub fn responses_json(c: &Ctx) -> Value {
    response_obj(c, "completed", true)
}

pub fn responses_events(c: &Ctx) -> Vec<Event> {
    let s = c.script;
    let item_id = format!("msg_test{}", c.seq);
    let mut seq = 0u64;
    let mut out = Vec::new();
    let mut push = |name: &str, mut v: Value| {
        v["type"] = json!(name);
        v["sequence_number"] = json!(seq);
        seq += 1;
        out.push(ev(name, v));
    };
    push(
        "response.created",
        json!({"response": response_obj(c, "in_progress", false)}),
    );
    push(
        "response.in_progress",
        json!({"response": response_obj(c, "in_progress", false)}),
    );
    push(
        "response.output_item.added",
        json!({"output_index": 0, "item": message_item(c, "in_progress", "")}),
    );
    push(
        "response.content_part.added",
        json!({"item_id": item_id, "output_index": 0, "content_index": 0,
               "part": {"type": "output_text", "text": "", "annotations": []}}),
    );
    for d in s.delta_list() {
        push(
            "response.output_text.delta",
            json!({"item_id": item_id, "output_index": 0, "content_index": 0, "delta": d}),
        );
    }
    push(
        "response.output_text.done",
        json!({"item_id": item_id, "output_index": 0, "content_index": 0, "text": s.text}),
    );
    push(
        "response.content_part.done",
        json!({"item_id": item_id, "output_index": 0, "content_index": 0,
               "part": {"type": "output_text", "text": s.text, "annotations": []}}),
    );
    push(
        "response.output_item.done",
        json!({"output_index": 0, "item": message_item(c, "completed", &s.text)}),
    );
    push(
        "response.completed",
        json!({"response": response_obj(c, "completed", true)}),
    );
    out
}

// ---------- Embeddings and models ----------

/// A deterministic 8-dimensional vector for input `i`.
pub fn embedding_vector(i: usize) -> Vec<f32> {
    (0..8)
        .map(|k| (i as f32 + 1.0) * 0.125 * (k as f32 - 3.5))
        .collect()
}

pub fn embeddings_json(c: &Ctx) -> Value {
    let n = match &c.body["input"] {
        Value::Array(items) if items.iter().all(|v| v.is_number()) => 1,
        Value::Array(items) => items.len(),
        _ => 1,
    };
    let b64 = c.body["encoding_format"].as_str() == Some("base64");
    let data: Vec<Value> = (0..n)
        .map(|i| {
            let v = embedding_vector(i);
            let emb = if b64 {
                let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": emb})
        })
        .collect();
    json!({"object": "list", "data": data, "model": c.model(),
           "usage": {"prompt_tokens": c.script.input_tokens,
                     "total_tokens": c.script.input_tokens}})
}

pub fn models_json(c: &Ctx) -> Value {
    match c.flavor {
        Flavor::Anthropic => json!({
            "data": [{"type": "model", "id": "claude-test-1", "display_name": "Claude Test",
                      "created_at": "2025-01-01T00:00:00Z"}],
            "has_more": false, "first_id": "claude-test-1", "last_id": "claude-test-1"
        }),
        Flavor::OpenAi => json!({
            "object": "list",
            "data": [{"id": "gpt-test-1", "object": "model", "created": 0,
                      "owned_by": "sluice-test"},
                     {"id": "text-embedding-test", "object": "model", "created": 0,
                      "owned_by": "sluice-test"}]
        }),
    }
}
