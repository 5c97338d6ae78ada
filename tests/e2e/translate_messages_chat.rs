//! Anthropic Messages → OpenAI Chat Completions through the real binary:
//! an Anthropic client on a route whose only backend speaks Chat. The fake
//! records what arrived, so each test checks the translated request as
//! well as the translated answer (whole, streamed, errors, refusals).

use crate::common::*;
use serde_json::{json, Value};
use sluice_testkit::client::{SseStream, TestClient};
use sluice_testkit::{FakeUpstream, Gateway, Script};

struct Setup {
    up: FakeUpstream,
    gw: Gateway,
    _dir: tempfile::TempDir,
}

/// `/gpt` (refuses untranslatable fields), `/gpt-drop` (drops them) and
/// `/gpt-masked` (the output filter on), all to one OpenAI fake.
async fn setup() -> Setup {
    let up = FakeUpstream::plain().await;
    let addr = up.addr();
    let dir = tempfile::tempdir().unwrap();
    let route = |name: &str, extra: &str| {
        format!(
            "- name: {name}
  matches:
  - path: {{pathPrefix: /{name}}}
  policies:
    urlRewrite: {{path: {{prefix: /}}}}
{extra}  backends:
  - ai: {{name: {name}-oai, provider: {{openAI: {{}}}}, hostOverride: 'http://{addr}'}}
"
        )
    };
    let cfg = format!(
        "binds:\n- port: 4060\nroutes:\n{}{}{}",
        route("gpt", ""),
        route(
            "gpt-drop",
            "    ai:\n      translation: {unsupportedFields: drop}\n"
        ),
        route("gpt-masked", ""),
    );
    let cfg = write(dir.path(), "sluice.yaml", &cfg);
    let layer = write(
        dir.path(),
        "mask.yaml",
        "- name: mask-gpt
  matches:
  - path: {pathPrefix: /gpt-masked}
  policies:
    outputFilter:
      maskPatterns: [email]
",
    );
    let gw = gateway(&[&cfg, &layer], &[4060], &[], &[]).await;
    Setup { up, gw, _dir: dir }
}

fn headers() -> Vec<(String, String)> {
    h(&[
        ("anthropic-version", "2023-06-01"),
        ("anthropic-beta", "interleaved-thinking-2025-05-14"),
        ("x-api-key", "sk-client"),
    ])
}

fn request(stream: bool) -> Value {
    json!({
        "model": "gpt-5",
        "max_tokens": 256,
        "stream": stream,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "temperature": 0.2,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "user-7"},
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "tools": [{"name": "Read", "description": "Read a file",
                   "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}},
                                    "required": ["file_path"]}}],
        "tool_choice": {"type": "auto"},
        "messages": [{"role": "user", "content": "hello"}]
    })
}

impl Setup {
    fn url(&self, path: &str) -> String {
        self.gw.url(4060, path)
    }

    async fn post(&self, path: &str, body: &Value) -> sluice_testkit::client::Resp {
        TestClient::new()
            .post_json(&self.url(path), &headers(), body)
            .await
    }

    async fn stream(&self, path: &str, body: &Value) -> SseStream {
        TestClient::new()
            .stream_sse_full(&self.url(path), &headers(), body)
            .await
    }

    /// The last request the fake received, as JSON.
    fn sent(&self) -> Value {
        self.up
            .last_request()
            .expect("a request reached the fake")
            .json()
    }
}

fn chunk(v: Value) -> (Option<String>, String) {
    (None, v.to_string())
}

fn text_of(s: &SseStream) -> String {
    s.events
        .iter()
        .map(|(_, e)| e.json())
        .filter(|v| v["delta"]["type"] == "text_delta")
        .map(|v| v["delta"]["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn translate_chat_whole_answer_and_translated_request() {
    let s = setup().await;
    s.up.set_script(Script::text("Hi there.").tokens(30, 5).cache_tokens(20, 0));
    let r = s.post("/gpt/v1/messages?beta=true", &request(false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let m = r.json();
    assert_eq!(m["type"], "message");
    assert_eq!(m["role"], "assistant");
    assert_eq!(m["content"], json!([{"type": "text", "text": "Hi there."}]));
    assert_eq!(m["stop_reason"], "end_turn");
    // Cached tokens: OpenAI counts them in `prompt_tokens`, Anthropic apart.
    assert_eq!(m["usage"]["input_tokens"], 30);
    assert_eq!(m["usage"]["cache_read_input_tokens"], 20);
    assert_eq!(m["usage"]["output_tokens"], 5);

    let req = s.up.last_request().unwrap();
    assert_eq!(req.path_and_query(), "/v1/chat/completions");
    assert!(req.header("anthropic-version").is_none());
    assert!(req.header("anthropic-beta").is_none());
    assert!(
        req.header("x-api-key").is_none(),
        "an Anthropic credential went to OpenAI"
    );
    let b = req.json();
    assert_eq!(b["model"], "gpt-5");
    assert_eq!(b["max_completion_tokens"], 256);
    assert_eq!(b["temperature"], 0.2);
    assert_eq!(b["stop"], json!(["END"]));
    assert_eq!(b["user"], "user-7");
    assert_eq!(b["reasoning_effort"], "low");
    assert_eq!(b["tool_choice"], "auto");
    assert_eq!(b["tools"][0]["function"]["name"], "Read");
    assert_eq!(
        b["tools"][0]["function"]["parameters"]["required"],
        json!(["file_path"])
    );
    assert_eq!(
        b["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}])
    );
    assert!(b.get("stream_options").is_none() && b.get("max_tokens").is_none());
}

#[tokio::test]
async fn translate_chat_streamed_answer_is_anthropic_events() {
    let s = setup().await;
    s.up.set_script(
        Script::default()
            .deltas(["Hel", "lo ", "world"])
            .tokens(12, 3)
            .cache_tokens(8, 0),
    );
    let st = s.stream("/gpt/v1/messages", &request(true)).await;
    assert_eq!(st.status, 200, "{}", String::from_utf8_lossy(&st.raw));
    assert!(st.error.is_none(), "{:?}", st.error);
    assert!(st
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    assert_eq!(
        st.names(),
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
    assert_eq!(text_of(&st), "Hello world");
    let delta = st.events[6].1.json();
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["input_tokens"], 12);
    assert_eq!(delta["usage"]["cache_read_input_tokens"], 8);
    assert_eq!(delta["usage"]["output_tokens"], 3);
    let b = s.sent();
    assert_eq!(b["stream"], true);
    assert_eq!(b["stream_options"], json!({"include_usage": true}));
}

/// A streamed tool call becomes a `tool_use` block with the call's id; the
/// next turn's `tool_result` reaches the backend as a `tool` message with
/// that id, after the assistant's `tool_calls` carrying it.
#[tokio::test]
async fn translate_chat_tool_round_trip_keeps_ids() {
    let s = setup().await;
    let c = |delta: Value, finish: Value| {
        chunk(
            json!({"id": "chatcmpl-t", "object": "chat.completion.chunk", "created": 1,
            "model": "gpt-5", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
        )
    };
    s.up.set_script(Script::default().sse([
        c(json!({"role": "assistant", "content": null}), Value::Null),
        c(
            json!({"tool_calls": [{"index": 0, "id": "call_abc", "type": "function",
                "function": {"name": "Read", "arguments": ""}}]}),
            Value::Null,
        ),
        c(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"file_path\":"}}]}),
            Value::Null,
        ),
        c(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"a.txt\"}"}}]}),
            Value::Null,
        ),
        c(json!({}), json!("tool_calls")),
        chunk(
            json!({"id": "chatcmpl-t", "object": "chat.completion.chunk", "created": 1,
            "model": "gpt-5", "choices": [],
            "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}}),
        ),
        (None, "[DONE]".to_string()),
    ]));
    let st = s.stream("/gpt/v1/messages", &request(true)).await;
    assert_eq!(st.status, 200, "{}", String::from_utf8_lossy(&st.raw));
    let ev: Vec<Value> = st.events.iter().map(|(_, e)| e.json()).collect();
    let start = ev
        .iter()
        .find(|e| e["type"] == "content_block_start")
        .unwrap();
    assert_eq!(start["content_block"]["type"], "tool_use");
    assert_eq!(start["content_block"]["id"], "call_abc");
    assert_eq!(start["content_block"]["name"], "Read");
    let args: String = ev
        .iter()
        .filter(|e| e["delta"]["type"] == "input_json_delta")
        .map(|e| e["delta"]["partial_json"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"file_path": "a.txt"})
    );
    let md = ev.iter().find(|e| e["type"] == "message_delta").unwrap();
    assert_eq!(md["delta"]["stop_reason"], "tool_use");

    // The next turn, with the result.
    s.up.set_script(Script::text("It says hi."));
    let mut next = request(false);
    next["messages"] = json!([
        {"role": "user", "content": "read a.txt"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "call_abc", "name": "Read", "input": {"file_path": "a.txt"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_abc", "content": [{"type": "text", "text": "hi"}]}]}
    ]);
    let r = s.post("/gpt/v1/messages", &next).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["content"][0]["text"], "It says hi.");
    let m = s.sent()["messages"].clone();
    assert_eq!(m[2]["tool_calls"][0]["id"], "call_abc");
    assert_eq!(
        m[2]["tool_calls"][0]["function"]["arguments"],
        r#"{"file_path":"a.txt"}"#
    );
    assert_eq!(
        m[3],
        json!({"role": "tool", "tool_call_id": "call_abc", "content": "hi"})
    );

    // A whole answer with a tool call.
    s.up.set_script(Script::default().status(
        200,
        json!({"id": "chatcmpl-w", "object": "chat.completion", "model": "gpt-5",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_w1", "type": "function", "function": {"name": "Read", "arguments": "{\"file_path\":\"b\"}"}},
                    {"id": "call_w2", "type": "function", "function": {"name": "Read", "arguments": "{\"file_path\":\"c\"}"}}]}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2}})
        .to_string(),
    ));
    let r = s.post("/gpt/v1/messages", &request(false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let m = r.json();
    assert_eq!(m["stop_reason"], "tool_use");
    assert_eq!(m["content"][0]["id"], "call_w1");
    assert_eq!(m["content"][1]["input"], json!({"file_path": "c"}));
}

/// Thinking asked for becomes `reasoning_effort`; thinking blocks of an
/// earlier turn (signed for Anthropic only) are not sent to a Chat model.
#[tokio::test]
async fn translate_chat_thinking_maps_to_reasoning_effort() {
    let s = setup().await;
    let mut body = request(false);
    body["thinking"] = json!({"type": "enabled", "budget_tokens": 20000});
    body["messages"] = json!([
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig=="},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": "hello"}]},
        {"role": "user", "content": "again"}
    ]);
    let r = s.post("/gpt/v1/messages", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let b = s.sent();
    assert_eq!(b["reasoning_effort"], "high");
    assert_eq!(
        b["messages"][2],
        json!({"role": "assistant", "content": "hello"})
    );
    assert!(!b.to_string().contains("sig=="));
}

#[tokio::test]
async fn translate_chat_errors_take_anthropic_shape_and_status() {
    let s = setup().await;
    s.up.set_script(
        Script::default()
            .status(
                429,
                r#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#,
            )
            .header("retry-after", "7"),
    );
    let r = s.post("/gpt/v1/messages", &request(false)).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("7"));
    let v = r.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert_eq!(v["error"]["message"], "Rate limit reached");

    // A 429 took the backend out of rotation: a fresh gateway per status.
    let s = setup().await;
    s.up.set_script(Script::default().status(
        503,
        r#"{"error":{"message":"overloaded","type":"server_error","param":null,"code":null}}"#,
    ));
    let r = s.post("/gpt/v1/messages", &request(true)).await;
    assert_eq!(r.status, 529, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "overloaded_error");

    let s = setup().await;
    s.up.set_script(Script::default().status(
        401,
        r#"{"error":{"message":"Incorrect API key","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
    ));
    let r = s.post("/gpt/v1/messages", &request(false)).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["type"], "authentication_error");
}

/// A field Chat has no equivalent for is refused by name and never sent;
/// on a route that drops such fields, the answer names what it dropped.
#[tokio::test]
async fn translate_chat_unsupported_fields_refused_or_dropped() {
    let s = setup().await;
    let mut body = request(false);
    body["top_k"] = json!(5);
    let r = s.post("/gpt/v1/messages", &body).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("`top_k`"),
        "{v}"
    );
    let mut server_tool = request(false);
    server_tool["tools"] = json!([{"type": "web_search_20250305", "name": "web_search"}]);
    let r = s.post("/gpt/v1/messages", &server_tool).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("web_search_20250305"), "{}", r.text());
    assert!(
        s.up.requests().is_empty(),
        "a refused request was forwarded"
    );

    let r = s.post("/gpt-drop/v1/messages", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("sluice-dropped-fields"), Some("top_k"));
    assert!(s.sent().get("top_k").is_none());
    let r = s.post("/gpt-drop/v1/messages", &request(false)).await;
    assert_eq!(r.status, 200);
    assert!(r.header("sluice-dropped-fields").is_none());
}

/// Hostile input: a tool result answering no call, a body with a duplicate
/// key (strict JSON still holds on a translated route), and token counting,
/// which an OpenAI backend cannot do.
#[tokio::test]
async fn translate_chat_hostile_input_is_refused_before_the_backend() {
    let s = setup().await;
    let mut body = request(false);
    body["messages"] = json!([{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_forged", "content": "x"}]}]);
    let r = s.post("/gpt/v1/messages", &body).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("toolu_forged"), "{}", r.text());

    let dup = br#"{"model":"gpt-5","max_tokens":8,"max_tokens":9,"messages":[{"role":"user","content":"hi"}]}"#;
    let r = TestClient::new()
        .post_bytes(&s.url("/gpt/v1/messages"), &headers(), dup.to_vec())
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["type"], "error");

    let r = s
        .post(
            "/gpt/v1/messages/count_tokens",
            &json!({"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    assert!(
        r.text().contains("token counting is not translated"),
        "{}",
        r.text()
    );
    assert!(
        s.up.requests().is_empty(),
        "a refused request was forwarded"
    );
}

/// Response policies see the translated answer: an email split across two
/// Chat chunks is masked in the Anthropic deltas the client reads.
#[tokio::test]
async fn translate_chat_output_mask_covers_split_translated_deltas() {
    let s = setup().await;
    s.up.set_script(Script::default().deltas(["Mail bob@exam", "ple.com now"]));
    let st = s.stream("/gpt-masked/v1/messages", &request(true)).await;
    assert_eq!(st.status, 200, "{}", String::from_utf8_lossy(&st.raw));
    assert!(st.error.is_none(), "{:?}", st.error);
    let text = text_of(&st);
    assert_eq!(text, "Mail <EMAIL> now");
    let all: String = st.events.iter().map(|(_, e)| e.data.clone()).collect();
    assert!(!all.contains("bob@") && !all.contains("ple.com"), "{all}");
    assert_eq!(st.names().last().unwrap(), "message_stop");
    // The prompt went upstream as sent.
    assert_eq!(s.sent()["messages"][1]["content"], "hello");
}
