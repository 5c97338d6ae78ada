//! The real OpenCode CLI (`opencode run`) through translated routes, both
//! ways: its Anthropic provider on a route whose only backend speaks Chat
//! Completions (Messages → Chat), and its OpenAI-compatible provider on a
//! route whose only backend is Anthropic (Chat → Messages). Each: a prompt,
//! and a `bash` tool round trip (OpenCode runs `echo` and sends the output
//! back under the call's id).
//!
//! The CLI comes from npm (`scripts/test` installs it into
//! `target/opencode`); outside CI a missing CLI skips these tests, in CI it
//! fails them. Its model catalogue fetch, autoupdate and default plugins
//! are off, so it needs no network beyond the gateway.

use crate::common::*;
use serde_json::{json, Value};
use sluice_testkit::{FakeUpstream, Gateway, Script};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The `opencode` binary, or `None` (skip) outside CI.
fn opencode_bin() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("SLUICE_OPENCODE").map(PathBuf::from),
        Some(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../target/opencode/node_modules/.bin/opencode"),
        ),
    ];
    let found = candidates.into_iter().flatten().find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "OpenCode is not installed (scripts/test installs it into target/opencode)"
        );
        eprintln!("skipped: OpenCode not installed");
    }
    found
}

/// `/chat` → an OpenAI (Chat) fake, `/ant` → an Anthropic fake; each with
/// a gateway-held key.
fn routes(chat: &FakeUpstream, ant: &FakeUpstream) -> String {
    format!(
        "binds:\n- port: 4060\nroutes:
- name: opencode-on-gpt
  matches:
  - path: {{pathPrefix: /chat}}
  policies:
    urlRewrite: {{path: {{prefix: /}}}}
    backendAuth: {{key: sk-oai-gw}}
  backends:
  - ai: {{name: gpt, provider: {{openAI: {{model: gpt-5}}}}, hostOverride: 'http://{}'}}
- name: opencode-on-claude
  matches:
  - path: {{pathPrefix: /ant}}
  policies:
    urlRewrite: {{path: {{prefix: /}}}}
    backendAuth: {{key: sk-ant-gw}}
  backends:
  - ai: {{name: claude, provider: {{anthropic: {{model: claude-sonnet-4-5}}}}, hostOverride: 'http://{}'}}
",
        chat.addr(),
        ant.addr()
    )
}

/// An OpenCode project config naming the gateway as provider `sluice`,
/// spoken to with the AI SDK package `npm` (bundled with OpenCode).
fn project_config(npm: &str, base_url: &str) -> String {
    json!({
        "$schema": "https://opencode.ai/config.json",
        "autoupdate": false,
        "share": "disabled",
        "permission": {"bash": "allow", "edit": "allow", "webfetch": "deny"},
        "provider": {"sluice": {
            "npm": npm,
            "name": "Sluice",
            "options": {"baseURL": base_url, "apiKey": "sk-opencode-client"},
            "models": {"claude-sonnet-4-5": {"name": "Through Sluice", "tool_call": true}}
        }}
    })
    .to_string()
}

/// Run `opencode run prompt` in a fresh project dir configured by
/// [`project_config`], with a clean environment; returns (exit ok, stdout,
/// stderr).
async fn run_opencode(
    bin: &Path,
    npm: &str,
    base_url: &str,
    prompt: &str,
) -> (bool, String, String) {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("opencode.json"),
        project_config(npm, base_url),
    )
    .unwrap();
    let mut cmd = tokio::process::Command::new(bin);
    // A set title: else OpenCode asks the model for one, concurrently with
    // the turn, and the two requests race for the fake's queued answers.
    cmd.args(["run", "--pure", "--title", "sluice test"])
        .args(["-m", "sluice/claude-sonnet-4-5", prompt])
        .current_dir(work.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("OPENCODE_DISABLE_MODELS_FETCH", "1")
        .env("OPENCODE_DISABLE_AUTOUPDATE", "1")
        .env("OPENCODE_DISABLE_DEFAULT_PLUGINS", "1")
        .env("OPENCODE_DISABLE_LSP_DOWNLOAD", "1")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("opencode did not finish within 120 s")
        .expect("opencode runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

struct Setup {
    bin: PathBuf,
    chat: FakeUpstream,
    ant: FakeUpstream,
    gw: Gateway,
    _dir: tempfile::TempDir,
}

async fn setup() -> Option<Setup> {
    let bin = opencode_bin()?;
    let chat = FakeUpstream::plain().await;
    let ant = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "opencode.yaml", &routes(&chat, &ant));
    let gw = gateway(&[&cfg], &[4060], &[], &[]).await;
    Some(Setup {
        bin,
        chat,
        ant,
        gw,
        _dir: dir,
    })
}

impl Setup {
    /// Run OpenCode through `prefix` with `npm`; assert it succeeded; its
    /// stdout.
    async fn opencode(&self, npm: &str, prefix: &str, prompt: &str) -> String {
        let base = self.gw.url(4060, &format!("{prefix}/v1"));
        let (ok, out, err) = run_opencode(&self.bin, npm, &base, prompt).await;
        assert!(
            ok && !err.contains("Error:"),
            "opencode failed\nstdout: {out}\nstderr: {err}\nlog: {}",
            self.gw.logs()
        );
        out
    }
}

/// Chat chunks calling `bash` (`echo sluice-ok`) with id `call_oc_1`.
fn bash_call_chunks() -> Vec<(Option<String>, String)> {
    let c = |delta: Value, finish: Value| {
        let v = json!({"id": "chatcmpl-oc", "object": "chat.completion.chunk", "created": 1,
            "model": "gpt-5", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        (None, v.to_string())
    };
    vec![
        c(json!({"role": "assistant", "content": null}), Value::Null),
        c(
            json!({"tool_calls": [{"index": 0, "id": "call_oc_1", "type": "function",
                "function": {"name": "bash", "arguments": json!({"command": "echo sluice-ok", "description": "Print a marker"}).to_string()}}]}),
            Value::Null,
        ),
        c(json!({}), json!("tool_calls")),
        (
            None,
            json!({"id": "chatcmpl-oc", "object": "chat.completion.chunk", "created": 1,
                "model": "gpt-5", "choices": [],
                "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}})
            .to_string(),
        ),
        (None, "[DONE]".into()),
    ]
}

/// Anthropic events calling `bash` (`echo sluice-ok`) with id `toolu_oc_1`.
fn bash_use_events() -> Vec<(Option<String>, String)> {
    [
        json!({"type": "message_start", "message": {"id": "msg_oc", "type": "message", "role": "assistant",
            "model": "claude-sonnet-4-5", "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 10, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block":
            {"type": "tool_use", "id": "toolu_oc_1", "name": "bash", "input": {}}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta",
            "partial_json": json!({"command": "echo sluice-ok", "description": "Print a marker"}).to_string()}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
            "usage": {"output_tokens": 12}}),
        json!({"type": "message_stop"}),
    ]
    .into_iter()
    .map(|e| (e["type"].as_str().map(str::to_string), e.to_string()))
    .collect()
}

/// The messages of recorded requests, without the long system prompts and
/// tool lists, for failure messages.
fn brief(sent: &[Value]) -> String {
    let msgs: Vec<Value> = sent.iter().map(|b| b["messages"].clone()).collect();
    let s = serde_json::to_string(&msgs).unwrap();
    s.chars()
        .rev()
        .take(3000)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect()
}

/// Messages → Chat: OpenCode's Anthropic provider, a Chat backend.
#[tokio::test]
async fn translate_opencode_anthropic_provider_on_a_chat_backend() {
    let Some(s) = setup().await else { return };
    const NPM: &str = "@ai-sdk/anthropic";
    s.chat
        .set_script(Script::default().deltas(["Hello from ", "GPT"]));
    let out = s.opencode(NPM, "/chat", "Say hello").await;
    assert!(out.contains("Hello from GPT"), "{out}");
    let reqs = s.chat.requests();
    assert!(!reqs.is_empty());
    for r in &reqs {
        assert_eq!(r.path, "/v1/chat/completions");
        assert_eq!(r.header("authorization"), Some("Bearer sk-oai-gw"));
        assert_eq!(r.json()["model"], "gpt-5");
    }

    s.chat
        .queue_script(Script::default().sse(bash_call_chunks()));
    s.chat
        .queue_script(Script::default().deltas(["It printed ", "sluice-ok."]));
    let before = s.chat.requests().len();
    let out = s
        .opencode(
            NPM,
            "/chat",
            "Run echo sluice-ok and tell me what it printed",
        )
        .await;
    assert!(out.contains("It printed sluice-ok."), "{out}");
    let sent: Vec<Value> = s.chat.requests()[before..]
        .iter()
        .map(|r| r.json())
        .collect();
    let tool = sent
        .iter()
        .flat_map(|b| b["messages"].as_array().cloned().unwrap_or_default())
        .find(|m| m["role"] == "tool" && m["tool_call_id"] == "call_oc_1")
        .unwrap_or_else(|| panic!("no tool message for call_oc_1 in {}", brief(&sent)));
    assert!(tool.to_string().contains("sluice-ok"), "{tool}");
    assert!(
        sent.iter().any(|b| b["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["tool_calls"][0]["id"] == "call_oc_1"))),
        "the call goes back with its id: {}",
        brief(&sent)
    );
}

/// Chat → Messages: OpenCode's OpenAI-compatible provider, an Anthropic
/// backend.
#[tokio::test]
async fn translate_opencode_openai_compatible_provider_on_an_anthropic_backend() {
    let Some(s) = setup().await else { return };
    const NPM: &str = "@ai-sdk/openai-compatible";
    s.ant
        .set_script(Script::default().deltas(["Hello from ", "Claude"]));
    let out = s.opencode(NPM, "/ant", "Say hello").await;
    assert!(out.contains("Hello from Claude"), "{out}");
    let reqs = s.ant.requests();
    assert!(!reqs.is_empty());
    for r in &reqs {
        assert_eq!(r.path_and_query(), "/v1/messages");
        assert_eq!(r.header("x-api-key"), Some("sk-ant-gw"));
        assert_eq!(r.json()["model"], "claude-sonnet-4-5");
    }
    // OpenCode marks cache breakpoints on whole Chat messages; they reach
    // Anthropic on the blocks those messages became.
    let marked = |b: &Value| b["cache_control"]["type"] == "ephemeral";
    let b = reqs[0].json();
    assert!(
        b["system"].as_array().is_some_and(|s| s.iter().any(marked)),
        "{}",
        b["system"]
    );

    s.ant.queue_script(Script::default().sse(bash_use_events()));
    s.ant
        .queue_script(Script::default().deltas(["It printed ", "sluice-ok."]));
    let before = s.ant.requests().len();
    let out = s
        .opencode(
            NPM,
            "/ant",
            "Run echo sluice-ok and tell me what it printed",
        )
        .await;
    assert!(out.contains("It printed sluice-ok."), "{out}");
    let sent: Vec<Value> = s.ant.requests()[before..]
        .iter()
        .map(|r| r.json())
        .collect();
    let blocks: Vec<Value> = sent
        .iter()
        .flat_map(|b| b["messages"].as_array().cloned().unwrap_or_default())
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
        .collect();
    let result = blocks
        .iter()
        .find(|b| b["type"] == "tool_result" && b["tool_use_id"] == "toolu_oc_1")
        .unwrap_or_else(|| panic!("no tool_result for toolu_oc_1 in {}", brief(&sent)));
    assert!(result.to_string().contains("sluice-ok"), "{result}");
    assert!(
        blocks
            .iter()
            .any(|b| b["type"] == "tool_use" && b["id"] == "toolu_oc_1" && b["name"] == "bash"),
        "the call goes back with its id: {}",
        brief(&sent)
    );
}
