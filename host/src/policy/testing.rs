//! Test support: builds the fixture plugins under `tests/plugins/*` once per
//! process and returns their `.wasm` paths. Used by the runtime's tests and
//! benches (and the e2e tests later).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Fixture names (`tests/plugins/<name>`, package `sluice-test-plugin-<name>`).
pub const FIXTURES: &[&str] = &[
    "deny",
    "header-rewrite",
    "header-view",
    "fetch-probe",
    "sse-rewrite",
    "body-rewrite",
    "attr-writer",
    "attr-reader",
    "counter",
    "spin",
    "membomb",
    "trap",
    "state-probe",
    "late-fail",
    "body-only",
];

pub fn workspace_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host crate is inside the workspace")
        .to_path_buf()
}

fn build_all() -> Result<PathBuf, String> {
    let ws = workspace_dir();
    let target_dir = ws.join("target").join("plugins");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&ws)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target_dir);
    for f in FIXTURES {
        cmd.args(["-p", &format!("sluice-test-plugin-{f}")]);
    }
    for var in [
        "CARGO_TARGET_DIR",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "true");
    let status = cmd.status().map_err(|e| format!("running cargo: {e}"))?;
    if !status.success() {
        return Err("building the fixture plugins failed".into());
    }
    Ok(target_dir.join("wasm32-wasip2").join("release"))
}

/// Path of fixture `name`'s component, building all fixtures on first use.
pub fn fixture(name: &str) -> PathBuf {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = DIR.get_or_init(build_all).as_ref().expect("fixture build");
    dir.join(format!(
        "sluice_test_plugin_{}.wasm",
        name.replace('-', "_")
    ))
}

/// Fixture `name`'s component bytes.
pub fn fixture_bytes(name: &str) -> Vec<u8> {
    let p = fixture(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}
