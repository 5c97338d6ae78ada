//! Running the real `sluice` binary.
//!
//! End-to-end tests must exercise the shipped process (flags, config loading, signals, TLS),
//! not a library call. [`Gateway::start`] spawns it, learns the actual listener addresses from
//! the readiness lines it prints on stdout, and keeps its stderr so failures explain themselves.
//!
//! Readiness protocol (stdout, one per line):
//! ```text
//! SLUICE_LISTENING port=<configured port> addr=<actual ip:port> tls=<true|false>
//! SLUICE_ADMIN addr=<ip:port>
//! SLUICE_READY
//! ```

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// How long [`Gateway::start`] waits for `SLUICE_READY`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long [`run`] lets a one-shot command run before killing it.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// This test process's compile-cache directory, shared by every gateway it
/// starts and removed when the process exits.
///
/// Why per run: a cache in the real `~/.cache/sluice` makes a run depend on
/// earlier runs (and on other checkouts). One directory for the whole test
/// process keeps the cost of compiling the bundled plugins to once per run.
pub fn run_cache_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("sluice-test-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the per-run compile cache dir");
        extern "C" fn cleanup() {
            if let Some(dir) = DIR.get() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        // SAFETY: registering a plain `extern "C" fn()` with atexit(3).
        unsafe { libc::atexit(cleanup) };
        dir
    })
}

/// The environment a child gateway starts with: nothing inherited from the
/// runner (users export real API keys, `RUST_LOG`, proxies...), only a
/// per-run compile cache plus what the test passes in `envs`.
fn hermetic_env(envs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
    let mut out: Vec<(OsString, OsString)> = vec![(
        "XDG_CACHE_HOME".into(),
        run_cache_dir().as_os_str().to_owned(),
    )];
    out.extend(
        envs.iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v))),
    );
    out
}

/// One announced listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    /// The port as written in the config (may be 0).
    pub port: u16,
    /// Where it actually listens.
    pub addr: SocketAddr,
    pub tls: bool,
}

/// A running gateway process; killed on drop.
pub struct Gateway {
    child: Child,
    listeners: Vec<Listener>,
    admin: Option<SocketAddr>,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<Vec<String>>>,
}

/// Parses one readiness line into its fields.
fn parse_fields(rest: &str) -> Vec<(&str, &str)> {
    rest.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .collect()
}

fn field<'a>(fields: &[(&'a str, &'a str)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
}

/// Parses a `SLUICE_LISTENING …` line.
pub fn parse_listening(line: &str) -> Option<Listener> {
    let rest = line.strip_prefix("SLUICE_LISTENING ")?;
    let f = parse_fields(rest);
    Some(Listener {
        port: field(&f, "port")?.parse().ok()?,
        addr: field(&f, "addr")?.parse().ok()?,
        tls: field(&f, "tls")? == "true",
    })
}

/// Parses a `SLUICE_ADMIN …` line.
pub fn parse_admin(line: &str) -> Option<SocketAddr> {
    let rest = line.strip_prefix("SLUICE_ADMIN ")?;
    field(&parse_fields(rest), "addr")?.parse().ok()
}

/// Makes a wildcard bind address connectable.
fn connectable(mut addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        });
    }
    addr
}

impl Gateway {
    /// Spawns `bin args…` with a cleared environment plus `envs` (and a
    /// per-run `XDG_CACHE_HOME`, see [`run_cache_dir`]) and waits (30 s) for
    /// `SLUICE_READY`. On timeout or early exit the error includes the
    /// captured stderr.
    pub async fn start(
        bin: &Path,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Result<Gateway, String> {
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .env_clear()
            .envs(hermetic_env(envs))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", bin.display()))?;

        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().expect("stderr piped");
        let err_buf = stderr.clone();
        let err_task = tokio::spawn(async move {
            let mut chunk = [0u8; 8192];
            while let Ok(n) = err_pipe.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                err_buf
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });

        let stdout = Arc::new(Mutex::new(Vec::new()));
        let out_pipe = child.stdout.take().expect("stdout piped");
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let out_buf = stdout.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(out_pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                out_buf.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });

        let mut listeners = Vec::new();
        let mut admin = None;
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        let failure = loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Err(_) => break format!("no SLUICE_READY within {READY_TIMEOUT:?}"),
                Ok(None) => {
                    let status = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
                    break format!("gateway exited before SLUICE_READY: {status:?}");
                }
                Ok(Some(line)) => {
                    let line = line.trim_end();
                    if let Some(l) = parse_listening(line) {
                        listeners.push(l);
                    } else if let Some(a) = parse_admin(line) {
                        admin = Some(a);
                    } else if line == "SLUICE_READY" {
                        return Ok(Gateway {
                            child,
                            listeners,
                            admin,
                            stderr,
                            stdout,
                        });
                    }
                }
            }
        };
        let _ = child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), err_task).await;
        let out = stdout.lock().unwrap().join("\n");
        let err = stderr.lock().unwrap().clone();
        Err(format!(
            "{failure}\n--- stdout ---\n{out}\n--- stderr ---\n{err}"
        ))
    }

    /// All announced listeners.
    pub fn listeners(&self) -> &[Listener] {
        &self.listeners
    }

    /// The actual address of the listener configured with `configured_port`.
    /// Panics if no such listener was announced.
    pub fn addr(&self, configured_port: u16) -> SocketAddr {
        connectable(self.listener(configured_port).addr)
    }

    fn listener(&self, configured_port: u16) -> Listener {
        *self
            .listeners
            .iter()
            .find(|l| l.port == configured_port)
            .unwrap_or_else(|| {
                panic!(
                    "no listener for configured port {configured_port}; announced: {:?}",
                    self.listeners
                )
            })
    }

    /// `http(s)://ip:port` + `path` for the listener configured with `configured_port`.
    pub fn url(&self, configured_port: u16, path: &str) -> String {
        let l = self.listener(configured_port);
        let scheme = if l.tls { "https" } else { "http" };
        format!("{scheme}://{}{path}", connectable(l.addr))
    }

    /// The admin address, if announced.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.map(connectable)
    }

    /// `http://admin` + `path`. Panics if no admin line was announced.
    pub fn admin_url(&self, path: &str) -> String {
        let a = self
            .admin_addr()
            .expect("gateway announced no SLUICE_ADMIN");
        format!("http://{a}{path}")
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stderr captured so far.
    pub fn logs(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Stdout lines so far (including the readiness lines).
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits until stderr contains `substr`; the error carries the logs.
    pub async fn wait_for_log(&self, substr: &str, timeout: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.logs().contains(substr) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "log line containing {substr:?} not seen within {timeout:?}\n--- stderr ---\n{}",
                    self.logs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGHUP (config reload).
    pub fn send_signal_hup(&self) -> Result<(), String> {
        self.signal(libc::SIGHUP)
    }

    /// Sends SIGTERM (graceful shutdown).
    pub fn send_signal_term(&self) -> Result<(), String> {
        self.signal(libc::SIGTERM)
    }

    fn signal(&self, sig: libc::c_int) -> Result<(), String> {
        let pid = self.child.id().ok_or("gateway already exited")?;
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
        if rc == 0 {
            Ok(())
        } else {
            Err(format!(
                "kill({pid}, {sig}): {}",
                std::io::Error::last_os_error()
            ))
        }
    }

    /// Waits for the process to exit by itself.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Runs a one-shot command (e.g. `sluice validate cfg.yaml`) to completion,
/// with the same hermetic environment as [`Gateway::start`]. Panics, naming
/// the command and with what it printed, if it runs longer than
/// [`RUN_TIMEOUT`] (a command that should have failed but started serving).
pub fn run(bin: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    run_with_timeout(bin, args, envs, RUN_TIMEOUT)
}

/// [`run`] with an explicit limit.
pub fn run_with_timeout(
    bin: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
    limit: Duration,
) -> Output {
    use std::io::Read as _;
    let mut child = std::process::Command::new(bin)
        .args(args)
        .env_clear()
        .envs(hermetic_env(envs))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
    let drain = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout piped")));
    let err = drain(Box::new(child.stderr.take().expect("stderr piped")));
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                let out = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
                let err = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
                panic!(
                    "`{} {}` still running after {limit:?}; killed\n--- stdout ---\n{out}\n--- stderr ---\n{err}",
                    bin.display(),
                    args.join(" ")
                );
            }
            Err(e) => panic!("waiting for {}: {e}", bin.display()),
        }
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// A loopback port that is bound but not listening, held for as long as the
/// value lives: connecting to it is refused, and no other test can take it
/// meanwhile (unlike a port learnt by binding and dropping a listener).
pub struct ClosedPort {
    _socket: tokio::net::TcpSocket,
    addr: SocketAddr,
}

impl ClosedPort {
    pub fn new() -> ClosedPort {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .expect("bind a loopback port");
        let addr = socket.local_addr().expect("local addr");
        ClosedPort {
            _socket: socket,
            addr,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Default for ClosedPort {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_readiness_lines() {
        let l =
            parse_listening("SLUICE_LISTENING port=8443 addr=127.0.0.1:40001 tls=true").unwrap();
        assert_eq!(l.port, 8443);
        assert_eq!(l.addr, "127.0.0.1:40001".parse().unwrap());
        assert!(l.tls);
        assert_eq!(
            parse_admin("SLUICE_ADMIN addr=0.0.0.0:9000").map(connectable),
            Some("127.0.0.1:9000".parse().unwrap())
        );
        assert!(parse_listening("SLUICE_READY").is_none());
    }
}
