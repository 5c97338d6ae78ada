//! Hot swap through the real binary: `POST /plugins/{name}/reload`, the file
//! watcher, SIGHUP; refusals keep the old version serving; in-flight streams
//! and host counters survive a swap.

use crate::common::*;
use serde_json::{json, Value};
use sluice::policy::testing;
use sluice_testkit::client::TestClient;
use sluice_testkit::{FakeUpstream, Gateway, Script};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The fixture that answers 403 (`deny`, config `{message}`) and one that
/// lets everything through (`header-rewrite`, which ignores `message`).
pub const DENY: &str = "deny";
pub const ALLOW: &str = "header-rewrite";

/// A component with the same code and a different hash: `wasm` plus a
/// custom section (valid anywhere at the end of a component).
pub fn variant(wasm: &[u8], tag: &str) -> Vec<u8> {
    let name = b"sluice-test";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(tag.as_bytes());
    let mut out = wasm.to_vec();
    out.push(0);
    let mut n = payload.len();
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        out.push(if n == 0 { b } else { b | 0x80 });
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&payload);
    out
}

/// Write `bytes` to `path` the way editors and build tools do: a temp file
/// renamed over the target.
pub fn replace_file(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

pub fn rate_limit_wasm() -> PathBuf {
    testing::workspace_dir()
        .join("target/plugins/wasm32-wasip2/release/sluice_plugin_rate_limit.wasm")
}

/// A config on port 4060 with route `claude` (/claude) using `policies`
/// (YAML indented 4), `plugins` at the top level, and optionally a `codex`
/// route.
pub fn config_text(up: &FakeUpstream, plugins: &str, policies: &str, codex: bool) -> String {
    let mut s = format!(
        r#"
binds:
- port: 4060
  listeners:
  - name: default
    protocol: HTTP
{plugins}
routes:
- name: claude
  matches:
  - path:
      pathPrefix: /claude
  policies:
{policies}
    urlRewrite:
      path:
        prefix: /
    ai:
      routes:
        /v1/messages: messages
        '*': passthrough
  backends:
  - ai:
      name: claude
      provider:
        anthropic: {{}}
      hostOverride: http://{addr}
"#,
        addr = up.addr()
    );
    if codex {
        s.push_str(&format!(
            r#"- name: codex
  matches:
  - path:
      pathPrefix: /codex
  policies:
    urlRewrite:
      path:
        prefix: /
    ai:
      routes:
        /v1/chat/completions: completions
        '*': passthrough
  backends:
  - ai:
      name: codex
      provider:
        openAI: {{}}
      hostOverride: http://{addr}
"#,
            addr = up.addr()
        ));
    }
    s
}

pub struct Setup {
    pub up: FakeUpstream,
    pub gw: Gateway,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    /// The declared `gate` plugin's file.
    pub gate: PathBuf,
}

/// A gateway whose `claude` route runs plugin `gate` (a copy of fixture
/// `initial`) with config `gate_config` (JSON).
pub async fn start_gate(initial: &str, gate_config: &str) -> Setup {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let gate = dir.path().join("gate.wasm");
    std::fs::copy(testing::fixture(initial), &gate).unwrap();
    // The fixtures' directory is where the tests reload other builds from.
    let fixtures = testing::fixture(initial)
        .parent()
        .unwrap()
        .display()
        .to_string();
    let plugins = format!(
        "admin:\n  pluginDirs: ['{fixtures}']\nplugins:\n- name: gate\n  path: {}\n",
        gate.display()
    );
    let text = config_text(&up, &plugins, &format!("    gate: {gate_config}"), false);
    let config = dir.path().join("sluice.yaml");
    std::fs::write(&config, text).unwrap();
    let gw = gateway(&[config.to_str().unwrap()], &[4060], &[], &[]).await;
    Setup {
        up,
        gw,
        dir,
        config,
        gate,
    }
}

pub fn claude_body() -> Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}]})
}

pub fn claude_headers() -> Vec<(String, String)> {
    h(&[("x-api-key", "k"), ("anthropic-version", "2023-06-01")])
}

/// One request on `/claude`; the status, or `None` on a transport error.
pub async fn claude_status(c: &TestClient, gw_url: &str) -> Option<u16> {
    let mut rb = c.reqwest().post(gw_url);
    for (k, v) in claude_headers() {
        rb = rb.header(k, v);
    }
    let resp = rb
        .header("content-type", "application/json")
        .body(claude_body().to_string())
        .send()
        .await
        .ok()?;
    let status = resp.status().as_u16();
    resp.bytes().await.ok()?;
    Some(status)
}

pub async fn admin_post(gw: &Gateway, path: &str, body: &Value) -> (u16, Value) {
    let r = TestClient::new()
        .post_json(&gw.admin_url(path), &h(&[]), body)
        .await;
    (r.status, r.json())
}

pub async fn plugins(gw: &Gateway) -> Value {
    TestClient::new()
        .get(&gw.admin_url("/plugins"))
        .await
        .json()
}

pub fn row(report: &Value, name: &str) -> Value {
    report["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no plugin {name} in {report:#}"))
        .clone()
}

fn sha256_file(p: &Path) -> String {
    sluice::plugins::sha256_hex(&std::fs::read(p).unwrap())
}

/// Poll until `/claude` answers `want`, up to `limit`.
async fn wait_status(c: &TestClient, url: &str, want: u16, limit: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        if claude_status(c, url).await == Some(want) {
            return t0.elapsed();
        }
        assert!(t0.elapsed() < limit, "no {want} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// When a request started, and its status (`None`: transport error).
type Seen = (Instant, Option<u16>);

/// Waits until the load loops have recorded at least `n` requests.
async fn wait_seen(seen: &Mutex<Vec<Seen>>, n: usize) {
    let t0 = Instant::now();
    while seen.lock().unwrap().len() < n {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the load loops did not reach {n} requests"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn deny_swapped_for_allow_under_load_never_fails_a_request() {
    let s = start_gate(DENY, "{message: blocked}").await;
    let url = s.gw.url(4060, "/claude/v1/messages");
    let c = TestClient::new();
    assert_eq!(claude_status(&c, &url).await, Some(403));

    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let mut loops = Vec::new();
    for _ in 0..4 {
        let (stop, seen, url) = (stop.clone(), seen.clone(), url.clone());
        loops.push(tokio::spawn(async move {
            let c = TestClient::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let st = claude_status(&c, &url).await;
                seen.lock().unwrap().push((started, st));
            }
        }));
    }
    wait_seen(&seen, 20).await;
    let allow = testing::fixture(ALLOW);
    let (status, out) = admin_post(&s.gw, "/plugins/gate/reload", &json!({"path": allow})).await;
    let swapped_at = Instant::now();
    assert_eq!(status, 200, "{out:#}");
    assert_eq!(out["result"], "swapped", "{out:#}");
    assert_eq!(out["version"], 2);
    assert_eq!(out["newHash"], sha256_file(&allow));
    assert_eq!(out["oldHash"], sha256_file(&s.gate));
    // Some requests after the swap, for every client.
    let n = seen.lock().unwrap().len();
    wait_seen(&seen, n + 20).await;
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        l.await.unwrap();
    }

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(seen.len() > 20, "too few requests: {}", seen.len());
    for (at, st) in seen.iter() {
        assert!(
            matches!(st, Some(200) | Some(403)),
            "a request failed during the swap: {st:?}"
        );
        if *at > swapped_at {
            assert_eq!(
                *st,
                Some(200),
                "a request started after the swap got the old answer"
            );
        }
    }
    assert!(seen.iter().any(|(_, s)| *s == Some(403)));
    assert!(seen.iter().any(|(_, s)| *s == Some(200)));

    let gate = row(&plugins(&s.gw).await, "gate");
    assert_eq!(gate["version"], 2);
    assert_eq!(gate["source"], allow.display().to_string());
    assert_eq!(gate["routes"], json!(["claude"]));
    assert!(gate["lastError"].is_null());
    let metrics = TestClient::new()
        .get(&s.gw.admin_url("/metrics"))
        .await
        .text();
    assert!(
        metrics.contains(r#"sluice_reloads_total{kind="plugin",result="swapped"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn broken_swaps_are_refused_and_the_old_version_keeps_serving() {
    // header-rewrite accepts `{message: ""}`; deny's own validate refuses it.
    let s = start_gate(ALLOW, "{message: ''}").await;
    let url = s.gw.url(4060, "/claude/v1/messages");
    let c = TestClient::new();
    assert_eq!(claude_status(&c, &url).await, Some(200));
    let hash = sha256_file(&s.gate);

    let not_wasm = s.dir.path().join("not.wasm");
    std::fs::write(&not_wasm, "this is not wasm").unwrap();
    let core = s.dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let empty_component = s.dir.path().join("empty-component.wasm");
    std::fs::write(&empty_component, b"\0asm\x0d\0\x01\0").unwrap();
    let cases = [
        (not_wasm, "not wasm"),
        (core, "core module"),
        (empty_component, "component for another world"),
        (testing::fixture(DENY), "config fails validation"),
    ];
    for (i, (path, what)) in cases.iter().enumerate() {
        let (status, out) = admin_post(&s.gw, "/plugins/gate/reload", &json!({"path": path})).await;
        assert_eq!(status, 422, "{what}: {out:#}");
        assert_eq!(out["result"], "refused", "{what}: {out:#}");
        assert_eq!(out["servingHash"], hash.as_str(), "{what}");
        assert_eq!(out["servingVersion"], 1, "{what}");
        let reason = out["reason"].as_str().unwrap().to_string();
        assert!(!reason.is_empty(), "{what}");
        if i == 3 {
            assert!(reason.contains("message must not be empty"), "{reason}");
        }
        assert_eq!(
            claude_status(&c, &url).await,
            Some(200),
            "{what}: old version stopped serving"
        );
        let gate = row(&plugins(&s.gw).await, "gate");
        assert_eq!(gate["version"], 1, "{what}");
        assert_eq!(gate["hash"], hash.as_str(), "{what}");
        assert_eq!(gate["lastError"], reason.as_str(), "{what}");
    }
    let metrics = TestClient::new()
        .get(&s.gw.admin_url("/metrics"))
        .await
        .text();
    assert!(
        metrics.contains(r#"sluice_reloads_total{kind="plugin",result="refused"} 4"#),
        "{metrics}"
    );
    // Unknown and bundled plugins are answered, not attempted.
    assert_eq!(
        admin_post(&s.gw, "/plugins/nope/reload", &json!({}))
            .await
            .0,
        404
    );
    assert_eq!(
        admin_post(&s.gw, "/plugins/rate-limit/reload", &json!({}))
            .await
            .0,
        409
    );
}

#[tokio::test]
async fn an_sse_stream_in_flight_across_a_swap_completes_on_the_old_version() {
    let s = start_gate(ALLOW, "{message: blocked}").await;
    let deltas: Vec<String> = (0..10).map(|i| format!("part{i} ")).collect();
    s.up.set_script(
        Script::default()
            .deltas(deltas.clone())
            .event_delay(Duration::from_millis(100)),
    );
    let url = s.gw.url(4060, "/claude/v1/messages");
    let mut body = claude_body();
    body["stream"] = json!(true);
    let stream = tokio::spawn({
        let url = url.clone();
        async move {
            TestClient::new()
                .stream_sse_full(&url, &claude_headers(), &body)
                .await
        }
    });
    // The stream has started on the old version once the upstream has it.
    s.up.wait_for_requests(1, Duration::from_secs(10))
        .await
        .unwrap();
    let deny = testing::fixture(DENY);
    let (status, out) = admin_post(&s.gw, "/plugins/gate/reload", &json!({"path": deny})).await;
    assert_eq!(status, 200, "{out:#}");
    assert_eq!(out["result"], "swapped");
    // New requests get the new version while the stream is still running.
    let c = TestClient::new();
    assert_eq!(claude_status(&c, &url).await, Some(403));
    let done = stream.await.unwrap();
    assert!(!stream_is_unfinished(&done), "stream was cut");
    assert_eq!(done.status, 200);
    assert!(done.error.is_none(), "{:?}", done.error);
    let text: String = done
        .events
        .iter()
        .filter_map(|(_, e)| {
            let j = e.json();
            j["delta"]["text"].as_str().map(str::to_owned)
        })
        .collect();
    assert_eq!(text, deltas.concat());
}

fn stream_is_unfinished(s: &sluice_testkit::client::SseStream) -> bool {
    !s.events
        .iter()
        .any(|(_, e)| e.event.as_deref() == Some("message_stop"))
}

#[tokio::test]
async fn a_rate_limit_window_survives_a_swap_of_the_rate_limit_plugin() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let rl = dir.path().join("rate-limit.wasm");
    let original = std::fs::read(rate_limit_wasm()).expect("bundled rate-limit built");
    std::fs::write(&rl, &original).unwrap();
    let plugins_yaml = format!("plugins:\n- name: rate-limit\n  path: {}\n", rl.display());
    let text = config_text(
        &up,
        &plugins_yaml,
        "    rateLimit:\n      requestsPerHour: 3\n",
        false,
    );
    let config = write(dir.path(), "sluice.yaml", &text);
    let gw = gateway(&[&config], &[4060], &[], &[]).await;
    let url = gw.url(4060, "/claude/v1/messages");
    let c = TestClient::new();
    assert_eq!(claude_status(&c, &url).await, Some(200));
    assert_eq!(claude_status(&c, &url).await, Some(200));

    let upgraded = dir.path().join("rate-limit-v2.wasm");
    std::fs::write(&upgraded, variant(&original, "v2")).unwrap();
    let (status, out) = admin_post(
        &gw,
        "/plugins/rate-limit/reload",
        &json!({"path": upgraded}),
    )
    .await;
    assert_eq!(status, 200, "{out:#}");
    assert_eq!(out["result"], "swapped", "{out:#}");
    assert_eq!(claude_status(&c, &url).await, Some(200));
    assert_eq!(
        claude_status(&c, &url).await,
        Some(429),
        "the swap reset the window"
    );
    let r = row(&plugins(&gw).await, "rate-limit");
    assert_eq!(r["version"], 2);
    assert_eq!(r["routes"], json!(["claude"]));
}

#[tokio::test]
async fn sighup_reloads_the_config_and_a_broken_config_is_refused() {
    let up = FakeUpstream::plain().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "sluice.yaml", &config_text(&up, "", "", false));
    let gw = gateway(&[&config], &[4060], &[], &[]).await;
    let c = TestClient::new();
    let codex = gw.url(4060, "/codex/v1/chat/completions");
    let codex_body = json!({"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]});
    let codex_status = || async {
        c.post_json(&codex, &h(&[("authorization", "Bearer k")]), &codex_body)
            .await
            .status
    };
    assert_eq!(codex_status().await, 404);
    let v0 = plugins(&gw).await["config"]["version"].as_u64().unwrap();

    std::fs::write(&config, config_text(&up, "", "", true)).unwrap();
    gw.send_signal_hup().unwrap();
    let t0 = Instant::now();
    while codex_status().await != 200 {
        assert!(t0.elapsed() < Duration::from_secs(5), "new route not live");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dumped = TestClient::new().get(&gw.admin_url("/config")).await.json();
    assert_eq!(dumped["routes"].as_array().unwrap().len(), 2);

    // SIGHUP alone reloads (the config version moves by one). The write
    // above also woke the file watcher: wait for both reloads (the signal's
    // and the watcher's), so that neither lands during the check below.
    let t0 = Instant::now();
    while plugins(&gw).await["config"]["version"].as_u64().unwrap() < v0 + 2 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the watcher and SIGHUP did not both reload"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = plugins(&gw).await["config"]["version"].as_u64().unwrap();
    gw.send_signal_hup().unwrap();
    let t0 = Instant::now();
    while plugins(&gw).await["config"]["version"].as_u64().unwrap() != before + 1 {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "SIGHUP did not reload"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    std::fs::write(&config, "routes: [ {name: broken").unwrap();
    gw.send_signal_hup().unwrap();
    let t0 = Instant::now();
    loop {
        let report = plugins(&gw).await;
        if report["config"]["lastError"].is_string() {
            assert_eq!(report["config"]["version"].as_u64().unwrap(), before + 1);
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "refusal not reported"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(codex_status().await, 200, "old config no longer serving");
    assert_eq!(
        claude_status(&c, &gw.url(4060, "/claude/v1/messages")).await,
        Some(200)
    );
    assert!(gw
        .wait_for_log("config reload refused", Duration::from_secs(2))
        .await
        .is_ok());
}

#[tokio::test]
async fn a_watched_plugin_file_replaced_on_disk_goes_live() {
    let s = start_gate(DENY, "{message: blocked}").await;
    let url = s.gw.url(4060, "/claude/v1/messages");
    let c = TestClient::new();
    assert_eq!(claude_status(&c, &url).await, Some(403));
    // Editor style: write a temp file, rename it over.
    replace_file(&s.gate, &testing::fixture_bytes(ALLOW));
    wait_status(&c, &url, 200, Duration::from_secs(5)).await;
    // Build-tool style: rewrite in place.
    std::fs::write(&s.gate, testing::fixture_bytes(DENY)).unwrap();
    wait_status(&c, &url, 403, Duration::from_secs(5)).await;
    // A broken file is refused; the old version keeps serving.
    replace_file(&s.gate, b"garbage");
    let t0 = Instant::now();
    while row(&plugins(&s.gw).await, "gate")["lastError"].is_null() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "refusal not reported"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(claude_status(&c, &url).await, Some(403));
    assert_eq!(row(&plugins(&s.gw).await, "gate")["version"], 3);
    let _ = &s.config;
    let _ = &s.up;
}

/// `swaps` file swaps of `s`'s gate (allow, deny, allow, ...) under four
/// clients looping on `/claude`; each swap waits until the new version
/// serves. Returns (requests, failed requests).
async fn swaps_under_load(s: &Setup, swaps: usize, allow: &[u8], deny: &[u8]) -> (u64, u64) {
    let url = s.gw.url(4060, "/claude/v1/messages");
    let c = TestClient::new();
    let stop = Arc::new(AtomicBool::new(false));
    let counts: Arc<Mutex<(u64, u64)>> = Arc::default();
    let mut loops = Vec::new();
    for _ in 0..4 {
        let (stop, counts, url) = (stop.clone(), counts.clone(), url.clone());
        loops.push(tokio::spawn(async move {
            let c = TestClient::new();
            while !stop.load(Ordering::Relaxed) {
                let ok = matches!(claude_status(&c, &url).await, Some(200) | Some(403));
                let mut n = counts.lock().unwrap();
                n.0 += 1;
                n.1 += u64::from(!ok);
            }
        }));
    }
    for i in 0..swaps {
        let (bytes, want) = if i % 2 == 0 {
            (allow, 200)
        } else {
            (deny, 403)
        };
        replace_file(&s.gate, bytes);
        wait_status(&c, &url, want, Duration::from_secs(30)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        l.await.unwrap();
    }
    let n = *counts.lock().unwrap();
    n
}

/// The hot-swap promise, run in CI: ten file swaps under four clients, and
/// not one request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_swaps_under_load_fail_no_request() {
    let s = start_gate(DENY, "{message: blocked}").await;
    let deny = testing::fixture_bytes(DENY);
    let allow = testing::fixture_bytes(ALLOW);
    let (total, failed) = swaps_under_load(&s, 10, &allow, &deny).await;
    assert!(total > 40, "too few requests under load: {total}");
    assert_eq!(
        failed, 0,
        "{failed} of {total} requests failed during 10 swaps"
    );
    assert_eq!(row(&plugins(&s.gw).await, "gate")["version"], 11);
}

/// Benchmark (ignored; run with
/// `cargo test -p sluice --test e2e hot_swap::bench -- --ignored --nocapture`):
/// time from a plugin file write to the first request served by the new
/// version, under four clients, with a compile-cache miss (new bytes) and a
/// hit (bytes loaded before), and failed requests under steady load during
/// 20 swaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore]
async fn bench_file_write_to_first_new_answer() {
    let s = start_gate(DENY, "{message: blocked}").await;
    let url = s.gw.url(4060, "/claude/v1/messages");
    let c = TestClient::new();
    let deny = testing::fixture_bytes(DENY);
    let allow = testing::fixture_bytes(ALLOW);
    let nonce = format!("{:?}", std::time::SystemTime::now());
    let limit = Duration::from_secs(30);

    // Four clients keep sending requests while the swaps are timed.
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (stop, url) = (stop.clone(), url.clone());
        load.push(tokio::spawn(async move {
            let c = TestClient::new();
            while !stop.load(Ordering::Relaxed) {
                claude_status(&c, &url).await;
            }
        }));
    }
    // Misses: bytes never seen (fresh custom section), so they compile.
    let mut misses = Vec::new();
    for i in 0..3 {
        replace_file(&s.gate, &variant(&allow, &format!("{nonce}-a{i}")));
        misses.push(wait_status(&c, &url, 200, limit).await);
        replace_file(&s.gate, &variant(&deny, &format!("{nonce}-d{i}")));
        misses.push(wait_status(&c, &url, 403, limit).await);
    }
    // Hits: the original bytes of each, loaded before.
    let mut hits = Vec::new();
    for _ in 0..5 {
        replace_file(&s.gate, &allow);
        hits.push(wait_status(&c, &url, 200, limit).await);
        replace_file(&s.gate, &deny);
        hits.push(wait_status(&c, &url, 403, limit).await);
    }
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }

    // 20 swaps under steady load (4 clients in a loop).
    let (total, failed) = swaps_under_load(&s, 20, &allow, &deny).await;
    let ms = |v: &[Duration]| {
        let mut v: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        v.sort_by(f64::total_cmp);
        format!(
            "median {:.1} ms, max {:.1} ms (n={})",
            v[v.len() / 2],
            v[v.len() - 1],
            v.len()
        )
    };
    println!(
        "HOTSWAP write->first new answer, cache miss: {}",
        ms(&misses)
    );
    println!("HOTSWAP write->first new answer, cache hit:  {}", ms(&hits));
    println!("HOTSWAP 20 swaps under load: {total} requests, {failed} failed");
    assert_eq!(failed, 0);
}
