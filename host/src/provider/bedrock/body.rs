//! The client's Anthropic Messages body rewritten for Bedrock, and Bedrock's
//! CountTokens answer rewritten back.
//!
//! Bedrock's InvokeModel takes the Anthropic Messages body with three
//! differences, the same ones Anthropic's own Bedrock SDK client applies:
//! the model is in the URL (not the body), streaming is chosen by the
//! operation (not `stream`), and the API version and beta flags travel in
//! the body (`anthropic_version: "bedrock-2023-05-31"`, `anthropic_beta`)
//! instead of headers. Every other top-level member is passed through
//! byte for byte (tools, thinking, cache_control, metadata, ...): values
//! are kept as raw JSON and never re-encoded, so numbers and escapes the
//! gateway does not understand cannot change meaning.

use std::borrow::Cow;

use base64::Engine as _;
use http::HeaderMap;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{validate_model, ConfigError};

/// The `anthropic_version` Bedrock requires in the body.
pub const BEDROCK_ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";

/// Why a body cannot be mapped. All but `BadCountAnswer` are the client's
/// mistake (answer 400 in Anthropic's shape); `BadCountAnswer` is
/// Bedrock's (answer 502).
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body is not a JSON object: {0}")]
    NotAnObject(#[source] serde_json::Error),
    #[error("request body names no model and the bedrock provider sets none")]
    NoModel,
    #[error("request body's model is not a string")]
    ModelNotString,
    #[error("anthropic_beta in the request body is not an array of strings")]
    BadBetaField,
    #[error(transparent)]
    Model(#[from] ConfigError),
    #[error("Bedrock's count-tokens answer is not {{\"inputTokens\": N}}: {0}")]
    BadCountAnswer(#[source] serde_json::Error),
}

/// A body ready for Bedrock and the model id for the URL (see
/// [`super::Operation::path`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    pub model_id: String,
    /// The client's `stream` flag (pick the operation with it).
    pub stream: bool,
    pub body: Vec<u8>,
}

type Members = IndexMap<String, Box<RawValue>>;

/// The `anthropic-beta` values of a client request: every occurrence of
/// the header, split on commas, trimmed, empties and repeats dropped.
pub fn anthropic_betas(headers: &HeaderMap) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in headers.get_all("anthropic-beta") {
        let Ok(v) = v.to_str() else { continue };
        for b in v.split(',').map(str::trim).filter(|b| !b.is_empty()) {
            if !out.iter().any(|o| o == b) {
                out.push(b.to_string());
            }
        }
    }
    out
}

/// The beta flags Bedrock's InvokeModel accepts for Anthropic models, from
/// AWS's model-parameters page. Why a list: Bedrock answers 400 `invalid
/// beta flag` to any other value, and Claude Code talking to an
/// Anthropic-compatible endpoint sends first-party-only flags
/// (`claude-code-20250219`, `oauth-2025-04-20`,
/// `fine-grained-tool-streaming-2025-05-14`, ...), so passing them through
/// would fail every request.
pub const BEDROCK_BETAS: &[&str] = &[
    "computer-use-2024-10-22",
    "computer-use-2025-01-24",
    "token-efficient-tools-2025-02-19",
    "interleaved-thinking-2025-05-14",
    "output-128k-2025-02-19",
    "dev-full-thinking-2025-05-14",
    "context-1m-2025-08-07",
    "context-management-2025-06-27",
    "effort-2025-11-24",
    "tool-search-tool-2025-10-19",
    "tool-examples-2025-10-29",
];

/// Splits `betas` into those in `allowed` (e.g. [`BEDROCK_BETAS`]) and the
/// dropped rest, order kept, for [`map_messages`] / [`map_count_tokens`]
/// (log the dropped ones; they are not secrets).
pub fn supported_betas(betas: &[String], allowed: &[&str]) -> (Vec<String>, Vec<String>) {
    betas
        .iter()
        .cloned()
        .partition(|b| allowed.contains(&b.as_str()))
}

fn parse(body: &[u8]) -> Result<Members, BodyError> {
    serde_json::from_slice(body).map_err(BodyError::NotAnObject)
}

fn raw(v: impl Serialize) -> Box<RawValue> {
    // Serializing a string, a number or a list of strings cannot fail.
    serde_json::value::to_raw_value(&v).expect("plain JSON value")
}

/// Removes `model` and picks the model id: the provider's configured
/// `model` wins over the body's.
fn take_model(m: &mut Members, configured: Option<&str>) -> Result<String, BodyError> {
    let from_body = match m.shift_remove("model") {
        Some(v) => {
            Some(serde_json::from_str::<String>(v.get()).map_err(|_| BodyError::ModelNotString)?)
        }
        None => None,
    };
    let model = configured
        .map(str::to_string)
        .or(from_body)
        .ok_or(BodyError::NoModel)?;
    validate_model(&model)?;
    Ok(model)
}

/// Merges the header betas into the body's own `anthropic_beta` (kept
/// first); absent when there are none.
fn merge_betas(m: &mut Members, betas: &[String]) -> Result<(), BodyError> {
    let mut all: Vec<String> = match m.get("anthropic_beta") {
        Some(v) => serde_json::from_str(v.get()).map_err(|_| BodyError::BadBetaField)?,
        None => Vec::new(),
    };
    for b in betas {
        if !all.contains(b) {
            all.push(b.clone());
        }
    }
    if !all.is_empty() {
        m.insert("anthropic_beta".to_string(), raw(all));
    }
    Ok(())
}

fn to_vec(m: &Members) -> Vec<u8> {
    serde_json::to_vec(m).expect("raw JSON members serialize")
}

/// The InvokeModel / InvokeModelWithResponseStream body for a client's
/// `/v1/messages` body: `model` and `stream` dropped,
/// `anthropic_version` set (a client's own value is replaced: Bedrock
/// accepts only its own), the `anthropic-beta` header values (from
/// [`anthropic_betas`]) added to `anthropic_beta`.
pub fn map_messages(
    client_body: &[u8],
    betas: &[String],
    configured_model: Option<&str>,
) -> Result<Mapped, BodyError> {
    let mut m = parse(client_body)?;
    let model_id = take_model(&mut m, configured_model)?;
    let stream = m
        .shift_remove("stream")
        .is_some_and(|v| v.get().trim() == "true");
    m.insert(
        "anthropic_version".to_string(),
        raw(BEDROCK_ANTHROPIC_VERSION),
    );
    merge_betas(&mut m, betas)?;
    Ok(Mapped {
        model_id,
        stream,
        body: to_vec(&m),
    })
}

#[derive(Serialize)]
struct CountTokensRequest {
    input: CountTokensInput,
}

#[derive(Serialize)]
struct CountTokensInput {
    #[serde(rename = "invokeModel")]
    invoke_model: InvokeModelTokens,
}

#[derive(Serialize)]
struct InvokeModelTokens {
    /// The InvokeModel body, base64: the API types it as a blob, which AWS's
    /// JSON protocol carries base64-encoded.
    body: String,
}

/// The CountTokens body for a client's `/v1/messages/count_tokens` body:
/// the same rewrite as [`map_messages`], plus `max_tokens: 1` when absent
/// (Bedrock validates the wrapped body as an InvokeModel request, which
/// requires it, while Anthropic's count_tokens does not take it; it does
/// not change the count), wrapped as
/// `{"input": {"invokeModel": {"body": "<base64 of that JSON>"}}}`.
pub fn map_count_tokens(
    client_body: &[u8],
    betas: &[String],
    configured_model: Option<&str>,
) -> Result<Mapped, BodyError> {
    let mut m = parse(client_body)?;
    let model_id = take_model(&mut m, configured_model)?;
    m.shift_remove("stream");
    if !m.contains_key("max_tokens") {
        m.insert("max_tokens".to_string(), raw(1));
    }
    m.insert(
        "anthropic_version".to_string(),
        raw(BEDROCK_ANTHROPIC_VERSION),
    );
    merge_betas(&mut m, betas)?;
    let inner = base64::engine::general_purpose::STANDARD.encode(to_vec(&m));
    let body = serde_json::to_vec(&CountTokensRequest {
        input: CountTokensInput {
            invoke_model: InvokeModelTokens { body: inner },
        },
    })
    .expect("count-tokens body serializes");
    Ok(Mapped {
        model_id,
        stream: false,
        body,
    })
}

#[derive(Deserialize)]
struct CountTokensAnswer {
    #[serde(rename = "inputTokens")]
    input_tokens: u64,
}

/// Bedrock's CountTokens answer `{"inputTokens": N}` as Anthropic's
/// `{"input_tokens": N}`.
pub fn count_tokens_answer(bedrock_body: &[u8]) -> Result<Vec<u8>, BodyError> {
    let a: CountTokensAnswer =
        serde_json::from_slice(bedrock_body).map_err(BodyError::BadCountAnswer)?;
    Ok(format!("{{\"input_tokens\":{}}}", a.input_tokens).into_bytes())
}

/// The member Bedrock adds to the last streamed event (and that the
/// client must not see, since it is not part of Anthropic's format).
pub const INVOCATION_METRICS: &str = "amazon-bedrock-invocationMetrics";

/// `json` without a top-level `amazon-bedrock-invocationMetrics` member;
/// borrowed unchanged (byte for byte) when it has none. Also returns the
/// removed member's raw JSON.
pub fn strip_invocation_metrics(json: &[u8]) -> (Cow<'_, [u8]>, Option<Box<RawValue>>) {
    if !contains(json, INVOCATION_METRICS.as_bytes()) {
        return (Cow::Borrowed(json), None);
    }
    let Ok(mut m) = serde_json::from_slice::<Members>(json) else {
        return (Cow::Borrowed(json), None);
    };
    match m.shift_remove(INVOCATION_METRICS) {
        Some(metrics) => (Cow::Owned(to_vec(&m)), Some(metrics)),
        None => (Cow::Borrowed(json), None),
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn claude_code_body() -> Vec<u8> {
        // Claude Code's shape: system blocks with cache_control, tools,
        // thinking, metadata, and numbers that must not be re-encoded.
        br#"{"model":"claude-sonnet-4-20250514","max_tokens":32000,"stream":true,
            "system":[{"type":"text","text":"You are Claude Code.","cache_control":{"type":"ephemeral"}}],
            "messages":[{"role":"user","content":[{"type":"text","text":"hi \u00e9","cache_control":{"type":"ephemeral","ttl":"1h"}}]}],
            "tools":[{"name":"Bash","description":"run","input_schema":{"type":"object","properties":{"command":{"type":"string"}}}}],
            "thinking":{"type":"enabled","budget_tokens":31999},
            "temperature":1.0000000000000000001,
            "metadata":{"user_id":"user_abc"}}"#
            .to_vec()
    }

    #[test]
    fn messages_body_is_rewritten_and_everything_else_kept() {
        let betas = vec!["interleaved-thinking-2025-05-14".to_string()];
        let m = map_messages(&claude_code_body(), &betas, None).unwrap();
        assert_eq!(m.model_id, "claude-sonnet-4-20250514");
        assert!(m.stream);
        let text = String::from_utf8(m.body.clone()).unwrap();
        // Raw values pass through untouched (escape and long float kept).
        assert!(text.contains(r#""hi \u00e9""#), "{text}");
        assert!(text.contains("1.0000000000000000001"), "{text}");
        let got: Value = serde_json::from_slice(&m.body).unwrap();
        let orig: Value = serde_json::from_slice(&claude_code_body()).unwrap();
        assert!(got.get("model").is_none() && got.get("stream").is_none());
        assert_eq!(got["anthropic_version"], "bedrock-2023-05-31");
        assert_eq!(
            got["anthropic_beta"],
            json!(["interleaved-thinking-2025-05-14"])
        );
        for k in [
            "max_tokens",
            "system",
            "messages",
            "tools",
            "thinking",
            "metadata",
        ] {
            assert_eq!(got[k], orig[k], "{k}");
        }
    }

    #[test]
    fn configured_model_wins_and_betas_merge() {
        let body = br#"{"model":"claude","anthropic_version":"2023-06-01","anthropic_beta":["a"],"messages":[]}"#;
        let betas = vec!["a".to_string(), "b".to_string()];
        let m = map_messages(body, &betas, Some("us.anthropic.claude-x:0")).unwrap();
        assert_eq!(m.model_id, "us.anthropic.claude-x:0");
        assert!(!m.stream);
        let got: Value = serde_json::from_slice(&m.body).unwrap();
        assert_eq!(got["anthropic_version"], "bedrock-2023-05-31");
        assert_eq!(got["anthropic_beta"], json!(["a", "b"]));
        let no_beta = map_messages(br#"{"model":"m"}"#, &[], None).unwrap();
        assert_eq!(
            no_beta.body,
            br#"{"anthropic_version":"bedrock-2023-05-31"}"#.to_vec()
        );
    }

    #[test]
    fn bad_bodies_are_typed_errors() {
        assert!(matches!(
            map_messages(b"[1]", &[], None),
            Err(BodyError::NotAnObject(_))
        ));
        assert!(matches!(
            map_messages(b"{}", &[], None),
            Err(BodyError::NoModel)
        ));
        assert!(matches!(
            map_messages(br#"{"model":3}"#, &[], None),
            Err(BodyError::ModelNotString)
        ));
        assert!(matches!(
            map_messages(br#"{"model":""}"#, &[], None),
            Err(BodyError::Model(ConfigError::EmptyModel))
        ));
        assert!(matches!(
            map_messages(
                br#"{"model":"m","anthropic_beta":"x"}"#,
                &["y".into()],
                None
            ),
            Err(BodyError::BadBetaField)
        ));
    }

    #[test]
    fn betas_from_repeated_and_comma_separated_headers() {
        let mut h = HeaderMap::new();
        h.append("anthropic-beta", "a, b".parse().unwrap());
        h.append("anthropic-beta", "b,c,".parse().unwrap());
        assert_eq!(anthropic_betas(&h), vec!["a", "b", "c"]);
        assert!(anthropic_betas(&HeaderMap::new()).is_empty());
    }

    #[test]
    fn only_bedrock_betas_are_kept() {
        let all: Vec<String> = [
            "claude-code-20250219",
            "interleaved-thinking-2025-05-14",
            "oauth-2025-04-20",
            "context-1m-2025-08-07",
        ]
        .map(String::from)
        .to_vec();
        let (kept, dropped) = supported_betas(&all, BEDROCK_BETAS);
        assert_eq!(
            kept,
            ["interleaved-thinking-2025-05-14", "context-1m-2025-08-07"]
        );
        assert_eq!(dropped, ["claude-code-20250219", "oauth-2025-04-20"]);
    }

    #[test]
    fn count_tokens_both_ways() {
        let body = br#"{"model":"claude-x","messages":[{"role":"user","content":"Hello"}]}"#;
        let m = map_count_tokens(body, &["b1".into()], None).unwrap();
        assert_eq!(m.model_id, "claude-x");
        let outer: Value = serde_json::from_slice(&m.body).unwrap();
        let b64 = outer["input"]["invokeModel"]["body"].as_str().unwrap();
        let inner: Value = serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            inner,
            json!({"messages":[{"role":"user","content":"Hello"}], "max_tokens": 1,
                   "anthropic_version":"bedrock-2023-05-31", "anthropic_beta":["b1"]})
        );
        assert_eq!(outer.as_object().unwrap().len(), 1);
        assert_eq!(
            count_tokens_answer(br#"{"inputTokens": 42}"#).unwrap(),
            br#"{"input_tokens":42}"#.to_vec()
        );
        assert!(matches!(
            count_tokens_answer(b"{}"),
            Err(BodyError::BadCountAnswer(_))
        ));
    }

    #[test]
    fn invocation_metrics_are_stripped_and_returned() {
        let ev = br#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":5,"outputTokenCount":2}}"#;
        let (out, metrics) = strip_invocation_metrics(ev);
        assert_eq!(&*out, br#"{"type":"message_stop"}"#);
        assert_eq!(
            metrics.unwrap().get(),
            r#"{"inputTokenCount":5,"outputTokenCount":2}"#
        );
        let plain = br#"{"type":"ping"}"#;
        let (out, metrics) = strip_invocation_metrics(plain);
        assert!(matches!(out, Cow::Borrowed(_)) && metrics.is_none());
    }
}
