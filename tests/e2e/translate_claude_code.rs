//! The real Claude Code CLI on a route whose only backend speaks OpenAI
//! Chat Completions: its Anthropic requests are translated to Chat and the
//! fake's Chat answers back. A prompt, and a `Read` tool round trip (the
//! call's id comes back as the `tool` message's `tool_call_id`).

use crate::claude_code_real::{claude_bin, run_claude};
use crate::common::*;
use serde_json::{json, Value};
use sluice_testkit::{FakeUpstream, Script};

fn chat_route(up: &FakeUpstream) -> String {
    format!(
        "binds:\n- port: 4060\nroutes:
- name: claude-on-gpt
  matches:
  - path: {{pathPrefix: /claude}}
  policies:
    urlRewrite: {{path: {{prefix: /}}}}
    backendAuth: {{key: sk-oai-test}}
  backends:
  - ai: {{name: gpt, provider: {{openAI: {{model: gpt-5}}}}, hostOverride: 'http://{}'}}
",
        up.addr()
    )
}

/// Chat chunks that call `Read` on `path` with id `call_sluice_1`.
fn read_call_chunks(path: &str) -> Vec<(Option<String>, String)> {
    let c = |delta: Value, finish: Value| {
        let v = json!({"id": "chatcmpl-cc", "object": "chat.completion.chunk", "created": 1,
            "model": "gpt-5", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        (None, v.to_string())
    };
    vec![
        c(json!({"role": "assistant", "content": null}), Value::Null),
        c(
            json!({"tool_calls": [{"index": 0, "id": "call_sluice_1", "type": "function",
                "function": {"name": "Read", "arguments": json!({"file_path": path}).to_string()}}]}),
            Value::Null,
        ),
        c(json!({}), json!("tool_calls")),
        (
            None,
            json!({"id": "chatcmpl-cc", "object": "chat.completion.chunk", "created": 1,
                "model": "gpt-5", "choices": [],
                "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}})
            .to_string(),
        ),
        (None, "[DONE]".into()),
    ]
}

/// The `tool` message answering `call_sluice_1` in a Chat request, if any.
fn tool_message(body: &Value) -> Option<String> {
    body["messages"].as_array()?.iter().find_map(|m| {
        (m["role"] == "tool" && m["tool_call_id"] == "call_sluice_1").then(|| m.to_string())
    })
}

#[tokio::test]
async fn translate_claude_code_on_a_chat_completions_backend() {
    let Some(bin) = claude_bin() else { return };
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "cc.yaml", &chat_route(&up));
    let gw = gateway(&[&cfg], &[4060], &[], &[]).await;
    let base = gw.url(4060, "/claude");
    let work = tempfile::tempdir().unwrap();

    // A prompt.
    up.set_script(Script::default().deltas(["Hello from ", "GPT"]));
    let (ok, out, err) = run_claude(&bin, &base, work.path(), "Say hello", "Read").await;
    assert!(
        ok,
        "claude failed\nstdout: {out}\nstderr: {err}\nlog: {}",
        gw.logs()
    );
    assert!(out.contains("Hello from GPT"), "{out}");
    let reqs = up.requests();
    assert!(!reqs.is_empty());
    for r in &reqs {
        assert_eq!(r.path, "/v1/chat/completions");
        assert_eq!(r.header("authorization"), Some("Bearer sk-oai-test"));
        assert_eq!(r.json()["model"], "gpt-5");
    }

    // A tool-use round trip: Read the note, then answer with its content.
    std::fs::write(work.path().join("note.txt"), "sluice-secret-word: damson\n").unwrap();
    let path = work.path().join("note.txt").display().to_string();
    up.queue_script(Script::default().sse(read_call_chunks(&path)));
    up.queue_script(Script::default().deltas(["The word is damson."]));
    let before = up.requests().len();
    let (ok, out, err) = run_claude(
        &bin,
        &base,
        work.path(),
        "Read note.txt and tell me the word",
        "Read",
    )
    .await;
    assert!(
        ok,
        "claude failed\nstdout: {out}\nstderr: {err}\nlog: {}",
        gw.logs()
    );
    assert!(out.contains("damson"), "{out}");
    let sent: Vec<Value> = up.requests()[before..].iter().map(|r| r.json()).collect();
    let result = sent
        .iter()
        .find_map(tool_message)
        .unwrap_or_else(|| panic!("no tool message for call_sluice_1 in {sent:?}"));
    assert!(result.contains("damson"), "{result}");
    // The assistant turn before it carries the call with the same id.
    assert!(
        sent.iter()
            .any(|b| b["messages"].as_array().is_some_and(|m| m
                .iter()
                .any(|m| m["tool_calls"][0]["id"] == "call_sluice_1"))),
        "{sent:?}"
    );
}
