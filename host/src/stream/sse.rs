//! Server-Sent Events framing.
//!
//! Upstream chunks split SSE events at arbitrary byte offsets, and a plugin or a
//! usage reader that looks at one chunk at a time silently loses events (the
//! Higress and Envoy AI-gateway bugs). The framer turns a byte stream into whole
//! events, keeping each event's original bytes so an untouched event is sent on
//! exactly as the provider wrote it.

use bytes::{Bytes, BytesMut};

/// One parsed event plus its original bytes (terminating blank line included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event: Option<String>,
    pub data: String,
    pub id: Option<String>,
    pub raw: Bytes,
}

impl Event {
    /// Build an event from fields, rendering its wire form.
    pub fn new(event: Option<String>, data: String, id: Option<String>) -> Self {
        let raw = encode(event.as_deref(), &data, id.as_deref());
        Event {
            event,
            data,
            id,
            raw,
        }
    }

    /// True when the fields match, whatever the original formatting was.
    pub fn same_fields(&self, event: &Option<String>, data: &str, id: &Option<String>) -> bool {
        &self.event == event && self.data == data && &self.id == id
    }
}

/// Render an event in canonical wire form.
pub fn encode(event: Option<&str>, data: &str, id: Option<&str>) -> Bytes {
    let mut out = String::with_capacity(data.len() + 32);
    if let Some(e) = event {
        out.push_str("event: ");
        out.push_str(e);
        out.push('\n');
    }
    if let Some(i) = id {
        out.push_str("id: ");
        out.push_str(i);
        out.push('\n');
    }
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

/// Most bytes one event may span before the framer gives up on it. Large
/// enough for OpenAI's `response.completed`, which repeats the whole output.
pub const MAX_PENDING_EVENT: usize = 16 << 20;

/// Incremental framer: push chunks, pull whole events.
#[derive(Debug, Default)]
pub struct Framer {
    buf: BytesMut,
    /// Where the next unscanned line starts, relative to `buf`.
    line_start: usize,
}

impl Framer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add bytes from the stream.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes received but not yet part of a whole event.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// More than [`MAX_PENDING_EVENT`] bytes without an event ending: the
    /// upstream is not speaking SSE (or is hostile); stop buffering.
    pub fn overflowed(&self) -> bool {
        self.buf.len() > MAX_PENDING_EVENT
    }

    /// Drop what is buffered (after an overflow).
    pub fn reset(&mut self) {
        self.buf = BytesMut::new();
        self.line_start = 0;
    }

    /// The next complete event, if the buffer holds one.
    pub fn next_event(&mut self) -> Option<Event> {
        loop {
            let (line_end, term_len) = find_line_end(&self.buf, self.line_start)?;
            if line_end == self.line_start {
                // Blank line: the event ends here.
                let total = line_end + term_len;
                let raw = self.buf.split_to(total).freeze();
                self.line_start = 0;
                if raw.len() == term_len {
                    // A blank line with no event before it: nothing to dispatch.
                    continue;
                }
                return Some(parse(raw));
            }
            self.line_start = line_end + term_len;
        }
    }

    /// At end of stream: whatever is left, as a final event (a provider that
    /// forgets the last blank line must not lose its last event).
    pub fn finish(&mut self) -> Option<Event> {
        if self.buf.iter().all(|b| b.is_ascii_whitespace()) {
            self.buf.clear();
            self.line_start = 0;
            return None;
        }
        let raw = self.buf.split().freeze();
        self.line_start = 0;
        Some(parse(raw))
    }
}

/// Find the end of the line starting at `from`: (index of terminator, its length).
/// A `\r` at the very end of the buffer may be the first half of `\r\n`, so wait.
fn find_line_end(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let rel = buf[from..].iter().position(|&b| b == b'\n' || b == b'\r')?;
    let j = from + rel;
    if buf[j] == b'\n' {
        return Some((j, 1));
    }
    match buf.get(j + 1) {
        None => None,
        Some(b'\n') => Some((j, 2)),
        Some(_) => Some((j, 1)),
    }
}

fn parse(raw: Bytes) -> Event {
    let text = String::from_utf8_lossy(&raw);
    let mut event = None;
    let mut id = None;
    let mut data: Option<String> = None;
    for line in text.split(['\n', '\r']) {
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (line, ""),
        };
        match field {
            "event" => event = Some(value.to_string()),
            "id" => id = Some(value.to_string()),
            "data" => match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_string()),
            },
            _ => {}
        }
    }
    Event {
        event,
        data: data.unwrap_or_default(),
        id,
        raw,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(chunks: &[&[u8]]) -> Vec<Event> {
        let mut f = Framer::new();
        let mut out = vec![];
        for c in chunks {
            f.push(c);
            while let Some(e) = f.next_event() {
                out.push(e);
            }
        }
        out.extend(f.finish());
        out
    }

    #[test]
    fn whole_events() {
        let ev = all(&[b"event: a\ndata: {\"x\":1}\n\nevent: b\ndata: 2\n\n"]);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].event.as_deref(), Some("a"));
        assert_eq!(ev[0].data, "{\"x\":1}");
        assert_eq!(&ev[0].raw[..], b"event: a\ndata: {\"x\":1}\n\n");
        assert_eq!(ev[1].data, "2");
    }

    #[test]
    fn split_at_every_byte() {
        let src =
            b"event: message_start\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n: comment\n\ndata: last\n\n";
        let chunks: Vec<&[u8]> = src.chunks(1).collect();
        let ev = all(&chunks);
        assert_eq!(ev.len(), 3);
        assert_eq!(ev[0].event.as_deref(), Some("message_start"));
        assert_eq!(ev[0].data, "{\"a\":\n1}");
        assert_eq!(ev[1].data, "");
        assert_eq!(ev[2].data, "last");
        let joined: Vec<u8> = ev.iter().flat_map(|e| e.raw.to_vec()).collect();
        assert_eq!(&joined[..], &src[..]);
    }

    #[test]
    fn unterminated_last_event_is_kept() {
        let ev = all(&[b"data: [DONE]"]);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].data, "[DONE]");
    }

    #[test]
    fn encode_roundtrip() {
        let e = Event::new(Some("x".into()), "a\nb".into(), Some("7".into()));
        let back = all(&[&e.raw]);
        assert_eq!(back[0].event.as_deref(), Some("x"));
        assert_eq!(back[0].data, "a\nb");
        assert_eq!(back[0].id.as_deref(), Some("7"));
    }

    #[test]
    fn lone_cr_terminators() {
        let ev = all(&[b"data: a\r\r", b"data: b\r", b"\r"]);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[1].data, "b");
    }

    #[test]
    fn an_event_that_never_ends_overflows() {
        let mut f = Framer::new();
        f.push(b"data: ");
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..15 {
            f.push(&chunk);
            assert!(f.next_event().is_none());
        }
        assert!(!f.overflowed());
        f.push(&chunk);
        f.push(b"x");
        assert!(f.overflowed());
        f.reset();
        assert!(!f.overflowed());
        f.push(b"data: ok\n\n");
        assert_eq!(f.next_event().unwrap().data, "ok");
    }
}
