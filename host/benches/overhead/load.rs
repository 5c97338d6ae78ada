//! Load generation and the readings taken from `/proc`: CPU time of a
//! process tree (user + system), RSS, and client-side latencies.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

pub type Headers = Vec<(String, String)>;

fn client() -> Client<HttpConnector, Full<Bytes>> {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(http)
}

fn request(url: &str, headers: &Headers, body: &Bytes) -> Request<Full<Bytes>> {
    let mut b = Request::post(url);
    for (k, v) in headers {
        b = b.header(k, v);
    }
    b.body(Full::new(body.clone())).unwrap()
}

/// Every pid in the tree rooted at `root` (nginx and Envoy may fork).
fn tree(root: u32) -> Vec<u32> {
    let mut all = vec![root];
    let mut i = 0;
    while i < all.len() {
        let pid = all[i];
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for t in tasks.flatten() {
                let path = t.path().join("children");
                if let Ok(kids) = std::fs::read_to_string(path) {
                    all.extend(
                        kids.split_whitespace()
                            .filter_map(|k| k.parse::<u32>().ok()),
                    );
                }
            }
        }
        i += 1;
    }
    all
}

/// CPU seconds (user + system) used so far by `root` and its descendants.
pub fn cpu_seconds(root: u32) -> f64 {
    let hz = clock_ticks();
    tree(root)
        .into_iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .map(|stat| {
            let rest = &stat[stat.rfind(')').unwrap() + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime: fields 14 and 15 of the line, 11 and 12 after the comm.
            (f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()) as f64 / hz
        })
        .sum()
}

fn clock_ticks() -> f64 {
    static HZ: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *HZ.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Resident set size of the tree, in MB.
pub fn rss_mb(root: u32) -> f64 {
    tree(root)
        .into_iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .sum::<f64>()
        / 1024.0
}

/// `n` requests over `conc` keep-alive connections; each answer is read to
/// the end and must be a 200 (an SSE answer must end with `message_stop`).
pub async fn run(url: &str, headers: &Headers, body: &Bytes, n: usize, conc: usize) -> Duration {
    let c = client();
    let started = Instant::now();
    let per = n.div_ceil(conc);
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (c, url, headers, body) = (c.clone(), url.to_owned(), headers.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..per {
                let resp = c.request(request(&url, &headers, &body)).await.unwrap();
                let status = resp.status();
                let text = resp.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(status, 200, "{url}: {}", String::from_utf8_lossy(&text));
                if text.starts_with(b"event:") {
                    assert!(
                        text.ends_with(b"data: {\"type\":\"message_stop\"}\n\n"),
                        "{url}: stream cut short"
                    );
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed()
}

/// Median over `n` sequential requests of: the whole exchange (JSON) or
/// the time to the first body byte (SSE).
pub async fn p50(
    url: &str,
    headers: &Headers,
    body: &Bytes,
    n: usize,
    first_byte: bool,
) -> Duration {
    let c = client();
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let resp = c.request(request(url, headers, body)).await.unwrap();
        assert_eq!(resp.status(), 200, "{url}");
        let mut body = resp.into_body();
        let mut first = None;
        while let Some(frame) = body.frame().await {
            if frame.unwrap().is_data() && first.is_none() {
                first = Some(t.elapsed());
            }
        }
        times.push(if first_byte {
            first.unwrap_or_else(|| t.elapsed())
        } else {
            t.elapsed()
        });
    }
    times.sort();
    times[n / 2]
}

/// Open `count` streams and wait until each has its first event; returns
/// the tasks, which finish once the upstream releases the streams.
pub async fn open_streams(
    url: &str,
    headers: &Headers,
    body: &Bytes,
    count: usize,
) -> Vec<tokio::task::JoinHandle<()>> {
    let c = client();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(count);
    let mut tasks = Vec::new();
    for _ in 0..count {
        let (c, url, headers, body, ready) = (
            c.clone(),
            url.to_owned(),
            headers.clone(),
            body.clone(),
            ready_tx.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let resp = c.request(request(&url, &headers, &body)).await.unwrap();
            assert_eq!(resp.status(), 200, "{url}");
            let mut body = resp.into_body();
            let mut told = false;
            while let Some(frame) = body.frame().await {
                if frame.unwrap().is_data() && !told {
                    told = true;
                    let _ = ready.send(()).await;
                }
            }
        }));
    }
    let deadline = Duration::from_secs(60);
    for _ in 0..count {
        tokio::time::timeout(deadline, ready_rx.recv())
            .await
            .expect("streams did not open within 60 s");
    }
    tasks
}

/// Resident memory of `pid` by mapping (file name, `[heap]`, `[anon]`; wasm
/// linear memories, reserved 1 GiB or more each, as one row), largest first.
/// `BENCH_SMAPS=1` prints it beside the memory table.
pub fn rss_by_mapping(pid: u32) -> Vec<(String, f64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut rows: std::collections::BTreeMap<String, f64> = Default::default();
    let mut current = String::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let first = f.next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            let size =
                u64::from_str_radix(b, 16).unwrap_or(0) - u64::from_str_radix(a, 16).unwrap_or(0);
            let name = f.nth(4).unwrap_or("[anon]").to_string();
            current = if name == "[anon]" && size >= 1 << 30 {
                "[wasm linear memories]".into()
            } else {
                name
            };
        } else if first == "Rss:" {
            let kb: f64 = f.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
            *rows.entry(current.clone()).or_default() += kb / 1024.0;
        }
    }
    let mut rows: Vec<_> = rows.into_iter().collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    rows
}
