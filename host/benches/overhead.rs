//! CPU per request: Sluice with the guide's five policies as Wasm components,
//! against a bare hyper reverse proxy, measured side by side in one run.
//!
//! Both proxies run as child processes in front of the same minimal upstream,
//! and get the same load from this process. CPU is read from
//! `/proc/<pid>/stat` (user + system) before and after, so the load generator
//! and the upstream don't count. Printed: CPU µs per request and the ratio to
//! the bare proxy. Run with `cargo bench -p sluice --bench overhead`.
//!
//! The bare proxy is this same executable re-run with `--bare-proxy`.
//!
//! When `redis-server` is installed, a second Sluice with the same routes
//! keeps its state (the rate limit's counters) in a throwaway Redis, so the
//! "Redis state" line compares with the memory-state line above it. Redis's
//! own CPU is not counted (it is another process); the wait for it is.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;

const REPLY: &str = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"Hello! Reach me at the usual place."}],"stop_reason":"end_turn","usage":{"input_tokens":11,"output_tokens":7}}"#;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--bare-proxy") {
        bare_proxy(args[2].parse().unwrap(), args[3].parse().unwrap());
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

/// A minimal upstream: reads the request, answers a fixed Anthropic message.
async fn upstream() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let _ = req.into_body().collect().await;
                    let mut r = Response::new(Full::new(Bytes::from_static(REPLY.as_bytes())));
                    r.headers_mut()
                        .insert("content-type", "application/json".parse().unwrap());
                    Ok::<_, hyper::Error>(r)
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

/// The baseline: a bare hyper reverse proxy (streams bodies both ways).
fn bare_proxy(listen: SocketAddr, upstream: SocketAddr) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let client: Client<HttpConnector, Incoming> =
            Client::builder(TokioExecutor::new()).build_http();
        let l = tokio::net::TcpListener::bind(listen).await.unwrap();
        println!("READY");
        loop {
            let (s, _) = l.accept().await.unwrap();
            let client = client.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                    let client = client.clone();
                    async move {
                        let pq = req
                            .uri()
                            .path_and_query()
                            .map(|p| p.as_str().to_string())
                            .unwrap_or_default();
                        *req.uri_mut() = format!("http://{upstream}{pq}").parse().unwrap();
                        req.headers_mut().remove("host");
                        let resp = client.request(req).await.unwrap();
                        Ok::<_, hyper::Error>(resp.map(|b| b.boxed()))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the whole line: utime, stime (index 11, 12 after the comm).
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn ticks_per_sec() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output();
    out.ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

async fn wait_ready(child: &mut Child, marker: &str) -> Vec<String> {
    let stdout = child.stdout.take().unwrap();
    let mut lines =
        tokio::io::BufReader::new(tokio::process::ChildStdout::from_std(stdout).unwrap()).lines();
    let mut seen = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        let done = line.contains(marker);
        seen.push(line);
        if done {
            break;
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    seen
}

/// Send `n` requests with `conc` concurrent keep-alive connections.
async fn load(
    url: &str,
    headers: &[(String, String)],
    body: &Bytes,
    n: usize,
    conc: usize,
) -> Duration {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let started = Instant::now();
    let per = n / conc;
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let client = client.clone();
        let url = url.to_string();
        let headers = headers.to_vec();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per {
                let mut b = Request::post(&url);
                for (k, v) in &headers {
                    b = b.header(k, v);
                }
                let resp = client
                    .request(b.body(Full::new(body.clone())).unwrap())
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200, "{url}");
                let _ = resp.into_body().collect().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed()
}

struct Target {
    name: &'static str,
    pid: u32,
    url: String,
    headers: Vec<(String, String)>,
}

fn token() -> String {
    let claims = serde_json::json!({"iss": "bench", "aud": "agentgateway", "sub": "u1", "email": "dev@example.com",
        "exp": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 3600});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"bench-secret-bench-secret-bench!"),
    )
    .unwrap()
}

fn sluice_config(up: SocketAddr) -> String {
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
- name: five
  matches:
  - path:
      pathPrefix: /claude
  policies:
    urlRewrite:
      path:
        prefix: /
    jwtAuth:
      issuer: bench
      audiences: [agentgateway]
      secret: bench-secret-bench-secret-bench!
    rateLimit:
      requestsPerHour: 1000000000
    inputValidation:
      maxRequestBodySize: 2MB
      blockPatterns:
      - "ignore previous instructions"
      - "bypass system prompt"
    outputFilter:
      maskPatterns: [email, phone, ssn]
    requestHeaderModifier:
      set:
        X-Gateway-Version: "1.2"
    responseHeaderModifier:
      add:
        X-Gateway-Processed: "true"
  backends:
  - ai:
      name: five
      provider:
        anthropic: {{}}
      hostOverride: http://{up}
"#
    )
}

async fn run() {
    let n: usize = std::env::var("BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6000);
    let conc = 8;
    let up = upstream().await;
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    };

    let bare_addr = free();
    let mut bare = Command::new(std::env::current_exe().unwrap())
        .args(["--bare-proxy", &bare_addr.to_string(), &up.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_ready(&mut bare, "READY").await;

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bench.yaml");
    std::fs::write(&cfg, sluice_config(up)).unwrap();
    let mut sluice = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "--port-map",
            "4900=0",
            "--admin",
            "127.0.0.1:0",
            "--log-level",
            "warn",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sluice_addr = listening(&mut sluice).await;

    // The same gateway with Redis state, if a redis-server is at hand.
    let redis = std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        .then(sluice_testkit::RedisServer::start);
    let mut with_redis = redis.as_ref().map(|r| {
        let state = dir.path().join("state.yaml");
        std::fs::write(
            &state,
            format!("state:\n  redis:\n    url: {}\n    timeout: 1s\n", r.url()),
        )
        .unwrap();
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args([
                "--config",
                cfg.to_str().unwrap(),
                "--config",
                state.to_str().unwrap(),
                "--port-map",
                "4900=0",
                "--admin",
                "127.0.0.1:0",
                "--log-level",
                "warn",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    });
    let redis_addr = match with_redis.as_mut() {
        Some(child) => Some(listening(child).await),
        None => None,
    };

    let auth = vec![
        ("authorization".to_string(), format!("Bearer {}", token())),
        ("content-type".to_string(), "application/json".to_string()),
        ("anthropic-version".to_string(), "2023-06-01".to_string()),
    ];
    let plain_headers = vec![
        ("x-api-key".to_string(), "k".to_string()),
        ("content-type".to_string(), "application/json".to_string()),
    ];
    let targets = [
        Target {
            name: "bare hyper proxy",
            pid: bare.id(),
            url: format!("http://{bare_addr}/v1/messages"),
            headers: plain_headers.clone(),
        },
        Target {
            name: "sluice, no policies",
            pid: sluice.id(),
            url: format!("http://{sluice_addr}/plain/v1/messages"),
            headers: plain_headers.clone(),
        },
        Target {
            name: "sluice, 5 Wasm policies",
            pid: sluice.id(),
            url: format!("http://{sluice_addr}/claude/v1/messages"),
            headers: auth.clone(),
        },
    ];
    let mut targets = Vec::from(targets);
    if let (Some(child), Some(addr)) = (with_redis.as_ref(), redis_addr.as_ref()) {
        targets.push(Target {
            name: "  same, Redis state",
            pid: child.id(),
            url: format!("http://{addr}/claude/v1/messages"),
            headers: auth,
        });
    } else {
        println!("(redis-server not installed: no Redis-state line)");
    }
    let small = Bytes::from(
        serde_json::json!({"model": "claude-sonnet-4-5", "max_tokens": 1024,
            "messages": [{"role": "user", "content": "Write a haiku about gateways."}]})
        .to_string(),
    );
    let mut big = sluice_testkit::client::bodies::claude_code_request();
    big["stream"] = serde_json::json!(false);
    let big = Bytes::from(big.to_string());
    let hz = ticks_per_sec();
    for (label, body) in [
        ("small JSON request", &small),
        ("Claude Code request (~50 KB)", &big),
    ] {
        println!(
            "\n{label}: {n} requests, {conc} connections, {} byte body",
            body.len()
        );
        println!(
            "{:<26} {:>14} {:>10} {:>12}",
            "target", "CPU µs/req", "ratio", "req/s"
        );
        let mut base = None;
        for t in &targets {
            load(&t.url, &t.headers, body, 400, conc).await; // warm up: pools, instances, caches
            let before = cpu_ticks(t.pid);
            let wall = load(&t.url, &t.headers, body, n, conc).await;
            let ticks = cpu_ticks(t.pid) - before;
            let us = ticks as f64 / hz * 1e6 / n as f64;
            let ratio = us / *base.get_or_insert(us);
            println!(
                "{:<26} {:>14.1} {:>9.2}x {:>12.0}",
                t.name,
                us,
                ratio,
                n as f64 / wall.as_secs_f64()
            );
        }
    }
    let _ = bare.kill();
    let _ = sluice.kill();
    if let Some(mut c) = with_redis {
        let _ = c.kill();
    }
    drop(redis);
}

/// Wait for a Sluice child's readiness and return its port-4900 address.
async fn listening(child: &mut Child) -> String {
    let lines = wait_ready(child, "SLUICE_READY").await;
    assert!(
        lines.iter().any(|l| l == "SLUICE_READY"),
        "sluice did not start: {lines:?}"
    );
    lines
        .iter()
        .find_map(|l| l.strip_prefix("SLUICE_LISTENING port=4900 addr="))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .unwrap()
}
