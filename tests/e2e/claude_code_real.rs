//! The real Claude Code CLI (`claude -p`) through the gateway to the Rust
//! fakes: a Bedrock-provider route, and a two-group failover route whose
//! first group answers 529. A prompt, and a tool-use round trip (Claude
//! Code runs the `Read` tool and sends its result back, ids matching).
//!
//! The CLI comes from npm (`scripts/test` installs it into
//! `target/claude-code`); outside CI a missing CLI skips these tests, in
//! CI it fails them.

use crate::common::*;
use serde_json::{json, Value};
use sluice_testkit::upstream::bedrock::{BedrockScript, FakeBedrock};
use sluice_testkit::{FakeUpstream, Gateway, Script};
use std::path::{Path, PathBuf};
use std::time::Duration;

const AKID: &str = "AKIDSLUICETEST";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// The `claude` binary, or `None` (skip) outside CI.
pub(crate) fn claude_bin() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("SLUICE_CLAUDE_CODE").map(PathBuf::from),
        Some(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../target/claude-code/node_modules/.bin/claude"),
        ),
    ];
    let found = candidates.into_iter().flatten().find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "Claude Code is not installed (scripts/test installs it into target/claude-code)"
        );
        eprintln!("skipped: Claude Code not installed");
    }
    found
}

/// Run `claude -p prompt` against `base_url`, in `cwd`, with a clean
/// environment; returns (exit ok, stdout, stderr).
pub(crate) async fn run_claude(
    bin: &Path,
    base_url: &str,
    cwd: &Path,
    prompt: &str,
    tools: &str,
) -> (bool, String, String) {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args([
        "-p",
        prompt,
        "--output-format",
        "json",
        "--model",
        "claude-sonnet-4-5",
    ])
    .args(["--allowedTools", tools])
    .current_dir(cwd)
    .env_clear()
    .env("PATH", std::env::var("PATH").unwrap_or_default())
    .env("HOME", home.path())
    .env("ANTHROPIC_BASE_URL", base_url)
    .env("ANTHROPIC_API_KEY", "sk-ant-client-test")
    .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
    .env("DISABLE_TELEMETRY", "1")
    .env("DISABLE_AUTOUPDATER", "1")
    .env("DISABLE_ERROR_REPORTING", "1")
    .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("claude did not finish within 120 s")
        .expect("claude runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn bedrock_route(fake: &FakeBedrock) -> String {
    format!(
        "binds:\n- port: 4060\nroutes:
- name: claude-bedrock
  matches:
  - path: {{pathPrefix: /claude}}
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
    )
}

/// A streamed answer that asks to run `Read` on `path`.
fn tool_use_events(path: &str) -> Vec<Value> {
    vec![
        json!({"type": "message_start", "message": {"id": "msg_tool", "type": "message", "role": "assistant",
            "model": "claude-sonnet-4-5", "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 10, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block":
            {"type": "tool_use", "id": "toolu_sluice_1", "name": "Read", "input": {}}}),
        json!({"type": "content_block_delta", "index": 0, "delta":
            {"type": "input_json_delta", "partial_json": json!({"file_path": path}).to_string()}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
            "usage": {"output_tokens": 12}}),
        json!({"type": "message_stop"}),
    ]
}

/// The tool result Claude Code sent back for `toolu_sluice_1`, if any.
fn tool_result(body: &Value) -> Option<String> {
    body["messages"].as_array()?.iter().find_map(|m| {
        m["content"].as_array()?.iter().find_map(|c| {
            (c["type"] == "tool_result" && c["tool_use_id"] == "toolu_sluice_1")
                .then(|| c.to_string())
        })
    })
}

#[tokio::test]
async fn claude_code_prompt_and_tool_use_through_bedrock() {
    let Some(bin) = claude_bin() else { return };
    let fake = FakeBedrock::start(AKID, SECRET).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "cc.yaml", &bedrock_route(&fake));
    let gw = gateway(&[&cfg], &[4060], &[], &[]).await;
    let base = gw.url(4060, "/claude");
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("note.txt"),
        "sluice-secret-word: marmalade\n",
    )
    .unwrap();

    // A prompt.
    fake.set_script(BedrockScript::default().deltas(["Hello from ", "Bedrock"]));
    let (ok, out, err) = run_claude(&bin, &base, work.path(), "Say hello", "Read").await;
    assert!(
        ok,
        "claude failed\nstdout: {out}\nstderr: {err}\nlog: {}",
        gw.logs()
    );
    assert!(out.contains("Hello from Bedrock"), "{out}");
    let reqs = fake.requests();
    assert!(!reqs.is_empty() && reqs.iter().all(|r| r.signature_ok()));

    // A tool-use round trip: Read the note, then answer with its content.
    let path = work.path().join("note.txt").display().to_string();
    // Queued answers go first, in order; the default answers anything else.
    fake.queue_script(BedrockScript::default().events(tool_use_events(&path)));
    fake.queue_script(BedrockScript::default().deltas(["The word is marmalade."]));
    let before = fake.requests().len();
    let (ok, out, err) = run_claude(
        &bin,
        &base,
        work.path(),
        "Read note.txt and tell me the word",
        "Read",
    )
    .await;
    assert!(ok, "claude failed\nstdout: {out}\nstderr: {err}");
    assert!(out.contains("marmalade"), "{out}");
    let sent: Vec<Value> = fake.requests()[before..]
        .iter()
        .map(|r| r.anthropic_body())
        .collect();
    let result = sent.iter().find_map(tool_result).unwrap_or_else(|| {
        panic!(
            "no tool_result for toolu_sluice_1 in {} requests",
            sent.len()
        )
    });
    assert!(result.contains("marmalade"), "{result}");
    drop(gw);
}

#[tokio::test]
async fn claude_code_through_a_two_group_failover_route() {
    let Some(bin) = claude_bin() else { return };
    let down = FakeUpstream::plain().await;
    down.set_script(Script::text("").status(
        529,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    ));
    let up = FakeUpstream::plain().await;
    up.set_script(Script::text("Hello from the second group"));
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "binds:\n- port: 4060\nroutes:
- name: claude-failover
  matches:
  - path: {{pathPrefix: /claude}}
  policies:
    urlRewrite: {{path: {{prefix: /}}}}
    retry: {{attempts: 2, codes: [429, 500, 502, 503, 529]}}
  backends:
  - ai:
      groups:
      - providers:
        - {{name: primary, provider: {{anthropic: {{}}}}, hostOverride: 'http://{}'}}
      - providers:
        - {{name: secondary, provider: {{anthropic: {{}}}}, hostOverride: 'http://{}'}}
",
        down.addr(),
        up.addr()
    );
    let cfg = write(dir.path(), "cc.yaml", &cfg);
    let gw: Gateway = gateway(&[&cfg], &[4060], &[], &[]).await;
    let work = tempfile::tempdir().unwrap();
    let (ok, out, err) = run_claude(
        &bin,
        &gw.url(4060, "/claude"),
        work.path(),
        "Say hello",
        "Read",
    )
    .await;
    assert!(
        ok,
        "claude failed\nstdout: {out}\nstderr: {err}\nlog: {}",
        gw.logs()
    );
    assert!(out.contains("Hello from the second group"), "{out}");
    assert!(!down.requests().is_empty(), "the first group was tried");
    assert_eq!(
        up.last_request().unwrap().header("x-api-key"),
        Some("sk-ant-client-test"),
        "passthrough credentials on every attempt"
    );

    // A tool-use round trip, each turn failing over from the first group.
    std::fs::write(work.path().join("note.txt"), "sluice-secret-word: quince\n").unwrap();
    let path = work.path().join("note.txt").display().to_string();
    let sse: Vec<(Option<String>, String)> = tool_use_events(&path)
        .into_iter()
        .map(|e| (e["type"].as_str().map(str::to_string), e.to_string()))
        .collect();
    up.queue_script(Script::default().sse(sse));
    up.queue_script(Script::text("The word is quince."));
    let (tried, before) = (down.requests().len(), up.requests().len());
    let (ok, out, err) = run_claude(
        &bin,
        &gw.url(4060, "/claude"),
        work.path(),
        "Read note.txt and tell me the word",
        "Read",
    )
    .await;
    assert!(ok, "claude failed\nstdout: {out}\nstderr: {err}");
    assert!(out.contains("quince"), "{out}");
    let sent: Vec<Value> = up.requests()[before..].iter().map(|r| r.json()).collect();
    let result = sent
        .iter()
        .find_map(tool_result)
        .unwrap_or_else(|| panic!("no tool_result in {} requests", sent.len()));
    assert!(result.contains("quince"), "{result}");
    assert!(
        down.requests().len() >= tried + 2,
        "each turn tried the first group"
    );
}
