//! `sluice plugin new|check|run`: the plugin workbench, through the real
//! binary, on the fixture and bundled plugins and the recorded exchanges in
//! `sdk/fixtures/`.

use crate::common::*;
use serde_json::Value;
use sluice::policy::testing::{fixture, workspace_dir};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sluice(args: &[&str], cache: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .env("XDG_CACHE_HOME", cache)
        .output()
        .expect("running sluice")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn fixtures() -> PathBuf {
    workspace_dir().join("sdk/fixtures")
}

fn rate_limit() -> PathBuf {
    workspace_dir().join("target/plugins/wasm32-wasip2/release/sluice_plugin_rate_limit.wasm")
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn check_prints_exports_hooks_size_and_compile_time() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "deny.yaml", "message: go away\n");
    let wasm = fixture("deny");
    let o = sluice(&["plugin", "check", p(&wasm), "--config", &cfg], dir.path());
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("world: sluice:policy/policy-plugin@0.1.0 (ok)"),
        "{out}"
    );
    assert!(
        out.contains("export: sluice:policy/policy@0.1.0 (")
            && out.contains("validate, init, on-request-headers"),
        "{out}"
    );
    assert!(out.contains("import: sluice:policy/host@0.1.0"), "{out}");
    assert!(out.contains("hooks: request-headers\n"), "{out}");
    assert!(out.contains("fetch hosts: none"), "{out}");
    assert!(out.contains("compile: "), "{out}");
    let size = std::fs::metadata(&wasm).unwrap().len();
    assert!(out.contains(&format!("size: {size} bytes")), "{out}");

    // --json carries the same facts.
    let o = sluice(
        &["plugin", "check", p(&wasm), "--config", &cfg, "--json"],
        dir.path(),
    );
    let v: Value = serde_json::from_slice(&o.stdout).expect("check --json prints JSON");
    assert_eq!(v["ok"], true);
    assert_eq!(v["hooks"], serde_json::json!(["request-headers"]));
    assert_eq!(v["size_bytes"], size);
}

#[test]
fn check_runs_the_plugins_own_validate() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "rl.yaml", "limit: many\n");
    let o = sluice(
        &["plugin", "check", p(&rate_limit()), "--config", &cfg],
        dir.path(),
    );
    let out = text(&o);
    assert!(!o.status.success(), "a bad config passed:\n{out}");
    assert!(out.contains("invalid config"), "{out}");
    assert!(out.contains("FAILED"), "{out}");
}

#[test]
fn check_refuses_a_core_module_and_a_component_of_another_world() {
    let dir = tempfile::tempdir().unwrap();
    // The smallest core module, and the smallest (empty) component.
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let empty = dir.path().join("empty.wasm");
    std::fs::write(&empty, b"\0asm\x0d\0\x01\0").unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"#!/bin/sh\necho hi\n").unwrap();

    let o = sluice(&["plugin", "check", p(&core)], dir.path());
    assert!(!o.status.success());
    assert!(
        text(&o).contains("core WebAssembly module, not a component"),
        "{}",
        text(&o)
    );

    let o = sluice(&["plugin", "check", p(&empty)], dir.path());
    assert!(!o.status.success());
    assert!(
        text(&o).contains("does not export `sluice:policy/policy@0.1.0`"),
        "{}",
        text(&o)
    );

    let o = sluice(&["plugin", "check", p(&junk)], dir.path());
    assert!(!o.status.success());
    assert!(text(&o).contains("not a WebAssembly file"), "{}", text(&o));
}

#[test]
fn run_prints_a_deny_in_the_providers_shape_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "deny.yaml", "message: go away\n");
    let req = fixtures().join("claude-code-request.json");
    let resp = fixtures().join("claude-response.json");
    let o = sluice(
        &[
            "plugin",
            "run",
            p(&fixture("deny")),
            "--config",
            &cfg,
            "--request",
            p(&req),
            "--response",
            p(&resp),
        ],
        dir.path(),
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("request-headers: respond"), "{out}");
    assert!(
        out.contains(r#"respond 403: {"type":"error","error":{"type":"permission_error","message":"go away"}}"#),
        "{out}"
    );
    assert!(
        !out.contains("response-headers"),
        "response hooks ran after a deny:\n{out}"
    );
    assert!(out.contains("outcome: responded"), "{out}");
}

#[test]
fn run_records_attributes_counters_and_header_edits_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "counter.yaml", "key: team-a\n");
    let req = fixtures().join("claude-code-request.json");
    let resp = fixtures().join("claude-response.json");
    let o = sluice(
        &[
            "plugin",
            "run",
            p(&fixture("counter")),
            "--config",
            &cfg,
            "--request",
            p(&req),
            "--response",
            p(&resp),
            "--json",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).expect("run --json prints JSON");
    assert_eq!(v["outcome"], "forwarded", "{v:#}");
    let calls: Vec<&Value> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["host_calls"].as_array().into_iter().flatten())
        .collect();
    assert!(
        calls
            .iter()
            .any(|c| c["call"] == "incr-counter" && c["total"] == 1),
        "no counter call recorded: {v:#}"
    );
}

#[test]
fn run_replays_a_codex_stream_through_the_event_hook() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "upper.yaml", "{}\n");
    let req = fixtures().join("codex-request.json");
    let sse = fixtures().join("codex-responses.sse");
    let o = sluice(
        &[
            "plugin",
            "run",
            p(&fixture("sse-rewrite")),
            "--config",
            &cfg,
            "--request",
            p(&req),
            "--sse",
            p(&sse),
            "--json",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let steps = v["steps"].as_array().unwrap();
    let events = steps
        .iter()
        .filter(|s| s["hook"] == "response-event")
        .count();
    assert_eq!(events, 10, "one step per event of the stream: {v:#}");
    assert!(steps.iter().any(|s| s["hook"] == "response-end"), "{v:#}");
}

#[test]
fn run_reports_a_trap_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "trap.yaml", "{}\n");
    let req = fixtures().join("claude-code-request.json");
    let o = sluice(
        &[
            "plugin",
            "run",
            p(&fixture("trap")),
            "--config",
            &cfg,
            "--request",
            p(&req),
        ],
        dir.path(),
    );
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("request-headers: failed"), "{out}");
    assert!(out.contains("outcome: failed"), "{out}");
}

#[test]
fn new_rust_plugin_builds_and_its_snapshot_test_passes() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("add-team");
    let o = sluice(
        &[
            "plugin",
            "new",
            "add-team",
            "--lang",
            "rust",
            "--dir",
            p(&plugin),
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    for f in [
        "Cargo.toml",
        "src/lib.rs",
        "wit/policy.wit",
        "build.sh",
        "test.sh",
    ] {
        assert!(plugin.join(f).exists(), "scaffold lacks {f}");
    }
    // A second `new` into the same place refuses and writes nothing.
    let o = sluice(
        &[
            "plugin",
            "new",
            "add-team",
            "--lang",
            "rust",
            "--dir",
            p(&plugin),
        ],
        dir.path(),
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("already exists"), "{}", text(&o));

    // Build as generated (sharing the workspace's plugin target dir so the
    // dependencies are not rebuilt), then the scaffold's own test, twice: the
    // first run writes the snapshot, the second compares against it.
    let target = workspace_dir().join("target/plugins");
    let test = |what: &str| {
        let o = Command::new("bash")
            .arg(plugin.join("test.sh"))
            .env("SLUICE", BIN)
            .env("CARGO_TARGET_DIR", &target)
            .env("XDG_CACHE_HOME", dir.path())
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .output()
            .unwrap();
        assert!(o.status.success(), "{what}:\n{}", text(&o));
        text(&o)
    };
    let first = test("first run");
    assert!(first.contains("wrote expected.json"), "{first}");
    let snapshot: Value =
        serde_json::from_str(&std::fs::read_to_string(plugin.join("expected.json")).unwrap())
            .unwrap();
    assert_eq!(snapshot["steps"][0]["hook"], "request-headers");
    assert_eq!(snapshot["steps"][0]["headers"][0]["name"], "x-add-team");
    assert_eq!(
        snapshot["steps"][0]["headers"][0]["values"][0],
        "hello from add-team"
    );
    let second = test("second run");
    assert!(second.contains("test: ok"), "{second}");

    // The snapshot catches a change of behaviour.
    std::fs::write(plugin.join("config.yaml"), "value: something else\n").unwrap();
    let o = Command::new("bash")
        .arg(plugin.join("test.sh"))
        .env("SLUICE", BIN)
        .env("CARGO_TARGET_DIR", &target)
        .env("XDG_CACHE_HOME", dir.path())
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "the snapshot test missed a change:\n{}",
        text(&o)
    );
}

/// `sluice plugin run` runs what the gateway runs: a plugin with only a
/// body hook gets the body, and the gateway's strict JSON refuses a body
/// with a duplicate key before any plugin sees it.
#[test]
fn run_follows_the_gateways_body_phase() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "body-only.yaml", "needle: '\"role\"'\n");
    let req = fixtures().join("claude-code-request.json");
    let run = |req: &Path| {
        sluice(
            &[
                "plugin",
                "run",
                p(&fixture("body-only")),
                "--config",
                &cfg,
                "--request",
                p(req),
            ],
            dir.path(),
        )
    };
    let o = run(&req);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("request-body: respond"), "{out}");
    assert!(out.contains("body-only fixture found the needle"), "{out}");

    // The same request with `model` given twice: refused by the gateway's
    // own check, the plugin never called.
    let mut v: Value = serde_json::from_slice(&std::fs::read(&req).unwrap()).unwrap();
    let body = v["body"].to_string();
    let twice = body.replacen('{', r#"{"model":"x","#, 1);
    assert!(
        twice.contains(r#""model":"claude"#),
        "the fixture names a model"
    );
    v["body"] = serde_json::json!({ "text": twice });
    let dup_req = dir.path().join("dup.json");
    std::fs::write(&dup_req, v.to_string()).unwrap();
    let o = run(&dup_req);
    let out = text(&o);
    assert!(out.contains("gateway-body-check: respond"), "{out}");
    assert!(out.contains("respond 400"), "{out}");
    assert!(!out.contains("request-body:"), "{out}");
}
