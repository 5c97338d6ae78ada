//! A throwaway `redis-server` for tests.
//!
//! Each [`RedisServer`] runs its own process on a free loopback port in a
//! temp dir, without persistence (`--save '' --appendonly no`), so tests never
//! share a server or leave data behind. [`RedisServer::stop`] kills it (as an
//! outage would) and [`RedisServer::restart`] brings it back, empty, on the
//! same port. The process is killed on drop.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long to wait for the server to answer `PING`.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    password: Option<String>,
}

/// The `redis-server` binary: `$REDIS_SERVER`, else the first on `PATH`.
fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("REDIS_SERVER") {
        return p.into();
    }
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("redis-server"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("redis-server not found on PATH: install it (apt-get install -y redis-server)")
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl RedisServer {
    /// Start a server; panics (with its log) if it does not come up.
    pub fn start() -> RedisServer {
        Self::start_with(None)
    }

    /// Start a server that requires `password` (`requirepass`).
    pub fn start_with(password: Option<&str>) -> RedisServer {
        let mut last = String::new();
        for _ in 0..5 {
            let mut s = RedisServer {
                child: None,
                port: free_port(),
                dir: tempfile::tempdir().expect("a temp dir"),
                password: password.map(str::to_owned),
            };
            match s.spawn() {
                Ok(()) => return s,
                Err(e) => last = e,
            }
        }
        panic!("redis-server did not start: {last}");
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = self.dir.path().join("redis.log");
        let mut cmd = Command::new(binary());
        cmd.current_dir(self.dir.path())
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--dir", &self.dir.path().display().to_string()])
            .args(["--logfile", &log.display().to_string()]);
        if let Some(p) = &self.password {
            cmd.args(["--requirepass", p]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawning redis-server: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.child = None;
                    let log = std::fs::read_to_string(&log).unwrap_or_default();
                    return Err(format!("exited with {status}: {log}"));
                }
            }
            if self.ping() {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(format!("no PING answer within {START_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>` (with the password when there is one).
    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://default:{p}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// A new synchronous client connection (short timeouts).
    pub fn connect(&self) -> ::redis::RedisResult<::redis::Connection> {
        let client = ::redis::Client::open(self.url())?;
        let c = client.get_connection_with_timeout(Duration::from_secs(2))?;
        c.set_read_timeout(Some(Duration::from_secs(5)))?;
        Ok(c)
    }

    fn ping(&self) -> bool {
        self.connect()
            .and_then(|mut c| ::redis::cmd("PING").query::<String>(&mut c))
            .is_ok()
    }

    /// Every key matching `pattern` (`SCAN`), sorted.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut c = self.connect().expect("connecting to the test redis");
        let mut keys: Vec<String> = ::redis::cmd("SCAN")
            .cursor_arg(0)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .clone()
            .iter::<String>(&mut c)
            .expect("SCAN")
            .collect();
        keys.sort();
        keys
    }

    /// The server's clock, milliseconds since the epoch (`TIME`).
    pub fn time_ms(&self) -> u64 {
        let mut c = self.connect().expect("connecting to the test redis");
        let (s, us): (u64, u64) = ::redis::cmd("TIME").query(&mut c).expect("TIME");
        s * 1000 + us / 1000
    }

    /// Kill the server (SIGKILL, like a crash) and wait for it to go.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again, empty, on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let mut last = String::new();
        for _ in 0..20 {
            match self.spawn() {
                Ok(()) => return,
                // The port may linger for a moment after the kill.
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("redis-server did not restart on port {}: {last}", self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
