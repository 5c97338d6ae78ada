//! The SDK's example policy in Python, JavaScript and C (`sdk/examples/*`),
//! built with each example's own `build.sh` and run through the real gateway.
//!
//! Each language's toolchain must be installed (`scripts/test` installs them). A
//! missing toolchain fails the test, unless `SLUICE_LANG_EXAMPLES=optional`,
//! which turns it into a skip with the reason printed.
//!
//! The tests also print what the issue asks to record: component size, cold
//! compile time (from the gateway's `compiled plugin` log line), gateway start
//! with a warm compile cache, and the mean cost of one hook call (from the
//! gateway's own hook-duration histogram). They assert none of those timings.

use crate::common::*;
use serde_json::json;
use sluice_testkit::client::TestClient;
use sluice_testkit::gateway::run;
use sluice_testkit::FakeUpstream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lang {
    Python,
    Js,
    C,
}

impl Lang {
    fn dir(self) -> &'static str {
        match self {
            Lang::Python => "python",
            Lang::Js => "js",
            Lang::C => "c",
        }
    }
    fn wasm(self) -> &'static str {
        match self {
            Lang::Python => "team_keys_python.wasm",
            Lang::Js => "team_keys_js.wasm",
            Lang::C => "team_keys_c.wasm",
        }
    }
}

fn sdk_examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/examples")
}

fn on_path(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Why `lang`'s toolchain is unusable here, if it is.
fn missing_toolchain(lang: Lang) -> Option<String> {
    let need = |tools: &[&str]| -> Option<String> {
        let absent: Vec<&str> = tools.iter().copied().filter(|t| !on_path(t)).collect();
        (!absent.is_empty()).then(|| format!("not on PATH: {}", absent.join(", ")))
    };
    match lang {
        Lang::Python => need(&["componentize-py"]),
        Lang::Js => need(&["node"]).or_else(|| {
            let module = "node_modules/@bytecodealliance/componentize-js";
            let tools = std::env::var_os("SLUICE_JS_TOOLS").map(PathBuf::from);
            let found = tools.iter().any(|t| t.join(module).is_dir())
                || sdk_examples().join("js").join(module).is_dir();
            (!found).then(|| {
                "componentize-js is not installed (SLUICE_JS_TOOLS or sdk/examples/js/node_modules)"
                    .to_string()
            })
        }),
        Lang::C => {
            let cc = std::env::var("CC").unwrap_or_else(|_| "clang-19".into());
            need(&[cc.as_str(), "wit-bindgen", "wasm-tools"])
        }
    }
}

/// The example's component, built once per test process with its build
/// script; `None` (after printing why) when the toolchain is absent and
/// skipping is allowed.
fn build(lang: Lang) -> Option<PathBuf> {
    static BUILT: OnceLock<Mutex<Vec<(Lang, PathBuf)>>> = OnceLock::new();
    if let Some(why) = missing_toolchain(lang) {
        if std::env::var("SLUICE_LANG_EXAMPLES").as_deref() == Ok("optional") {
            println!("SKIPPED: the {lang:?} example: {why} (SLUICE_LANG_EXAMPLES=optional)");
            return None;
        }
        panic!(
            "the {lang:?} example needs its toolchain: {why}. Install it as sdk/README.md \
             (\"Other languages\") says, or set SLUICE_LANG_EXAMPLES=optional to skip"
        );
    }
    let built = BUILT.get_or_init(|| Mutex::new(Vec::new()));
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = built.iter().find(|(l, _)| *l == lang) {
        return Some(p.clone());
    }
    let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("lang-examples")
        .join(lang.dir());
    let _ = std::fs::remove_file(out.join(lang.wasm()));
    let script = sdk_examples().join(lang.dir()).join("build.sh");
    let started = Instant::now();
    let o = Command::new("bash")
        .arg(&script)
        .arg(&out)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        o.status.success(),
        "{} failed:\n--- stdout ---\n{}\n--- stderr ---\n{}",
        script.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let wasm = out.join(lang.wasm());
    let size = std::fs::metadata(&wasm)
        .unwrap_or_else(|e| {
            panic!(
                "{} did not produce {}: {e}",
                script.display(),
                wasm.display()
            )
        })
        .len();
    println!(
        "{lang:?}: built {} ({size} bytes) in {:.1?}",
        wasm.display(),
        started.elapsed()
    );
    built.push((lang, wasm.clone()));
    Some(wasm)
}

const TEAMS: &str = "    team-keys:\n      teams:\n        alpha: [alpha-key-1, alpha-key-2]\n        beta: [beta-key]\n";

/// Port 4070: `/claude` (Anthropic) and `/codex` (OpenAI), both guarded by
/// the example declared as plugin `team-keys` with `policies` (YAML, indent 4).
fn config(up: &FakeUpstream, wasm: &Path, policies: &str) -> String {
    let mut s = format!(
        "binds:\n- port: 4070\nplugins:\n- name: team-keys\n  path: {}\nroutes:\n",
        wasm.display()
    );
    for (name, provider) in [("claude", "anthropic"), ("codex", "openAI")] {
        s.push_str(&format!(
            "- name: {name}\n  matches:\n  - path:\n      pathPrefix: /{name}\n  policies:\n    urlRewrite:\n      path:\n        prefix: /\n{policies}  backends:\n  - ai:\n      name: {name}\n      provider:\n        {provider}: {{}}\n      hostOverride: http://{}\n",
            up.addr()
        ));
    }
    s
}

fn validate(cfg: &str, cache: &Path) -> (bool, String) {
    let cache = cache.display().to_string();
    let o = run(
        Path::new(BIN),
        &["validate", "--config", cfg],
        &[("XDG_CACHE_HOME", &cache)],
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

/// The `elapsed=` of the `compiled plugin` log line, if any.
fn compile_time(logs: &str) -> Option<String> {
    let line = logs
        .lines()
        .find(|l| l.contains("compiled plugin") && l.contains("team-keys"))?;
    let at = line.find("elapsed=")? + "elapsed=".len();
    Some(line[at..].split_whitespace().next()?.to_string())
}

fn anthropic_body() -> serde_json::Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]})
}

async fn team_keys_through_the_gateway(lang: Lang) {
    let Some(wasm) = build(lang) else { return };
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let cfg = write(dir.path(), "team-keys.yaml", &config(&up, &wasm, TEAMS));

    // `sluice validate` runs the plugin's own `validate` and fills the
    // compile cache: the cold compile happens here, with no start timeout.
    let (ok, out) = validate(&cfg, &cache);
    assert!(ok, "validate refused a good config:\n{out}");
    println!(
        "{lang:?}: cold compile {} (load: {})",
        compile_time(&out).unwrap_or_else(|| "not logged".into()),
        load()
    );

    let cache_env = cache.display().to_string();
    let started = Instant::now();
    let gw = gateway(&[&cfg], &[4070], &[], &[("XDG_CACHE_HOME", &cache_env)]).await;
    println!(
        "{lang:?}: gateway ready with a warm compile cache in {:.1?} (load: {})",
        started.elapsed(),
        load()
    );
    assert!(
        compile_time(&gw.logs()).is_none(),
        "the gateway recompiled instead of using the cache:\n{}",
        gw.logs()
    );

    let c = TestClient::new();
    let claude = gw.url(4070, "/claude/v1/messages");

    // A known key, with a spoofed team header the policy must overwrite.
    let r = c
        .post_json(
            &claude,
            &h(&[("x-api-key", "alpha-key-1"), ("x-sluice-team", "admins")]),
            &anthropic_body(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let u = up.last_request().expect("the request went upstream");
    assert_eq!(u.header_all("x-sluice-team"), vec!["alpha"]);
    assert_eq!(r.header("x-sluice-team"), Some("alpha"));
    assert_eq!(r.header("x-sluice-team-requests"), Some("1"));

    // The team's other key, as a bearer token: the same team counter.
    let r = c
        .post_json(
            &claude,
            &h(&[("authorization", "Bearer alpha-key-2")]),
            &anthropic_body(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-sluice-team"), Some("alpha"));
    assert_eq!(r.header("x-sluice-team-requests"), Some("2"));

    // Another team counts on its own.
    let r = c
        .post_json(&claude, &h(&[("x-api-key", "beta-key")]), &anthropic_body())
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        up.last_request().unwrap().header("x-sluice-team"),
        Some("beta")
    );
    assert_eq!(r.header("x-sluice-team-requests"), Some("1"));
    let forwarded = up.requests().len();
    assert_eq!(forwarded, 3);

    // Unknown, missing, and near-miss keys: 401 in the provider's shape, and
    // nothing goes upstream.
    for headers in [
        h(&[("x-api-key", "alpha-key-3")]),
        h(&[("x-api-key", "alpha-key-1 x")]),
        h(&[("authorization", "Basic YWxwaGEta2V5LTE6")]),
        h(&[("x-sluice-team", "alpha")]),
        h(&[]),
    ] {
        let r = c.post_json(&claude, &headers, &anthropic_body()).await;
        assert_eq!(r.status, 401, "{headers:?}: {}", r.text());
        assert_eq!(r.json()["type"], "error", "{}", r.text());
        assert_eq!(r.json()["error"]["type"], "authentication_error");
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("API key")),
            "{}",
            r.text()
        );
        assert_eq!(r.header("x-sluice-team"), None);
    }
    let r = c
        .post_json(
            &gw.url(4070, "/codex/v1/chat/completions"),
            &h(&[("authorization", "Bearer nope")]),
            &json!({"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "invalid_api_key", "{}", r.text());
    assert_eq!(r.json()["error"]["message"], "unknown API key");
    assert_eq!(
        up.requests().len(),
        forwarded,
        "a refused request went upstream"
    );

    // The counter is the host's: the next alpha request sees 3.
    let r = c
        .post_json(
            &claude,
            &h(&[("x-api-key", "alpha-key-2")]),
            &anthropic_body(),
        )
        .await;
    assert_eq!(r.header("x-sluice-team-requests"), Some("3"));

    let metrics = c.get(&gw.admin_url("/metrics")).await.text();
    println!(
        "{lang:?}: mean on-request-headers call {} over {} calls (load: {})",
        mean_hook(&metrics, "request_headers").unwrap_or_else(|| "?".into()),
        count_hook(&metrics, "request_headers").unwrap_or(0.0),
        load()
    );
}

/// Bad configs are refused by the plugin's own `validate`, and the message
/// names the key; good ones pass.
async fn team_keys_validation(lang: Lang) {
    let Some(wasm) = build(lang) else { return };
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    for (policies, expect) in [
        ("    team-keys: {}\n", "teams: required"),
        ("    team-keys:\n      teams: {}\n", "teams: required"),
        (
            "    team-keys:\n      teams:\n        alpha: [k1]\n        beta: [k2, k1]\n",
            "teams.beta[1]: this key is already given to team `alpha`",
        ),
        (
            "    team-keys:\n      teams:\n        alpha: []\n",
            "teams.alpha: expected a non-empty list of API keys",
        ),
        (
            "    team-keys:\n      teams:\n        alpha: [k1, 7]\n",
            "teams.alpha[1]: expected a non-empty string",
        ),
        (
            "    team-keys:\n      teams:\n        'bad team': [k1]\n",
            "teams.bad team: a team name is",
        ),
        (
            "    team-keys:\n      team:\n        alpha: [k1]\n",
            "unknown key `team`",
        ),
        (
            "    team-keys:\n      teams:\n        alpha: [k1]\n      header: X Team\n",
            "header: expected a lowercase HTTP header name",
        ),
        (
            "    team-keys:\n      teams:\n        alpha: [k1]\n      windowSeconds: 0\n",
            "windowSeconds: expected a whole number from 1 to 86400",
        ),
    ] {
        let cfg = write(dir.path(), "bad.yaml", &config(&up, &wasm, policies));
        let (ok, out) = validate(&cfg, &cache);
        assert!(!ok, "validate accepted {policies:?}:\n{out}");
        assert!(
            out.contains(expect) && out.contains("bad.yaml"),
            "{policies:?}: expected {expect:?} and the file name in:\n{out}"
        );
    }
    let good = "    team-keys:\n      teams:\n        alpha: [k1]\n      header: x-team\n      windowSeconds: 3600\n";
    let cfg = write(dir.path(), "good.yaml", &config(&up, &wasm, good));
    let (ok, out) = validate(&cfg, &cache);
    assert!(ok, "validate refused a good config:\n{out}");
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn hook_series(metrics: &str, suffix: &str, hook: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| {
            l.starts_with(&format!("sluice_policy_hook_duration_seconds_{suffix}{{"))
                && l.contains("plugin=\"team-keys\"")
                && l.contains(&format!("hook=\"{hook}\""))
        })?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()
}

fn count_hook(metrics: &str, hook: &str) -> Option<f64> {
    hook_series(metrics, "count", hook)
}

fn mean_hook(metrics: &str, hook: &str) -> Option<String> {
    let sum = hook_series(metrics, "sum", hook)?;
    let n = count_hook(metrics, hook)?;
    (n > 0.0).then(|| format!("{:.1} µs", sum / n * 1e6))
}

#[tokio::test]
async fn python_team_keys_through_the_gateway() {
    team_keys_through_the_gateway(Lang::Python).await
}

#[tokio::test]
async fn python_team_keys_config_validation() {
    team_keys_validation(Lang::Python).await
}

#[tokio::test]
async fn js_team_keys_through_the_gateway() {
    team_keys_through_the_gateway(Lang::Js).await
}

#[tokio::test]
async fn js_team_keys_config_validation() {
    team_keys_validation(Lang::Js).await
}

#[tokio::test]
async fn c_team_keys_through_the_gateway() {
    team_keys_through_the_gateway(Lang::C).await
}

#[tokio::test]
async fn c_team_keys_config_validation() {
    team_keys_validation(Lang::C).await
}
