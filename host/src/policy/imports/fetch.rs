//! `fetch`: allow-listed, cached HTTP(S) GET for JWKS and discovery documents.
//!
//! The guard is the allow-list. A plugin reaches only the hosts its
//! attachment was granted in `init`'s `fetch-hosts` (`host` or `host:port`):
//! for a bundled policy, the destinations its config names (jwt-auth's
//! issuer, `jwks`/`jwksUri`, `jwksHosts`); for a declared plugin, those the
//! operator also listed in its `fetchHosts`. The config is trusted, so a
//! granted name is reached whatever it resolves to (an in-cluster or
//! corporate IdP on a private address, `localhost`), by the same rule as an
//! IP literal. Everything the operator did not name stays out of reach: a
//! discovery document pointing at another host, a URL a plugin builds from
//! request data, and redirects, which are never followed (the plugin sees
//! the 3xx).
//!
//! A refused or failed fetch logs its real cause at `warn` (the rule that
//! refused it, or the DNS, connect or TLS error with its sources and the
//! addresses tried) and is kept as the plugin's last error for
//! `GET /plugins`. Responses are cached by URL for `cache-ms`. The call
//! blocks (inside `block_in_place` on a multi-threaded tokio runtime); the
//! time spent waiting is credited back to the hook's CPU deadline.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use parking_lot::Mutex;

use super::HostState;
use crate::policy::bindings::host::FetchResponse;
use crate::proxy::client::{addresses, error_chain as chain, FetchClient, ResolveMap, Upstreams};

const TIMEOUT: Duration = Duration::from_secs(5);
const MAX_BODY: usize = 1 << 20;
const MAX_CACHED: usize = 256;

/// The HTTP client and the response cache, shared by all plugins.
///
/// Fetches use the gateway's upstream client settings, so they honour the
/// same trust store (`SSL_CERT_FILE`) and `--resolve` pins as provider
/// traffic. They run on a small runtime of their own: a hook is
/// synchronous, and waiting on a channel for a task there never nests one
/// runtime in another.
pub struct Fetcher {
    client: FetchClient,
    /// Always `Some` until dropped; see the `Drop` impl.
    rt: Option<tokio::runtime::Runtime>,
    cache: Mutex<HashMap<String, (FetchResponse, Instant)>>,
    /// Each plugin's last refused or failed fetch, for `GET /plugins`.
    failures: Mutex<HashMap<String, FetchFailure>>,
}

/// A plugin's last refused or failed fetch.
#[derive(Debug, Clone)]
pub struct FetchFailure {
    pub reason: String,
    pub at: SystemTime,
}

impl Fetcher {
    pub fn new(client: FetchClient) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sluice-fetch")
            .enable_all()
            .build()
            .expect("starting the plugin fetch runtime");
        Fetcher {
            client,
            rt: Some(rt),
            cache: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Each plugin's last refused or failed fetch.
    pub fn failures(&self) -> HashMap<String, FetchFailure> {
        self.failures.lock().clone()
    }

    fn failed(&self, plugin: &str, reason: &str) {
        self.failures.lock().insert(
            plugin.to_owned(),
            FetchFailure {
                reason: reason.to_owned(),
                at: SystemTime::now(),
            },
        );
    }
}

/// Why not the runtime's own drop: the last reference to the fetcher can go
/// away inside the gateway's async runtime (at shutdown, or when a reload
/// retires a snapshot), and dropping a runtime there panics ("Cannot drop a
/// runtime in a context where blocking is not allowed"). Shutting it down in
/// the background never blocks; an in-flight fetch is abandoned, which is
/// what shutdown wants.
impl Drop for Fetcher {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Default for Fetcher {
    fn default() -> Self {
        let upstreams = Upstreams::new(ResolveMap::default(), TIMEOUT);
        Fetcher::new(
            upstreams
                .fetch_client()
                .expect("the default client has no CA file to read"),
        )
    }
}

/// Whether `url`'s authority is in `allowed` (`host` allows any port).
pub fn host_allowed(url: &str, allowed: &[String]) -> Result<(), String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("invalid url: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err("only http and https urls can be fetched".into()),
    }
    let host = uri.host().ok_or("url has no host")?.to_ascii_lowercase();
    let port = uri.port_u16();
    let ok = allowed.iter().any(|a| {
        let a = a.to_ascii_lowercase();
        match (a.rsplit_once(':'), port) {
            (Some((h, p)), Some(port)) if !h.is_empty() => h == host && p == port.to_string(),
            (Some(_), None) => false,
            (None, _) => a == host,
            _ => false,
        }
    });
    if ok {
        Ok(())
    } else if allowed.is_empty() {
        Err(format!(
            "host `{host}` is not granted: this plugin may fetch from no host \
             (the operator grants hosts with `fetchHosts`)"
        ))
    } else {
        Err(format!(
            "host `{host}` is not granted: this plugin may fetch only from {}",
            allowed.join(", ")
        ))
    }
}

impl Fetcher {
    fn cached(&self, url: &str) -> Option<FetchResponse> {
        let mut cache = self.cache.lock();
        match cache.get(url) {
            Some((r, exp)) if *exp > Instant::now() => Some(r.clone()),
            Some(_) => {
                cache.remove(url);
                None
            }
            None => None,
        }
    }

    fn remember(&self, url: &str, r: &FetchResponse, cache_ms: u64) {
        if cache_ms == 0 {
            return;
        }
        let now = Instant::now();
        let mut cache = self.cache.lock();
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, (_, exp)| *exp > now);
            if cache.len() >= MAX_CACHED {
                return;
            }
        }
        cache.insert(
            url.to_owned(),
            (r.clone(), now + Duration::from_millis(cache_ms)),
        );
    }

    fn get(&self, url: &str) -> Result<FetchResponse, String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("invalid url: {e}"))?;
        let req = http::Request::get(uri.clone())
            .header(
                http::header::USER_AGENT,
                concat!("sluice/", env!("CARGO_PKG_VERSION")),
            )
            .body(
                Empty::<Bytes>::new()
                    .map_err(|never| match never {})
                    .boxed(),
            )
            .map_err(|e| e.to_string())?;
        let client = self.client.client.clone();
        let pins = self.client.pins.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let rt = self
            .rt
            .as_ref()
            .expect("the fetch runtime lives as long as the fetcher");
        rt.spawn(async move {
            let result = async {
                let resp = match client.request(req).await {
                    Ok(r) => r,
                    Err(e) if e.is_connect() => {
                        let tried = match addresses(&pins, &uri).await {
                            Ok(a) if a.is_empty() => "no addresses".to_string(),
                            Ok(a) => a
                                .iter()
                                .map(|a| a.to_string())
                                .collect::<Vec<_>>()
                                .join(", "),
                            Err(d) => format!("DNS failed: {d}"),
                        };
                        return Err(format!("{} (addresses: {tried})", chain(&e)));
                    }
                    Err(e) => return Err(chain(&e)),
                };
                let status = resp.status().as_u16();
                let headers = resp
                    .headers()
                    .iter()
                    .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                    .collect();
                let body = Limited::new(resp.into_body(), MAX_BODY)
                    .collect()
                    .await
                    .map_err(|e| format!("reading the body: {}", chain(&*e)))?
                    .to_bytes()
                    .to_vec();
                Ok(FetchResponse {
                    status,
                    headers,
                    body,
                })
            };
            let r = tokio::time::timeout(TIMEOUT, result)
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {TIMEOUT:?}")));
            let _ = tx.send(r);
        });
        rx.recv()
            .map_err(|_| "fetch task ended without an answer".to_string())?
    }
}

fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

pub fn fetch(s: &mut HostState, url: &str, cache_ms: u64) -> Result<FetchResponse, String> {
    let fetcher = s.env.fetcher.clone();
    if let Err(e) = host_allowed(url, &s.fetch_hosts) {
        let e = format!("fetch refused: {e}");
        tracing::warn!(plugin = &*s.plugin, url = %redact_query(url), reason = %e, "plugin fetch refused");
        fetcher.failed(&s.plugin, &e);
        return Err(e);
    }
    // `cache-ms` 0 means "fresh": a plugin refreshing keys must get a new copy.
    if cache_ms > 0 {
        if let Some(r) = fetcher.cached(url) {
            return Ok(r);
        }
    }
    let started = Instant::now();
    let result = blocking(|| fetcher.get(url));
    s.wait_credit += started.elapsed();
    s.host_wait += started.elapsed();
    match &result {
        Ok(r) => {
            tracing::debug!(plugin = &*s.plugin, url = %redact_query(url), status = r.status, "plugin fetch");
            fetcher.remember(url, r, cache_ms);
        }
        Err(e) => {
            tracing::warn!(plugin = &*s.plugin, url = %redact_query(url), error = %e, "plugin fetch failed");
            fetcher.failed(
                &s.plugin,
                &format!("fetch of {} failed: {e}", redact_query(url)),
            );
        }
    }
    result
}

/// `url` without its query: a plugin could put a credential there, and the
/// logs and `GET /plugins` never show one.
fn redact_query(url: &str) -> &str {
    url.split_once('?').map_or(url, |(u, _)| u)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// Serves `n` requests on 127.0.0.1 with a fixed body; returns the port.
    fn serve(n: usize) -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(n) {
                let mut stream = stream.unwrap();
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\nconnection: close\r\n\r\n{\"keys\":[]}",
                );
            }
        });
        port
    }

    #[test]
    fn get_and_cache() {
        let port = serve(1);
        let url = format!("http://127.0.0.1:{port}/jwks");
        let f = Fetcher::default();
        let r = f.get(&url).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{\"keys\":[]}"[..]));
        assert!(r
            .headers
            .iter()
            .any(|(k, v)| k == "content-type" && v == "application/json"));
        f.remember(&url, &r, 60_000);
        // The server is gone (it served one request): only the cache answers.
        assert_eq!(f.cached(&url).unwrap().body, r.body);
        f.remember("http://x/", &r, 0);
        assert!(f.cached("http://x/").is_none());
    }

    #[test]
    fn allow_list() {
        let allowed = vec!["idp.example.com".to_string(), "127.0.0.1:8080".to_string()];
        assert!(host_allowed("https://idp.example.com/jwks", &allowed).is_ok());
        assert!(host_allowed("https://IDP.example.com:444/x", &allowed).is_ok());
        assert!(host_allowed("http://127.0.0.1:8080/x", &allowed).is_ok());
        assert!(host_allowed("http://127.0.0.1:8081/x", &allowed).is_err());
        assert!(host_allowed("https://evil.com/idp.example.com", &allowed).is_err());
        assert!(host_allowed("file:///etc/passwd", &allowed).is_err());
    }
}
