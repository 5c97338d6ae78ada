//! Masking SSE streams event by event, for the three wire formats, covering
//! every text the client receives.
//!
//! Channels (each with its own held tail):
//! - Anthropic content block `index` (`a{index}`): `text_delta.text`,
//!   `thinking_delta.thinking`, and `input_json_delta.partial_json` (a JSON
//!   document in pieces, masked inside its strings, see [`crate::jsonstr`]);
//! - OpenAI chat choice `index`: `delta.content` (`c{i}.content`),
//!   `delta.refusal` (`c{i}.refusal`), and each tool call's
//!   `function.arguments` (`c{i}.tool{n}`, JSON);
//! - Responses: every `response.*.delta` event with a string `delta`
//!   (`output_text`, `reasoning_summary_text`, `reasoning_text`, `refusal`,
//!   `function_call_arguments` (JSON), `custom_tool_call_input`, ...), keyed
//!   by event type, `output_index` and `content_index`/`summary_index`.
//!
//! Tails live in request attributes (`output-mask.tail.<key>`) because
//! plugin instances are pooled and must not remember requests; the list of
//! channels holding text is `output-mask.open`. Held text is flushed, as a
//! synthetic delta of the channel's own kind, just before the event that
//! closes the channel (`content_block_stop`, the chat chunk with the
//! choice's `finish_reason`, any non-delta Responses event of the same
//! output item), and as a safety net before `message_delta`/`message_stop`,
//! `response.completed`/`incomplete`/`failed`, the chat usage chunk, `[DONE]`
//! and at the end of the stream. Every other event (`message_start`,
//! `content_block_start`, `*.done`, `response.output_item.done`,
//! `response.completed`, errors...) has its texts masked whole through the
//! SDK walker. Event order and terminal events stay intact.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sluice_sdk::host;
use sluice_sdk::prelude::SseEventExt;
use sluice_sdk::{sse, SseEvent};

use crate::jsonstr::{JsonStream, Lex};
use crate::masker::Masker;

const OPEN: &str = "output-mask.open";
const TAIL: &str = "output-mask.tail.";

/// One channel's held state.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Tail {
    /// The last character already sent (boundary context).
    ctx: Option<char>,
    /// Text not sent yet (decoded string text for JSON channels).
    text: String,
    /// What a synthetic event needs: the Anthropic delta type, the chat
    /// chunk's `{id, created, model}`, or the Responses event template.
    meta: Option<String>,
    /// JSON-stream channels: the lexer state.
    lex: Option<Lex>,
}

fn load(key: &str) -> Tail {
    host::get_attr(&format!("{TAIL}{key}"))
        .filter(|s| !s.is_empty())
        .and_then(|raw| serde_json::from_str(&raw).ok())
        .unwrap_or_default()
}

fn save(key: &str, old: &Tail, new: &Tail) {
    if old == new {
        return;
    }
    let raw = serde_json::to_string(new).unwrap_or_default();
    host::set_attr(&format!("{TAIL}{key}"), &raw);
    if old.text.is_empty() != new.text.is_empty() {
        let mut open = open_keys();
        open.retain(|k| k != key);
        if !new.text.is_empty() {
            open.push(key.to_owned());
        }
        host::set_attr(OPEN, &serde_json::to_string(&open).unwrap_or_default());
    }
}

fn open_keys() -> Vec<String> {
    host::get_attr(OPEN)
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

/// Feed a piece of channel `key`; returns the masked text to send now.
/// `json`: the channel carries a JSON document in pieces.
fn feed(
    m: &Masker,
    key: &str,
    text: &str,
    flush: bool,
    meta: Option<String>,
    json: bool,
) -> String {
    let old = load(key);
    let mut new = old.clone();
    if meta.is_some() {
        new.meta = meta;
    }
    let emit = if json {
        let mut js = JsonStream {
            lex: old.lex.clone().unwrap_or_default(),
            held: old.text.clone(),
            ctx: old.ctx,
        };
        let out = js.feed(m, text, flush);
        new.lex = Some(js.lex);
        new.text = js.held;
        new.ctx = js.ctx;
        out
    } else {
        let pending = format!("{}{}", old.text, text);
        let step = m.step(old.ctx, &pending, flush);
        new.text = step.held;
        new.ctx = step.ctx;
        step.emit
    };
    save(key, &old, &new);
    emit
}

/// Flush channel `key`: the masked rest of its text, if it held any.
fn flush(m: &Masker, key: &str) -> Option<(String, Option<String>)> {
    let old = load(key);
    if old.text.is_empty() {
        return None;
    }
    let mut new = Tail {
        text: String::new(),
        ..old.clone()
    };
    let emit = match &old.lex {
        Some(lex) => {
            let mut js = JsonStream {
                lex: lex.clone(),
                held: old.text.clone(),
                ctx: old.ctx,
            };
            let out = js.finish(m);
            new.ctx = js.ctx;
            out
        }
        None => {
            new.ctx = old.text.chars().next_back();
            m.mask_after(&old.text, old.ctx).into_owned()
        }
    };
    save(key, &old, &new);
    Some((emit, old.meta))
}

/// The Anthropic delta field carrying the text of a delta type.
fn anthropic_field(delta_type: &str) -> Option<&'static str> {
    match delta_type {
        "text_delta" => Some("text"),
        "thinking_delta" => Some("thinking"),
        "input_json_delta" => Some("partial_json"),
        _ => None,
    }
}

/// A synthetic delta carrying flushed text for channel `key`.
fn synthetic(key: &str, text: String, meta: Option<String>, named: bool) -> Option<SseEvent> {
    let name = |n: &str| named.then(|| n.to_owned());
    if let Some(idx) = key.strip_prefix('a') {
        let idx: u64 = idx.parse().ok()?;
        let dt = meta.unwrap_or_else(|| "text_delta".into());
        let field = anthropic_field(&dt)?;
        return Some(sse::event(
            name("content_block_delta").as_deref(),
            &json!({"type": "content_block_delta", "index": idx,
                    "delta": {"type": dt, field: text}}),
        ));
    }
    if let Some(rest) = key.strip_prefix('c') {
        let (idx, what) = rest.split_once('.')?;
        let idx: u64 = idx.parse().ok()?;
        let delta = match what {
            "content" => json!({"content": text}),
            "refusal" => json!({"refusal": text}),
            t => {
                let n: u64 = t.strip_prefix("tool")?.parse().ok()?;
                json!({"tool_calls": [{"index": n, "function": {"arguments": text}}]})
            }
        };
        let mut chunk: Value = meta
            .and_then(|m| serde_json::from_str(&m).ok())
            .unwrap_or_else(|| json!({}));
        chunk["object"] = json!("chat.completion.chunk");
        chunk["choices"] =
            json!([{"index": idx, "delta": delta, "logprobs": null, "finish_reason": null}]);
        return Some(sse::event(None, &chunk));
    }
    if key.starts_with('r') {
        let mut ev: Value = serde_json::from_str(&meta?).ok()?;
        ev["delta"] = Value::String(text);
        let ty = ev["type"].as_str().map(str::to_owned);
        return Some(sse::event(name(ty.as_deref()?).as_deref(), &ev));
    }
    None
}

/// Flush the open channels `pick` selects, as synthetic events.
fn flush_where(m: &Masker, named: bool, pick: &dyn Fn(&str) -> bool) -> Vec<SseEvent> {
    open_keys()
        .iter()
        .filter(|k| pick(k))
        .filter_map(|k| {
            let (text, meta) = flush(m, k)?;
            if text.is_empty() {
                return None;
            }
            synthetic(k, text, meta, named)
        })
        .collect()
}

fn flush_all(m: &Masker, named: bool) -> Vec<SseEvent> {
    flush_where(m, named, &|_| true)
}

fn then(mut before: Vec<SseEvent>, ev: SseEvent) -> Vec<SseEvent> {
    before.push(ev);
    before
}

/// Mask every text of an event whole (the SDK walker).
fn mask_whole(m: &Masker, ev: SseEvent, mut v: Value) -> SseEvent {
    if crate::json::mask_value(m, &mut v) {
        ev.with_json(&v)
    } else {
        ev
    }
}

/// One event in, the events to send out.
pub fn on_event(m: &Masker, ev: SseEvent) -> Vec<SseEvent> {
    if sse::is_done(&ev) {
        return then(flush_all(m, false), ev);
    }
    let Some(v) = ev.json() else {
        return vec![ev];
    };
    let ty = v
        .get("type")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| ev.event.clone())
        .unwrap_or_default();
    let named = ev.event.is_some();
    match ty.as_str() {
        "content_block_delta" => anthropic_delta(m, ev, v),
        "content_block_stop" => {
            let Some(idx) = v["index"].as_u64() else {
                return vec![ev];
            };
            let key = format!("a{idx}");
            then(flush_where(m, named, &|k| k == key), ev)
        }
        // An error ends the stream for the client: held text goes first,
        // as it would before the stream's normal end.
        "message_delta" | "message_stop" | "error" => {
            let pre = flush_all(m, named);
            then(pre, mask_whole(m, ev, v))
        }
        _ if v.get("error").is_some_and(Value::is_object) => {
            let pre = flush_all(m, named);
            then(pre, mask_whole(m, ev, v))
        }
        t if t.starts_with("response.") => responses_event(m, ev, v, &ty, named),
        _ if v.get("choices").is_some_and(Value::is_array) => chat_chunk(m, ev, v),
        _ => vec![mask_whole(m, ev, v)],
    }
}

fn anthropic_delta(m: &Masker, ev: SseEvent, mut v: Value) -> Vec<SseEvent> {
    let dt = v["delta"]["type"].as_str().unwrap_or_default().to_owned();
    let (Some(field), Some(idx)) = (anthropic_field(&dt), v["index"].as_u64()) else {
        return vec![mask_whole(m, ev, v)];
    };
    let Some(text) = v["delta"][field].as_str().map(str::to_owned) else {
        return vec![ev];
    };
    let json = dt == "input_json_delta";
    let out = feed(m, &format!("a{idx}"), &text, false, Some(dt), json);
    if out.is_empty() && !text.is_empty() {
        return vec![];
    }
    if out == text {
        return vec![ev];
    }
    v["delta"][field] = Value::String(out);
    vec![ev.with_json(&v)]
}

/// The secondary index of a Responses event: `content_index` or `summary_index`.
fn sub_index(v: &Value) -> Option<u64> {
    v.get("content_index")
        .or_else(|| v.get("summary_index"))
        .and_then(Value::as_u64)
}

fn responses_event(m: &Masker, ev: SseEvent, mut v: Value, ty: &str, named: bool) -> Vec<SseEvent> {
    let o = v.get("output_index").and_then(Value::as_u64);
    if ty.ends_with(".delta") && v["delta"].is_string() {
        let Some(o) = o else {
            return vec![ev];
        };
        let key = format!("r{o}.{}.{ty}", sub_index(&v).unwrap_or(0));
        let text = v["delta"].as_str().unwrap_or_default().to_owned();
        let mut template = v.clone();
        if let Some(t) = template.as_object_mut() {
            t.remove("delta");
            t.remove("sequence_number");
            t.remove("obfuscation");
            t.remove("logprobs");
        }
        let json = ty.ends_with("_arguments.delta");
        let out = feed(m, &key, &text, false, Some(template.to_string()), json);
        if out.is_empty() && !text.is_empty() {
            return vec![];
        }
        if out == text {
            return vec![ev];
        }
        v["delta"] = Value::String(out);
        return vec![ev.with_json(&v)];
    }
    // A `*.done` event of an output item closes its open channels first.
    let mut pre = match o {
        Some(o) if ty.ends_with(".done") => {
            let sub = sub_index(&v);
            flush_where(m, named, &|k| {
                let mut parts = k[1..].splitn(3, '.');
                let (ko, ks) = (parts.next(), parts.next());
                k.starts_with('r')
                    && ko == Some(o.to_string().as_str())
                    && sub.is_none_or(|s| ks == Some(s.to_string().as_str()))
            })
        }
        _ if matches!(
            ty,
            "response.completed" | "response.incomplete" | "response.failed"
        ) =>
        {
            flush_all(m, named)
        }
        _ => Vec::new(),
    };
    // Synthetic deltas take the sequence number of the event they precede.
    if let Some(seq) = v.get("sequence_number") {
        for s in &mut pre {
            if let Some(mut sv) = s.json() {
                sv["sequence_number"] = seq.clone();
                *s = s.clone().with_json(&sv);
            }
        }
    }
    then(pre, mask_whole(m, ev, v))
}

/// An OpenAI chat completion chunk.
fn chat_chunk(m: &Masker, ev: SseEvent, mut v: Value) -> Vec<SseEvent> {
    let template = {
        let mut t = Map::new();
        for k in ["id", "created", "model", "system_fingerprint"] {
            if let Some(x) = v.get(k) {
                t.insert(k.to_owned(), x.clone());
            }
        }
        Value::Object(t).to_string()
    };
    let choices = v["choices"].as_array().map_or(0, Vec::len);
    if choices == 0 {
        // The usage chunk: every choice has finished.
        return then(flush_all(m, false), ev);
    }
    let mut pre = Vec::new();
    let mut changed = false;
    let mut droppable = v.get("usage").is_none_or(Value::is_null);
    for i in 0..choices {
        let choice = &mut v["choices"][i];
        let idx = choice["index"].as_u64().unwrap_or(i as u64);
        let finish = !choice["finish_reason"].is_null();
        let delta_len = choice["delta"].as_object().map_or(0, Map::len);
        let mut fed_content = false;
        for field in ["content", "refusal"] {
            let Some(text) = choice["delta"][field].as_str().map(str::to_owned) else {
                continue;
            };
            let key = format!("c{idx}.{field}");
            let out = feed(m, &key, &text, finish, Some(template.clone()), false);
            if field == "content" {
                fed_content = true;
                droppable &= out.is_empty() && !text.is_empty() && delta_len == 1 && !finish;
            }
            if out != text {
                choice["delta"][field] = Value::String(out);
                changed = true;
            }
        }
        if !fed_content {
            droppable = false;
        }
        let calls = choice
            .get_mut("delta")
            .and_then(|d| d.get_mut("tool_calls"))
            .and_then(Value::as_array_mut);
        if let Some(calls) = calls {
            for (j, call) in calls.iter_mut().enumerate() {
                let n = call["index"].as_u64().unwrap_or(j as u64);
                let Some(text) = call["function"]["arguments"].as_str().map(str::to_owned) else {
                    continue;
                };
                let key = format!("c{idx}.tool{n}");
                let out = feed(m, &key, &text, finish, Some(template.clone()), true);
                if out != text {
                    call["function"]["arguments"] = Value::String(out);
                    changed = true;
                }
            }
        }
        if finish {
            let prefix = format!("c{idx}.");
            pre.extend(flush_where(m, false, &|k| k.starts_with(&prefix)));
        }
    }
    if droppable {
        return pre;
    }
    then(pre, if changed { ev.with_json(&v) } else { ev })
}

/// The stream ended: whatever is still held.
pub fn on_end(m: &Masker) -> Vec<SseEvent> {
    flush_all(m, true)
}
