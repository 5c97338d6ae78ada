//! The building blocks against the Rust fake Bedrock (`sluice-testkit`):
//! the fake recomputes every signature with the test's keys, so these
//! tests check the signer, the body mapping, the path encoding, the
//! transcoder and the error mapping together, over real HTTP.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use sluice_testkit::upstream::bedrock::BedrockOp;
use sluice_testkit::{BedrockOptions, BedrockScript, FakeBedrock, SseParser};

use super::*;
use crate::config::Secret;

const AKID: &str = "AKIDFAKEBEDROCK";
const SECRET: &str = "fake/secret+key";
const WAIT: Duration = Duration::from_secs(10);

fn creds(secret: &str, token: Option<&str>) -> AwsCredentials {
    AwsCredentials {
        access_key_id: AKID.into(),
        secret_access_key: Secret::new(secret),
        session_token: token.map(Secret::new),
    }
}

fn claude_code_body(stream: bool) -> Vec<u8> {
    json!({
        "model": "claude-sonnet-4-20250514",
        "max_tokens": 1024,
        "stream": stream,
        "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"name": "Bash", "input_schema": {"type": "object"}}],
        "metadata": {"user_id": "u1"}
    })
    .to_string()
    .into_bytes()
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    /// Body chunks as they arrived.
    chunks: Vec<Bytes>,
}

impl Answer {
    fn body(&self) -> Vec<u8> {
        self.chunks.iter().flat_map(|c| c.to_vec()).collect()
    }
}

/// Maps, signs and sends one request the way the provider will.
async fn call(
    fake: &FakeBedrock,
    op: Operation,
    model: &str,
    body: Vec<u8>,
    creds: &AwsCredentials,
) -> Answer {
    let uri = format!("{}{}", fake.url(), op.path(model).unwrap());
    let (mut parts, ()) = Request::post(uri)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .header("user-agent", "sluice-test")
        .body(())
        .unwrap()
        .into_parts();
    sign(
        &mut parts,
        &body,
        creds,
        "us-east-1",
        BEDROCK_SERVICE,
        SystemTime::now(),
    )
    .unwrap();
    let req = Request::from_parts(parts, Full::new(Bytes::from(body)));
    let client = Client::builder(TokioExecutor::new()).build_http();
    let resp = tokio::time::timeout(WAIT, client.request(req))
        .await
        .expect("answer in time")
        .expect("request");
    let (parts, mut incoming) = resp.into_parts();
    let mut chunks = Vec::new();
    while let Some(frame) = tokio::time::timeout(WAIT, incoming.frame())
        .await
        .expect("body in time")
    {
        if let Ok(data) = frame.expect("body frame").into_data() {
            chunks.push(data);
        }
    }
    Answer {
        status: parts.status,
        headers: parts.headers,
        chunks,
    }
}

fn sse_events(bytes: &[u8]) -> Vec<(String, Value)> {
    let mut p = SseParser::new();
    p.push(bytes)
        .into_iter()
        .map(|e| (e.event.clone().unwrap_or_default(), e.json()))
        .collect()
}

#[tokio::test]
async fn invoke_is_signed_mapped_and_answers_anthropic_json() {
    let fake = FakeBedrock::start(AKID, SECRET).await;
    let betas = vec!["interleaved-thinking-2025-05-14".to_string()];
    let mapped = map_messages(&claude_code_body(false), &betas, None).unwrap();
    let a = call(
        &fake,
        Operation::Invoke,
        &mapped.model_id,
        mapped.body,
        &creds(SECRET, None),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body()));
    let rec = fake.wait_for_requests(1, WAIT).await.unwrap().remove(0);
    assert!(rec.signature_ok(), "{:?}", rec.signature);
    assert_eq!(rec.op, BedrockOp::Invoke);
    assert_eq!(rec.model_id.as_deref(), Some("claude-sonnet-4-20250514"));
    assert_eq!(rec.json()["anthropic_beta"], json!(betas));
    assert_eq!(rec.json()["tools"][0]["name"], "Bash");
    let msg: Value = serde_json::from_slice(&a.body()).unwrap();
    assert_eq!(msg["type"], "message");
    assert_eq!(msg["usage"]["cache_read_input_tokens"], 13);
    assert_eq!(msg["usage"]["input_tokens"], 21);
}

#[tokio::test]
async fn arn_model_ids_and_session_tokens_verify() {
    let fake =
        FakeBedrock::start_with(BedrockOptions::new(AKID, SECRET).session_token("tok/en=")).await;
    let arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-x:0";
    let mapped = map_messages(&claude_code_body(false), &[], Some(arn)).unwrap();
    let a = call(
        &fake,
        Operation::Invoke,
        &mapped.model_id,
        mapped.body,
        &creds(SECRET, Some("tok/en=")),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body()));
    let rec = fake.last_request().unwrap();
    assert!(rec.signature_ok(), "{:?}", rec.signature);
    assert_eq!(rec.model_id.as_deref(), Some(arn));
    assert!(
        rec.path.contains("%3A") && rec.path.contains("%2F"),
        "{}",
        rec.path
    );
}

#[tokio::test]
async fn a_wrong_secret_is_refused_and_maps_to_an_anthropic_error() {
    let fake = FakeBedrock::start(AKID, SECRET).await;
    let mapped = map_messages(&claude_code_body(false), &[], None).unwrap();
    let a = call(
        &fake,
        Operation::Invoke,
        &mapped.model_id,
        mapped.body,
        &creds("wrong", None),
    )
    .await;
    assert_eq!(a.status, 403);
    assert!(!fake.last_request().unwrap().signature_ok());
    let m = map_error_answer(a.status, &a.headers, &a.body());
    let v: Value = serde_json::from_slice(&m.body).unwrap();
    assert_eq!(m.status, 403);
    assert_eq!(v["error"]["type"], "authentication_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("signature we calculated"));
}

#[tokio::test]
async fn throttling_maps_to_rate_limit_error() {
    let fake = FakeBedrock::start(AKID, SECRET).await;
    fake.queue_script(BedrockScript::default().throttle());
    let mapped = map_messages(&claude_code_body(true), &[], None).unwrap();
    let a = call(
        &fake,
        Operation::InvokeStream,
        &mapped.model_id,
        mapped.body,
        &creds(SECRET, None),
    )
    .await;
    assert_eq!(a.status, 429);
    let m = map_error_answer(a.status, &a.headers, &a.body());
    let v: Value = serde_json::from_slice(&m.body).unwrap();
    assert_eq!(
        (m.status.as_u16(), v["error"]["type"].as_str()),
        (429, Some("rate_limit_error"))
    );
}

#[tokio::test]
async fn the_stream_transcodes_to_anthropic_sse_event_by_event() {
    let fake = FakeBedrock::start(AKID, SECRET).await;
    fake.set_script(BedrockScript::default().event_delay(Duration::from_millis(20)));
    let mapped = map_messages(&claude_code_body(true), &[], None).unwrap();
    assert!(mapped.stream);
    let a = call(
        &fake,
        Operation::InvokeStream,
        &mapped.model_id,
        mapped.body,
        &creds(SECRET, None),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.headers["content-type"], EVENTSTREAM_CONTENT_TYPE);
    assert!(fake.last_request().unwrap().signature_ok());
    // Nothing is held back: after each chunk, every frame completed so far
    // has produced its event (frame ends read from the frames' preludes).
    let body = a.body();
    let mut frame_ends = Vec::new();
    let mut at = 0;
    while at + 4 <= body.len() {
        at += u32::from_be_bytes(body[at..at + 4].try_into().unwrap()) as usize;
        frame_ends.push(at);
    }
    assert_eq!(frame_ends.len(), 8);
    assert!(a.chunks.len() > 1, "paced frames arrive over several reads");
    let mut t = EventStreamToSse::new();
    let mut sse = Vec::new();
    let mut received = 0;
    for c in &a.chunks {
        sse.extend(t.push(c).unwrap());
        received += c.len();
        let complete = frame_ends.iter().filter(|e| **e <= received).count();
        assert_eq!(sse_events(&sse).len(), complete, "after {received} bytes");
    }
    sse.extend(t.finish().unwrap());
    let events = sse_events(&sse);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    for (name, data) in &events {
        assert_eq!(data["type"], name.as_str());
    }
    assert_eq!(
        events[0].1["message"]["usage"]["cache_read_input_tokens"],
        13
    );
    assert_eq!(events[6].1["usage"]["output_tokens"], 9);
    let text: String = events
        .iter()
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, "Hello from Bedrock.");
    assert_eq!(events[7].1, json!({"type": "message_stop"}));
    let metrics = t.invocation_metrics().unwrap();
    assert_eq!(
        (metrics.input_token_count, metrics.output_token_count),
        (Some(21), Some(9))
    );
}

#[tokio::test]
async fn a_mid_stream_exception_ends_with_an_error_event() {
    let fake = FakeBedrock::start(AKID, SECRET).await;
    fake.set_script(BedrockScript::default().exception_after(
        3,
        "modelStreamErrorException",
        "model broke",
    ));
    let mapped = map_messages(&claude_code_body(true), &[], None).unwrap();
    let a = call(
        &fake,
        Operation::InvokeStream,
        &mapped.model_id,
        mapped.body,
        &creds(SECRET, None),
    )
    .await;
    let mut t = EventStreamToSse::new();
    let mut sse = t.push(&a.body()).unwrap();
    sse.extend(t.finish().unwrap());
    let events = sse_events(&sse);
    assert_eq!(events.len(), 4);
    assert_eq!(events[3].0, "error");
    assert_eq!(
        events[3].1,
        json!({"type": "error", "error": {"type": "api_error", "message": "model broke"}})
    );
}

#[tokio::test]
async fn count_tokens_round_trip() {
    let fake = FakeBedrock::start(AKID, SECRET).await;
    fake.set_script(BedrockScript::default().count_tokens(77));
    let body = json!({"model": "claude-x", "messages": [{"role": "user", "content": "Hello"}]});
    let mapped = map_count_tokens(body.to_string().as_bytes(), &[], None).unwrap();
    let a = call(
        &fake,
        Operation::CountTokens,
        &mapped.model_id,
        mapped.body,
        &creds(SECRET, None),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body()));
    let rec = fake.last_request().unwrap();
    assert!(rec.signature_ok());
    assert_eq!(rec.op, BedrockOp::CountTokens);
    assert_eq!(rec.anthropic_body()["messages"], body["messages"]);
    assert_eq!(
        count_tokens_answer(&a.body()).unwrap(),
        br#"{"input_tokens":77}"#.to_vec()
    );
}

#[tokio::test]
async fn an_unmapped_body_is_refused_like_bedrock_does() {
    // The fake enforces Bedrock's own body rules, so a mapping bug shows.
    let fake = FakeBedrock::start(AKID, SECRET).await;
    let a = call(
        &fake,
        Operation::Invoke,
        "claude-x",
        claude_code_body(false),
        &creds(SECRET, None),
    )
    .await;
    assert_eq!(a.status, 400);
    let m = map_error_answer(a.status, &a.headers, &a.body());
    let v: Value = serde_json::from_slice(&m.body).unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn claude_code_betas_are_filtered_to_what_bedrock_accepts() {
    let fake = FakeBedrock::start(AKID, SECRET).await;
    fake.set_script(BedrockScript::default().only_betas(BEDROCK_BETAS.iter().copied()));
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "anthropic-beta",
        "claude-code-20250219,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14"
            .parse()
            .unwrap(),
    );
    let all = anthropic_betas(&headers);
    // Passed through unfiltered, Bedrock refuses the request.
    let raw = map_messages(&claude_code_body(true), &all, None).unwrap();
    let a = call(
        &fake,
        Operation::InvokeStream,
        &raw.model_id,
        raw.body,
        &creds(SECRET, None),
    )
    .await;
    assert_eq!(a.status, 400, "{}", String::from_utf8_lossy(&a.body()));
    assert!(String::from_utf8_lossy(&a.body()).contains("invalid beta flag"));
    let (kept, dropped) = supported_betas(&all, BEDROCK_BETAS);
    assert_eq!(dropped.len(), 2);
    let ok = map_messages(&claude_code_body(true), &kept, None).unwrap();
    let a = call(
        &fake,
        Operation::InvokeStream,
        &ok.model_id,
        ok.body,
        &creds(SECRET, None),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body()));
    assert_eq!(
        fake.last_request().unwrap().json()["anthropic_beta"],
        json!(["interleaved-thinking-2025-05-14"])
    );
}
