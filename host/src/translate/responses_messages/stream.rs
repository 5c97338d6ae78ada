//! Anthropic's event grammar as Responses typed events, event by event.
//!
//! `message_start` opens the response (`response.created`,
//! `response.in_progress`); each content block is one output item (text →
//! `message`, thinking → `reasoning` whose `encrypted_content` carries the
//! block with its signature, `tool_use` → `function_call`) with its deltas
//! as they come; `message_stop` closes it with `response.completed` (or
//! `response.incomplete`) holding every item and the usage.

use super::super::envelope::{self, Thinking};
use super::super::events;
use super::super::maps;
use super::response::{call_item, envelope, message_item, reasoning_item, response_id};
use crate::provider::{Transcode, TranscodeError};
use crate::stream::sse::{self, Framer};
use serde_json::{json, Value};

/// The output item being written.
enum Open {
    Text {
        id: String,
        text: String,
    },
    Thinking {
        id: String,
        text: String,
        signature: String,
    },
    Call {
        call_id: String,
        name: Value,
        args: String,
    },
}

#[derive(Default)]
pub struct EventsToResponses {
    framer: Framer,
    seq: u64,
    id: String,
    model: Value,
    open: Option<Open>,
    output: Vec<Value>,
    usage: Value,
    stop_reason: Option<String>,
    ended: bool,
}

impl EventsToResponses {
    fn emit(&mut self, out: &mut Vec<u8>, name: &str, mut data: Value) {
        data["type"] = json!(name);
        data["sequence_number"] = json!(self.seq);
        self.seq += 1;
        out.extend_from_slice(&sse::encode(Some(name), &data.to_string(), None));
    }

    fn index(&self) -> usize {
        self.output.len()
    }

    fn step(&mut self, data: &str, out: &mut Vec<u8>) -> Result<(), TranscodeError> {
        let v: Value = serde_json::from_str(data)
            .map_err(|e| TranscodeError(format!("an upstream event is not JSON: {e}")))?;
        match v["type"].as_str().unwrap_or_default() {
            "message_start" => {
                let m = &v["message"];
                self.id = response_id(&m["id"]);
                self.model = m["model"].clone();
                self.usage = m["usage"].clone();
                let r = envelope(
                    &self.id,
                    &self.model,
                    "in_progress",
                    vec![],
                    Value::Null,
                    None,
                );
                self.emit(out, "response.created", json!({"response": r}));
                let r = envelope(
                    &self.id,
                    &self.model,
                    "in_progress",
                    vec![],
                    Value::Null,
                    None,
                );
                self.emit(out, "response.in_progress", json!({"response": r}));
            }
            "content_block_start" => self.start(&v["content_block"], out),
            "content_block_delta" => self.delta(&v["delta"], out),
            "content_block_stop" => self.stop(out),
            "message_delta" => {
                if let Some(s) = v["delta"]["stop_reason"].as_str() {
                    self.stop_reason = Some(s.to_string());
                }
                if let Some(u) = v["usage"].as_object() {
                    for (k, val) in u {
                        if !val.is_null() {
                            self.usage[k] = val.clone();
                        }
                    }
                }
            }
            "message_stop" => self.complete(out),
            "error" => {
                let e = &v["error"];
                self.emit(
                    out,
                    "error",
                    json!({"code": e["type"], "message": e["message"], "param": null}),
                );
                self.ended = true;
            }
            _ => {} // ping
        }
        Ok(())
    }

    fn start(&mut self, block: &Value, out: &mut Vec<u8>) {
        let n = self.index();
        let base = format!("{}_{n}", self.id.trim_start_matches("resp_"));
        let open = match block["type"].as_str() {
            Some("text") => {
                let id = format!("msg_{base}");
                self.emit(
                    out,
                    "response.output_item.added",
                    json!({"output_index": n, "item": message_item(&id, "", "in_progress")}),
                );
                self.emit(
                    out,
                    "response.content_part.added",
                    json!({"item_id": id,
                    "output_index": n, "content_index": 0,
                    "part": {"type": "output_text", "text": "", "annotations": []}}),
                );
                Open::Text {
                    id,
                    text: String::new(),
                }
            }
            Some("thinking") => {
                let id = format!("rs_{base}");
                self.emit(
                    out,
                    "response.output_item.added",
                    json!({"output_index": n, "item": reasoning_item(&id, "", None)}),
                );
                self.emit(
                    out,
                    "response.reasoning_summary_part.added",
                    json!({"item_id": id,
                    "output_index": n, "summary_index": 0,
                    "part": {"type": "summary_text", "text": ""}}),
                );
                Open::Thinking {
                    id,
                    text: String::new(),
                    signature: String::new(),
                }
            }
            Some("redacted_thinking") => {
                // Whole at its start: nothing streams for it.
                let id = format!("rs_{base}");
                let sealed = envelope::seal(&Thinking::RedactedThinking {
                    data: block["data"].as_str().unwrap_or_default().into(),
                });
                let item = reasoning_item(&id, "", Some(sealed));
                self.emit(
                    out,
                    "response.output_item.added",
                    json!({"output_index": n, "item": reasoning_item(&id, "", None)}),
                );
                self.emit(
                    out,
                    "response.output_item.done",
                    json!({"output_index": n, "item": item}),
                );
                self.output.push(item);
                return;
            }
            Some("tool_use") => {
                let call_id = block["id"].as_str().unwrap_or_default().to_string();
                self.emit(
                    out,
                    "response.output_item.added",
                    json!({"output_index": n,
                    "item": call_item(&call_id, &block["name"], "", "in_progress")}),
                );
                Open::Call {
                    call_id,
                    name: block["name"].clone(),
                    args: String::new(),
                }
            }
            _ => return,
        };
        self.open = Some(open);
    }

    fn delta(&mut self, d: &Value, out: &mut Vec<u8>) {
        let n = self.index();
        let piece = |k: &str| d[k].as_str().unwrap_or_default().to_string();
        let (name, data) = match (&mut self.open, d["type"].as_str()) {
            (Some(Open::Text { id, text }), Some("text_delta")) => {
                let p = piece("text");
                text.push_str(&p);
                (
                    "response.output_text.delta",
                    json!({"item_id": id, "output_index": n, "content_index": 0, "delta": p}),
                )
            }
            (Some(Open::Thinking { id, text, .. }), Some("thinking_delta")) => {
                let p = piece("thinking");
                text.push_str(&p);
                (
                    "response.reasoning_summary_text.delta",
                    json!({"item_id": id, "output_index": n, "summary_index": 0, "delta": p}),
                )
            }
            (Some(Open::Thinking { signature, .. }), Some("signature_delta")) => {
                signature.push_str(&piece("signature"));
                return;
            }
            (Some(Open::Call { call_id, args, .. }), Some("input_json_delta")) => {
                let p = piece("partial_json");
                args.push_str(&p);
                (
                    "response.function_call_arguments.delta",
                    json!({"item_id": format!("fc_{call_id}"), "output_index": n, "delta": p}),
                )
            }
            _ => return,
        };
        self.emit(out, name, data);
    }

    fn stop(&mut self, out: &mut Vec<u8>) {
        let n = self.index();
        let item = match self.open.take() {
            None => return,
            Some(Open::Text { id, text }) => {
                self.emit(
                    out,
                    "response.output_text.done",
                    json!({"item_id": id,
                    "output_index": n, "content_index": 0, "text": text}),
                );
                self.emit(
                    out,
                    "response.content_part.done",
                    json!({"item_id": id,
                    "output_index": n, "content_index": 0,
                    "part": {"type": "output_text", "text": text, "annotations": []}}),
                );
                message_item(&id, &text, "completed")
            }
            Some(Open::Thinking {
                id,
                text,
                signature,
            }) => {
                self.emit(
                    out,
                    "response.reasoning_summary_text.done",
                    json!({"item_id": id,
                    "output_index": n, "summary_index": 0, "text": text}),
                );
                self.emit(
                    out,
                    "response.reasoning_summary_part.done",
                    json!({"item_id": id,
                    "output_index": n, "summary_index": 0,
                    "part": {"type": "summary_text", "text": text}}),
                );
                let sealed = envelope::seal(&Thinking::Thinking {
                    thinking: text.clone(),
                    signature,
                });
                reasoning_item(&id, &text, Some(sealed))
            }
            Some(Open::Call {
                call_id,
                name,
                args,
            }) => {
                let args = if args.is_empty() {
                    "{}".to_string()
                } else {
                    args
                };
                self.emit(
                    out,
                    "response.function_call_arguments.done",
                    json!({
                    "item_id": format!("fc_{call_id}"), "output_index": n, "arguments": args}),
                );
                call_item(&call_id, &name, &args, "completed")
            }
        };
        self.emit(
            out,
            "response.output_item.done",
            json!({"output_index": n, "item": item}),
        );
        self.output.push(item);
    }

    fn complete(&mut self, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.stop(out);
        let r = envelope(
            &self.id,
            &self.model,
            "completed",
            std::mem::take(&mut self.output),
            maps::responses_usage(&self.usage),
            self.stop_reason.as_deref(),
        );
        let name = if r["status"] == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        self.emit(out, name, json!({"response": r}));
    }
}

impl events::Events for EventsToResponses {
    fn framer(&mut self) -> &mut Framer {
        &mut self.framer
    }
    fn ended(&self) -> bool {
        self.ended
    }
    fn event(&mut self, data: &str, out: &mut Vec<u8>) -> Result<(), TranscodeError> {
        self.step(data, out)
    }
}

impl Transcode for EventsToResponses {
    fn push(&mut self, bytes: &[u8]) -> Result<Vec<u8>, TranscodeError> {
        events::push(self, bytes)
    }

    fn finish(&mut self) -> Result<Vec<u8>, TranscodeError> {
        let mut out = Vec::new();
        events::last(self, &mut out)?;
        if !self.ended {
            self.ended = true;
            self.emit(
                &mut out,
                "error",
                json!({"code": "api_error",
                "message": "the upstream stream ended before message_stop", "param": null}),
            );
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(v: Value) -> String {
        format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap())
    }

    #[test]
    fn thinking_text_and_a_tool_call_become_typed_events() {
        let mut s = String::new();
        s += &ev(
            json!({"type": "message_start", "message": {"id": "msg_1", "model": "claude",
            "usage": {"input_tokens": 7, "cache_read_input_tokens": 3, "output_tokens": 1}}}),
        );
        s += &ev(
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
        );
        s += &ev(
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hm"}}),
        );
        s += &ev(
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "SIG=="}}),
        );
        s += &ev(json!({"type": "content_block_stop", "index": 0}));
        s += &ev(
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
        );
        s += &ev(
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "ok"}}),
        );
        s += &ev(json!({"type": "content_block_stop", "index": 1}));
        s += &ev(
            json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_9", "name": "shell", "input": {}}}),
        );
        s += &ev(
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"a\":1}"}}),
        );
        s += &ev(json!({"type": "content_block_stop", "index": 2}));
        s += &ev(
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}),
        );
        s += &ev(json!({"type": "message_stop"}));
        let mut t = EventsToResponses::default();
        let mut out = Vec::new();
        for c in s.as_bytes().chunks(7) {
            out.extend(t.push(c).unwrap());
        }
        out.extend(t.finish().unwrap());
        let mut f = Framer::new();
        f.push(&out);
        let mut evs = Vec::new();
        while let Some(e) = f.next_event() {
            evs.push(serde_json::from_str::<Value>(&e.data).unwrap());
        }
        let names: Vec<&str> = evs.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(names[0], "response.created");
        assert!(names.contains(&"response.reasoning_summary_text.delta"));
        assert!(names.contains(&"response.output_text.delta"));
        assert!(names.contains(&"response.function_call_arguments.delta"));
        assert_eq!(*names.last().unwrap(), "response.completed");
        let seqs: Vec<u64> = evs
            .iter()
            .map(|e| e["sequence_number"].as_u64().unwrap())
            .collect();
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
        let done = &evs.last().unwrap()["response"];
        let o = done["output"].as_array().unwrap();
        assert_eq!(o.len(), 3);
        let back = envelope::open(o[0]["encrypted_content"].as_str().unwrap()).unwrap();
        assert_eq!(
            back,
            Thinking::Thinking {
                thinking: "hm".into(),
                signature: "SIG==".into()
            }
        );
        assert_eq!(o[1]["content"][0]["text"], "ok");
        assert_eq!(o[2]["call_id"], "toolu_9");
        assert_eq!(o[2]["arguments"], "{\"a\":1}");
        assert_eq!(done["usage"]["input_tokens"], 10);
        assert_eq!(done["usage"]["output_tokens"], 9);
    }

    #[test]
    fn a_cut_stream_ends_in_an_error_event() {
        let mut t = EventsToResponses::default();
        let mut out = t
            .push(ev(json!({"type": "message_start", "message": {"id": "m"}})).as_bytes())
            .unwrap();
        out.extend(t.finish().unwrap());
        assert!(String::from_utf8(out).unwrap().contains("event: error"));
    }
}
