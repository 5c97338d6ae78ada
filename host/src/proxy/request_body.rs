//! Phase 3's reading of the request body: the one reading every body policy
//! and the provider share.
//!
//! When a body hook will run, the body is buffered (up to the host's cap),
//! its `Content-Encoding` undone ([`super::request_decode`]) and, on AI routes
//! whose kind carries JSON, checked as strict JSON ([`super::strict_json`]).
//! The policies get the decoded bytes and headers that describe them (no
//! `Content-Encoding`, the decoded `Content-Length`), and so does the upstream.

use super::request_decode::{self, DecodeError};
use super::strict_json;
use crate::policy;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

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

/// Read, decode and check the body for the policies; fix `headers` to match.
pub async fn read_for_policies(
    body: Incoming,
    headers: &mut HeaderMap,
    kind: policy::AiKind,
    cap: usize,
) -> Result<Bytes, Refusal> {
    let raw = match Limited::new(body, cap).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            return Err(
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    Refusal::new(413, "", "request body too large for the gateway's policies")
                } else {
                    Refusal::new(400, "", "could not read the request body")
                },
            )
        }
    };
    decode_for_policies(raw, headers, kind, cap).await
}

/// The second half of [`read_for_policies`], for a body already buffered
/// (by the pipeline, against the global body budget): decode it, fix the
/// headers, and hold JSON kinds to strict JSON.
pub async fn decode_for_policies(
    raw: Bytes,
    headers: &mut HeaderMap,
    kind: policy::AiKind,
    cap: usize,
) -> Result<Bytes, Refusal> {
    // Read first (bounded), so a refused client still sees the answer.
    let codings = request_decode::codings(headers.get_all(header::CONTENT_ENCODING).iter())
        .map_err(decode_refusal)?;
    let bytes = if codings.is_empty() {
        raw
    } else {
        let decoded =
            tokio::task::spawn_blocking(move || request_decode::decode(&raw, &codings, cap))
                .await
                .map_err(|_| Refusal::new(500, "", "decoding the request body failed"))?;
        Bytes::from(decoded.map_err(decode_refusal)?)
    };
    headers.remove(header::CONTENT_ENCODING);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    if carries_json(kind) && !bytes.is_empty() {
        strict_json::check(&bytes)
            .map_err(|e| Refusal::new(400, "invalid_request_error", e.to_string()))?;
    }
    Ok(bytes)
}

fn decode_refusal(e: DecodeError) -> Refusal {
    let status = match e {
        DecodeError::Unsupported(_) => 415,
        DecodeError::TooLarge(_) => 413,
        DecodeError::Corrupt(_) => 400,
    };
    let ty = if status == 413 {
        ""
    } else {
        "invalid_request_error"
    };
    Refusal::new(status, ty, e.to_string())
}
