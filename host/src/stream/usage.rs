//! Reading token usage out of provider responses.
//!
//! Usage feeds the access log, metrics and token rate limits. It is read on the
//! side while the response streams on, never by holding the stream back. Only
//! events that can carry usage are parsed, so text deltas cost a substring scan.

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
}

/// Accumulates usage and the model name from a response.
#[derive(Debug, Default)]
pub struct UsageReader {
    usage: Option<Usage>,
    model: Option<String>,
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
            return;
        }
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return;
        };
        self.take_model(&v);
        if let Some(u) = v.get("usage") {
            self.take_usage(u);
        }
    }

    /// One SSE event of a streaming response.
    pub fn on_event(&mut self, ev: &Event) {
        let name = ev.event.as_deref().unwrap_or("");
        let relevant = matches!(
            name,
            "message_start" | "message_delta" | "response.completed" | "response.created"
        ) || (name.is_empty()
            && (self.model.is_none() || ev.data.contains("\"usage\"")));
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
                    if let Some(u) = m.get("usage") {
                        self.take_usage(u);
                    }
                }
            }
            "message_delta" => {
                if let Some(u) = v.get("usage") {
                    self.take_usage(u);
                }
            }
            "response.created" | "response.completed" => {
                if let Some(r) = v.get("response") {
                    self.take_model(r);
                    if let Some(u) = r.get("usage") {
                        self.take_usage(u);
                    }
                }
            }
            _ => {
                // OpenAI chat chunks: model on every chunk, usage on the last one
                // when `stream_options.include_usage` is set.
                self.take_model(&v);
                if let Some(u) = v.get("usage") {
                    self.take_usage(u);
                }
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
            (r.model().map(str::to_string), r.usage())
        };
        for body in [
            r#"{"id":"m","model":"claude-x","content":[{"type":"text","text":"hi \"there\""}],"usage":{"input_tokens":7,"output_tokens":3}}"#,
            r#"{"model":"a","model":"b","usage":{"input_tokens":3}}"#,
            r#"{"usage":{"prompt_tokens":9},"usage":{"prompt_tokens":4}}"#,
            r#"{"model":"caf\u00e9","usage":null}"#,
            r#"{"model":7,"usage":{"completion_tokens":2}}"#,
            r#"["gpt",{"input_tokens":5}]"#,
            r#"{"model":"gpt-x","usage":{"prompt_tokens":20,"prompt_tokens_details":{"cached_tokens":5},"completion_tokens":4}}"#,
        ] {
            let mut r = UsageReader::new();
            r.on_json(body.as_bytes());
            assert_eq!(
                (r.model().map(str::to_string), r.usage()),
                full(body),
                "{body}"
            );
        }
    }

    #[test]
    fn anthropic_stream() {
        let mut r = UsageReader::new();
        r.on_event(&ev(Some("message_start"), r#"{"type":"message_start","message":{"model":"claude-x","usage":{"input_tokens":25,"output_tokens":1}}}"#));
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
    }

    #[test]
    fn openai_chat_stream_with_usage() {
        let mut r = UsageReader::new();
        r.on_event(&ev(
            None,
            r#"{"id":"c","model":"gpt-x","choices":[{"delta":{"content":"a"}}],"usage":null}"#,
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
    }

    #[test]
    fn responses_stream() {
        let mut r = UsageReader::new();
        r.on_event(&ev(
            Some("response.output_text.delta"),
            r#"{"type":"response.output_text.delta","delta":"x"}"#,
        ));
        r.on_event(&ev(Some("response.completed"), r#"{"type":"response.completed","response":{"model":"gpt-5","usage":{"input_tokens":7,"output_tokens":2}}}"#));
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
