//! Shared setup: a TLS fake provider, the gateway pinned to it, temp configs.
#![allow(dead_code)]

use sluice_testkit::{FakeUpstream, Gateway, TestPki};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const BIN: &str = env!("CARGO_BIN_EXE_sluice");
pub const ANTHROPIC_KEY: &str = "sk-ant-api03-gateway-secret";
pub const OPENAI_KEY: &str = "sk-proj-gateway-secret";

/// A file from the repository's `config/` directory.
pub fn config(name: &str) -> String {
    format!("{}/../config/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A TLS upstream that answers for every provider name, and the CA to trust it.
pub struct Provider {
    pub pki: TestPki,
    pub upstream: FakeUpstream,
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
}

impl Provider {
    pub async fn tls() -> Provider {
        let pki = TestPki::new();
        let upstream = FakeUpstream::tls(&pki).await;
        let dir = tempfile::tempdir().unwrap();
        let ca = pki.write_ca(dir.path());
        Provider {
            pki,
            upstream,
            dir,
            ca,
        }
    }

    /// `--resolve` pins sending every provider host to this upstream.
    pub fn pins(&self) -> Vec<String> {
        pins_to(self.upstream.addr())
    }

    pub fn write(&self, name: &str, text: &str) -> String {
        write(self.dir.path(), name, text)
    }
}

pub fn pins_to(addr: SocketAddr) -> Vec<String> {
    [
        "api.anthropic.com:443",
        "api.openai.com:443",
        "chatgpt.com:443",
    ]
    .iter()
    .map(|h| format!("{h}={addr}"))
    .collect()
}

pub fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// Start the gateway on `configs`, every configured port remapped to a free one.
pub async fn gateway(
    configs: &[&str],
    ports: &[u16],
    pins: &[String],
    envs: &[(&str, &str)],
) -> Gateway {
    let args = gateway_args(configs, ports, pins);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Gateway::start(Path::new(BIN), &args, envs)
        .await
        .unwrap_or_else(|e| panic!("gateway failed to start: {e}"))
}

/// [`gateway`], for a start that is expected to fail: the error names why.
pub async fn try_gateway(
    configs: &[&str],
    ports: &[u16],
    pins: &[String],
    envs: &[(&str, &str)],
) -> Result<Gateway, String> {
    let args = gateway_args(configs, ports, pins);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Gateway::start(Path::new(BIN), &args, envs).await
}

/// The command line [`gateway`] passes.
fn gateway_args(configs: &[&str], ports: &[u16], pins: &[String]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--admin".into(),
        "127.0.0.1:0".into(),
        "--log-level".into(),
        "info,sluice=debug".into(),
    ];
    for c in configs {
        args.push("--config".into());
        args.push(c.to_string());
    }
    for p in ports {
        args.push("--port-map".into());
        args.push(format!("{p}=0"));
    }
    for pin in pins {
        args.push("--resolve".into());
        args.push(pin.clone());
    }
    args
}

/// [`gateway`] in a mount namespace of its own whose `/etc/hosts` starts
/// with `hosts` (`"127.0.0.1 auth.example.com"` lines): real name
/// resolution, as an operator's DNS would give it, without a `--resolve`
/// pin. Needs root (namespaces, and usually the low port the name is
/// reached on): elsewhere it returns `None` and the caller skips, except in
/// CI (`CI` set), which runs as root and must run the test.
pub async fn gateway_resolving(
    hosts: &str,
    configs: &[&str],
    ports: &[u16],
    pins: &[String],
    envs: &[(&str, &str)],
) -> Option<(Gateway, tempfile::TempDir)> {
    let probe = std::process::Command::new("unshare")
        .args(["-m", "true"])
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        let why = format!("no mount namespace for a private /etc/hosts: {probe:?}");
        assert!(std::env::var_os("CI").is_none(), "{why}");
        println!("SKIPPED: {why}");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let system = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let file = write(dir.path(), "hosts", &format!("{hosts}\n{system}"));
    let mut args: Vec<String> = vec![
        "-m".into(),
        "/bin/sh".into(),
        "-c".into(),
        r#"/usr/bin/mount --bind "$1" /etc/hosts && shift && exec "$@""#.into(),
        "sluice-in-namespace".into(),
        file,
        BIN.into(),
    ];
    args.extend(gateway_args(configs, ports, pins));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let gw = Gateway::start(Path::new("/usr/bin/unshare"), &args, envs)
        .await
        .unwrap_or_else(|e| panic!("gateway failed to start: {e}"));
    Some((gw, dir))
}

/// The gateway on the guide's pattern 2 file, trusting `p`'s CA, keys set.
pub async fn pattern2(p: &Provider) -> Gateway {
    let ca = p.ca.display().to_string();
    gateway(
        &[&config("api-key-routing.yaml")],
        &[4060],
        &p.pins(),
        &[
            ("SSL_CERT_FILE", &ca),
            ("ANTHROPIC_API_KEY", ANTHROPIC_KEY),
            ("OPENAI_API_KEY", OPENAI_KEY),
        ],
    )
    .await
}

/// The gateway on the guide's pattern 1 file, trusting `p`'s CA.
pub async fn pattern1(p: &Provider) -> Gateway {
    let ca = p.ca.display().to_string();
    gateway(
        &[&config("subscription-passthrough.yaml")],
        &[4001],
        &p.pins(),
        &[("SSL_CERT_FILE", &ca)],
    )
    .await
}

pub fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The serving file most plugin tests share: port 4060, `/claude`
/// (Anthropic) and `/codex` (OpenAI) routes, as in the guide, pointed at a
/// plain fake upstream. Policy layers go in files of their own.
pub fn serving(dir: &Path, upstream: SocketAddr) -> String {
    write(
        dir,
        "serving.yaml",
        &format!(
            r#"
binds:
- port: 4060
  listeners:
  - name: default
    protocol: HTTP
routes:
- name: claude-agent
  matches:
  - path:
      pathPrefix: /claude
  policies:
    urlRewrite:
      path:
        prefix: /
    ai:
      routes:
        /v1/messages: messages
        /v1/messages/count_tokens: anthropicTokenCount
        '*': passthrough
  backends:
  - ai:
      name: claude-agent
      provider:
        anthropic: {{}}
      hostOverride: http://{upstream}
- name: codex-agent
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
        /v1/responses: responses
        '*': passthrough
  backends:
  - ai:
      name: codex-agent
      provider:
        openAI: {{}}
      hostOverride: http://{upstream}
"#
        ),
    )
}

/// Access-log lines the gateway has written so far. A request's line is
/// written after its completion hook ran (token charges, counters), so this
/// is the observable "the request is finished" signal.
pub fn access_lines(gw: &Gateway) -> usize {
    gw.logs()
        .lines()
        .filter(|l| l.contains("sluice::access"))
        .count()
}

/// Waits until at least `n` access-log lines were written; panics with the
/// log after `timeout`.
pub async fn wait_access_lines(gw: &Gateway, n: usize, timeout: std::time::Duration) {
    let t0 = std::time::Instant::now();
    while access_lines(gw) < n {
        assert!(
            t0.elapsed() < timeout,
            "{n} access-log lines not written within {timeout:?}\n--- stderr ---\n{}",
            gw.logs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
