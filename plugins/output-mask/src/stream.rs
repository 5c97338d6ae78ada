//! Masking SSE streams event by event, for the three wire formats.
//!
//! Each text channel (Anthropic content block `index`, OpenAI chat choice
//! `index`, Responses `output_index`/`content_index`) has its own held tail,
//! kept in request attributes (`output-mask.tail.<key>`) because plugin
//! instances are pooled and must not remember requests. The list of channels
//! with a non-empty tail lives in `output-mask.open`, so the end of a message
//! (or of the stream) can flush them all.
//!
//! Held text is flushed, as a synthetic delta event, just before the event
//! that closes its channel: Anthropic `content_block_stop`, the chat chunk
//! carrying the choice's `finish_reason`, Responses `response.output_text.done`;
//! and, as a safety net, before `message_delta`/`message_stop`,
//! `response.completed`, the chat usage chunk and `[DONE]`, and at the end of
//! the stream. Event order and the terminal events stay intact, which is what
//! Claude Code and Codex need to finish a turn.

use serde_json::{json, Value};
use sluice_sdk::host;
use sluice_sdk::prelude::SseEventExt;
use sluice_sdk::{sse, SseEvent};

use crate::json::responses_item_texts;
use crate::masker::Masker;

const OPEN: &str = "output-mask.open";
const TAIL: &str = "output-mask.tail.";

/// Event names worth parsing; every other named event passes untouched.
const RELEVANT: [&str; 11] = [
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
    "response.incomplete",
    "response.failed",
];

/// One channel's held state.
#[derive(Debug, Default, Clone, PartialEq)]
struct Tail {
    /// The last character already sent (boundary context).
    ctx: Option<char>,
    /// Raw text not sent yet.
    text: String,
    /// What a synthetic event needs: the Responses `item_id`, or the chat
    /// chunk's `{id, created, model}`.
    meta: Option<String>,
}

fn load(key: &str) -> Tail {
    let Some(raw) = host::get_attr(&format!("{TAIL}{key}")).filter(|s| !s.is_empty()) else {
        return Tail::default();
    };
    let Ok((ctx, text, meta)) = serde_json::from_str::<(String, String, Option<String>)>(&raw)
    else {
        return Tail::default();
    };
    Tail {
        ctx: ctx.chars().next(),
        text,
        meta,
    }
}

fn save(key: &str, old: &Tail, new: &Tail) {
    if old == new {
        return;
    }
    let ctx: String = new.ctx.into_iter().collect();
    let raw = serde_json::to_string(&(ctx, &new.text, &new.meta)).unwrap_or_default();
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
fn feed(m: &Masker, key: &str, text: &str, flush: bool, meta: Option<String>) -> String {
    let old = load(key);
    let pending = format!("{}{}", old.text, text);
    let step = m.step(old.ctx, &pending, flush);
    let new = Tail {
        ctx: step.ctx,
        text: step.held,
        meta: meta.or_else(|| old.meta.clone()),
    };
    save(key, &old, &new);
    step.emit
}

/// Flush channel `key`: the masked rest of its text, if it held any.
fn flush(m: &Masker, key: &str) -> Option<(String, Option<String>)> {
    let old = load(key);
    if old.text.is_empty() {
        return None;
    }
    let emit = m.mask_after(&old.text, old.ctx).into_owned();
    let new = Tail {
        ctx: old.text.chars().next_back(),
        text: String::new(),
        meta: old.meta.clone(),
    };
    save(key, &old, &new);
    Some((emit, old.meta))
}

/// A synthetic delta carrying flushed text for channel `key`.
fn synthetic(key: &str, text: String, meta: Option<String>, named: bool) -> Option<SseEvent> {
    let name = |n: &str| named.then(|| n.to_owned());
    if let Some(idx) = key.strip_prefix('a') {
        let idx: u64 = idx.parse().ok()?;
        return Some(sse::event(
            name("content_block_delta").as_deref(),
            &json!({"type": "content_block_delta", "index": idx,
                    "delta": {"type": "text_delta", "text": text}}),
        ));
    }
    if let Some(idx) = key.strip_prefix('c') {
        let idx: u64 = idx.parse().ok()?;
        let mut chunk: Value = meta
            .and_then(|m| serde_json::from_str(&m).ok())
            .unwrap_or_else(|| json!({}));
        chunk["object"] = json!("chat.completion.chunk");
        chunk["choices"] = json!([{"index": idx, "delta": {"content": text},
                                  "logprobs": null, "finish_reason": null}]);
        return Some(sse::event(None, &chunk));
    }
    if let Some(rest) = key.strip_prefix('r') {
        let (o, c) = rest.split_once('.')?;
        let (o, c): (u64, u64) = (o.parse().ok()?, c.parse().ok()?);
        return Some(sse::event(
            name("response.output_text.delta").as_deref(),
            &json!({"type": "response.output_text.delta", "item_id": meta.unwrap_or_default(),
                    "output_index": o, "content_index": c, "delta": text}),
        ));
    }
    None
}

/// Flush every open channel, as synthetic events.
fn flush_all(m: &Masker, named: bool) -> Vec<SseEvent> {
    open_keys()
        .iter()
        .filter_map(|k| {
            let (text, meta) = flush(m, k)?;
            if text.is_empty() {
                return None;
            }
            synthetic(k, text, meta, named)
        })
        .collect()
}

fn then(mut before: Vec<SseEvent>, ev: SseEvent) -> Vec<SseEvent> {
    before.push(ev);
    before
}

/// One event in, the events to send out.
pub fn on_event(m: &Masker, ev: SseEvent) -> Vec<SseEvent> {
    if sse::is_done(&ev) {
        return then(flush_all(m, false), ev);
    }
    if let Some(name) = ev.event.as_deref() {
        if !RELEVANT.contains(&name) {
            return vec![ev];
        }
    }
    let Some(mut v) = ev.json() else {
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
        "content_block_delta" => {
            if v["delta"]["type"] != "text_delta" {
                return vec![ev];
            }
            let (Some(idx), Some(text)) = (v["index"].as_u64(), v["delta"]["text"].as_str()) else {
                return vec![ev];
            };
            let out = feed(m, &format!("a{idx}"), text, false, None);
            if out.is_empty() {
                return vec![];
            }
            if out == text {
                return vec![ev];
            }
            v["delta"]["text"] = Value::String(out);
            vec![ev.with_json(&v)]
        }
        "content_block_stop" => {
            let Some(idx) = v["index"].as_u64() else {
                return vec![ev];
            };
            let key = format!("a{idx}");
            let pre = flush(m, &key)
                .filter(|(t, _)| !t.is_empty())
                .and_then(|(t, meta)| synthetic(&key, t, meta, named));
            then(pre.into_iter().collect(), ev)
        }
        "message_delta" | "message_stop" => then(flush_all(m, named), ev),
        "response.output_text.delta" => {
            let (Some(o), Some(c), Some(text)) = (
                v["output_index"].as_u64(),
                v["content_index"].as_u64(),
                v["delta"].as_str(),
            ) else {
                return vec![ev];
            };
            let meta = v["item_id"].as_str().map(str::to_owned);
            let out = feed(m, &format!("r{o}.{c}"), text, false, meta);
            if out.is_empty() {
                return vec![];
            }
            if out == text {
                return vec![ev];
            }
            v["delta"] = Value::String(out);
            vec![ev.with_json(&v)]
        }
        "response.output_text.done" => {
            let (Some(o), Some(c)) = (v["output_index"].as_u64(), v["content_index"].as_u64())
            else {
                return vec![ev];
            };
            let key = format!("r{o}.{c}");
            let mut out: Vec<SseEvent> = flush(m, &key)
                .filter(|(t, _)| !t.is_empty())
                .and_then(|(t, meta)| {
                    let mut s = synthetic(&key, t, meta, named)?;
                    // Same position in the sequence as the event it precedes.
                    if let (Some(mut sv), Some(seq)) = (s.json(), v.get("sequence_number")) {
                        sv["sequence_number"] = seq.clone();
                        if let Some(id) = v.get("item_id") {
                            sv["item_id"] = id.clone();
                        }
                        s = s.with_json(&sv);
                    }
                    Some(s)
                })
                .into_iter()
                .collect();
            out.push(mask_field(m, ev, v, &["text"]));
            out
        }
        "response.content_part.done" => {
            if v["part"]["type"] != "output_text" {
                return vec![ev];
            }
            vec![mask_field(m, ev, v, &["part", "text"])]
        }
        "response.output_item.done" => {
            let mut changed = false;
            if let Some(item) = v.get_mut("item") {
                responses_item_texts(item, &mut masker_fn(m, &mut changed));
            }
            vec![if changed { ev.with_json(&v) } else { ev }]
        }
        "response.completed" | "response.incomplete" | "response.failed" => {
            let pre = flush_all(m, named);
            let mut changed = false;
            if let Some(Value::Array(items)) =
                v.get_mut("response").and_then(|r| r.get_mut("output"))
            {
                for item in items {
                    responses_item_texts(item, &mut masker_fn(m, &mut changed));
                }
            }
            then(pre, if changed { ev.with_json(&v) } else { ev })
        }
        _ if v.get("choices").is_some_and(Value::is_array) => chat_chunk(m, ev, v),
        _ => vec![ev],
    }
}

/// A closure that masks a string in place and records whether it changed.
fn masker_fn<'a>(m: &'a Masker, changed: &'a mut bool) -> impl FnMut(&mut String) + 'a {
    move |s: &mut String| {
        if let std::borrow::Cow::Owned(o) = m.mask(s) {
            *s = o;
            *changed = true;
        }
    }
}

/// Mask the string at `path` of the event's JSON.
fn mask_field(m: &Masker, ev: SseEvent, mut v: Value, path: &[&str]) -> SseEvent {
    let mut cur = &mut v;
    for p in path {
        let Some(next) = cur.get_mut(*p) else {
            return ev;
        };
        cur = next;
    }
    let mut changed = false;
    if let Value::String(s) = cur {
        masker_fn(m, &mut changed)(s);
    }
    if changed {
        ev.with_json(&v)
    } else {
        ev
    }
}

/// An OpenAI chat completion chunk.
fn chat_chunk(m: &Masker, ev: SseEvent, mut v: Value) -> Vec<SseEvent> {
    let template = {
        let mut t = serde_json::Map::new();
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
        let key = format!("c{idx}");
        let finish = !choice["finish_reason"].is_null();
        let content = choice["delta"]["content"].as_str().map(str::to_owned);
        let only_content = choice["delta"].as_object().is_some_and(|d| d.len() == 1);
        match content {
            Some(text) => {
                let out = feed(m, &key, &text, finish, Some(template.clone()));
                droppable &= out.is_empty() && only_content && !finish;
                if out != text {
                    choice["delta"]["content"] = Value::String(out);
                    changed = true;
                }
            }
            None => {
                droppable = false;
                if finish {
                    if let Some((t, meta)) = flush(m, &key).filter(|(t, _)| !t.is_empty()) {
                        pre.extend(synthetic(&key, t, meta.or(Some(template.clone())), false));
                    }
                }
            }
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
