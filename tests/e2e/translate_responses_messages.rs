//! OpenAI Responses → Anthropic Messages through the real binary (Codex on
//! Claude): a Responses client on a route whose only backend speaks
//! Messages. The Anthropic fake records the translated request; thinking
//! travels through the client as a `reasoning` item and comes back on the
//! next turn with its signature intact.

use crate::common::*;
use serde_json::{json, Value};
use sluice_testkit::client::{SseStream, TestClient};
use sluice_testkit::{FakeUpstream, Gateway, Script};

struct Setup {
    up: FakeUpstream,
    gw: Gateway,
    _dir: tempfile::TempDir,
}

/// `/claude` (refuses untranslatable fields) and `/claude-drop` (drops
/// them), both to one Anthropic fake with a gateway-held key.
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
    backendAuth: {{key: sk-ant-gw}}
{extra}  backends:
  - ai: {{name: {name}-ant, provider: {{anthropic: {{model: claude-sonnet-4-5}}}}, hostOverride: 'http://{addr}'}}
"
        )
    };
    let cfg = format!(
        "binds:\n- port: 4060\nroutes:\n{}{}",
        route("claude", ""),
        route(
            "claude-drop",
            "    ai:\n      translation: {unsupportedFields: drop}\n"
        ),
    );
    let cfg = write(dir.path(), "sluice.yaml", &cfg);
    let gw = gateway(&[&cfg], &[4060], &[], &[]).await;
    Setup { up, gw, _dir: dir }
}

fn headers() -> Vec<(String, String)> {
    h(&[("authorization", "Bearer sk-codex-client")])
}

fn request(stream: bool) -> Value {
    json!({
        "model": "gpt-5-codex",
        "instructions": "You are a coding agent.",
        "stream": stream,
        "store": false,
        "include": ["reasoning.encrypted_content"],
        "reasoning": {"effort": "low", "summary": "auto"},
        "tool_choice": "auto",
        "parallel_tool_calls": false,
        "tools": [{"type": "function", "name": "shell", "description": "Run a command",
                   "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
                   "strict": false}],
        "input": [{"type": "message", "role": "user",
                   "content": [{"type": "input_text", "text": "list the files"}]}]
    })
}

impl Setup {
    async fn post(&self, path: &str, body: &Value) -> sluice_testkit::client::Resp {
        TestClient::new()
            .post_json(&self.gw.url(4060, path), &headers(), body)
            .await
    }

    async fn stream(&self, path: &str, body: &Value) -> SseStream {
        TestClient::new()
            .stream_sse_full(&self.gw.url(4060, path), &headers(), body)
            .await
    }

    fn sent(&self) -> Value {
        self.up
            .last_request()
            .expect("a request reached the fake")
            .json()
    }
}

/// Anthropic events: thinking (signed), text, then a `shell` tool call.
fn thinking_tool_events() -> Vec<(Option<String>, String)> {
    [
        json!({"type": "message_start", "message": {"id": "msg_x1", "type": "message", "role": "assistant",
            "model": "claude-sonnet-4-5", "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 20, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 0, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "I should "}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "run ls."}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "EqQBCkgIARAB+/sig=="}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Listing."}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_01A", "name": "shell", "input": {}}}),
        json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"command\":"}}),
        json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "\"ls\"}"}}),
        json!({"type": "content_block_stop", "index": 2}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 30}}),
        json!({"type": "message_stop"}),
    ]
    .into_iter()
    .map(|e| (e["type"].as_str().map(str::to_string), e.to_string()))
    .collect()
}

#[tokio::test]
async fn translate_responses_whole_answer_and_translated_request() {
    let s = setup().await;
    s.up.set_script(
        Script::text("Here are the files.")
            .tokens(40, 6)
            .cache_tokens(10, 5),
    );
    let r = s.post("/claude/v1/responses", &request(false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["output"][0]["type"], "message");
    assert_eq!(v["output"][0]["content"][0]["type"], "output_text");
    assert_eq!(v["output"][0]["content"][0]["text"], "Here are the files.");
    // OpenAI's input counts cache reads and writes; its cached are the reads.
    assert_eq!(v["usage"]["input_tokens"], 55);
    assert_eq!(v["usage"]["input_tokens_details"]["cached_tokens"], 10);
    assert_eq!(v["usage"]["output_tokens"], 6);

    let req = s.up.last_request().unwrap();
    assert_eq!(req.path_and_query(), "/v1/messages");
    assert_eq!(req.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(req.header("x-api-key"), Some("sk-ant-gw"));
    assert!(req.header("authorization").is_none());
    let b = req.json();
    assert_eq!(b["model"], "claude-sonnet-4-5");
    assert_eq!(b["max_tokens"], 32000);
    assert_eq!(
        b["thinking"],
        json!({"type": "enabled", "budget_tokens": 2048})
    );
    assert_eq!(
        b["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
    assert_eq!(
        b["system"],
        json!([{"type": "text", "text": "You are a coding agent."}])
    );
    assert_eq!(b["tools"][0]["name"], "shell");
    assert_eq!(
        b["tools"][0]["input_schema"]["properties"]["command"]["type"],
        "string"
    );
    assert_eq!(
        b["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "list the files"}]}])
    );
}

/// A streamed answer with thinking and a tool call, as Responses events;
/// the next turn sends the reasoning item, the call and its output back,
/// and Anthropic gets the thinking block with its exact signature and the
/// tool result under the call's id.
#[tokio::test]
async fn translate_responses_stream_and_thinking_tool_round_trip() {
    let s = setup().await;
    s.up.set_script(Script::default().sse(thinking_tool_events()));
    let st = s.stream("/claude/v1/responses", &request(true)).await;
    assert_eq!(st.status, 200, "{}", String::from_utf8_lossy(&st.raw));
    assert!(st.error.is_none(), "{:?}", st.error);
    let names = st.names();
    assert_eq!(&names[..2], ["response.created", "response.in_progress"]);
    assert_eq!(names.last().unwrap(), "response.completed");
    for want in [
        "response.output_item.added",
        "response.reasoning_summary_text.delta",
        "response.output_text.delta",
        "response.function_call_arguments.delta",
        "response.output_item.done",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    let evs: Vec<Value> = st.events.iter().map(|(_, e)| e.json()).collect();
    let text: String = evs
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text, "Listing.");
    let done = &evs.last().unwrap()["response"];
    assert_eq!(done["usage"]["input_tokens"], 120);
    assert_eq!(done["usage"]["output_tokens"], 30);
    let output = done["output"].as_array().unwrap().clone();
    assert_eq!(output[0]["type"], "reasoning");
    assert_eq!(output[0]["summary"][0]["text"], "I should run ls.");
    assert_eq!(output[2]["type"], "function_call");
    assert_eq!(output[2]["call_id"], "toolu_01A");
    assert_eq!(output[2]["arguments"], r#"{"command":"ls"}"#);

    // The next turn, as Codex sends it: the output items, then the result.
    s.up.set_script(Script::text("Two files."));
    let mut next = request(false);
    let input = next["input"].as_array_mut().unwrap();
    input.extend(output.iter().cloned());
    input.push(
        json!({"type": "function_call_output", "call_id": "toolu_01A", "output": "a.txt\nb.txt"}),
    );
    let r = s.post("/claude/v1/responses", &next).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["output"][0]["content"][0]["text"], "Two files.");
    let m = s.sent()["messages"].clone();
    assert_eq!(m[1]["role"], "assistant");
    assert_eq!(
        m[1]["content"][0],
        json!({"type": "thinking", "thinking": "I should run ls.", "signature": "EqQBCkgIARAB+/sig=="})
    );
    assert_eq!(
        m[1]["content"][1],
        json!({"type": "text", "text": "Listing."})
    );
    assert_eq!(
        m[1]["content"][2],
        json!({"type": "tool_use", "id": "toolu_01A", "name": "shell", "input": {"command": "ls"}})
    );
    assert_eq!(
        m[2],
        json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01A", "content": "a.txt\nb.txt"}]})
    );
}

#[tokio::test]
async fn translate_responses_errors_take_openai_shape_and_status() {
    let s = setup().await;
    s.up.set_script(
        Script::default()
            .status(
                429,
                r#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of requests has exceeded your rate limit"}}"#,
            )
            .header("retry-after", "9"),
    );
    let r = s.post("/claude/v1/responses", &request(false)).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("9"));
    let v = r.json();
    assert!(v.get("type").is_none(), "OpenAI's envelope: {v}");
    assert_eq!(v["error"]["type"], "rate_limit_exceeded");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("rate limit"));

    let s = setup().await;
    s.up.set_script(Script::default().status(
        529,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    ));
    let r = s.post("/claude/v1/responses", &request(true)).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["error"]["message"], "Overloaded");
}

#[tokio::test]
async fn translate_responses_refusals_and_drops() {
    let s = setup().await;
    let mut body = request(false);
    body["previous_response_id"] = json!("resp_123");
    let r = s.post("/claude/v1/responses", &body).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`previous_response_id`"),
        "{v}"
    );
    // Reasoning another backend encrypted cannot be read by Claude.
    let mut foreign = request(false);
    foreign["input"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAAABoOpenAI"}));
    let r = s.post("/claude/v1/responses", &foreign).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("reasoning"), "{}", r.text());
    // A tool output answering no call.
    let mut forged = request(false);
    forged["input"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "function_call_output", "call_id": "call_forged", "output": "x"}));
    let r = s.post("/claude/v1/responses", &forged).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("call_forged"), "{}", r.text());
    assert!(
        s.up.requests().is_empty(),
        "a refused request was forwarded"
    );

    let r = s.post("/claude-drop/v1/responses", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("sluice-dropped-fields"),
        Some("previous_response_id")
    );
    assert!(s.sent().get("previous_response_id").is_none());
}

/// Through Bedrock, Responses are translated to Messages and then signed;
/// the answer's AWS event-stream is turned into Anthropic SSE by the
/// provider, then into Responses events: both transcoders in a row.
#[tokio::test]
async fn translate_responses_through_bedrock_chains_the_transcoders() {
    use sluice_testkit::upstream::bedrock::{BedrockScript, FakeBedrock};
    const AKID: &str = "AKIDSLUICETEST";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let fake = FakeBedrock::start(AKID, SECRET).await;
    fake.set_script(BedrockScript::default().deltas(["Hello ", "from Bedrock"]));
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "binds:\n- port: 4060\nroutes:
- name: codex-bedrock
  matches:
  - path: {{pathPrefix: /codex}}
  policies:
    urlRewrite: {{path: {{prefix: /}}}}
    backendAuth: {{aws: {{accessKeyId: {AKID}, secretAccessKey: '{SECRET}'}}}}
  backends:
  - ai:
      name: bedrock
      provider: {{bedrock: {{region: us-east-1, model: us.anthropic.claude-sonnet-4-5-20250929-v1:0}}}}
      hostOverride: 'http://{}'
",
        fake.addr()
    );
    let cfg = write(dir.path(), "b.yaml", &cfg);
    let gw = gateway(&[&cfg], &[4060], &[], &[]).await;
    let st = TestClient::new()
        .stream_sse_full(
            &gw.url(4060, "/codex/v1/responses"),
            &headers(),
            &request(true),
        )
        .await;
    assert_eq!(st.status, 200, "{}", String::from_utf8_lossy(&st.raw));
    assert!(st.error.is_none(), "{:?}", st.error);
    let evs: Vec<Value> = st.events.iter().map(|(_, e)| e.json()).collect();
    let text: String = evs
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text, "Hello from Bedrock");
    assert_eq!(evs.last().unwrap()["type"], "response.completed");
    let req = fake.last_request().unwrap();
    assert!(req.signature_ok(), "{:?}", req.signature);
    let b = req.json();
    assert_eq!(b["anthropic_version"], "bedrock-2023-05-31");
    assert_eq!(b["messages"][0]["content"][0]["text"], "list the files");
    assert_eq!(b["tools"][0]["name"], "shell");
}
