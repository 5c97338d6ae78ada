//! Bedrock's streamed answer (AWS event-stream binary framing) turned back
//! into Anthropic SSE for the client, event by event.
//!
//! InvokeModelWithResponseStream answers `application/vnd.amazon.eventstream`:
//! binary frames (prelude, headers, payload, CRCs), decoded here with the
//! maintained `aws-smithy-eventstream` frame decoder. A frame with
//! `:message-type: event` and `:event-type: chunk` carries
//! `{"bytes": "<base64 of one Anthropic event JSON>"}`; the transcoder
//! writes that JSON as `event: <its type>\ndata: <json>\n\n` as soon as its
//! frame is complete, holding nothing back. An `exception` frame (or a
//! generic `error` frame) becomes Anthropic's SSE `error` event and ends
//! the stream, as Anthropic ends its own streams after an `error` event.
//!
//! Memory is bounded: a frame announcing more than the cap (default
//! [`DEFAULT_MAX_FRAME`]) is refused as soon as its 4-byte length arrives,
//! never buffered; at most one incomplete frame is held.

use base64::Engine as _;
use bytes::{Buf as _, BytesMut};
use http::StatusCode;
use serde::Deserialize;

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::Message;

use super::body::strip_invocation_metrics;
use super::errors::{anthropic_error_type, envelope};

/// The largest frame accepted by default. Bedrock's chunks are small (one
/// Anthropic event each, base64, with padding); AWS caps event-stream
/// messages at 16 MiB, far above any real chunk.
pub const DEFAULT_MAX_FRAME: usize = 4 << 20;

/// Why the stream cannot be transcoded. After an error the transcoder is
/// done; the caller ends the client's stream, typically with
/// [`StreamError::sse_event`].
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("event-stream frame of {len} bytes exceeds the {max}-byte limit")]
    FrameTooLarge { len: usize, max: usize },
    #[error("invalid event-stream frame: {0}")]
    Frame(#[from] aws_smithy_eventstream::error::Error),
    #[error("invalid Bedrock chunk: {0}")]
    BadChunk(&'static str),
    #[error("Bedrock's stream ended inside a frame ({buffered} bytes pending)")]
    Truncated { buffered: usize },
}

impl StreamError {
    /// This error as an Anthropic SSE `error` event (`api_error`), for the
    /// client whose stream it ends.
    pub fn sse_event(&self) -> Vec<u8> {
        sse("error", &envelope("api_error", &self.to_string()))
    }
}

/// Bedrock's own usage report, from `amazon-bedrock-invocationMetrics` in
/// the last chunk. The Anthropic events carry the same usage; this is for
/// cross-checks and latency.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvocationMetrics {
    pub input_token_count: Option<u64>,
    pub output_token_count: Option<u64>,
    pub invocation_latency: Option<u64>,
    pub first_byte_latency: Option<u64>,
    pub cache_read_input_token_count: Option<u64>,
    pub cache_write_input_token_count: Option<u64>,
}

/// The incremental event-stream → SSE transcoder for one response.
pub struct EventStreamToSse {
    decoder: MessageFrameDecoder,
    buf: BytesMut,
    /// Length of the frame being read, once its prelude's first 4 bytes
    /// arrived (checked against `max_frame` before anything else).
    frame_len: Option<usize>,
    max_frame: usize,
    /// An error event was written or an error returned: later bytes are
    /// dropped.
    ended: bool,
    metrics: Option<InvocationMetrics>,
}

impl Default for EventStreamToSse {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Deserialize)]
struct Chunk {
    bytes: String,
}

#[derive(Deserialize)]
struct Typed {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize, Default)]
struct ExceptionBody {
    #[serde(alias = "Message")]
    message: Option<String>,
}

fn sse(event: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(event.len() + data.len() + 16);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
    out
}

fn header_str<'a>(m: &'a Message, name: &str) -> Option<&'a str> {
    m.headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| h.value().as_string().ok())
        .map(|s| s.as_str())
}

impl EventStreamToSse {
    pub fn new() -> Self {
        Self::with_max_frame(DEFAULT_MAX_FRAME)
    }

    /// A transcoder refusing frames larger than `max_frame` bytes.
    pub fn with_max_frame(max_frame: usize) -> Self {
        EventStreamToSse {
            decoder: MessageFrameDecoder::new(),
            buf: BytesMut::new(),
            frame_len: None,
            max_frame,
            ended: false,
            metrics: None,
        }
    }

    /// Feeds the next bytes of Bedrock's body (split anywhere) and returns
    /// the SSE bytes of every frame they complete (possibly none).
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<u8>, StreamError> {
        if self.ended {
            return Ok(Vec::new());
        }
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        match self.drain(&mut out) {
            Ok(()) => Ok(out),
            Err(e) => {
                self.ended = true;
                self.buf.clear();
                Err(e)
            }
        }
    }

    fn drain(&mut self, out: &mut Vec<u8>) -> Result<(), StreamError> {
        while !self.ended {
            if self.frame_len.is_none() {
                if self.buf.len() < 4 {
                    return Ok(());
                }
                let len = (&self.buf[..4]).get_u32() as usize;
                if len > self.max_frame {
                    return Err(StreamError::FrameTooLarge {
                        len,
                        max: self.max_frame,
                    });
                }
                self.frame_len = Some(len);
            }
            match self.decoder.decode_frame(&mut self.buf)? {
                DecodedFrame::Incomplete => return Ok(()),
                DecodedFrame::Complete(message) => {
                    self.frame_len = None;
                    self.frame(&message, out)?;
                }
            }
        }
        Ok(())
    }

    fn frame(&mut self, m: &Message, out: &mut Vec<u8>) -> Result<(), StreamError> {
        match header_str(m, ":message-type") {
            Some("event") => match header_str(m, ":event-type") {
                Some("chunk") => self.chunk(m.payload(), out),
                other => {
                    tracing::debug!(event_type = ?other, "bedrock stream: skipping a non-chunk event");
                    Ok(())
                }
            },
            Some("exception") => {
                let name = header_str(m, ":exception-type").unwrap_or("exception");
                let body: ExceptionBody = serde_json::from_slice(m.payload()).unwrap_or_default();
                let message = body
                    .message
                    .unwrap_or_else(|| format!("Bedrock stream failed: {name}"));
                self.end_with_error(
                    anthropic_error_type(Some(name), StatusCode::OK),
                    &message,
                    out,
                );
                Ok(())
            }
            Some("error") => {
                let code = header_str(m, ":error-code").unwrap_or("error");
                let message = header_str(m, ":error-message")
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("Bedrock stream failed: {code}"));
                self.end_with_error(
                    anthropic_error_type(Some(code), StatusCode::INTERNAL_SERVER_ERROR),
                    &message,
                    out,
                );
                Ok(())
            }
            other => {
                tracing::debug!(message_type = ?other, "bedrock stream: skipping an unknown frame");
                Ok(())
            }
        }
    }

    fn end_with_error(&mut self, error_type: &str, message: &str, out: &mut Vec<u8>) {
        tracing::debug!(error_type, "bedrock stream: exception frame");
        out.extend_from_slice(&sse("error", &envelope(error_type, message)));
        self.ended = true;
    }

    fn chunk(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), StreamError> {
        let chunk: Chunk = serde_json::from_slice(payload)
            .map_err(|_| StreamError::BadChunk("payload is not {\"bytes\": ...}"))?;
        let json = base64::engine::general_purpose::STANDARD
            .decode(chunk.bytes.as_bytes())
            .map_err(|_| StreamError::BadChunk("bytes is not base64"))?;
        let typed: Typed = serde_json::from_slice(&json)
            .map_err(|_| StreamError::BadChunk("event is not JSON with a string type"))?;
        if typed.kind.is_empty() || typed.kind.bytes().any(|b| b.is_ascii_control()) {
            return Err(StreamError::BadChunk("event type is not an SSE event name"));
        }
        let (json, metrics) = strip_invocation_metrics(&json);
        if let Some(m) = metrics.and_then(|m| serde_json::from_str(m.get()).ok()) {
            self.metrics = Some(m);
        }
        // Valid JSON holds raw CR/LF only as insignificant whitespace
        // (inside strings they must be escaped), so dropping them keeps the
        // meaning and keeps the event on one `data:` line.
        let data: Vec<u8> = if json.iter().any(|b| *b == b'\n' || *b == b'\r') {
            json.iter()
                .copied()
                .filter(|b| *b != b'\n' && *b != b'\r')
                .collect()
        } else {
            json.into_owned()
        };
        out.extend_from_slice(&sse(&typed.kind, &data));
        Ok(())
    }

    /// Ends the stream: `Ok` with any final SSE bytes (none today) when it
    /// ended on a frame boundary, [`StreamError::Truncated`] when Bedrock's
    /// body stopped inside a frame.
    pub fn finish(&mut self) -> Result<Vec<u8>, StreamError> {
        let inside_frame = self.frame_len.is_some() || !self.buf.is_empty();
        let was_ended = std::mem::replace(&mut self.ended, true);
        if !was_ended && inside_frame {
            let buffered = self.buf.len();
            self.buf.clear();
            return Err(StreamError::Truncated { buffered });
        }
        Ok(Vec::new())
    }

    /// Whether an exception frame or an error ended the stream.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Bedrock's `amazon-bedrock-invocationMetrics`, once the chunk
    /// carrying it went by.
    pub fn invocation_metrics(&self) -> Option<&InvocationMetrics> {
        self.metrics.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::{Header, HeaderValue};
    use proptest::prelude::*;
    use serde_json::{json, Value};

    fn frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
        let mut m = Message::new(payload.to_vec());
        for (n, v) in headers {
            m = m.add_header(Header::new(
                n.to_string(),
                HeaderValue::String(v.to_string().into()),
            ));
        }
        let mut out = Vec::new();
        write_message_to(&m, &mut out).unwrap();
        out
    }

    fn chunk(event: &Value) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(event.to_string());
        let payload = json!({"bytes": b64, "p": "abcdefghij"}).to_string();
        frame(
            &[
                (":event-type", "chunk"),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ],
            payload.as_bytes(),
        )
    }

    fn exception(name: &str, message: &str) -> Vec<u8> {
        frame(
            &[
                (":exception-type", name),
                (":content-type", "application/json"),
                (":message-type", "exception"),
            ],
            json!({"message": message}).to_string().as_bytes(),
        )
    }

    fn events() -> Vec<Value> {
        vec![
            json!({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant",
                   "model":"claude","content":[],"stop_reason":null,"stop_sequence":null,
                   "usage":{"input_tokens":25,"cache_read_input_tokens":7,"cache_creation_input_tokens":0,"output_tokens":1}}}),
            json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}),
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"lo \n\"there\""}}),
            json!({"type":"content_block_stop","index":0}),
            json!({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":9}}),
            json!({"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":25,
                   "outputTokenCount":9,"invocationLatency":120,"firstByteLatency":40}}),
        ]
    }

    fn expected_sse() -> Vec<u8> {
        let mut out = Vec::new();
        for mut e in events() {
            e.as_object_mut()
                .unwrap()
                .remove("amazon-bedrock-invocationMetrics");
            let t = e["type"].as_str().unwrap().to_string();
            out.extend_from_slice(format!("event: {t}\ndata: {e}\n\n").as_bytes());
        }
        out
    }

    fn stream_bytes() -> Vec<u8> {
        events().iter().flat_map(chunk).collect()
    }

    #[test]
    fn whole_stream_in_one_push() {
        let mut t = EventStreamToSse::new();
        let mut out = t.push(&stream_bytes()).unwrap();
        out.extend(t.finish().unwrap());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            String::from_utf8(expected_sse()).unwrap()
        );
        assert_eq!(
            t.invocation_metrics(),
            Some(&InvocationMetrics {
                input_token_count: Some(25),
                output_token_count: Some(9),
                invocation_latency: Some(120),
                first_byte_latency: Some(40),
                ..Default::default()
            })
        );
    }

    #[test]
    fn each_event_leaves_as_soon_as_its_frame_is_complete() {
        let frames: Vec<Vec<u8>> = events().iter().map(chunk).collect();
        let mut t = EventStreamToSse::new();
        for f in &frames {
            let (head, last) = f.split_at(f.len() - 1);
            assert!(
                t.push(head).unwrap().is_empty(),
                "nothing before the frame is whole"
            );
            let out = String::from_utf8(t.push(last).unwrap()).unwrap();
            assert_eq!(out.matches("event: ").count(), 1, "{out}");
        }
        assert!(t.finish().unwrap().is_empty());
    }

    #[test]
    fn exception_becomes_an_anthropic_error_event_and_ends_the_stream() {
        let mut bytes = chunk(&events()[0]);
        bytes.extend(exception(
            "throttlingException",
            "Too many tokens, please wait.",
        ));
        bytes.extend(chunk(&events()[1]));
        let mut t = EventStreamToSse::new();
        let out = String::from_utf8(t.push(&bytes).unwrap()).unwrap();
        let blocks: Vec<&str> = out.split_terminator("\n\n").collect();
        assert_eq!(blocks.len(), 2, "{out}");
        assert!(blocks[0].starts_with("event: message_start\n"));
        let data: Value =
            serde_json::from_str(blocks[1].strip_prefix("event: error\ndata: ").unwrap()).unwrap();
        assert_eq!(
            data,
            json!({"type":"error","error":{"type":"rate_limit_error","message":"Too many tokens, please wait."}})
        );
        assert!(t.ended());
        assert!(t.push(&chunk(&events()[2])).unwrap().is_empty());
        assert!(t.finish().unwrap().is_empty());
    }

    #[test]
    fn exception_types_map() {
        for (name, want) in [
            ("modelStreamErrorException", "api_error"),
            ("validationException", "invalid_request_error"),
            ("internalServerException", "api_error"),
            ("serviceUnavailableException", "overloaded_error"),
        ] {
            let mut t = EventStreamToSse::new();
            let out = t.push(&exception(name, "m")).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(
                text.contains(&format!("\"type\":\"{want}\"")),
                "{name}: {text}"
            );
        }
        let mut t = EventStreamToSse::new();
        let generic = frame(
            &[
                (":message-type", "error"),
                (":error-code", "InternalFailure"),
                (":error-message", "boom"),
            ],
            b"",
        );
        let text = String::from_utf8(t.push(&generic).unwrap()).unwrap();
        assert!(
            text.starts_with("event: error\n") && text.contains("\"message\":\"boom\""),
            "{text}"
        );
    }

    #[test]
    fn oversized_frame_is_refused_from_its_length_alone() {
        let big = chunk(&json!({"type":"content_block_delta","delta":{"text": "x".repeat(4000)}}));
        let mut t = EventStreamToSse::with_max_frame(1024);
        // Only the 4-byte length has arrived: refused without buffering the rest.
        let e = t.push(&big[..4]).unwrap_err();
        assert!(
            matches!(e, StreamError::FrameTooLarge { max: 1024, .. }),
            "{e}"
        );
        assert!(t.push(&big[4..]).unwrap().is_empty());
        let sse = String::from_utf8(e.sse_event()).unwrap();
        assert!(
            sse.starts_with(
                "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\""
            ),
            "{sse}"
        );
    }

    #[test]
    fn corrupt_and_truncated_streams_are_errors() {
        let mut bytes = chunk(&events()[0]);
        let n = bytes.len();
        bytes[n - 1] ^= 0xff; // message CRC
        assert!(matches!(
            EventStreamToSse::new().push(&bytes),
            Err(StreamError::Frame(_))
        ));

        let whole = chunk(&events()[0]);
        for cut in [1, 5, 12, 20, whole.len() - 1] {
            let mut t = EventStreamToSse::new();
            assert!(t.push(&whole[..cut]).unwrap().is_empty());
            assert!(
                matches!(t.finish(), Err(StreamError::Truncated { .. })),
                "cut at {cut}"
            );
        }

        let not_b64 = frame(
            &[(":message-type", "event"), (":event-type", "chunk")],
            br#"{"bytes":"!!"}"#,
        );
        assert!(matches!(
            EventStreamToSse::new().push(&not_b64),
            Err(StreamError::BadChunk(_))
        ));
        let untyped = frame(
            &[(":message-type", "event"), (":event-type", "chunk")],
            json!({"bytes": base64::engine::general_purpose::STANDARD.encode("{}")})
                .to_string()
                .as_bytes(),
        );
        assert!(matches!(
            EventStreamToSse::new().push(&untyped),
            Err(StreamError::BadChunk(_))
        ));
    }

    #[test]
    fn multi_line_event_json_stays_on_one_data_line() {
        let pretty = serde_json::to_string_pretty(&events()[2]).unwrap();
        let payload =
            json!({"bytes": base64::engine::general_purpose::STANDARD.encode(&pretty)}).to_string();
        let f = frame(
            &[(":message-type", "event"), (":event-type", "chunk")],
            payload.as_bytes(),
        );
        let out = String::from_utf8(EventStreamToSse::new().push(&f).unwrap()).unwrap();
        let data = out
            .strip_prefix("event: content_block_delta\ndata: ")
            .unwrap();
        let data = data.strip_suffix("\n\n").unwrap();
        assert!(!data.contains('\n'));
        assert_eq!(serde_json::from_str::<Value>(data).unwrap(), events()[2]);
    }

    proptest! {
        /// Any split of the byte stream gives the same SSE as one push.
        #[test]
        fn random_splits_give_the_same_sse(cuts in proptest::collection::vec(0usize..2000, 0..40)) {
            let bytes = stream_bytes();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.sort_unstable();
            let mut t = EventStreamToSse::with_max_frame(4096);
            let mut out = Vec::new();
            let mut at = 0;
            for c in cuts.into_iter().chain([bytes.len()]) {
                out.extend(t.push(&bytes[at..c]).unwrap());
                at = c;
            }
            out.extend(t.finish().unwrap());
            prop_assert_eq!(out, expected_sse());
        }
    }
}
