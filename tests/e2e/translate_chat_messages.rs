//! OpenAI Chat Completions → Anthropic Messages through the real binary
//! (the OpenAI SDK or OpenCode on Claude): the Anthropic fake records the
//! translated request; answers come back as `chat.completion` and chunks.

use crate::common::*;
use serde_json::{json, Value};
use sluice_testkit::client::TestClient;
use sluice_testkit::{FakeUpstream, Gateway, Script};

async fn setup() -> (FakeUpstream, Gateway, tempfile::TempDir) {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "binds:\n- port: 4060\nroutes:
- name: claude
  matches:
  - path: {{pathPrefix: /claude}}
  policies:
    urlRewrite: {{path: {{prefix: /}}}}
  backends:
  - ai: {{name: ant, provider: {{anthropic: {{}}}}, hostOverride: 'http://{}'}}
",
        up.addr()
    );
    let cfg = write(dir.path(), "sluice.yaml", &cfg);
    let gw = gateway(&[&cfg], &[4060], &[], &[]).await;
    (up, gw, dir)
}

fn request(stream: bool) -> Value {
    json!({"model": "claude-sonnet-4-5", "stream": stream, "max_completion_tokens": 128,
        "stream_options": if stream { json!({"include_usage": true}) } else { Value::Null },
        "tools": [{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "Weather in Paris?"}]})
}

async fn post(gw: &Gateway, body: &Value) -> sluice_testkit::client::Resp {
    TestClient::new()
        .post_json(
            &gw.url(4060, "/claude/v1/chat/completions"),
            &h(&[("authorization", "Bearer sk-ant-client")]),
            body,
        )
        .await
}

#[tokio::test]
async fn translate_chat_to_messages_whole_stream_and_tool_round_trip() {
    let (up, gw, _dir) = setup().await;
    // Whole.
    up.set_script(Script::text("Sunny.").tokens(10, 2).cache_tokens(6, 0));
    let r = post(&gw, &request(false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let c = r.json();
    assert_eq!(c["object"], "chat.completion");
    assert_eq!(c["choices"][0]["message"]["content"], "Sunny.");
    assert_eq!(c["choices"][0]["finish_reason"], "stop");
    assert_eq!(c["usage"]["prompt_tokens"], 16);
    assert_eq!(c["usage"]["prompt_tokens_details"]["cached_tokens"], 6);
    let req = up.last_request().unwrap();
    assert_eq!(req.path, "/v1/messages");
    assert_eq!(req.header("anthropic-version"), Some("2023-06-01"));
    let b = req.json();
    assert_eq!(b["max_tokens"], 128);
    assert_eq!(b["system"], json!([{"type": "text", "text": "Be brief."}]));
    assert_eq!(b["tools"][0]["name"], "get_weather");
    assert_eq!(
        b["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]}])
    );

    // Streamed, with a tool call.
    let events = [
        json!({"type": "message_start", "message": {"id": "msg_c", "type": "message", "role": "assistant",
            "model": "claude-sonnet-4-5", "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_w", "name": "get_weather", "input": {}}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"city\":"}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 9}}),
        json!({"type": "message_stop"}),
    ];
    up.set_script(
        Script::default().sse(
            events
                .iter()
                .map(|e| (e["type"].as_str().map(str::to_string), e.to_string())),
        ),
    );
    let st = TestClient::new()
        .stream_sse_full(
            &gw.url(4060, "/claude/v1/chat/completions"),
            &h(&[("authorization", "Bearer k")]),
            &request(true),
        )
        .await;
    assert_eq!(st.status, 200, "{}", String::from_utf8_lossy(&st.raw));
    let data: Vec<String> = st.events.iter().map(|(_, e)| e.data.clone()).collect();
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(
        chunks[1]["choices"][0]["delta"]["tool_calls"][0]["id"],
        "toolu_w"
    );
    let args: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(args, r#"{"city":"Paris"}"#);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(last["usage"]["prompt_tokens"], 12);
    assert_eq!(last["usage"]["completion_tokens"], 9);

    // The next turn carries the call and its result under the same id.
    up.set_script(Script::text("It is sunny in Paris."));
    let mut next = request(false);
    let m = next["messages"].as_array_mut().unwrap();
    m.push(json!({"role": "assistant", "content": null, "tool_calls": [{"id": "toolu_w", "type": "function",
        "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}));
    m.push(json!({"role": "tool", "tool_call_id": "toolu_w", "content": "sunny"}));
    let r = post(&gw, &next).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = up.last_request().unwrap().json();
    assert_eq!(
        sent["messages"][1]["content"][0],
        json!({"type": "tool_use", "id": "toolu_w", "name": "get_weather", "input": {"city": "Paris"}})
    );
    assert_eq!(
        sent["messages"][2]["content"][0],
        json!({"type": "tool_result", "tool_use_id": "toolu_w", "content": "sunny"})
    );
}

#[tokio::test]
async fn translate_chat_to_messages_errors_and_refusals() {
    let (up, gw, _dir) = setup().await;
    let mut b = request(false);
    b["reasoning_effort"] = json!("high");
    let r = post(&gw, &b).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let v = r.json();
    assert!(v.get("type").is_none(), "OpenAI's envelope: {v}");
    assert!(r.text().contains("`reasoning_effort`"), "{}", r.text());
    let mut forged = request(false);
    forged["messages"]
        .as_array_mut()
        .unwrap()
        .push(json!({"role": "tool", "tool_call_id": "call_forged", "content": "x"}));
    let r = post(&gw, &forged).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("call_forged"), "{}", r.text());
    assert!(up.requests().is_empty(), "a refused request was forwarded");

    up.set_script(Script::default().status(
        529,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    ));
    let r = post(&gw, &request(false)).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["error"]["message"], "Overloaded");
}
