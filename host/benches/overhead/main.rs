//! The performance harness (issue 10): the guide's production route, the
//! no-policy route and SSE streaming, against a bare hyper proxy, nginx and
//! Envoy, measured side by side in one run.
//!
//! ```text
//! cargo bench --workspace --bench overhead
//! ```
//!
//! Every proxy is a child process pinned to CPU 0; this process (the load
//! generator and the fake upstream) runs on CPU 1. The primary figure is the
//! proxy's own CPU time (user + system, from `/proc`, its whole process
//! tree) per request or per stream, so the load generator and upstream
//! never count. Each figure is the median of `BENCH_PASSES` (3) interleaved
//! passes. Targets are printed beside the ratios; nothing here is a test.
//!
//! The production route is `config/production-route.yaml` with the guide's
//! `rate-limit.yaml`, `input-validation.yaml` and `output-filter.yaml`
//! layers, verbatim but for two edits the bench must make: the backend gets
//! `hostOverride` (the fake upstream, plain HTTP like every peer's), and the
//! two `requestsPerHour` limits are raised so the load is not refused (the
//! counters are still taken on every request). The JWT is RS256, verified
//! against a JWKS found by OIDC discovery from the issuer, over TLS.
//!
//! Knobs: `BENCH_PASSES`, `BENCH_REQUESTS` (JSON requests per pass, 20000),
//! `BENCH_STREAMS` (SSE streams per pass, 4000), `BENCH_HOLD` (open streams
//! in the memory scenario, 1000), `BENCH_ONLY` (substrings of target names,
//! `|`-separated),
//! The tracing rows run the same production route with `config.tracing` at
//! 100% sampling, once exporting to a live fake OTLP collector (in this
//! process, so its decoding is not counted) and once to a closed port (the
//! collector down), printed as ratios to the production route untraced.
//!
//! `BENCH_PERF=<seconds>` (profile the production route with `perf` instead;
//! `BENCH_PERF_ROUTE=plain` for the no-policy route, `traced` for the route
//! traced at 100%, `translated` for the no-policy route translated), `BENCH_SMAPS=1` (print
//! where the resident memory is while the streams are open).

mod load;
mod peers;
mod upstream;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;

use load::Headers;
use peers::Peer;

/// The production route's two rate-limit hooks, µs per request, with the
/// clock-aligned fixed windows, in the README's last full run ("13 + 9").
const FIXED_WINDOW_RATE_LIMIT_US: f64 = 22.0;
/// The production route's CPU per request in that run.
const FIXED_WINDOW_ROUTE_CPU_US: f64 = 211.0;

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--bare-proxy") {
        peers::bare_proxy_main(args[2].parse().unwrap(), args[3].parse().unwrap());
        return;
    }
    // The load generator and upstream get the core the proxies don't.
    let _ = std::process::Command::new("taskset")
        .args(["-cp", "1", &std::process::id().to_string()])
        .stdout(std::process::Stdio::null())
        .status();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn guide(name: &str) -> String {
    std::fs::read_to_string(repo().join("config").join(name)).unwrap()
}

/// The guide's production route with the bench's two edits (see the top).
fn production_files(dir: &Path, up: std::net::SocketAddr) -> Vec<PathBuf> {
    let write = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let route = guide("production-route.yaml");
    let provider = "      provider:\n        anthropic: {}\n";
    assert!(
        route.contains(provider),
        "production-route.yaml changed shape"
    );
    let route = route
        .replace(
            provider,
            &format!("{provider}      hostOverride: http://{up}\n"),
        )
        .replace("requestsPerHour: 200", "requestsPerHour: 1000000000");
    let limit =
        guide("rate-limit.yaml").replace("requestsPerHour: 100", "requestsPerHour: 1000000000");
    assert!(route.contains("1000000000") && limit.contains("1000000000"));
    // A masking-only route beside it, for the SSE masking scenario.
    let mask = format!(
        r#"binds:
- port: 4900
routes:
- name: mask
  matches:
  - path:
      pathPrefix: /mask
  policies:
    urlRewrite:
      path:
        prefix: /
    outputFilter:
      maskPatterns: [email, phone, ssn]
  backends:
  - ai:
      name: mask
      provider:
        anthropic: {{}}
      hostOverride: http://{up}
"#
    );
    vec![
        write("binds-and-mask.yaml", mask),
        write("production-route.yaml", route),
        write("rate-limit.yaml", limit),
        repo().join("config/input-validation.yaml"),
        repo().join("config/output-filter.yaml"),
    ]
}

fn plain_file(dir: &Path, up: std::net::SocketAddr) -> PathBuf {
    let p = dir.join("plain.yaml");
    std::fs::write(
        &p,
        format!(
            r#"binds:
- port: 4900
routes:
- name: plain
  matches:
  - path:
      pathPrefix: /plain
  policies:
    urlRewrite:
      path:
        prefix: /
  backends:
  - ai:
      name: plain
      provider:
        anthropic: {{}}
      hostOverride: http://{up}
- name: translated
  matches:
  - path:
      pathPrefix: /xlate
  policies:
    urlRewrite:
      path:
        prefix: /
    # The body's `context_management` edit has no Chat equivalent.
    ai:
      translation:
        unsupportedFields: drop
  backends:
  - ai:
      name: chat
      provider:
        openAI: {{}}
      hostOverride: http://{up}
"#
        ),
    )
    .unwrap();
    p
}

/// A ~1 KB Claude-Code-like `/v1/messages` body.
fn body(stream: bool) -> Bytes {
    let text = "Refactor the gateway's request pipeline so every phase reads top to bottom. \
                Keep the modules small and explain why in doc comments. "
        .repeat(6);
    Bytes::from(
        json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "stream": stream,
            "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
            "system": [{"type": "text", "text": "You are a careful coding agent."}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]})
        .to_string(),
    )
}

/// Row name of the no-policy route translated Messages → Chat.
const TRANSLATED: &str = "sluice, translated Messages→Chat";

/// Row names of the traced production route.
const TRACED_LIVE: &str = "sluice, prod + tracing 100%";
const TRACED_DOWN: &str = "sluice, prod + tracing, collector down";
/// Row name of the production route with `apiKey` and a dollar budget.
const BUDGETED: &str = "sluice, production + apiKey + budget";

/// The production route plus a policy layer with `apiKey` (the bench's
/// `x-api-key`) and a dollar budget too large to refuse, and a price for
/// the bench's model: every request is priced, reserved and settled.
fn budget_files(dir: &Path) -> Vec<PathBuf> {
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    vec![
        write(
            "budget-layer.yaml",
            r#"- name: keys-and-budgets
  matches:
  - path:
      pathPrefix: /claude
  policies:
    apiKey:
      mode: strict
      location: {header: {name: x-api-key}}
      keys:
      - key: sk-bench
        metadata: {user: bench, team: perf}
    budget:
      limits:
      - {scope: key, usd: 1000000000, period: month}
      - {scope: team, usd: 1000000000, period: month}
"#,
        ),
        write(
            "budget-catalog.yaml",
            r#"config:
  modelCatalog:
  - inline:
      providers:
        anthropic:
          models:
            claude-sonnet-4-5:
              rates: {input: "3", output: "15", cacheRead: "0.3", cacheWrite: "3.75"}
"#,
        ),
    ]
}

/// One row: a peer and what to send it.
#[derive(Clone)]
struct Target {
    name: String,
    pid: u32,
    url: String,
    headers: Headers,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

async fn cpu_per(t: &Target, body: &Bytes, n: usize, conc: usize) -> (f64, f64) {
    load::run(&t.url, &t.headers, body, conc * 8, conc).await; // warm: pools, instances
    let before = load::cpu_seconds(t.pid);
    let wall = load::run(&t.url, &t.headers, body, n, conc).await;
    let cpu = load::cpu_seconds(t.pid) - before;
    (cpu * 1e6 / n as f64, n as f64 / wall.as_secs_f64())
}

async fn run() {
    let passes = knob("BENCH_PASSES", 3);
    let n_json = knob("BENCH_REQUESTS", 20_000);
    let n_sse = knob("BENCH_STREAMS", 4_000);
    let hold = knob("BENCH_HOLD", 1_000);
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let conc = 64;

    let up = upstream::Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");

    // The identity provider of the production route, over TLS.
    let pki = sluice_testkit::TestPki::new();
    let ca = pki.write_ca(dir.path());
    let jwks = json!({"keys": [sluice_testkit::idp::public_jwk(sluice_testkit::idp::TEST_RSA_KEY_1, "k1")]});
    let idp = sluice_testkit::Idp::tls(jwks, &pki, "auth.yourcompany.com").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = sluice_testkit::idp::sign(
        sluice_testkit::idp::TEST_RSA_KEY_1,
        "k1",
        &json!({"iss": idp.issuer, "aud": ["agentgateway"], "sub": "bench", "email": "dev@yourcompany.com",
            "iat": now, "exp": now + 7200}),
    );
    let pins = vec![format!("auth.yourcompany.com:443={}", idp.addr)];
    let cache_s = cache.to_str().unwrap().to_owned();
    let ca_s = ca.to_str().unwrap().to_owned();
    let envs = [
        ("XDG_CACHE_HOME", cache_s.as_str()),
        ("SSL_CERT_FILE", ca_s.as_str()),
    ];

    let plain_headers: Headers = vec![
        ("x-api-key".into(), "sk-bench".into()),
        ("content-type".into(), "application/json".into()),
        ("anthropic-version".into(), "2023-06-01".into()),
    ];
    let mut auth_headers = plain_headers[1..].to_vec();
    auth_headers.push(("authorization".into(), format!("Bearer {token}")));

    // The peers.
    let bare = peers::bare(up.addr).await;
    let nginx = peers::nginx(dir.path(), up.addr).await;
    let envoy = peers::envoy(dir.path(), up.addr).await;
    let plain_cfg = plain_file(dir.path(), up.addr);
    let (plain, _) = peers::sluice("sluice, no policies", &[&plain_cfg], &[], &envs).await;
    let prod_files = production_files(dir.path(), up.addr);
    let prod_refs: Vec<&Path> = prod_files.iter().map(PathBuf::as_path).collect();
    // First start compiles the plugins into the cache; the second is the
    // warm start the target is about.
    // (Under BENCH_PERF the profiled instance compiles its plugins itself,
    // in a cache of its own: wasmtime names guest code in the perf map only
    // when it compiles it, not when it loads it from the cache.)
    let cold_start = if std::env::var_os("BENCH_PERF").is_none() {
        let (cold, took) = peers::sluice("cold", &prod_refs, &pins, &envs).await;
        drop(cold);
        took
    } else {
        Duration::ZERO
    };
    let perf_cache = dir.path().join("perf-cache").to_str().unwrap().to_owned();
    let mut prod_envs = envs.to_vec();
    if std::env::var_os("BENCH_PERF").is_some() {
        prod_envs[0].1 = perf_cache.as_str();
        prod_envs.push(("SLUICE_WASM_PERFMAP", "1"));
    }
    let (prod, warm_start) =
        peers::sluice("sluice, production route", &prod_refs, &pins, &prod_envs).await;
    // The production route traced at 100%: to a live collector, and to one
    // that is down.
    let collector = sluice_testkit::otlp::Collector::start().await;
    let closed = sluice_testkit::ClosedPort::new();
    let traced = |name: &str, endpoint: String| {
        let p = dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &p,
            format!(
                "config:\n  tracing:\n    otlpEndpoint: {endpoint}\n    otlpProtocol: http\n    randomSampling: true\n"
            ),
        )
        .unwrap();
        p
    };
    let live_cfg = traced("tracing-live", collector.url());
    let down_cfg = traced("tracing-down", format!("http://{}", closed.addr()));
    let mut live_files = prod_refs.clone();
    live_files.push(&live_cfg);
    let mut down_files = prod_refs.clone();
    down_files.push(&down_cfg);
    let budget_cfg = budget_files(dir.path());
    let mut budget_refs = prod_refs.clone();
    budget_refs.extend(budget_cfg.iter().map(PathBuf::as_path));
    let (prod_budget, _) = peers::sluice(BUDGETED, &budget_refs, &pins, &envs).await;
    let (prod_traced, _) = peers::sluice(TRACED_LIVE, &live_files, &pins, &envs).await;
    let (prod_traced_down, _) = peers::sluice(TRACED_DOWN, &down_files, &pins, &envs).await;
    let idle_prod = load::rss_mb(prod.child.id());
    let idle_plain = load::rss_mb(plain.child.id());
    let redis = peers::installed("redis-server").then(sluice_testkit::RedisServer::start);
    let prod_redis = match &redis {
        Some(r) => {
            let state = dir.path().join("state.yaml");
            std::fs::write(
                &state,
                format!("state:\n  redis:\n    url: {}\n    timeout: 1s\n", r.url()),
            )
            .unwrap();
            let mut files = prod_refs.clone();
            files.push(&state);
            Some(
                peers::sluice("  same, Redis state", &files, &pins, &envs)
                    .await
                    .0,
            )
        }
        None => {
            println!("(redis-server not installed: no Redis-state row)");
            None
        }
    };

    // Smoke checks: each route answers, the policies are really on.
    let json_body = body(false);
    let sse_body = body(true);
    let ok = peers::check(&prod.base, "/claude/v1/messages", &auth_headers, &json_body).await;
    assert_eq!(ok.0, 200, "production route: {}", ok.1);
    let refused = peers::check(
        &prod.base,
        "/claude/v1/messages",
        &plain_headers,
        &json_body,
    )
    .await;
    assert_eq!(
        refused.0, 401,
        "production route without a JWT: {}",
        refused.1
    );
    let masked = peers::check(&prod.base, "/mask/v1/messages", &plain_headers, &json_body).await;
    assert_eq!(masked.0, 200, "masking route: {}", masked.1);

    // `BENCH_PERF=<seconds>`: profile the production route under load
    // with `perf record` (guest code named through wasmtime's perf map)
    // instead of measuring; the profile lands in target/perf-production.data.
    if let Some(secs) = std::env::var("BENCH_PERF")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        // `BENCH_PERF_ROUTE=plain` profiles the no-policy route instead,
        // `traced` the production route traced at 100% to a live collector.
        let which = std::env::var("BENCH_PERF_ROUTE").unwrap_or_default();
        let (peer, path, headers, out) = match which.as_str() {
            "plain" => (&plain, "/plain/v1/messages", &plain_headers, "plain"),
            "traced" => (&prod_traced, "/claude/v1/messages", &auth_headers, "traced"),
            "translated" => (&plain, "/xlate/v1/messages", &plain_headers, "translated"),
            _ => (&prod, "/claude/v1/messages", &auth_headers, "production"),
        };
        let out = repo().join(format!("target/perf-{out}.data"));
        let mut perf = std::process::Command::new("perf")
            .args(["record", "-F", "4000", "--call-graph", "dwarf,16384", "-o"])
            .arg(&out)
            .args([
                "-p",
                &peer.child.id().to_string(),
                "--",
                "sleep",
                &secs.to_string(),
            ])
            .spawn()
            .expect("perf (apt-get install linux-perf)");
        let url = format!("{}{path}", peer.base);
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        while std::time::Instant::now() < deadline {
            load::run(&url, headers, &json_body, 2000, conc).await;
        }
        perf.wait().unwrap();
        println!("profile: perf report -i {} --no-children", out.display());
        return;
    }

    let row = |p: &Peer, path: &str, h: &Headers| Target {
        name: p.name.clone(),
        pid: p.child.id(),
        url: format!("{}{path}", p.base),
        headers: h.clone(),
    };
    let mut json_targets = vec![row(&bare, "/v1/messages", &plain_headers)];
    let mut sse_targets = vec![row(&bare, "/v1/messages", &plain_headers)];
    for p in [&nginx, &envoy].into_iter().flatten() {
        json_targets.push(row(p, "/v1/messages", &plain_headers));
        sse_targets.push(row(p, "/v1/messages", &plain_headers));
    }
    json_targets.push(row(&plain, "/plain/v1/messages", &plain_headers));
    sse_targets.push(row(&plain, "/plain/v1/messages", &plain_headers));
    // The same route's client format to a backend that speaks Chat
    // Completions: Messages → Chat, request and answer translated.
    let mut translated = row(&plain, "/xlate/v1/messages", &plain_headers);
    translated.name = TRANSLATED.into();
    json_targets.push(translated.clone());
    sse_targets.push(translated);
    let mut mask = row(&prod, "/mask/v1/messages", &plain_headers);
    mask.name = "sluice, output masking only".into();
    sse_targets.push(mask);
    json_targets.push(row(&prod, "/claude/v1/messages", &auth_headers));
    sse_targets.push(row(&prod, "/claude/v1/messages", &auth_headers));
    if let Some(p) = &prod_redis {
        json_targets.push(row(p, "/claude/v1/messages", &auth_headers));
    }
    let mut budget_headers = auth_headers.clone();
    budget_headers.push(("x-api-key".into(), "sk-bench".into()));
    let ok = peers::check(
        &prod_budget.base,
        "/claude/v1/messages",
        &budget_headers,
        &json_body,
    )
    .await;
    assert_eq!(ok.0, 200, "budgeted route: {}", ok.1);
    json_targets.push(row(&prod_budget, "/claude/v1/messages", &budget_headers));
    json_targets.push(row(&prod_traced, "/claude/v1/messages", &auth_headers));
    json_targets.push(row(&prod_traced_down, "/claude/v1/messages", &auth_headers));
    // `BENCH_ONLY=a|b`: rows whose name contains any of the parts.
    let wanted = |name: &str| only.split('|').any(|o| name.contains(o));
    json_targets.retain(|t| wanted(&t.name) || t.name == "bare hyper proxy");
    sse_targets.retain(|t| wanted(&t.name) || t.name == "bare hyper proxy" || t.name == "nginx");

    println!(
        "\nbody {} bytes; JSON: {n_json} requests x {passes} passes at c={conc}; SSE: {n_sse} streams of {} events x {passes} passes",
        json_body.len(),
        upstream::SSE_EVENTS
    );
    let mut json_cpu = vec![Vec::new(); json_targets.len()];
    let mut json_rps = vec![Vec::new(); json_targets.len()];
    let mut sse_cpu = vec![Vec::new(); sse_targets.len()];
    let mut breakdown = String::new();
    for pass in 0..passes {
        for (i, t) in json_targets.iter().enumerate() {
            let (cpu, rps) = cpu_per(t, &json_body, n_json, conc).await;
            json_cpu[i].push(cpu);
            json_rps[i].push(rps);
        }
        if pass == 0 {
            breakdown = peers::get_text(&format!("{}/metrics", prod.admin)).await;
        }
        collector.clear();
        for (i, t) in sse_targets.iter().enumerate() {
            let (cpu, _) = cpu_per(t, &sse_body, n_sse, conc).await;
            sse_cpu[i].push(cpu);
        }
        eprintln!("pass {} of {passes} done", pass + 1);
    }
    let lat_n = 2000;
    let mut json_p50 = Vec::new();
    for t in &json_targets {
        json_p50.push(load::p50(&t.url, &t.headers, &json_body, lat_n, false).await);
    }
    let mut sse_ttfb = Vec::new();
    for t in &sse_targets {
        sse_ttfb.push(load::p50(&t.url, &t.headers, &sse_body, lat_n / 2, true).await);
    }

    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("\nJSON /v1/messages, c={conc} (CPU of the proxy per request), p50 at c=1");
    println!(
        "{:<34} {:>11} {:>8} {:>9} {:>10} {:>12}",
        "target", "CPU µs/req", "× bare", "req/s", "p50 µs", "p50 +µs bare"
    );
    let bare_cpu = median(&mut json_cpu[0].clone());
    let bare_p50 = us(json_p50[0]);
    let mut results = Vec::new();
    for (i, t) in json_targets.iter().enumerate() {
        let cpu = median(&mut json_cpu[i]);
        let rps = median(&mut json_rps[i]);
        let p = us(json_p50[i]);
        println!(
            "{:<34} {:>11.1} {:>7.2}× {:>9.0} {:>10.0} {:>12.0}",
            t.name,
            cpu,
            cpu / bare_cpu,
            rps,
            p,
            p - bare_p50
        );
        results.push((t.name.clone(), cpu / bare_cpu, p - bare_p50, p / bare_p50));
    }
    // Tracing's cost: each traced row beside the untraced production route.
    let prod_cpu = results
        .iter()
        .find(|r| r.0 == "sluice, production route")
        .map(|r| r.1);
    if let Some(prod_cpu) = prod_cpu {
        println!("\nTracing cost, production route JSON (CPU per request vs untraced; issue 23: ≤ 1.10×)");
        for name in [TRACED_LIVE, TRACED_DOWN] {
            if let Some(r) = results.iter().find(|r| r.0 == name) {
                println!("  {name:<40} {:>6.3}×", r.1 / prod_cpu);
            }
        }
        println!(
            "  export requests the live collector received: {}",
            collector.exports()
        );
        if let Some(r) = results.iter().find(|r| r.0 == BUDGETED) {
            println!(
                "\nKeys and budgets, production route JSON (CPU per request vs without; issue 25: ≤ 1.10×)\n  {BUDGETED:<40} {:>6.3}×",
                r.1 / prod_cpu
            );
        }
    }
    translation_cost(&results, "JSON", "CPU per request", 1.5);
    let base_sse = sse_targets
        .iter()
        .position(|t| t.name == "nginx")
        .unwrap_or(0);
    let base_name = sse_targets[base_sse].name.clone();
    println!("\nSSE, {} events per stream, c={conc} (CPU of the proxy per stream), time to first byte at c=1", upstream::SSE_EVENTS);
    println!(
        "{:<34} {:>13} {:>10} {:>10}",
        "target",
        "CPU µs/stream",
        format!("× {base_name}"),
        "TTFB µs"
    );
    let sse_base = median(&mut sse_cpu[base_sse].clone());
    let mut sse_results = Vec::new();
    for (i, t) in sse_targets.iter().enumerate() {
        let cpu = median(&mut sse_cpu[i]);
        println!(
            "{:<34} {:>13.1} {:>9.2}× {:>10.0}",
            t.name,
            cpu,
            cpu / sse_base,
            us(sse_ttfb[i])
        );
        sse_results.push((t.name.clone(), cpu / sse_base));
    }
    let sse_ratios: Vec<_> = sse_results
        .iter()
        .map(|(n, r)| (n.clone(), *r, 0.0, 0.0))
        .collect();
    translation_cost(
        &sse_ratios,
        "SSE",
        "CPU per stream, as many events each way",
        2.0,
    );

    // Where the production route's policy time goes, from Sluice's own
    // per-hook histograms after the first pass's JSON requests (wall time
    // per call, lowering and lifting included).
    let hooks = peers::hook_times(&breakdown);
    let requests = hooks
        .iter()
        .find(|h| h.0 == "jwt-auth" && h.1 == "request_headers")
        .map_or(1.0, |h| h.3);
    println!("\nProduction route, JSON: policy hook calls (Sluice's own histograms, wall µs)");
    println!(
        "{:<20} {:<18} {:>10} {:>10} {:>12}",
        "plugin", "hook", "µs/call", "calls", "µs/request"
    );
    let mut total = 0.0;
    let mut rate_limit = 0.0;
    for (plugin, hook, mean, calls) in hooks {
        let per_req = mean * calls / requests;
        total += per_req;
        if plugin == "rate-limit" {
            rate_limit += per_req;
        }
        println!("{plugin:<20} {hook:<18} {mean:>10.1} {calls:>10.0} {per_req:>12.1}");
    }
    println!(
        "{:<20} {:<18} {:>10} {:>10} {:>12.1}",
        "all hooks", "", "", "", total
    );
    // The limiter's cost beside the last figure of the fixed windows it
    // replaced (issue 20, item 3), measured the same way.
    println!(
        "rate limits: {rate_limit:.1} µs/request with sliding windows (`window-take`, one host call per attachment); \
         {FIXED_WINDOW_RATE_LIMIT_US} µs with fixed windows (`incr-counter`, README's last run, route {FIXED_WINDOW_ROUTE_CPU_US} µs/req CPU)"
    );

    // Memory: idle, then `hold` streams open through the masking route.
    println!("\nMemory (RSS, MB)");
    println!(
        "{:<34} {:>8} {:>14} {:>12}",
        "target",
        "idle",
        format!("{hold} streams"),
        "after close"
    );
    let mut mem_rows: Vec<(&str, u32, String, f64)> = vec![(
        "bare hyper proxy",
        bare.child.id(),
        format!("{}/v1/messages", bare.base),
        f64::NAN,
    )];
    for p in [&nginx, &envoy].into_iter().flatten() {
        mem_rows.push((
            p.name.as_str(),
            p.child.id(),
            format!("{}/v1/messages", p.base),
            f64::NAN,
        ));
    }
    mem_rows.push((
        "sluice, no policies",
        plain.child.id(),
        format!("{}/plain/v1/messages", plain.base),
        idle_plain,
    ));
    mem_rows.push((
        "sluice, 5 guide policies (masking)",
        prod.child.id(),
        format!("{}/mask/v1/messages", prod.base),
        idle_prod,
    ));
    let mut hold_headers = plain_headers.clone();
    hold_headers.push(("x-bench-hold".into(), "1".into()));
    let mut mem_results = Vec::new();
    for (name, pid, url, idle) in mem_rows {
        let idle = if idle.is_nan() {
            load::rss_mb(pid)
        } else {
            idle
        };
        let tasks = load::open_streams(&url, &hold_headers, &sse_body, hold).await;
        let open = load::rss_mb(pid);
        if std::env::var_os("BENCH_SMAPS").is_some() {
            for (mapping, mb) in load::rss_by_mapping(pid).into_iter().take(8) {
                println!("    {mb:>7.1} MB  {mapping}");
            }
        }
        up.release();
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(60), t).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = load::rss_mb(pid);
        println!("{name:<34} {idle:>8.1} {open:>14.1} {after:>12.1}");
        mem_results.push((name.to_owned(), idle, open, after));
    }
    println!(
        "\nStartup, production route: {:.0} ms cold (compiling the plugins), {:.0} ms with a warm compile cache",
        us(cold_start) / 1000.0,
        us(warm_start) / 1000.0
    );

    // The issue's targets, each with how far off it is.
    println!("\nTargets (issue 10)");
    let find = |name: &str| results.iter().find(|r| r.0 == name);
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    if let Some(r) = find("sluice, production route") {
        println!(
            "  production route CPU ≤ 2× bare: {:.2}× — {}",
            r.1,
            verdict(r.1 <= 2.0)
        );
        println!(
            "  production route p50 added ≤ 100 µs: {:.0} µs — {}",
            r.2,
            verdict(r.2 <= 100.0)
        );
    }
    if let Some(r) = find("sluice, no policies") {
        println!(
            "  no-policy CPU ≤ 1.15× bare: {:.2}× — {}",
            r.1,
            verdict(r.1 <= 1.15)
        );
        println!(
            "  no-policy p50 ≤ 1.15× bare: {:.2}× — {}",
            r.3,
            verdict(r.3 <= 1.15)
        );
    }
    if base_name == "nginx" {
        for (name, limit) in [
            ("sluice, no policies", 1.5),
            ("sluice, output masking only", 3.0),
        ] {
            if let Some(r) = sse_results.iter().find(|r| r.0 == name) {
                println!(
                    "  {name}: SSE CPU ≤ {limit}× nginx: {:.2}× — {}",
                    r.1,
                    verdict(r.1 <= limit)
                );
            }
        }
    }
    if let Some(m) = mem_results.iter().find(|m| m.0.starts_with("sluice, 5")) {
        println!(
            "  RSS idle with the five policies ≤ 30 MB: {:.1} — {}",
            m.1,
            verdict(m.1 <= 30.0)
        );
        println!(
            "  RSS at {hold} masked streams ≤ 60 MB: {:.1} — {}",
            m.2,
            verdict(m.2 <= 60.0)
        );
        println!(
            "  RSS returned after close (≤ idle + 10 MB): {:.1} — {}",
            m.3,
            verdict(m.3 <= m.1 + 10.0)
        );
    }
    println!(
        "  ready ≤ 300 ms with a warm cache: {:.0} ms — {}",
        us(warm_start) / 1000.0,
        verdict(warm_start <= Duration::from_millis(300))
    );
    drop(idp);
    drop(redis);
}

/// Translation's cost: the translated row beside the same route untranslated
/// (issue 24: JSON ≤ 1.5×, a translated SSE event ≤ 2×).
fn translation_cost(results: &[(String, f64, f64, f64)], what: &str, unit: &str, target: f64) {
    let find = |name: &str| results.iter().find(|r| r.0 == name).map(|r| r.1);
    if let (Some(plain), Some(translated)) = (find("sluice, no policies"), find(TRANSLATED)) {
        let ratio = translated / plain;
        println!(
            "\nTranslation cost, {what} ({unit} vs the same route untranslated; target ≤ {target}×): {ratio:.3}× — {}",
            if ratio <= target { "met" } else { "MISSED" }
        );
    }
}
