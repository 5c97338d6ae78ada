//! The real Codex CLI (`codex exec`) on a route whose only backend speaks
//! Anthropic Messages: its Responses requests are translated to Messages
//! and the Anthropic fake's answers back to Responses events.

use crate::common::*;
use serde_json::{json, Value};
use sluice_testkit::{FakeUpstream, Gateway, Script};
use std::path::{Path, PathBuf};
use std::time::Duration;

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
  - ai: {{name: claude, provider: {{anthropic: {{model: claude-sonnet-4-5}}}}, hostOverride: 'http://{}'}}
",
        up.addr()
    )
}

async fn run_codex(bin: &Path, base_url: &str, cwd: &Path, prompt: &str) -> (bool, String, String) {
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
web_search = \"disabled\"

[model_providers.sluice]
name = \"Sluice\"
base_url = \"{base_url}/v1\"
wire_api = \"responses\"
env_key = \"SLUICE_CODEX_KEY\"
request_max_retries = 0
stream_max_retries = 0

[features]
multi_agent = false
"
        ),
    )
    .unwrap();
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args(["exec", "--skip-git-repo-check", "--ephemeral", "--color", "never"])
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

#[tokio::test]
async fn translate_codex_explore() {
    let Some(bin) = codex_bin() else { return };
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "codex.yaml", &route(&up));
    let gw: Gateway = gateway(&[&cfg], &[4060], &[], &[]).await;
    let base = gw.url(4060, "/codex");
    let work = tempfile::tempdir().unwrap();
    up.set_script(Script::default().deltas(["Hello from ", "Claude"]));
    let (ok, out, err) = run_codex(&bin, &base, work.path(), "Say hello").await;
    for r in up.requests() {
        std::fs::write("/tmp/codexplay/req.json", serde_json::to_string_pretty(&r.json()).unwrap()).unwrap();
        eprintln!("PATH {}", r.path_and_query());
    }
    let _ = json!(1);
    let _: Option<Value> = None;
    panic!("ok={ok}\nstdout: {out}\nstderr: {err}\nlog: {}", gw.logs());
}
