//! Chat Completions chunks as Anthropic's event grammar, event by event.
//!
//! Each chunk is translated as it arrives (nothing waits for the end):
//! the first opens the message (`message_start`), text and tool-call
//! fragments open, feed and close content blocks, and the end of the
//! stream (`[DONE]`, after the `include_usage` chunk) sends
//! `message_delta` with the usage and stop reason, then `message_stop`.

use super::super::events;
use super::super::maps;
use crate::provider::{Transcode, TranscodeError};
use crate::stream::sse::{self, Framer};
use serde_json::{json, Value};

/// The content block being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    /// Reasoning text from a backend that streams it (`reasoning_content`,
    /// as DeepSeek, vLLM and others do).
    Thinking,
    /// A tool call, by its Chat `index`.
    Tool(u64),
}

#[derive(Default)]
pub struct ChunksToEvents {
    framer: Framer,
    started: bool,
    ended: bool,
    /// The open block and its Anthropic index.
    open: Option<(Open, u64)>,
    next_index: u64,
    stop_reason: Option<&'static str>,
    usage: Option<Value>,
}

fn emit(out: &mut Vec<u8>, name: &str, data: Value) {
    out.extend_from_slice(&sse::encode(Some(name), &data.to_string(), None));
}

impl ChunksToEvents {
    fn start(&mut self, chunk: &Value, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        emit(
            out,
            "message_start",
            json!({"type": "message_start", "message": {
                "id": chunk["id"], "type": "message", "role": "assistant",
                "model": chunk["model"], "content": [], "stop_reason": null,
                "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0}}}),
        );
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if let Some((_, index)) = self.open.take() {
            emit(
                out,
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index}),
            );
        }
    }

    /// Make `want` the open block (closing another), with `block` as its start.
    fn open(&mut self, want: Open, block: Value, out: &mut Vec<u8>) -> u64 {
        if let Some((o, i)) = self.open {
            if o == want {
                return i;
            }
        }
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((want, index));
        emit(
            out,
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": block}),
        );
        index
    }

    fn chunk(&mut self, data: &str, out: &mut Vec<u8>) -> Result<(), TranscodeError> {
        if data.trim() == "[DONE]" {
            return self.end(out);
        }
        let v: Value = serde_json::from_str(data)
            .map_err(|e| TranscodeError(format!("an upstream chunk is not JSON: {e}")))?;
        if let Some(err) = v.get("error") {
            let msg = err["message"]
                .as_str()
                .unwrap_or("the upstream failed mid-stream");
            emit(
                out,
                "error",
                json!({"type": "error", "error": {"type": "api_error", "message": msg}}),
            );
            self.ended = true;
            return Ok(());
        }
        self.start(&v, out);
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(maps::usage(u));
        }
        let Some(choice) = v["choices"].get(0) else {
            return Ok(());
        };
        let delta = &choice["delta"];
        if let Some(t) = reasoning_text(delta) {
            let block = json!({"type": "thinking", "thinking": "", "signature": ""});
            let i = self.open(Open::Thinking, block, out);
            emit(
                out,
                "content_block_delta",
                json!({"type": "content_block_delta", "index": i,
                       "delta": {"type": "thinking_delta", "thinking": t}}),
            );
        }
        if let Some(t) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            let i = self.open(Open::Text, json!({"type": "text", "text": ""}), out);
            emit(
                out,
                "content_block_delta",
                json!({"type": "content_block_delta", "index": i,
                       "delta": {"type": "text_delta", "text": t}}),
            );
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let n = call["index"].as_u64().unwrap_or(0);
            let i = match self.open {
                Some((Open::Tool(m), i)) if m == n && call.get("id").is_none_or(Value::is_null) => {
                    i
                }
                _ => self.open(
                    Open::Tool(n),
                    json!({"type": "tool_use", "id": call["id"],
                           "name": call["function"]["name"], "input": {}}),
                    out,
                ),
            };
            if let Some(a) = call["function"]["arguments"]
                .as_str()
                .filter(|a| !a.is_empty())
            {
                emit(
                    out,
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": i,
                           "delta": {"type": "input_json_delta", "partial_json": a}}),
                );
            }
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            self.close(out);
            self.stop_reason = Some(maps::stop_reason(Some(f)));
        }
        Ok(())
    }

    fn end(&mut self, out: &mut Vec<u8>) -> Result<(), TranscodeError> {
        if self.ended {
            return Ok(());
        }
        self.ended = true;
        let Some(stop) = self.stop_reason else {
            emit(
                out,
                "error",
                json!({"type": "error", "error": {"type": "api_error",
                       "message": "the upstream stream ended before its finish reason"}}),
            );
            return Ok(());
        };
        self.close(out);
        let usage = self.usage.take().unwrap_or_else(|| maps::usage(&json!({})));
        emit(
            out,
            "message_delta",
            json!({"type": "message_delta",
                   "delta": {"stop_reason": stop, "stop_sequence": null},
                   "usage": usage}),
        );
        emit(out, "message_stop", json!({"type": "message_stop"}));
        Ok(())
    }
}

/// The reasoning text a Chat message or delta carries, under either name
/// OpenAI-compatible servers use. It has no signature: on the next turn
/// the thinking block is not sent back (see the request translation).
pub fn reasoning_text(m: &Value) -> Option<&str> {
    m["reasoning_content"]
        .as_str()
        .or_else(|| m["reasoning"].as_str())
        .filter(|t| !t.is_empty())
}

impl events::Events for ChunksToEvents {
    fn framer(&mut self) -> &mut Framer {
        &mut self.framer
    }
    fn ended(&self) -> bool {
        self.ended
    }
    fn event(&mut self, data: &str, out: &mut Vec<u8>) -> Result<(), TranscodeError> {
        self.chunk(data, out)
    }
}

impl Transcode for ChunksToEvents {
    fn push(&mut self, bytes: &[u8]) -> Result<Vec<u8>, TranscodeError> {
        events::push(self, bytes)
    }

    fn finish(&mut self) -> Result<Vec<u8>, TranscodeError> {
        let mut out = Vec::new();
        events::last(self, &mut out)?;
        self.end(&mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(out: &[u8]) -> Vec<(String, Value)> {
        let mut f = Framer::new();
        f.push(out);
        let mut v = Vec::new();
        while let Some(e) = f.next_event() {
            v.push((e.event.unwrap(), serde_json::from_str(&e.data).unwrap()));
        }
        v
    }

    fn chunk(v: Value) -> String {
        format!("data: {v}\n\n")
    }

    #[test]
    fn text_then_tool_call_in_anthropic_grammar_split_anywhere() {
        let mut s = String::new();
        s += &chunk(
            json!({"id": "c1", "model": "gpt", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
        );
        s += &chunk(
            json!({"id": "c1", "model": "gpt", "choices": [{"index": 0, "delta": {"content": "Hel"}}]}),
        );
        s += &chunk(
            json!({"id": "c1", "model": "gpt", "choices": [{"index": 0, "delta": {"content": "lo"}}]}),
        );
        s += &chunk(
            json!({"id": "c1", "model": "gpt", "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "call_1", "type": "function", "function": {"name": "Read", "arguments": ""}}]}}]}),
        );
        s += &chunk(
            json!({"id": "c1", "model": "gpt", "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": "{\"path\":"}}]}}]}),
        );
        s += &chunk(
            json!({"id": "c1", "model": "gpt", "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": "\"a\"}"}}]}}]}),
        );
        s += &chunk(
            json!({"id": "c1", "model": "gpt", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
        );
        s += &chunk(
            json!({"id": "c1", "model": "gpt", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4, "prompt_tokens_details": {"cached_tokens": 2}}}),
        );
        s += "data: [DONE]\n\n";
        // Byte by byte: frames split anywhere still translate.
        let mut t = ChunksToEvents::default();
        let mut out = Vec::new();
        for b in s.as_bytes() {
            out.extend(t.push(&[*b]).unwrap());
        }
        out.extend(t.finish().unwrap());
        let ev = events(&out);
        let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(ev[0].1["message"]["id"], "c1");
        assert_eq!(ev[2].1["delta"]["text"], "Hel");
        assert_eq!(ev[5].1["content_block"]["id"], "call_1");
        assert_eq!(ev[5].1["index"], 1);
        assert_eq!(ev[7].1["delta"]["partial_json"], "\"a\"}");
        assert_eq!(ev[9].1["delta"]["stop_reason"], "tool_use");
        assert_eq!(ev[9].1["usage"]["input_tokens"], 7);
        assert_eq!(ev[9].1["usage"]["cache_read_input_tokens"], 2);
    }

    #[test]
    fn streamed_reasoning_becomes_a_thinking_block() {
        let mut t = ChunksToEvents::default();
        let mut s = String::new();
        for d in [
            json!({"reasoning_content": "let me "}),
            json!({"reasoning_content": "see"}),
            json!({"content": "ok"}),
        ] {
            s += &chunk(json!({"id": "c", "model": "m", "choices": [{"index": 0, "delta": d}]}));
        }
        s += &chunk(
            json!({"id": "c", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        );
        let mut out = t.push(s.as_bytes()).unwrap();
        out.extend(t.finish().unwrap());
        let ev = events(&out);
        assert_eq!(ev[1].1["content_block"]["type"], "thinking");
        assert_eq!(ev[2].1["delta"]["thinking"], "let me ");
        assert_eq!(ev[3].1["delta"]["thinking"], "see");
        assert_eq!(ev[4].0, "content_block_stop");
        assert_eq!(ev[5].1["content_block"]["type"], "text");
        assert_eq!(ev[5].1["index"], 1);
    }

    #[test]
    fn a_stream_cut_short_ends_with_an_error_event() {
        let mut t = ChunksToEvents::default();
        let mut out = t
            .push(chunk(json!({"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": "x"}}]})).as_bytes())
            .unwrap();
        out.extend(t.finish().unwrap());
        let ev = events(&out);
        assert_eq!(ev.last().unwrap().0, "error");
    }
}
