//! The official SDKs parse translated answers with their own accumulators:
//! Python `anthropic` (`messages.stream(...).get_final_message()`) on a
//! Chat Completions backend, and Python `openai`
//! (`responses.stream(...).get_final_response()`, and a chat stream with
//! parallel tool calls) on an Anthropic backend.
//!
//! The SDKs live in a venv at `target/pyenv` (`python3 -m venv target/pyenv
//! && target/pyenv/bin/pip install anthropic openai`); without it the test
//! is skipped with the reason printed, outside CI; in CI (`CI` set, as
//! `.ci/run` does) it fails, since `scripts/test` installs them.

use crate::common::*;
use serde_json::{json, Value};
use sluice_testkit::{FakeUpstream, Script};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn python() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pyenv/bin/python");
    let ok = p.exists()
        && std::process::Command::new(&p)
            .args(["-c", "import anthropic, openai"])
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "the Python anthropic and openai SDKs are not installed in target/pyenv \
             (scripts/test installs them)"
        );
        eprintln!(
            "skipped: the Python anthropic and openai SDKs are not installed in target/pyenv"
        );
    }
    ok.then_some(p)
}

const SCRIPT: &str = r#"
import json, sys, anthropic, openai
base = sys.argv[1]
tools = [{"name": "Read", "description": "read", "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}}}]
a = anthropic.Anthropic(base_url=base + "/gpt", api_key="k", max_retries=0)
with a.messages.stream(model="gpt-5", max_tokens=64, tools=tools,
                       messages=[{"role": "user", "content": "read a.txt"}]) as s:
    m = s.get_final_message()
print(json.dumps({"anthropic_stream": m.model_dump(mode="json")}))
m = a.messages.create(model="gpt-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}])
print(json.dumps({"anthropic_whole": m.model_dump(mode="json")}))
o = openai.OpenAI(base_url=base + "/claude/v1", api_key="k", max_retries=0)
with o.responses.stream(model="gpt-5-codex", input="list files",
                        tools=[{"type": "function", "name": "shell", "parameters": {"type": "object"}}]) as s:
    r = s.get_final_response()
print(json.dumps({"responses_stream": r.model_dump(mode="json")}))
with o.chat.completions.stream(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "weather?"}],
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
        stream_options={"include_usage": True}) as s:
    c = s.get_final_completion()
print(json.dumps({"chat_stream": c.model_dump(mode="json")}))
"#;

fn chat_tool_chunks() -> Vec<(Option<String>, String)> {
    let c = |delta: Value, finish: Value| {
        let v = json!({"id": "chatcmpl-sdk", "object": "chat.completion.chunk", "created": 1,
            "model": "gpt-5", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        (None, v.to_string())
    };
    vec![
        c(json!({"role": "assistant", "content": ""}), Value::Null),
        c(json!({"content": "Reading."}), Value::Null),
        c(
            json!({"tool_calls": [{"index": 0, "id": "call_sdk", "type": "function",
                "function": {"name": "Read", "arguments": "{\"file_"}}]}),
            Value::Null,
        ),
        c(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "path\":\"a.txt\"}"}}]}),
            Value::Null,
        ),
        c(json!({}), json!("tool_calls")),
        (
            None,
            json!({"id": "chatcmpl-sdk", "object": "chat.completion.chunk", "created": 1,
                "model": "gpt-5", "choices": [],
                "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}})
            .to_string(),
        ),
        (None, "[DONE]".into()),
    ]
}

fn anthropic_events() -> Vec<(Option<String>, String)> {
    [
        json!({"type": "message_start", "message": {"id": "msg_sdk", "type": "message", "role": "assistant",
            "model": "claude-sonnet-4-5", "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 5, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "ls it"}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "S=="}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Sure."}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_sdk", "name": "shell", "input": {}}}),
        json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"cmd\":\"ls\"}"}}),
        json!({"type": "content_block_stop", "index": 2}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 8}}),
        json!({"type": "message_stop"}),
    ]
    .into_iter()
    .map(|e| (e["type"].as_str().map(str::to_string), e.to_string()))
    .collect()
}

/// Anthropic events: text, then two parallel `get_weather` calls.
fn anthropic_tool_events() -> Vec<(Option<String>, String)> {
    let mut v = vec![
        json!({"type": "message_start", "message": {"id": "msg_chat", "type": "message", "role": "assistant",
            "model": "claude-sonnet-4-5", "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 6, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Checking."}}),
        json!({"type": "content_block_stop", "index": 0}),
    ];
    for (i, city) in ["Paris", "Oslo"].iter().enumerate() {
        v.push(json!({"type": "content_block_start", "index": i + 1, "content_block":
            {"type": "tool_use", "id": format!("toolu_{city}"), "name": "get_weather", "input": {}}}));
        v.push(
            json!({"type": "content_block_delta", "index": i + 1, "delta":
            {"type": "input_json_delta", "partial_json": json!({"city": city}).to_string()}}),
        );
        v.push(json!({"type": "content_block_stop", "index": i + 1}));
    }
    v.push(
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
        "usage": {"output_tokens": 11}}),
    );
    v.push(json!({"type": "message_stop"}));
    v.into_iter()
        .map(|e| (e["type"].as_str().map(str::to_string), e.to_string()))
        .collect()
}

#[tokio::test]
async fn translate_sdk_accumulators_parse_translated_answers() {
    let Some(py) = python() else { return };
    let oai = FakeUpstream::plain().await;
    let ant = FakeUpstream::plain().await;
    oai.queue_script(Script::default().sse(chat_tool_chunks()));
    oai.set_script(Script::text("Hello."));
    ant.queue_script(Script::default().sse(anthropic_events()));
    ant.set_script(Script::default().sse(anthropic_tool_events()));
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "binds:\n- port: 4060\nroutes:
- name: gpt
  matches:
  - path: {{pathPrefix: /gpt}}
  policies:
    urlRewrite: {{path: {{prefix: /}}}}
  backends:
  - ai: {{name: oai, provider: {{openAI: {{}}}}, hostOverride: 'http://{}'}}
- name: claude
  matches:
  - path: {{pathPrefix: /claude}}
  policies:
    urlRewrite: {{path: {{prefix: /}}}}
  backends:
  - ai: {{name: ant, provider: {{anthropic: {{}}}}, hostOverride: 'http://{}'}}
",
        oai.addr(),
        ant.addr()
    );
    let cfg = write(dir.path(), "sdk.yaml", &cfg);
    let gw = gateway(&[&cfg], &[4060], &[], &[]).await;
    let base = gw.url(4060, "");
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(&py)
            .args(["-c", SCRIPT, base.trim_end_matches('/')])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the SDK script did not finish within 60 s")
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "SDK script failed\nstdout: {stdout}\nstderr: {}\nlog: {}",
        String::from_utf8_lossy(&out.stderr),
        gw.logs()
    );
    let mut got = serde_json::Map::new();
    for line in stdout.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        got.extend(v.as_object().unwrap().clone());
    }
    let m = &got["anthropic_stream"];
    assert_eq!(
        m["content"][0],
        json!({"type": "text", "text": "Reading.", "citations": null})
    );
    assert_eq!(m["content"][1]["type"], "tool_use");
    assert_eq!(m["content"][1]["id"], "call_sdk");
    assert_eq!(m["content"][1]["input"], json!({"file_path": "a.txt"}));
    assert_eq!(m["stop_reason"], "tool_use");
    assert_eq!(m["usage"]["output_tokens"], 4);
    assert_eq!(got["anthropic_whole"]["content"][0]["text"], "Hello.");
    let r = &got["responses_stream"];
    assert_eq!(r["status"], "completed");
    let o = r["output"].as_array().unwrap();
    assert_eq!(o[0]["type"], "reasoning");
    assert!(o[0]["encrypted_content"]
        .as_str()
        .unwrap()
        .starts_with("sluice.anthropic.v1:"));
    assert_eq!(o[1]["content"][0]["text"], "Sure.");
    assert_eq!(o[2]["call_id"], "toolu_sdk");
    assert_eq!(o[2]["arguments"], r#"{"cmd":"ls"}"#);
    let c = &got["chat_stream"]["choices"][0];
    assert_eq!(c["message"]["content"], "Checking.");
    assert_eq!(c["finish_reason"], "tool_calls");
    let calls = c["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["id"], "toolu_Paris");
    assert_eq!(calls[1]["function"]["arguments"], r#"{"city":"Oslo"}"#);
    assert_eq!(got["chat_stream"]["usage"]["completion_tokens"], 11);
}
