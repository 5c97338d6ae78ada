//! Phase 3's reading of the request body: the one reading every body policy
//! and the provider share.
//!
//! When a body hook will run, the body is buffered (up to the host's cap),
//! its `Content-Encoding` undone ([`super::request_decode`]) and, on AI routes
//! whose kind carries JSON, checked as strict JSON ([`super::strict_json`]).
//! The policies get the decoded bytes and headers that describe them (no
//! `Content-Encoding`, the decoded `Content-Length`), and so does the upstream.
//!
//! Every byte held counts against the shared body budget
//! ([`super::budget`]): the raw bytes while they are read, the decoded ones
//! while they are inflated (granted before each allocation, so a bomb stops
//! at what the budget has left), and afterwards only the decoded body.

use super::budget::{self, BodyBudget, CollectError, Reservation};
use super::request_decode::{self, DecodeError};
use super::strict_json;
use crate::policy;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue};
use http_body::Body;
use std::sync::Arc;

/// A request refused while reading its body: status, error type, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub error_type: &'static str,
    pub message: String,
}

impl Refusal {
    fn new(status: u16, error_type: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            status,
            error_type,
            message: message.into(),
        }
    }
}

/// AI kinds whose request body is JSON, so strict JSON applies.
pub fn carries_json(kind: policy::AiKind) -> bool {
    matches!(
        kind,
        policy::AiKind::Messages
            | policy::AiKind::AnthropicTokenCount
            | policy::AiKind::Completions
            | policy::AiKind::Responses
            | policy::AiKind::Embeddings
    )
}

/// Whether the request's headers do not say how many bytes the policies
/// would see: the body is encoded (its `Content-Length` counts the
/// compressed bytes), or it has no declared length (chunked, HTTP/2 without
/// `content-length`). A policy that decides on `Content-Length` at the
/// headers must then be shown the decoded length, or a compressed body
/// would walk past it.
pub fn length_unknown(headers: &HeaderMap, declared: Option<u64>) -> bool {
    if declared == Some(0) {
        return false;
    }
    declared.is_none()
        || headers
            .get_all(header::CONTENT_ENCODING)
            .iter()
            .any(|v| !v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"identity"))
}

/// A body read for the policies: decoded, and the budget it holds.
#[derive(Debug)]
pub struct Buffered {
    pub bytes: Bytes,
    pub held: Reservation,
}

/// Read the whole body (at most `cap` bytes as sent, and at most `cap`
/// decoded), holding it against `budget`, undo its `Content-Encoding` and
/// fix `headers` to describe the decoded bytes (no `Content-Encoding`, the
/// decoded `Content-Length`). Strict JSON is [`check_json`]'s, apart.
pub async fn read<B>(
    body: &mut B,
    declared: Option<u64>,
    headers: &mut HeaderMap,
    cap: usize,
    budget: &Arc<BodyBudget>,
) -> Result<Buffered, Refusal>
where
    B: Body<Data = Bytes> + Unpin,
{
    // Refuse an unknown coding before reading anything.
    let codings = request_decode::codings(headers.get_all(header::CONTENT_ENCODING).iter())
        .map_err(decode_refusal)?;
    let (raw, held) = budget::collect(body, declared, cap, budget)
        .await
        .map_err(collect_refusal)?;
    let (bytes, held) = decode(raw, held, codings, cap).await?;
    headers.remove(header::CONTENT_ENCODING);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    Ok(Buffered { bytes, held })
}

/// Inflate `raw` (held by `held`) under `cap`, growing `held` before each
/// allocation of output; afterwards `held` covers the decoded bytes only.
async fn decode(
    raw: Bytes,
    mut held: Reservation,
    codings: Vec<request_decode::Coding>,
    cap: usize,
) -> Result<(Bytes, Reservation), Refusal> {
    if codings.is_empty() {
        return Ok((raw, held));
    }
    let (decoded, mut held) = tokio::task::spawn_blocking(move || {
        let r = request_decode::decode_metered(&raw, &codings, cap, &mut |n| held.grow(n as u64));
        (r, held)
    })
    .await
    .map_err(|_| Refusal::new(500, "", "decoding the request body failed"))?;
    let decoded = decoded.map_err(decode_refusal)?;
    // The compressed bytes are gone; the decoded ones stay until the request ends.
    held.shrink_to(decoded.len() as u64);
    Ok((Bytes::from(decoded), held))
}

/// Hold JSON kinds to strict JSON.
/// Phase 3's checks on a body in hand, before any body policy sees it: strict
/// JSON for the kinds that carry JSON, then `model` and `stream` into the
/// request context. The gateway and `sluice plugin run` both call this, so
/// a plugin on the workbench sees what it would see in the gateway.
pub fn admit(ctx: &mut policy::RequestContext, bytes: &[u8]) -> Result<(), Refusal> {
    check_json(ctx.kind, bytes)?;
    peek(ctx, bytes);
    Ok(())
}

/// `model` and `stream` from a body already checked as strict JSON.
pub fn peek(ctx: &mut policy::RequestContext, bytes: &[u8]) {
    #[derive(serde::Deserialize)]
    struct Peek {
        model: Option<String>,
        #[serde(default)]
        stream: bool,
    }
    if let Ok(p) = serde_json::from_slice::<Peek>(bytes) {
        ctx.model = p.model;
        ctx.streaming = p.stream;
    }
}

pub fn check_json(kind: policy::AiKind, bytes: &[u8]) -> Result<(), Refusal> {
    if carries_json(kind) && !bytes.is_empty() {
        strict_json::check(bytes)
            .map_err(|e| Refusal::new(400, "invalid_request_error", e.to_string()))?;
    }
    Ok(())
}

fn collect_refusal(e: CollectError) -> Refusal {
    match e {
        CollectError::TooLarge => {
            Refusal::new(413, "", "request body too large for the gateway's policies")
        }
        CollectError::OverBudget => Refusal::new(
            503,
            "",
            "the gateway is buffering too many request bodies; retry shortly",
        ),
        CollectError::Read => Refusal::new(400, "", "could not read the request body"),
    }
}

fn decode_refusal(e: DecodeError) -> Refusal {
    let status = match e {
        DecodeError::Unsupported(_) => 415,
        DecodeError::TooLarge(_) => 413,
        DecodeError::Corrupt(_) => 400,
        DecodeError::OverBudget => 503,
    };
    let ty = if matches!(status, 413 | 503) {
        ""
    } else {
        "invalid_request_error"
    };
    Refusal::new(status, ty, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    fn zstd(b: &[u8]) -> Vec<u8> {
        zstd::encode_all(b, 3).unwrap()
    }

    fn encoded(coding: &str, len: usize) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_str(coding).unwrap(),
        );
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        h
    }

    #[test]
    fn which_lengths_the_headers_do_not_tell() {
        assert!(!length_unknown(&HeaderMap::new(), Some(10)));
        assert!(!length_unknown(&HeaderMap::new(), Some(0)));
        assert!(length_unknown(&HeaderMap::new(), None));
        assert!(length_unknown(&encoded("zstd", 10), Some(10)));
        assert!(length_unknown(&encoded("gzip, br", 10), Some(10)));
        assert!(!length_unknown(&encoded("identity", 10), Some(10)));
        assert!(!length_unknown(&encoded("zstd", 0), Some(0)));
    }

    /// The decoded copy is held against the shared budget, not only the
    /// compressed bytes that were read.
    #[tokio::test]
    async fn the_decoded_copy_counts_against_the_budget() {
        let plain = vec![b'a'; 4 << 20];
        let z = zstd(&plain);
        assert!(z.len() < 4096);

        // Enough budget: the decoded body is held, the compressed one given back.
        let budget = Arc::new(BodyBudget::new(16 << 20));
        let mut h = encoded("zstd", z.len());
        let got = read(
            &mut Full::new(Bytes::from(z.clone())),
            Some(z.len() as u64),
            &mut h,
            32 << 20,
            &budget,
        )
        .await
        .unwrap();
        assert_eq!(got.bytes.len(), 4 << 20);
        assert_eq!(got.held.bytes(), 4 << 20);
        assert_eq!(budget.used(), 4 << 20);
        assert_eq!(h.get(header::CONTENT_ENCODING), None);
        assert_eq!(h[header::CONTENT_LENGTH], (4u64 << 20).to_string());
        drop(got);
        assert_eq!(budget.used(), 0);

        // A budget that holds the compressed bytes but not what they inflate
        // to: 503 (retry later), and nothing stays reserved.
        let budget = Arc::new(BodyBudget::new(1 << 20));
        let _other = budget.reserve(1000).unwrap();
        let mut h = encoded("zstd", z.len());
        let err = read(
            &mut Full::new(Bytes::from(z.clone())),
            Some(z.len() as u64),
            &mut h,
            32 << 20,
            &budget,
        )
        .await
        .unwrap_err();
        assert_eq!(err.status, 503, "{err:?}");
        assert_eq!(
            budget.used(),
            1000,
            "a refused decode gives back what it took"
        );

        // The per-request cap still answers 413, whatever the budget.
        let budget = Arc::new(BodyBudget::new(64 << 20));
        let mut h = encoded("zstd", z.len());
        let err = read(
            &mut Full::new(Bytes::from(z)),
            None,
            &mut h,
            1 << 20,
            &budget,
        )
        .await
        .unwrap_err();
        assert_eq!(err.status, 413, "{err:?}");
        assert!(
            err.message.contains("exceeds the gateway's limit"),
            "{err:?}"
        );
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test]
    async fn unknown_codings_are_refused_before_reading() {
        let budget = Arc::new(BodyBudget::new(1 << 20));
        let mut h = encoded("compress", 3);
        let err = read(
            &mut Full::new(Bytes::from_static(b"abc")),
            Some(3),
            &mut h,
            1 << 20,
            &budget,
        )
        .await
        .unwrap_err();
        assert_eq!((err.status, err.error_type), (415, "invalid_request_error"));
    }
}
