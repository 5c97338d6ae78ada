//! Masking inside a JSON document that arrives in pieces (Anthropic
//! `input_json_delta.partial_json`, OpenAI tool-call `arguments` deltas,
//! Responses `function_call_arguments.delta`).
//!
//! The pieces concatenate to a JSON document; PII lives in its string
//! values, possibly split across pieces and possibly written with escapes
//! (`bob\u0040example.com`). A small lexer follows the document: outside
//! strings bytes pass through; inside a string, escapes are decoded and the
//! decoded text goes through the same held-tail stream masker as plain
//! text, and what is emitted is re-encoded as JSON string content. So the
//! client's concatenation is still valid JSON, with the same values except
//! for the masks, and an escape split across pieces is completed before it
//! is decoded.

use serde::{Deserialize, Serialize};

use crate::masker::Masker;

/// Lexer state between pieces.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lex {
    /// Inside a JSON string.
    pub in_str: bool,
    /// An escape sequence read so far (`\`, `\u00`...).
    pub esc: String,
}

enum Esc {
    Incomplete,
    Char(char),
    Invalid,
}

fn hex4(s: &str) -> Option<u32> {
    (s.len() == 4)
        .then(|| u32::from_str_radix(s, 16).ok())
        .flatten()
}

fn decode(e: &str) -> Esc {
    let b = e.as_bytes();
    if b.len() < 2 {
        return Esc::Incomplete;
    }
    let c = match b[1] {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => {
            if b.len() < 6 {
                return Esc::Incomplete;
            }
            let Some(hi) = hex4(&e[2..6]) else {
                return Esc::Invalid;
            };
            if !(0xD800..0xDC00).contains(&hi) {
                return char::from_u32(hi).map_or(Esc::Invalid, Esc::Char);
            }
            // A high surrogate: the low one must follow as `\uDCxx`.
            if b.len() > 6 && b[6] != b'\\' || b.len() > 7 && b[7] != b'u' {
                return Esc::Invalid;
            }
            if b.len() < 12 {
                return Esc::Incomplete;
            }
            let Some(lo) = hex4(&e[8..12]).filter(|lo| (0xDC00..0xE000).contains(lo)) else {
                return Esc::Invalid;
            };
            return char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                .map_or(Esc::Invalid, Esc::Char);
        }
        _ => return Esc::Invalid,
    };
    Esc::Char(c)
}

/// `s` as JSON string content (without the quotes).
pub fn encode(s: &str) -> String {
    let q = serde_json::to_string(s).unwrap_or_default();
    q[1..q.len() - 1].to_owned()
}

/// Decoded characters of complete raw string content, each with its raw
/// byte range (a character, or a whole escape sequence).
fn segments(raw: &str) -> Vec<(char, usize, usize)> {
    let mut out = Vec::new();
    let mut esc_start = None;
    for (i, c) in raw.char_indices() {
        let end = i + c.len_utf8();
        match esc_start {
            Some(st) => match decode(&raw[st..end]) {
                Esc::Incomplete => {}
                Esc::Char(ch) => {
                    out.push((ch, st, end));
                    esc_start = None;
                }
                Esc::Invalid => {
                    out.push(('\u{fffd}', st, end));
                    esc_start = None;
                }
            },
            None if c == '\\' => esc_start = Some(i),
            None => out.push((c, i, end)),
        }
    }
    out
}

/// The state of one JSON-stream channel.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct JsonStream {
    pub lex: Lex,
    /// Raw string content held back (complete characters and escapes that
    /// could still become part of a match).
    pub held: String,
    /// The last character already sent in the current string.
    pub ctx: Option<char>,
}

impl JsonStream {
    /// Mask the raw string content `raw`; with `flush` everything is sent,
    /// otherwise a tail that could still grow into a match is kept in
    /// `self.held`. Unmasked text is sent exactly as it came (same escapes).
    fn settle(&mut self, m: &Masker, raw: &str, flush: bool) -> String {
        let segs = segments(raw);
        let decoded: String = segs.iter().map(|s| s.0).collect();
        let step = m.step(self.ctx, &decoded, flush);
        let cut = decoded.len() - step.held.len();
        // The raw offset of decoded byte `cut`.
        let mut at = 0;
        let mut raw_cut = raw.len();
        for (c, start, _) in &segs {
            if at == cut {
                raw_cut = *start;
                break;
            }
            at += c.len_utf8();
        }
        self.ctx = step.ctx;
        self.held = raw[raw_cut..].to_owned();
        if step.emit == decoded[..cut] {
            raw[..raw_cut].to_owned()
        } else {
            encode(&step.emit)
        }
    }

    /// Feed a piece; returns the JSON text to send now. With `flush`, text
    /// held inside an unterminated string is sent too.
    pub fn feed(&mut self, m: &Masker, piece: &str, flush: bool) -> String {
        let mut out = String::with_capacity(piece.len());
        let mut raw = std::mem::take(&mut self.held);
        for c in piece.chars() {
            if !self.lex.in_str {
                out.push(c);
                if c == '"' {
                    self.lex.in_str = true;
                    self.ctx = None;
                }
                continue;
            }
            if !self.lex.esc.is_empty() {
                self.lex.esc.push(c);
                if !matches!(decode(&self.lex.esc), Esc::Incomplete) {
                    raw.push_str(&std::mem::take(&mut self.lex.esc));
                }
                continue;
            }
            match c {
                '\\' => self.lex.esc.push(c),
                '"' => {
                    out.push_str(&self.settle(m, &raw, true));
                    raw.clear();
                    self.held.clear();
                    out.push('"');
                    self.lex.in_str = false;
                    self.ctx = None;
                }
                _ => raw.push(c),
            }
        }
        if self.lex.in_str && !raw.is_empty() {
            out.push_str(&self.settle(m, &raw, flush));
        } else {
            self.held = raw;
        }
        out
    }

    /// Send whatever is held (the stream ended inside a string).
    pub fn finish(&mut self, m: &Masker) -> String {
        let raw = std::mem::take(&mut self.held);
        if raw.is_empty() {
            return String::new();
        }
        self.settle(m, &raw, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::masker::Rule;
    use serde_json::{json, Value};
    use sluice_sdk::pii::Builtin;

    fn masker() -> Masker {
        Masker::new(vec![
            Rule::builtin(Builtin::Email),
            Rule::builtin(Builtin::Phone),
            Rule::builtin(Builtin::Ssn),
        ])
        .unwrap()
    }

    fn run(pieces: &[&str]) -> (Vec<String>, String) {
        let m = masker();
        let mut s = JsonStream::default();
        let mut out: Vec<String> = pieces.iter().map(|p| s.feed(&m, p, false)).collect();
        out.push(s.feed(&m, "", true));
        let all = out.concat();
        (out, all)
    }

    #[test]
    fn split_at_every_position_stays_valid_and_masked() {
        let doc = r#"{"file_path": "/tmp/a.txt", "content": "Contact bob@example.com or 555-123-4567.\nSSN \u0031\u0032\u0033-45-6789 \"quoted\" \ud83d\ude00 done"}"#;
        let want: Value = json!({"file_path": "/tmp/a.txt",
            "content": "Contact <EMAIL> or <PHONE>.\nSSN <SSN> \"quoted\" \u{1f600} done"});
        for i in 1..doc.len() {
            if !doc.is_char_boundary(i) {
                continue;
            }
            let (_, all) = run(&[&doc[..i], &doc[i..]]);
            let got: Value =
                serde_json::from_str(&all).unwrap_or_else(|e| panic!("split {i}: {e}: {all}"));
            assert_eq!(got, want, "split at {i}");
        }
        // Byte by byte (every escape split).
        let pieces: Vec<String> = doc.chars().map(String::from).collect();
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let (outs, all) = run(&refs);
        assert_eq!(serde_json::from_str::<Value>(&all).unwrap(), want);
        // Nothing was held longer than needed outside strings.
        assert_eq!(outs[0], "{");
        // Without PII the document passes exactly as sent, escapes included.
        let clean = r#"{"a": "v1\n \u00e9 \"q\" \ud83d\ude00", "b": [1, "x"]}"#;
        for i in 1..clean.len() {
            let (_, all) = run(&[&clean[..i], &clean[i..]]);
            assert_eq!(all, clean, "split at {i}");
        }
    }

    #[test]
    fn escaped_email_is_masked_and_non_strings_pass() {
        let (_, all) = run(&[
            r#"{"to": "bob\u0040exa"#,
            r#"mple.com", "n": 12, "ok": true}"#,
        ]);
        assert_eq!(
            serde_json::from_str::<Value>(&all).unwrap(),
            json!({"to": "<EMAIL>", "n": 12, "ok": true})
        );
        let (outs, _) = run(&[r#"{"n": [1, 2, null]}"#]);
        assert_eq!(outs[0], r#"{"n": [1, 2, null]}"#);
    }
}
