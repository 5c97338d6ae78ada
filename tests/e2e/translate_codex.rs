//! The real Codex CLI (`codex exec`) on a route whose only backend speaks
//! Anthropic Messages: its Responses requests are translated to Messages
//! and the Anthropic fake's answers back to Responses events. A prompt, an
//! `exec_command` round trip (Codex runs `echo` and sends the output back
//! under the call's id), and a turn with signed thinking that Codex carries
//! back as a `reasoning` item and Anthropic gets back intact.
//!
//! The CLI comes from npm (`scripts/test` installs it into `target/codex`);
//! outside CI a missing CLI skips these tests, in CI it fails them.
//!
//! Codex's config turns off its hosted `web_search` tool and its sub-agent
//! tools (`[agents] enabled = false`; else a `namespace` tool): neither has
//! an Anthropic equivalent, and the route refuses what it cannot carry.

use crate::common::*;
use serde_json::{json, Value};
use sluice_testkit::{FakeUpstream, Gateway, Script};
use std::path::{Path, PathBuf};
use std::time::Duration;

const MODEL: &str = "claude-sonnet-4-5";

/// The `codex` binary, or `None` (skip) outside CI.
fn codex_bin() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("SLUICE_CODEX").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/codex/node_modules/.bin/codex")),
    ];
    let found = candidates.into_iter().flatten().find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "Codex is not installed (scripts/test installs it into target/codex)"
        );
        eprintln!("skipped: Codex not installed");
    }
    found
}

fn route(up: &FakeUpstream) -> String {
    format!(
        "binds:\n- port: 4060\nroutes:
- name: codex-on-claude
  matches:
  - path: {{pathPrefix: /codex}}
  policies:
    urlRewrite: {{path: {{prefix: /}}}}
    backendAuth: {{key: sk-ant-gw}}
  backends:
  - ai: {{name: claude, provider: {{anthropic: {{model: claude-sonnet-4-5}}}}, hostOverride: 'http://{0}'}}
- name: codex-on-claude-drop
  matches:
  - path: {{pathPrefix: /drop}}
  policies:
    urlRewrite: {{path: {{prefix: /}}}}
    backendAuth: {{key: sk-ant-gw}}
    ai: {{translation: {{unsupportedFields: drop}}}}
  backends:
  - ai: {{name: claude-drop, provider: {{anthropic: {{model: claude-sonnet-4-5}}}}, hostOverride: 'http://{0}'}}
",
        up.addr()
    )
}

/// Run `codex exec prompt` against `base_url` (the route prefix), in `cwd`,
/// with a clean environment and a throwaway `CODEX_HOME` whose config
/// names the gateway as a Responses provider; returns (exit ok, stdout,
/// stderr). Approvals and the sandbox are off so the tool runs unattended;
/// the only command the fake asks for is `echo`.
///
/// `untranslatable_tools_off` turns off the tools Anthropic has no
/// equivalent for (see the module doc); without it Codex runs on its
/// defaults.
async fn run_codex(
    bin: &Path,
    base_url: &str,
    cwd: &Path,
    prompt: &str,
    untranslatable_tools_off: bool,
) -> (bool, String, String) {
    let (web_search, agents) = if untranslatable_tools_off {
        (
            "web_search = \"disabled\"\n",
            "\n[agents]\nenabled = false\n",
        )
    } else {
        ("", "")
    };
    let home = tempfile::tempdir().unwrap();
    let codex_home = home.path().join(".codex");
    std::fs::create_dir_all(&codex_home).unwrap();
    std::fs::write(
        codex_home.join("config.toml"),
        format!(
            "model = \"gpt-5-codex\"
model_provider = \"sluice\"
model_reasoning_effort = \"low\"
check_for_update_on_startup = false
{web_search}
[model_providers.sluice]
name = \"Sluice\"
base_url = \"{base_url}/v1\"
wire_api = \"responses\"
env_key = \"SLUICE_CODEX_KEY\"
request_max_retries = 0
stream_max_retries = 0
{agents}"
        ),
    )
    .unwrap();
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args([
        "exec",
        "--skip-git-repo-check",
        "--ephemeral",
        "--color",
        "never",
    ])
    .args(["--dangerously-bypass-approvals-and-sandbox"])
    .arg(prompt)
    .current_dir(cwd)
    .env_clear()
    .env("PATH", std::env::var("PATH").unwrap_or_default())
    .env("HOME", home.path())
    .env("CODEX_HOME", &codex_home)
    .env("SLUICE_CODEX_KEY", "sk-codex-client")
    .stdin(std::process::Stdio::null())
    .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("codex did not finish within 120 s")
        .expect("codex runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

struct Setup {
    bin: PathBuf,
    up: FakeUpstream,
    gw: Gateway,
    work: tempfile::TempDir,
    _dir: tempfile::TempDir,
}

async fn setup() -> Option<Setup> {
    let bin = codex_bin()?;
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "codex.yaml", &route(&up));
    let gw = gateway(&[&cfg], &[4060], &[], &[]).await;
    let work = tempfile::tempdir().unwrap();
    Some(Setup {
        bin,
        up,
        gw,
        work,
        _dir: dir,
    })
}

impl Setup {
    /// Run Codex; assert it succeeded; its stdout (the final message).
    async fn codex(&self, prompt: &str) -> String {
        let base = self.gw.url(4060, "/codex");
        let (ok, out, err) = run_codex(&self.bin, &base, self.work.path(), prompt, true).await;
        assert!(
            ok,
            "codex failed\nstdout: {out}\nstderr: {err}\nlog: {}",
            self.gw.logs()
        );
        out
    }

    fn sent(&self, from: usize) -> Vec<Value> {
        self.up.requests()[from..]
            .iter()
            .map(|r| r.json())
            .collect()
    }
}

/// Anthropic SSE events: optionally a signed thinking block, then a call
/// to `exec_command` running `echo sluice-ok`, id `toolu_codex_1`.
fn exec_call_events(thinking: bool) -> Vec<(Option<String>, String)> {
    let mut evs = vec![
        json!({"type": "message_start", "message": {"id": "msg_codex", "type": "message",
        "role": "assistant", "model": MODEL, "content": [], "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": 30, "output_tokens": 1}}}),
    ];
    let mut i = 0;
    if thinking {
        evs.extend([
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "I will run echo."}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": SIGNATURE}}),
            json!({"type": "content_block_stop", "index": 0}),
        ]);
        i = 1;
    }
    evs.extend([
        json!({"type": "content_block_start", "index": i, "content_block":
            {"type": "tool_use", "id": "toolu_codex_1", "name": "exec_command", "input": {}}}),
        json!({"type": "content_block_delta", "index": i, "delta":
            {"type": "input_json_delta", "partial_json": json!({"cmd": "echo sluice-ok"}).to_string()}}),
        json!({"type": "content_block_stop", "index": i}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
            "usage": {"output_tokens": 12}}),
        json!({"type": "message_stop"}),
    ]);
    evs.into_iter()
        .map(|e| (e["type"].as_str().map(str::to_string), e.to_string()))
        .collect()
}

const SIGNATURE: &str = "EqQBCkgIARABGAIiQCodexSluice+/sig==";

/// Every content block of every message in a Messages request.
fn blocks(body: &Value) -> Vec<(String, Value)> {
    body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|m| {
            let role = m["role"].as_str().unwrap_or_default().to_string();
            m["content"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |b| (role.clone(), b))
        })
        .collect()
}

/// The `tool_result` for `toolu_codex_1` in a request, as text.
fn tool_result(body: &Value) -> Option<String> {
    blocks(body).into_iter().find_map(|(role, b)| {
        (role == "user" && b["type"] == "tool_result" && b["tool_use_id"] == "toolu_codex_1")
            .then(|| b["content"].to_string())
    })
}

#[tokio::test]
async fn translate_codex_prompt_on_an_anthropic_backend() {
    let Some(s) = setup().await else { return };
    s.up.set_script(Script::default().deltas(["Hello from ", "Claude"]));
    let out = s.codex("Say hello").await;
    assert!(out.contains("Hello from Claude"), "{out}");
    let reqs = s.up.requests();
    assert!(!reqs.is_empty());
    for r in &reqs {
        assert_eq!(r.path_and_query(), "/v1/messages");
        assert_eq!(r.header("x-api-key"), Some("sk-ant-gw"));
        assert!(
            r.header("authorization").is_none(),
            "the client key is not forwarded"
        );
        let b = r.json();
        assert_eq!(b["model"], MODEL);
        assert!(b.get("client_metadata").is_none());
        // Codex's instructions (developer messages) become the system prompt.
        assert!(
            b["system"][0]["text"]
                .as_str()
                .is_some_and(|t| t.contains("Codex")),
            "{}",
            b["system"]
        );
        let tools: Vec<&str> = b["tools"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        assert!(tools.contains(&"exec_command"), "{tools:?}");
    }
}

/// The fake asks for `exec_command` (`echo sluice-ok`); Codex runs it and
/// the next request carries the `tool_use` and its `tool_result` under the
/// same id, with the command's output; the final text reaches stdout.
#[tokio::test]
async fn translate_codex_exec_command_round_trip() {
    let Some(s) = setup().await else { return };
    s.up.queue_script(Script::default().sse(exec_call_events(false)));
    s.up.queue_script(Script::default().deltas(["The command ", "printed sluice-ok."]));
    let out = s
        .codex("Run echo sluice-ok and tell me what it printed")
        .await;
    assert!(out.contains("The command printed sluice-ok."), "{out}");
    let sent = s.sent(0);
    assert!(sent.len() >= 2, "{} requests", sent.len());
    let second = sent
        .iter()
        .find(|b| tool_result(b).is_some())
        .unwrap_or_else(|| panic!("no tool_result for toolu_codex_1 in {sent:?}"));
    let result = tool_result(second).unwrap();
    assert!(result.contains("sluice-ok"), "{result}");
    let call = blocks(second)
        .into_iter()
        .find(|(_, b)| b["type"] == "tool_use")
        .expect("the call goes back too");
    assert_eq!(call.0, "assistant");
    assert_eq!(call.1["id"], "toolu_codex_1");
    assert_eq!(call.1["name"], "exec_command");
    assert_eq!(call.1["input"]["cmd"], "echo sluice-ok");
}

/// Codex asks for reasoning (`reasoning.effort`), so Claude thinks: the
/// signed thinking block travels to Codex as an encrypted `reasoning` item
/// and comes back on the next request with its exact signature, ahead of
/// the tool call it led to.
#[tokio::test]
async fn translate_codex_thinking_comes_back_signed() {
    let Some(s) = setup().await else { return };
    s.up.queue_script(Script::default().sse(exec_call_events(true)));
    s.up.queue_script(Script::default().deltas(["Done: sluice-ok."]));
    let out = s.codex("Run echo sluice-ok").await;
    assert!(out.contains("Done: sluice-ok."), "{out}");
    let sent = s.sent(0);
    assert!(
        sent[0]["thinking"]["type"] == "enabled",
        "Codex's reasoning.effort asks for thinking: {}",
        sent[0]["thinking"]
    );
    let second = sent
        .iter()
        .find(|b| tool_result(b).is_some())
        .unwrap_or_else(|| panic!("no tool_result for toolu_codex_1 in {sent:?}"));
    let assistant: Vec<Value> = blocks(second)
        .into_iter()
        .filter(|(role, _)| role == "assistant")
        .map(|(_, b)| b)
        .collect();
    assert_eq!(
        assistant[0],
        json!({"type": "thinking", "thinking": "I will run echo.", "signature": SIGNATURE}),
        "{assistant:?}"
    );
    assert_eq!(assistant[1]["type"], "tool_use");
    assert_eq!(assistant[1]["id"], "toolu_codex_1");
}

/// Codex on its defaults offers a hosted `web_search` tool and a
/// `namespace` of sub-agent tools: the default route refuses the request
/// naming what it cannot carry (Codex shows the error), and a route with
/// `unsupportedFields: drop` sends Claude the function tools only.
#[tokio::test]
async fn translate_codex_defaults_are_refused_or_dropped_as_the_route_says() {
    let Some(s) = setup().await else { return };
    s.up.set_script(Script::default().deltas(["Hello from ", "Claude"]));
    let (ok, out, err) = run_codex(
        &s.bin,
        &s.gw.url(4060, "/codex"),
        s.work.path(),
        "Say hello",
        false,
    )
    .await;
    assert!(!ok, "refused, so codex fails\nstdout: {out}\nstderr: {err}");
    assert!(
        err.contains("has no equivalent in the backend's API format"),
        "{err}"
    );
    assert!(
        s.up.requests().is_empty(),
        "a refused request was forwarded"
    );

    let (ok, out, err) = run_codex(
        &s.bin,
        &s.gw.url(4060, "/drop"),
        s.work.path(),
        "Say hello",
        false,
    )
    .await;
    assert!(ok, "codex failed\nstdout: {out}\nstderr: {err}");
    assert!(out.contains("Hello from Claude"), "{out}");
    let b = s.up.last_request().expect("forwarded").json();
    let tools = b["tools"].as_array().unwrap();
    assert!(tools.iter().any(|t| t["name"] == "exec_command"));
    assert!(
        tools.iter().all(|t| t.get("input_schema").is_some()),
        "only function tools reach Claude: {tools:?}"
    );
}
