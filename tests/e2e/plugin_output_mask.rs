//! The `output-mask` plugin end to end: the guide's `config/output-filter.yaml`
//! layer (verbatim) on top of a Claude route, plus a Codex layer, against a
//! plain-HTTP fake provider. PII the provider streams, even split across
//! deltas, reaches the client masked, and the streams still end the way
//! Claude Code (`message_stop`) and Codex (`response.completed`) need.

use crate::common::*;
use serde_json::{json, Value};
use sluice_testkit::client::bodies::{
    self, claude_code_headers, claude_code_request_with, codex_headers, codex_request_with,
};
use sluice_testkit::client::{SseStream, TestClient};
use sluice_testkit::{FakeUpstream, Gateway, Script};

/// The guide's layer only covers `/claude`; this one adds `/codex`.
const CODEX_LAYER: &str = r#"
- name: filter-output-codex
  matches:
  - path:
      pathPrefix: /codex
  policies:
    outputFilter:
      maskPatterns:
      - email
      - phone
      - ssn
"#;

struct Setup {
    up: FakeUpstream,
    gw: Gateway,
    _dir: tempfile::TempDir,
}

async fn setup(script: Script) -> Setup {
    let up = FakeUpstream::plain().await;
    up.set_script(script);
    let dir = tempfile::tempdir().unwrap();
    let r = serving(dir.path(), up.addr());
    let codex = write(dir.path(), "codex-layer.yaml", CODEX_LAYER);
    let gw = gateway(
        &[&r, &codex, &config("output-filter.yaml")],
        &[4060],
        &[],
        &[],
    )
    .await;
    Setup { up, gw, _dir: dir }
}

/// The raw PII the scripts plant; none of it may reach a client.
const RAW: &[&str] = &[
    "bob@", "exam", "ple.com", "555-123", "123-4567", "4567", "123-45", "6789",
];

fn assert_no_raw_pii(s: &SseStream) {
    let all: String = s.events.iter().map(|(_, e)| e.data.clone()).collect();
    for raw in RAW {
        assert!(
            !all.contains(raw),
            "raw PII {raw:?} reached the client: {all}"
        );
    }
}

fn anthropic_text(s: &SseStream) -> String {
    s.events
        .iter()
        .map(|(_, e)| e.json())
        .filter(|v| v["type"] == "content_block_delta" && v["delta"]["type"] == "text_delta")
        .map(|v| v["delta"]["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn guide_layer_masks_pii_split_across_claude_deltas() {
    let s =
        setup(Script::text("").deltas(["Mail bob@exam", "ple.com or call 555-123-4567", " now"]))
            .await;
    let mut headers = claude_code_headers();
    headers.push(("x-api-key".into(), "client-key".into()));
    let url =
        s.gw.url(4060, &format!("/claude{}", bodies::CLAUDE_CODE_PATH));
    let stream = TestClient::new()
        .stream_sse_full(
            &url,
            &headers,
            &claude_code_request_with("Who do I contact?"),
        )
        .await;
    assert_eq!(
        stream.status,
        200,
        "{}",
        String::from_utf8_lossy(&stream.raw)
    );
    assert!(stream.error.is_none(), "{:?}", stream.error);

    let text = anthropic_text(&stream);
    assert_eq!(text, "Mail <EMAIL> or call <PHONE> now");
    assert!(text.contains("<EMAIL>") && text.contains("<PHONE>"));
    assert_no_raw_pii(&stream);

    // The stream keeps the shape Claude Code needs, ending with message_stop.
    let names = stream.names();
    assert_eq!(
        &names[..2],
        ["message_start", "content_block_start"],
        "{names:?}"
    );
    assert_eq!(
        &names[names.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"],
        "{names:?}"
    );
    assert!(names[2..names.len() - 3]
        .iter()
        .all(|n| n == "content_block_delta"));
    // Usage and ids pass untouched.
    let start = stream.events[0].1.json();
    assert!(start["message"]["id"]
        .as_str()
        .unwrap()
        .starts_with("msg_test_"));
    let delta = &stream.events[names.len() - 2].1.json();
    assert_eq!(delta["usage"]["output_tokens"], 7);

    // Only responses are masked: the prompt went upstream as sent.
    let req = s.up.last_request().unwrap();
    assert_eq!(req.path_and_query(), "/v1/messages?beta=true");
    assert!(req.body_text().contains("Who do I contact?"));
}

#[tokio::test]
async fn json_response_text_is_masked_and_stays_valid() {
    let s = setup(Script::text(
        "Reach bob@example.com or (555) 123-4567; SSN 123-45-6789. Version 1.2.3 on 2024-01-15.",
    ))
    .await;
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": false,
        "messages": [{"role": "user", "content": "hi"}]});
    let r = TestClient::new()
        .post_json(
            &s.gw.url(4060, "/claude/v1/messages"),
            &h(&[("x-api-key", "k"), ("anthropic-version", "2023-06-01")]),
            &body,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.decoded_body()).expect("valid JSON");
    assert_eq!(
        v["content"][0]["text"],
        "Reach <EMAIL> or <PHONE>; SSN <SSN>. Version 1.2.3 on 2024-01-15."
    );
    assert_eq!(v["type"], "message");
    assert_eq!(v["usage"]["input_tokens"], 11);
    assert_eq!(v["usage"]["output_tokens"], 7);
    assert!(v["id"].as_str().unwrap().starts_with("msg_test_"));
    if let Some(len) = r.header("content-length") {
        assert_eq!(
            len,
            r.body.len().to_string(),
            "content-length follows the rewrite"
        );
    }
    let text = r.text();
    assert!(!text.contains("bob@") && !text.contains("123-4567") && !text.contains("6789"));

    // Upstream errors pass unchanged, even if they quote PII.
    let err = r#"{"type":"error","error":{"type":"invalid_request_error","message":"bob@example.com is not allowed"}}"#;
    s.up.set_script(Script::default().status(400, err));
    let r = TestClient::new()
        .post_json(
            &s.gw.url(4060, "/claude/v1/messages"),
            &h(&[("x-api-key", "k")]),
            &body,
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.text(), err);
}

#[tokio::test]
async fn codex_responses_stream_is_masked_and_completes() {
    let s = setup(Script::text("").deltas([
        "Your SSN 123-4",
        "5-6789 and mail bob@exam",
        "ple.com or 555-12",
        "3-4567.",
    ]))
    .await;
    let want = "Your SSN <SSN> and mail <EMAIL> or <PHONE>.";
    let mut headers = codex_headers();
    headers.push(("authorization".into(), "Bearer client-key".into()));
    let stream = TestClient::new()
        .stream_sse_full(
            &s.gw.url(4060, "/codex/v1/responses"),
            &headers,
            &codex_request_with("what are my details?"),
        )
        .await;
    assert_eq!(
        stream.status,
        200,
        "{}",
        String::from_utf8_lossy(&stream.raw)
    );
    assert!(stream.error.is_none(), "{:?}", stream.error);
    assert_no_raw_pii(&stream);

    let names = stream.names();
    assert_eq!(names.last().map(String::as_str), Some("response.completed"));
    let deltas: String = stream
        .events
        .iter()
        .filter(|(_, e)| e.event.as_deref() == Some("response.output_text.delta"))
        .map(|(_, e)| e.json()["delta"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(deltas, want);
    // Every delta comes before the text is declared done.
    let done = names
        .iter()
        .position(|n| n == "response.output_text.done")
        .unwrap();
    assert!(names[done..]
        .iter()
        .all(|n| n != "response.output_text.delta"));
    let ev = |name: &str| {
        stream
            .events
            .iter()
            .find(|(_, e)| e.event.as_deref() == Some(name))
            .map(|(_, e)| e.json())
            .unwrap()
    };
    assert_eq!(ev("response.output_text.done")["text"], want);
    assert_eq!(ev("response.content_part.done")["part"]["text"], want);
    assert_eq!(
        ev("response.output_item.done")["item"]["content"][0]["text"],
        want
    );
    let completed = ev("response.completed");
    assert_eq!(
        completed["response"]["output"][0]["content"][0]["text"],
        want
    );
    assert_eq!(completed["response"]["usage"]["output_tokens"], 7);
}

#[tokio::test]
async fn openai_chat_stream_is_masked_and_ends_with_done() {
    let s = setup(Script::text("").deltas(["Mail bob@exam", "ple.com", " today"])).await;
    let body = json!({"model": "gpt-5", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "hi"}]});
    let stream = TestClient::new()
        .stream_sse_full(
            &s.gw.url(4060, "/codex/v1/chat/completions"),
            &h(&[("authorization", "Bearer k")]),
            &body,
        )
        .await;
    assert_eq!(stream.status, 200);
    assert_no_raw_pii(&stream);
    assert_eq!(stream.events.last().unwrap().1.data, "[DONE]");
    let text: String = stream
        .events
        .iter()
        .filter(|(_, e)| e.data != "[DONE]")
        .flat_map(|(_, e)| e.json()["choices"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["delta"]["content"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, "Mail <EMAIL> today");
    let usage = &stream.events[stream.events.len() - 2].1.json();
    assert_eq!(usage["usage"]["completion_tokens"], 7);
}
