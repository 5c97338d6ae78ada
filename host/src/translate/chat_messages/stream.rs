//! Anthropic's event grammar as Chat Completions chunks, event by event.
//!
//! The usage rides on the chunk with the finish reason (the message's last
//! `message_delta`), so a client that asked for `include_usage` reads it
//! and one that did not is not sent a chunk with no choices.

use super::super::events;
use super::super::maps;
use crate::provider::{Transcode, TranscodeError};
use crate::stream::sse::{self, Framer};
use serde_json::{json, Value};

#[derive(Default)]
pub struct EventsToChunks {
    framer: Framer,
    id: Value,
    model: Value,
    usage: Value,
    /// Chat `index` of the tool call being written, by Anthropic block.
    calls: u64,
    in_call: bool,
    ended: bool,
}

impl EventsToChunks {
    fn chunk(&self, out: &mut Vec<u8>, delta: Value, finish: Value, usage: Option<Value>) {
        let mut c = json!({"id": self.id, "object": "chat.completion.chunk",
            "created": super::super::responses_messages::response::now(), "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
        if let Some(u) = usage {
            c["usage"] = u;
        }
        out.extend_from_slice(&sse::encode(None, &c.to_string(), None));
    }

    fn step(&mut self, data: &str, out: &mut Vec<u8>) -> Result<(), TranscodeError> {
        let v: Value = serde_json::from_str(data)
            .map_err(|e| TranscodeError(format!("an upstream event is not JSON: {e}")))?;
        match v["type"].as_str().unwrap_or_default() {
            "message_start" => {
                self.id = v["message"]["id"].clone();
                self.model = v["message"]["model"].clone();
                self.usage = v["message"]["usage"].clone();
                self.chunk(
                    out,
                    json!({"role": "assistant", "content": ""}),
                    Value::Null,
                    None,
                );
            }
            "content_block_start" if v["content_block"]["type"] == "tool_use" => {
                let b = &v["content_block"];
                self.in_call = true;
                let d = json!({"tool_calls": [{"index": self.calls, "id": b["id"], "type": "function",
                    "function": {"name": b["name"], "arguments": ""}}]});
                self.chunk(out, d, Value::Null, None);
            }
            "content_block_delta" => {
                let d = &v["delta"];
                match d["type"].as_str() {
                    Some("text_delta") => {
                        self.chunk(out, json!({"content": d["text"]}), Value::Null, None)
                    }
                    Some("input_json_delta") if self.in_call => {
                        let d = json!({"tool_calls": [{"index": self.calls,
                            "function": {"arguments": d["partial_json"]}}]});
                        self.chunk(out, d, Value::Null, None);
                    }
                    _ => {}
                }
            }
            "content_block_stop" if self.in_call => {
                self.in_call = false;
                self.calls += 1;
            }
            "message_delta" => {
                if let Some(u) = v["usage"].as_object() {
                    for (k, val) in u {
                        if !val.is_null() {
                            self.usage[k] = val.clone();
                        }
                    }
                }
                let finish = maps::finish_reason(v["delta"]["stop_reason"].as_str());
                let usage = maps::chat_usage(&self.usage);
                self.chunk(out, json!({}), json!(finish), Some(usage));
            }
            "message_stop" => {
                self.ended = true;
                out.extend_from_slice(&sse::encode(None, "[DONE]", None));
            }
            "error" => {
                let e = &v["error"];
                let body = json!({"error": {"message": e["message"], "type": e["type"],
                    "param": null, "code": e["type"]}});
                out.extend_from_slice(&sse::encode(None, &body.to_string(), None));
                self.ended = true;
            }
            _ => {}
        }
        Ok(())
    }
}

impl events::Events for EventsToChunks {
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

impl Transcode for EventsToChunks {
    fn push(&mut self, bytes: &[u8]) -> Result<Vec<u8>, TranscodeError> {
        events::push(self, bytes)
    }

    fn finish(&mut self) -> Result<Vec<u8>, TranscodeError> {
        let mut out = Vec::new();
        events::last(self, &mut out)?;
        if !self.ended {
            self.ended = true;
            let body = json!({"error": {"message": "the upstream stream ended before message_stop",
                "type": "server_error", "param": null, "code": null}});
            out.extend_from_slice(&sse::encode(None, &body.to_string(), None));
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
    fn text_and_two_tool_calls_become_chunks() {
        let mut s = String::new();
        s += &ev(
            json!({"type": "message_start", "message": {"id": "msg_1", "model": "claude",
            "usage": {"input_tokens": 4, "output_tokens": 1}}}),
        );
        s += &ev(
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        );
        s += &ev(
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}}),
        );
        s += &ev(json!({"type": "content_block_stop", "index": 0}));
        for (i, id) in ["toolu_a", "toolu_b"].iter().enumerate() {
            s += &ev(
                json!({"type": "content_block_start", "index": i + 1, "content_block": {"type": "tool_use", "id": id, "name": "get", "input": {}}}),
            );
            s += &ev(
                json!({"type": "content_block_delta", "index": i + 1, "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
            );
            s += &ev(json!({"type": "content_block_stop", "index": i + 1}));
        }
        s += &ev(
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 6}}),
        );
        s += &ev(json!({"type": "message_stop"}));
        let mut t = EventsToChunks::default();
        let mut out = Vec::new();
        for c in s.as_bytes().chunks(5) {
            out.extend(t.push(c).unwrap());
        }
        out.extend(t.finish().unwrap());
        let mut f = Framer::new();
        f.push(&out);
        let mut data = Vec::new();
        while let Some(e) = f.next_event() {
            data.push(e.data);
        }
        assert_eq!(data.last().unwrap(), "[DONE]");
        let chunks: Vec<Value> = data[..data.len() - 1]
            .iter()
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "hi");
        assert_eq!(
            chunks[2]["choices"][0]["delta"]["tool_calls"][0]["id"],
            "toolu_a"
        );
        assert_eq!(
            chunks[4]["choices"][0]["delta"]["tool_calls"][0]["index"],
            1
        );
        assert_eq!(
            chunks[4]["choices"][0]["delta"]["tool_calls"][0]["id"],
            "toolu_b"
        );
        let last = chunks.last().unwrap();
        assert_eq!(last["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(last["usage"]["completion_tokens"], 6);
        assert_eq!(last["usage"]["prompt_tokens"], 4);
    }
}
