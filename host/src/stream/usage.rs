//! Reading token usage out of provider responses.
//!
//! Usage feeds the access log, metrics and token rate limits. It is read on the
//! side while the response streams on, never by holding the stream back. Only
//! events that can carry usage are parsed, so text deltas cost a substring scan.
//!
//! The same pass picks up the answer's id and why it ended (the trace's
//! `gen_ai.response.id` and `gen_ai.response.finish_reasons`): both travel in
//! the events already parsed for usage, except OpenAI chat's `finish_reason`,
//! whose chunk is parsed only when a byte scan finds a non-null one.

use super::sse::Event;
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;

/// Token counts of one exchange, every kind apart, the same for every provider.
///
/// `input_tokens` is the uncached part only: Anthropic reports it that way,
/// and OpenAI's prompt count (which includes cached tokens) is split here, so
/// [`Usage::all_input`] is every input token whichever provider answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub output_tokens: u64,
    /// Part of `output_tokens` (OpenAI `reasoning_tokens`).
    pub reasoning_tokens: u64,
}

impl Usage {
    /// Every input token: uncached, cache reads and cache writes.
    pub fn all_input(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.cache_read_tokens)
            .saturating_add(self.cache_write_tokens)
    }
}

/// The part of a whole JSON answer the reader needs.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    usage: Option<Value>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    /// Anthropic.
    #[serde(borrow, default)]
    stop_reason: Option<Cow<'a, str>>,
    /// OpenAI chat.
    #[serde(borrow, default)]
    choices: Option<Vec<Choice<'a>>>,
    /// OpenAI Responses (`"object": "response"`).
    #[serde(borrow, default)]
    object: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    incomplete_details: Option<Incomplete<'a>>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Incomplete<'a> {
    #[serde(borrow, default)]
    reason: Option<Cow<'a, str>>,
}

/// Most finish reasons kept (one per choice); a bound against `n: 10000`.
const MAX_FINISH_REASONS: usize = 16;

/// Accumulates usage, the model name, the answer's id and finish reasons.
#[derive(Debug, Default)]
pub struct UsageReader {
    usage: Option<Usage>,
    model: Option<String>,
    id: Option<String>,
    finish_reasons: Vec<String>,
}

impl UsageReader {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// The provider's id of the answer (`msg_...`, `chatcmpl-...`, `resp_...`).
    pub fn response_id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// Why the answer ended, one per choice, in the provider's words
    /// (`end_turn`, `stop`, `length`; Responses: `completed`, or the reason
    /// it is `incomplete`).
    pub fn finish_reasons(&self) -> &[String] {
        &self.finish_reasons
    }

    fn take_id(&mut self, v: &Value) {
        if self.id.is_none() {
            if let Some(id) = v.get("id").and_then(Value::as_str) {
                self.id = Some(id.to_string());
            }
        }
    }

    fn push_reason(&mut self, r: &str) {
        if self.finish_reasons.len() < MAX_FINISH_REASONS {
            self.finish_reasons.push(r.to_string());
        }
    }

    /// `choices[].finish_reason` of a chat answer or chunk.
    fn take_choices(&mut self, v: &Value) {
        if let Some(cs) = v.get("choices").and_then(Value::as_array) {
            for c in cs {
                if let Some(r) = c.get("finish_reason").and_then(Value::as_str) {
                    self.push_reason(r);
                }
            }
        }
    }

    /// A Responses object's end: its status, or why it is incomplete.
    fn take_status(&mut self, r: &Value) {
        let status = r.get("status").and_then(Value::as_str);
        let reason = r
            .get("incomplete_details")
            .and_then(|d| d.get("reason"))
            .and_then(Value::as_str);
        match (status, reason) {
            (Some("incomplete"), Some(reason)) => self.push_reason(reason),
            (Some(s), _) if s != "in_progress" && s != "queued" => self.push_reason(s),
            _ => {}
        }
    }

    /// Id and finish reasons of a whole answer read as a [`Value`].
    fn take_end(&mut self, v: &Value) {
        self.take_id(v);
        if let Some(r) = v.get("stop_reason").and_then(Value::as_str) {
            self.push_reason(r);
        }
        self.take_choices(v);
        if v.get("object").and_then(Value::as_str) == Some("response") {
            self.take_status(v);
        }
    }

    fn entry(&mut self) -> &mut Usage {
        self.usage.get_or_insert_with(Usage::default)
    }

    /// A whole JSON response body (Anthropic messages, OpenAI chat, Responses, embeddings).
    ///
    /// Only `model` and `usage` are built; the rest (the answer's text, tool
    /// calls) is scanned and skipped. A body serde's derive cannot read that
    /// way (a repeated key, a `model` that is not a string) is read again as
    /// a whole [`Value`], so the result is the same as reading it whole.
    pub fn on_json(&mut self, body: &[u8]) {
        // serde's derive also reads a struct from an array: objects only.
        let object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        if let Some(head) = object
            .then(|| serde_json::from_slice::<Head<'_>>(body).ok())
            .flatten()
        {
            if self.model.is_none() {
                self.model = head.model.map(Cow::into_owned);
            }
            if let Some(u) = &head.usage {
                self.take_usage(u);
            }
            if self.id.is_none() {
                self.id = head.id.map(Cow::into_owned);
            }
            if let Some(r) = &head.stop_reason {
                self.push_reason(r);
            }
            for c in head.choices.iter().flatten() {
                if let Some(r) = &c.finish_reason {
                    self.push_reason(r);
                }
            }
            if head.object.as_deref() == Some("response") {
                let reason = head
                    .incomplete_details
                    .as_ref()
                    .and_then(|d| d.reason.as_deref());
                match (head.status.as_deref(), reason) {
                    (Some("incomplete"), Some(reason)) => self.push_reason(reason),
                    (Some(s), _) if s != "in_progress" && s != "queued" => self.push_reason(s),
                    _ => {}
                }
            }
            return;
        }
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return;
        };
        self.take_model(&v);
        if let Some(u) = v.get("usage") {
            self.take_usage(u);
        }
        self.take_end(&v);
    }

    /// One SSE event of a streaming response.
    pub fn on_event(&mut self, ev: &Event) {
        let name = ev.event.as_deref().unwrap_or("");
        let relevant = matches!(
            name,
            "message_start"
                | "message_delta"
                | "response.completed"
                | "response.created"
                | "response.incomplete"
                | "response.failed"
        ) || (name.is_empty()
            && (self.model.is_none()
                || ev.data.contains("\"usage\"")
                || has_finish_reason(&ev.data)));
        if !relevant || !ev.data.starts_with('{') {
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
            return;
        };
        match v.get("type").and_then(Value::as_str).unwrap_or(name) {
            "message_start" => {
                if let Some(m) = v.get("message") {
                    self.take_model(m);
                    self.take_id(m);
                    if let Some(u) = m.get("usage") {
                        self.take_usage(u);
                    }
                }
            }
            "message_delta" => {
                if let Some(u) = v.get("usage") {
                    self.take_usage(u);
                }
                if let Some(r) = v
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    self.push_reason(r);
                }
            }
            t @ ("response.created"
            | "response.completed"
            | "response.incomplete"
            | "response.failed") => {
                if let Some(r) = v.get("response") {
                    self.take_model(r);
                    self.take_id(r);
                    if let Some(u) = r.get("usage") {
                        self.take_usage(u);
                    }
                    if t != "response.created" {
                        self.take_status(r);
                    }
                }
            }
            _ => {
                // OpenAI chat chunks: model and id on every chunk, usage on the
                // last one when `stream_options.include_usage` is set, a
                // finish reason on each choice's last one.
                self.take_model(&v);
                self.take_id(&v);
                if let Some(u) = v.get("usage") {
                    self.take_usage(u);
                }
                self.take_choices(&v);
            }
        }
    }

    fn take_model(&mut self, v: &Value) {
        if self.model.is_none() {
            if let Some(m) = v.get("model").and_then(Value::as_str) {
                self.model = Some(m.to_string());
            }
        }
    }

    fn take_usage(&mut self, u: &Value) {
        if !u.is_object() {
            return;
        }
        let get = |k: &str| u.get(k).and_then(Value::as_u64);
        let detail =
            |outer: &str, k: &str| u.get(outer).and_then(|d| d.get(k)).and_then(Value::as_u64);
        let input = get("input_tokens").or_else(|| get("prompt_tokens"));
        let output = get("output_tokens").or_else(|| get("completion_tokens"));
        // OpenAI counts cached tokens inside the prompt count, in a details object.
        let openai_cached = detail("prompt_tokens_details", "cached_tokens")
            .or_else(|| detail("input_tokens_details", "cached_tokens"));
        let cache_read = openai_cached.or_else(|| get("cache_read_input_tokens"));
        let cache_write = get("cache_creation_input_tokens");
        let reasoning = detail("completion_tokens_details", "reasoning_tokens")
            .or_else(|| detail("output_tokens_details", "reasoning_tokens"));
        let uncached = match (input, openai_cached) {
            (Some(i), Some(c)) => Some(i.saturating_sub(c)),
            (i, _) => i,
        };
        if [uncached, output, cache_read, cache_write]
            .iter()
            .all(Option::is_none)
        {
            return;
        }
        let e = self.entry();
        // Anthropic repeats or refines counts in later events: keep the largest.
        let fields = [
            (&mut e.input_tokens, uncached),
            (&mut e.output_tokens, output),
            (&mut e.cache_read_tokens, cache_read),
            (&mut e.cache_write_tokens, cache_write),
            (&mut e.reasoning_tokens, reasoning),
        ];
        for (slot, v) in fields {
            if let Some(v) = v {
                *slot = (*slot).max(v);
            }
        }
    }
}

/// The chunk carries a `"finish_reason"` that is not `null`: a byte scan,
/// so the chat chunks before the last are never parsed for it.
fn has_finish_reason(data: &str) -> bool {
    const KEY: &str = "\"finish_reason\"";
    data.match_indices(KEY).any(|(at, _)| {
        let rest = data[at + KEY.len()..].trim_start_matches([' ', '\t', '\r', '\n', ':']);
        !rest.starts_with('n')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(name: Option<&str>, data: &str) -> Event {
        Event::new(name.map(str::to_string), data.to_string(), None)
    }

    /// The partial read gives what reading the whole answer gives, however
    /// odd the answer.
    #[test]
    fn whole_answers_read_as_a_full_parse_would() {
        let full = |body: &str| {
            let v: Value = serde_json::from_str(body).unwrap();
            let mut r = UsageReader::new();
            r.take_model(&v);
            if let Some(u) = v.get("usage") {
                r.take_usage(u);
            }
            r.take_end(&v);
            (
                r.model().map(str::to_string),
                r.usage(),
                r.response_id().map(str::to_string),
                r.finish_reasons().to_vec(),
            )
        };
        for body in [
            r#"{"id":"m","model":"claude-x","content":[{"type":"text","text":"hi \"there\""}],"usage":{"input_tokens":7,"output_tokens":3}}"#,
            r#"{"model":"a","model":"b","usage":{"input_tokens":3}}"#,
            r#"{"usage":{"prompt_tokens":9},"usage":{"prompt_tokens":4}}"#,
            r#"{"model":"caf\u00e9","usage":null}"#,
            r#"{"model":7,"usage":{"completion_tokens":2}}"#,
            r#"["gpt",{"input_tokens":5}]"#,
            r#"{"model":"gpt-x","usage":{"prompt_tokens":20,"prompt_tokens_details":{"cached_tokens":5},"completion_tokens":4}}"#,
            r#"{"id":"chatcmpl-1","model":"gpt-x","choices":[{"index":0,"message":{"content":"a"},"finish_reason":"stop"},{"index":1,"finish_reason":"length"}]}"#,
            r#"{"id":"chatcmpl-1","choices":[7,{"finish_reason":"stop"}]}"#,
            r#"{"id":7,"stop_reason":"end_turn"}"#,
            r#"{"id":"resp_1","object":"response","status":"incomplete","incomplete_details":{"reason":"max_output_tokens"}}"#,
            r#"{"id":"resp_2","object":"response","status":"completed","incomplete_details":null}"#,
            r#"{"id":"e","object":"list","status":"completed"}"#,
        ] {
            let mut r = UsageReader::new();
            r.on_json(body.as_bytes());
            assert_eq!(
                (
                    r.model().map(str::to_string),
                    r.usage(),
                    r.response_id().map(str::to_string),
                    r.finish_reasons().to_vec()
                ),
                full(body),
                "{body}"
            );
        }
    }

    #[test]
    fn anthropic_stream() {
        let mut r = UsageReader::new();
        r.on_event(&ev(Some("message_start"), r#"{"type":"message_start","message":{"id":"msg_1","model":"claude-x","stop_reason":null,"usage":{"input_tokens":25,"output_tokens":1}}}"#));
        r.on_event(&ev(
            Some("content_block_delta"),
            r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":"hi"}}"#,
        ));
        r.on_event(&ev(Some("message_delta"), r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":15}}"#));
        assert_eq!(
            r.usage(),
            Some(Usage {
                input_tokens: 25,
                output_tokens: 15,
                ..Usage::default()
            })
        );
        assert_eq!(r.model(), Some("claude-x"));
        assert_eq!(r.response_id(), Some("msg_1"));
        assert_eq!(r.finish_reasons(), ["end_turn"]);
    }

    #[test]
    fn openai_chat_stream_with_usage() {
        let mut r = UsageReader::new();
        r.on_event(&ev(
            None,
            r#"{"id":"c","model":"gpt-x","choices":[{"delta":{"content":"a"},"finish_reason":null}],"usage":null}"#,
        ));
        r.on_event(&ev(
            None,
            r#"{"id":"c","model":"gpt-x","choices":[{"delta":{},"finish_reason": "length"}]}"#,
        ));
        r.on_event(&ev(None, r#"{"id":"c","model":"gpt-x","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3}}"#));
        r.on_event(&ev(None, "[DONE]"));
        assert_eq!(
            r.usage(),
            Some(Usage {
                input_tokens: 9,
                output_tokens: 3,
                ..Usage::default()
            })
        );
        assert_eq!(r.model(), Some("gpt-x"));
        assert_eq!(r.response_id(), Some("c"));
        assert_eq!(r.finish_reasons(), ["length"]);
    }

    #[test]
    fn finish_reason_scan() {
        assert!(!has_finish_reason(r#"{"finish_reason":null}"#));
        assert!(!has_finish_reason(r#"{"finish_reason" : null}"#));
        assert!(has_finish_reason(r#"{"finish_reason": "stop"}"#));
        assert!(has_finish_reason(
            r#"{"a":{"finish_reason":null},"b":{"finish_reason":"tool_calls"}}"#
        ));
        assert!(!has_finish_reason(r#"{"choices":[]}"#));
    }

    #[test]
    fn responses_stream() {
        let mut r = UsageReader::new();
        r.on_event(&ev(
            Some("response.output_text.delta"),
            r#"{"type":"response.output_text.delta","delta":"x"}"#,
        ));
        r.on_event(&ev(Some("response.created"), r#"{"type":"response.created","response":{"id":"resp_9","status":"in_progress","model":"gpt-5"}}"#));
        r.on_event(&ev(Some("response.incomplete"), r#"{"type":"response.incomplete","response":{"id":"resp_9","status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"model":"gpt-5","usage":{"input_tokens":7,"output_tokens":2}}}"#));
        assert_eq!(r.response_id(), Some("resp_9"));
        assert_eq!(r.finish_reasons(), ["max_output_tokens"]);
        assert_eq!(
            r.usage(),
            Some(Usage {
                input_tokens: 7,
                output_tokens: 2,
                ..Usage::default()
            })
        );
    }

    #[test]
    fn json_bodies() {
        let mut r = UsageReader::new();
        r.on_json(br#"{"model":"m","usage":{"prompt_tokens":4,"completion_tokens":5}}"#);
        assert_eq!(
            r.usage(),
            Some(Usage {
                input_tokens: 4,
                output_tokens: 5,
                ..Usage::default()
            })
        );
        let mut r = UsageReader::new();
        r.on_json(br#"{"input_tokens": 12}"#);
        assert_eq!(r.usage(), None, "count_tokens is a count, not usage");
    }

    #[test]
    fn anthropic_cache_tokens_are_counted_apart() {
        let mut r = UsageReader::new();
        r.on_event(&ev(Some("message_start"), r#"{"type":"message_start","message":{"model":"claude-x","usage":{"input_tokens":3,"cache_creation_input_tokens":1200,"cache_read_input_tokens":90000,"output_tokens":1}}}"#));
        r.on_event(&ev(
            Some("message_delta"),
            r#"{"type":"message_delta","usage":{"output_tokens":40}}"#,
        ));
        let u = r.usage().unwrap();
        assert_eq!(
            u,
            Usage {
                input_tokens: 3,
                cache_read_tokens: 90000,
                cache_write_tokens: 1200,
                output_tokens: 40,
                reasoning_tokens: 0
            }
        );
        assert_eq!(u.all_input(), 91203);
    }

    #[test]
    fn openai_cached_and_reasoning_tokens() {
        let mut r = UsageReader::new();
        r.on_json(br#"{"model":"gpt-x","usage":{"prompt_tokens":1000,"completion_tokens":50,"prompt_tokens_details":{"cached_tokens":800},"completion_tokens_details":{"reasoning_tokens":30}}}"#);
        let u = r.usage().unwrap();
        assert_eq!(
            (
                u.input_tokens,
                u.cache_read_tokens,
                u.output_tokens,
                u.reasoning_tokens
            ),
            (200, 800, 50, 30)
        );
        assert_eq!(u.all_input(), 1000);
        let mut r = UsageReader::new();
        r.on_event(&ev(Some("response.completed"), r#"{"type":"response.completed","response":{"model":"gpt-5","usage":{"input_tokens":500,"input_tokens_details":{"cached_tokens":480},"output_tokens":9,"output_tokens_details":{"reasoning_tokens":4}}}}"#));
        let u = r.usage().unwrap();
        assert_eq!(
            (
                u.input_tokens,
                u.cache_read_tokens,
                u.output_tokens,
                u.reasoning_tokens
            ),
            (20, 480, 9, 4)
        );
    }
}
