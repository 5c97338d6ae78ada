//! What the fake upstream should answer, set per test.
//!
//! Gateway tests need to steer the provider's behaviour: the reply text (to plant PII), how the
//! text is cut into stream deltas (to split a secret across events), pacing, failures and
//! compression. A [`Script`] is plain data built with chained setters.

use std::time::Duration;

/// How the fake upstream answers. Build with [`Script::default`] or [`Script::text`] and the
/// chained setters.
#[derive(Debug, Clone)]
pub struct Script {
    /// The full reply text.
    pub text: String,
    /// How `text` is cut into stream deltas; `None` sends it as one delta.
    /// When set, the deltas are sent as given (they are not checked against `text`).
    pub deltas: Option<Vec<String>>,
    /// Pause between two SSE events.
    pub event_delay: Duration,
    /// Pause before the response head is sent.
    pub response_delay: Duration,
    /// Answer every request with this status and body (JSON content type) instead.
    pub status_override: Option<(u16, String)>,
    /// Gzip the response when the request's `accept-encoding` allows it.
    pub gzip: bool,
    /// Abort the connection after this many SSE events have been written.
    pub drop_after_events: Option<usize>,
    /// Never answer (the request is still recorded).
    pub hang: bool,
    /// Reported input tokens.
    pub input_tokens: u64,
    /// Reported output tokens.
    pub output_tokens: u64,
    /// Reported cache-read input tokens (Anthropic `cache_read_input_tokens`).
    pub cache_read_tokens: u64,
    /// Reported cache-write input tokens (Anthropic `cache_creation_input_tokens`).
    pub cache_write_tokens: u64,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
    /// Answer a request with exactly these SSE events `(event name, data)`
    /// instead of the generated stream (for thinking, tool-call and other
    /// shapes the generator does not produce).
    pub sse_events: Option<Vec<(Option<String>, String)>>,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            text: "Hello from the fake upstream.".to_string(),
            deltas: None,
            event_delay: Duration::ZERO,
            response_delay: Duration::ZERO,
            status_override: None,
            gzip: false,
            drop_after_events: None,
            hang: false,
            input_tokens: 11,
            output_tokens: 7,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            headers: Vec::new(),
            sse_events: None,
        }
    }
}

impl Script {
    /// A script replying `text` in one delta.
    pub fn text(text: impl Into<String>) -> Self {
        Script {
            text: text.into(),
            ..Script::default()
        }
    }

    /// Sends these deltas; the reply text becomes their concatenation.
    pub fn deltas<S: Into<String>>(mut self, deltas: impl IntoIterator<Item = S>) -> Self {
        let d: Vec<String> = deltas.into_iter().map(Into::into).collect();
        self.text = d.concat();
        self.deltas = Some(d);
        self
    }

    pub fn event_delay(mut self, d: Duration) -> Self {
        self.event_delay = d;
        self
    }

    pub fn response_delay(mut self, d: Duration) -> Self {
        self.response_delay = d;
        self
    }

    pub fn status(mut self, status: u16, body: impl Into<String>) -> Self {
        self.status_override = Some((status, body.into()));
        self
    }

    pub fn gzip(mut self) -> Self {
        self.gzip = true;
        self
    }

    pub fn drop_after(mut self, events: usize) -> Self {
        self.drop_after_events = Some(events);
        self
    }

    pub fn hang(mut self) -> Self {
        self.hang = true;
        self
    }

    pub fn tokens(mut self, input: u64, output: u64) -> Self {
        self.input_tokens = input;
        self.output_tokens = output;
        self
    }

    /// Cache tokens reported beside the input (Anthropic's wire; Chat
    /// Completions reports the read ones inside `prompt_tokens`).
    pub fn cache_tokens(mut self, read: u64, write: u64) -> Self {
        self.cache_read_tokens = read;
        self.cache_write_tokens = write;
        self
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Answer with exactly these SSE events (see [`Script::sse_events`]).
    pub fn sse<N: Into<String>, D: Into<String>>(
        mut self,
        events: impl IntoIterator<Item = (Option<N>, D)>,
    ) -> Self {
        self.sse_events = Some(
            events
                .into_iter()
                .map(|(n, d)| (n.map(Into::into), d.into()))
                .collect(),
        );
        self
    }

    /// The deltas actually streamed.
    pub fn delta_list(&self) -> Vec<String> {
        self.deltas
            .clone()
            .unwrap_or_else(|| vec![self.text.clone()])
    }
}
