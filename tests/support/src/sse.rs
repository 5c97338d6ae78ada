//! Server-sent events: formatting and an incremental parser.
//!
//! The fake upstream writes events with [`format_event`], and the test client parses what the
//! gateway forwards with [`SseParser`]. The parser follows the WHATWG rules that matter for
//! provider streams: events end at a blank line, `data:` lines join with `\n`, one space after
//! the colon is dropped, comments (`:`) are skipped, and `\r\n`, `\r` and `\n` all end lines,
//! however the bytes are split across chunks.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// All `data:` lines joined with `\n`.
    pub data: String,
}

impl SseEvent {
    /// Parses `data` as JSON (`Value::Null` if it is not JSON, e.g. `[DONE]`).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap_or(serde_json::Value::Null)
    }
}

/// Formats one event as `event: NAME\ndata: DATA\n\n` (no `event:` line when `event` is None).
/// Multi-line data becomes several `data:` lines.
pub fn format_event(event: Option<&str>, data: &str) -> String {
    let mut out = String::new();
    if let Some(name) = event {
        out.push_str("event: ");
        out.push_str(name);
        out.push('\n');
    }
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    out
}

/// Incremental SSE parser: feed it byte chunks, get back completed events.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    /// The previous chunk ended in `\r`, so a leading `\n` of the next one belongs to it.
    skip_lf: bool,
    event: Option<String>,
    data: Vec<String>,
    has_data: bool,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds a chunk and returns the events completed by it.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for &b in chunk {
            if self.skip_lf {
                self.skip_lf = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' => self.end_line(&mut out),
                b'\r' => {
                    self.end_line(&mut out);
                    self.skip_lf = true;
                }
                _ => self.buf.push(b),
            }
        }
        out
    }

    /// Flushes at end of stream: a final event not followed by a blank line is discarded,
    /// as the spec says; this returns it anyway only if `lenient`.
    pub fn finish(&mut self, lenient: bool) -> Option<SseEvent> {
        let mut out = Vec::new();
        if !self.buf.is_empty() {
            self.end_line(&mut out);
        }
        if lenient && (self.has_data || self.event.is_some()) {
            return Some(self.take());
        }
        None
    }

    fn take(&mut self) -> SseEvent {
        let ev = SseEvent {
            event: self.event.take(),
            data: self.data.join("\n"),
        };
        self.data.clear();
        self.has_data = false;
        ev
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let line = String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned();
        if line.is_empty() {
            if self.has_data || self.event.is_some() {
                out.push(self.take());
            }
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (line.as_str(), ""),
        };
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => {
                self.data.push(value.to_string());
                self.has_data = true;
            }
            _ => {}
        }
    }
}

/// Parses a complete SSE body.
pub fn parse_all(body: &[u8]) -> Vec<SseEvent> {
    let mut p = SseParser::new();
    let mut evs = p.push(body);
    evs.extend(p.finish(false));
    evs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let s = format_event(Some("message_start"), "{\"a\":1}") + &format_event(None, "x\ny");
        let evs = parse_all(s.as_bytes());
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].event.as_deref(), Some("message_start"));
        assert_eq!(evs[0].json()["a"], 1);
        assert_eq!(evs[1].event, None);
        assert_eq!(evs[1].data, "x\ny");
    }

    #[test]
    fn split_chunks_and_crlf() {
        let body = b"event: a\r\ndata: one\r\ndata:two\r\n\r\n: comment\r\nevent: b\rdata: 3\r\r";
        for split in 0..body.len() {
            for split2 in split..body.len() {
                let mut p = SseParser::new();
                let mut evs = p.push(&body[..split]);
                evs.extend(p.push(&body[split..split2]));
                evs.extend(p.push(&body[split2..]));
                assert_eq!(evs.len(), 2, "split {split}/{split2}");
                assert_eq!(evs[0].event.as_deref(), Some("a"));
                assert_eq!(evs[0].data, "one\ntwo");
                assert_eq!(evs[1].event.as_deref(), Some("b"));
                assert_eq!(evs[1].data, "3");
            }
        }
    }

    #[test]
    fn unterminated_event_needs_lenient() {
        let mut p = SseParser::new();
        assert!(p.push(b"data: tail").is_empty());
        assert_eq!(p.finish(true).unwrap().data, "tail");
        let mut p = SseParser::new();
        p.push(b"data: tail");
        assert!(p.finish(false).is_none());
    }
}
