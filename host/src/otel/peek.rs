//! The GenAI request parameters (`model`, `max_tokens`, `temperature`,
//! `stream`) read from a JSON request body as it streams upstream.
//!
//! Why a scanner: the body of an agent's request is often megabytes of
//! conversation, and the parameters may come after it (Claude Code sends
//! `max_tokens` and `stream` last). Buffering it for a trace would change
//! what the gateway refuses (its body limits) depending on sampling; this
//! reads byte by byte, keeps only the top-level scalars it wants, and never
//! holds the stream back.

/// What the request asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestParams {
    pub model: Option<String>,
    pub max_tokens: Option<i64>,
    pub temperature: Option<f64>,
    pub stream: Option<bool>,
}

/// Longest key or scalar value kept (longer ones are not parameters).
const MAX_TOKEN: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the top-level `{`.
    Start,
    /// At depth 1, expecting a key (or `}`/`,`).
    Key,
    /// Inside a top-level key string.
    InKey,
    /// After a key, before `:`.
    Colon,
    /// After `:`, before the value.
    Value,
    /// Inside a top-level string value.
    InStr,
    /// Inside a top-level number/literal.
    InLit,
    /// Inside a nested object/array (`depth` > 1).
    Nested,
    /// Inside a string within a nested value.
    NestedStr,
    /// Not an object, or done.
    Done,
}

/// Incremental scanner; feed it chunks in order.
#[derive(Debug)]
pub struct Scanner {
    state: State,
    escape: bool,
    depth: u32,
    key: Vec<u8>,
    value: Vec<u8>,
    pub params: RequestParams,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner {
            state: State::Start,
            escape: false,
            depth: 0,
            key: Vec::new(),
            value: Vec::new(),
            params: RequestParams::default(),
        }
    }
}

impl Scanner {
    pub fn push(&mut self, chunk: &[u8]) {
        let mut i = 0;
        while i < chunk.len() {
            match self.state {
                State::Done => return,
                // Most of an agent's body is the text of nested strings
                // (the conversation): jump to the next quote or escape
                // instead of stepping through it byte by byte.
                State::NestedStr if !self.escape => {
                    match memchr::memchr2(b'"', b'\\', &chunk[i..]) {
                        Some(at) => i += at,
                        None => return,
                    }
                }
                _ => {}
            }
            self.byte(chunk[i]);
            i += 1;
        }
    }

    fn byte(&mut self, b: u8) {
        use State::*;
        match self.state {
            Start => match b {
                b'{' => self.state = Key,
                b' ' | b'\n' | b'\r' | b'\t' => {}
                _ => self.state = Done,
            },
            Key => match b {
                b'"' => {
                    self.key.clear();
                    self.state = InKey;
                }
                b'}' => self.state = Done,
                _ => {}
            },
            InKey => {
                if self.escape {
                    self.escape = false;
                    self.key.push(b);
                } else if b == b'\\' {
                    self.escape = true;
                } else if b == b'"' {
                    self.state = Colon;
                } else if self.key.len() < MAX_TOKEN {
                    self.key.push(b);
                }
            }
            Colon => {
                if b == b':' {
                    self.state = Value;
                }
            }
            Value => match b {
                b' ' | b'\n' | b'\r' | b'\t' => {}
                b'"' => {
                    self.value.clear();
                    self.state = InStr;
                }
                b'{' | b'[' => {
                    self.depth = 1;
                    self.state = Nested;
                }
                _ => {
                    self.value.clear();
                    self.value.push(b);
                    self.state = InLit;
                }
            },
            InStr => {
                if self.escape {
                    self.escape = false;
                    self.value.push(b);
                } else if b == b'\\' {
                    self.escape = true;
                } else if b == b'"' {
                    self.scalar(true);
                    self.state = Key;
                } else if self.value.len() <= MAX_TOKEN {
                    self.value.push(b);
                }
            }
            InLit => match b {
                b',' | b'}' | b' ' | b'\n' | b'\r' | b'\t' => {
                    self.scalar(false);
                    self.state = if b == b'}' { Done } else { Key };
                }
                _ if self.value.len() <= MAX_TOKEN => self.value.push(b),
                _ => {}
            },
            Nested => match b {
                b'"' => self.state = NestedStr,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        self.state = Key;
                    }
                }
                _ => {}
            },
            NestedStr => {
                if self.escape {
                    self.escape = false;
                } else if b == b'\\' {
                    self.escape = true;
                } else if b == b'"' {
                    self.state = Nested;
                }
            }
            Done => {}
        }
    }

    fn scalar(&mut self, quoted: bool) {
        if self.value.len() > MAX_TOKEN {
            return;
        }
        let v = String::from_utf8_lossy(&self.value);
        let p = &mut self.params;
        match (self.key.as_slice(), quoted) {
            (b"model", true) => p.model = Some(v.into_owned()),
            (b"max_tokens" | b"max_completion_tokens" | b"max_output_tokens", false) => {
                if let Ok(n) = v.parse() {
                    p.max_tokens = Some(n);
                }
            }
            (b"temperature", false) => {
                if let Ok(t) = v.parse() {
                    p.temperature = Some(t);
                }
            }
            (b"stream", false) => match &*v {
                "true" => p.stream = Some(true),
                "false" => p.stream = Some(false),
                _ => {}
            },
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_top_level_parameters_in_any_chunking() {
        let body = br#"{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"say \"max_tokens\": 5 {"},{"role":"user","content":"C:\\"}],"system":{"x":[1,2,{"temperature":9}]},"max_tokens": 1024,"temperature":0.5,"stream":true}"#;
        for size in [1, 2, 3, 5, 7, 64, body.len()] {
            let mut s = Scanner::default();
            for c in body.chunks(size) {
                s.push(c);
            }
            assert_eq!(
                s.params,
                RequestParams {
                    model: Some("claude-sonnet-4-5".into()),
                    max_tokens: Some(1024),
                    temperature: Some(0.5),
                    stream: Some(true),
                },
                "chunk size {size}"
            );
        }
    }

    #[test]
    fn ignores_what_is_not_an_object() {
        let mut s = Scanner::default();
        s.push(br#"["model","x"]"#);
        assert_eq!(s.params, RequestParams::default());
    }
}
