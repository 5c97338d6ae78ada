//! The command line: `validate`, config errors, and every shipped config file.

use crate::common::*;
use sluice_testkit::gateway::run;
use std::path::Path;

fn validate(files: &[&str], envs: &[(&str, &str)]) -> (bool, String) {
    let mut args = vec!["validate"];
    for f in files {
        args.push("--config");
        args.push(f);
    }
    let out = run(Path::new(BIN), &args, envs);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

const KEYS: &[(&str, &str)] = &[
    ("ANTHROPIC_API_KEY", "sk-ant-secret-value"),
    ("OPENAI_API_KEY", "sk-oai-secret-value"),
];

#[test]
fn every_shipped_config_validates() {
    for entry in std::fs::read_dir(config("")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let (ok, out) = validate(&[path.to_str().unwrap()], KEYS);
            assert!(ok, "{}: {out}", path.display());
            assert!(!out.contains("secret-value"), "secret printed: {out}");
        }
    }
}

#[test]
fn duplicate_policies_keys_merge_with_a_warning_naming_the_line() {
    let (ok, out) = validate(&[&config("api-key-routing.yaml")], KEYS);
    assert!(ok, "{out}");
    assert!(out.contains("api-key-routing.yaml:25:3"), "{out}");
    assert!(out.contains("duplicate key `policies`"), "{out}");
}

#[test]
fn missing_env_var_is_an_error_with_location() {
    let (ok, out) = validate(
        &[&config("api-key-routing.yaml")],
        &[("OPENAI_API_KEY", "sk-oai-secret-value")],
    );
    assert!(!ok);
    assert!(out.contains("api-key-routing.yaml:19:10"), "{out}");
    assert!(out.contains("ANTHROPIC_API_KEY"), "{out}");
    assert!(!out.contains("secret-value"), "{out}");
}

#[test]
fn unknown_keys_get_suggestions_and_every_problem_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "bad.yaml",
        "binds:\n- port: 4001\nroutes:\n- name: a\n  matchs:\n  - path:\n      pathPrefix: /a\n  policies:\n    rateLimt:\n      requestsPerHour: 5\n  backends:\n  - ai:\n      name: a\n      provider:\n        anthropic: {}\n",
    );
    let (ok, out) = validate(&[&f], &[]);
    assert!(!ok);
    assert!(
        out.contains("bad.yaml:5:3") && out.contains("did you mean `matches`"),
        "{out}"
    );
    assert!(
        out.contains("bad.yaml:9:5") && out.contains("did you mean `rateLimit`"),
        "{out}"
    );
    assert!(out.contains("2 problem(s)"), "{out}");
}

#[tokio::test]
async fn a_bad_config_stops_startup_with_the_reason() {
    let out = run(
        Path::new(BIN),
        &["--config", &config("api-key-routing.yaml")],
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ANTHROPIC_API_KEY"), "{err}");
}

#[test]
fn version_flag() {
    let out = run(Path::new(BIN), &["--version"], &[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}
