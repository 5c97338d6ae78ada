//! The upstream HTTP client: pooled hyper-util client over rustls.
//!
//! One client per distinct TLS setting (a backend with its own `backendTLS.root`
//! gets its own pool). HTTP/2 is negotiated with ALPN where the upstream offers
//! it. Trust is the Mozilla roots, the OS store (which honours `SSL_CERT_FILE`),
//! plus a backend's own CA file. `--resolve host:port=addr` pins a name to an
//! address while keeping the name for SNI and certificate checks, which is how
//! the tests run the guide's verbatim configs against a local TLS upstream.

use bytes::Bytes;
use http::Uri;
use http_body_util::combinators::BoxBody;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

/// Request bodies sent upstream: the client's streamed body or a buffered one.
pub type UpstreamBody = BoxBody<Bytes, hyper::Error>;
/// A pooled client.
pub type HttpClient = Client<HttpsConnector<ResolveConnector>, UpstreamBody>;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read CA file {path}: {reason}")]
    CaFile { path: PathBuf, reason: String },
    #[error("bad --resolve entry {0:?}: expected host:port=ip:port")]
    Resolve(String),
}

/// Name → address pins, like curl's `--resolve`.
#[derive(Debug, Clone, Default)]
pub struct ResolveMap(Arc<HashMap<(String, u16), SocketAddr>>);

impl ResolveMap {
    pub fn parse(entries: &[String]) -> Result<Self, ClientError> {
        let mut map = HashMap::new();
        for e in entries {
            let bad = || ClientError::Resolve(e.clone());
            let (name, addr) = e.split_once('=').ok_or_else(bad)?;
            let (host, port) = name.rsplit_once(':').ok_or_else(bad)?;
            let port: u16 = port.parse().map_err(|_| bad())?;
            let addr: SocketAddr = addr.parse().map_err(|_| bad())?;
            map.insert((host.to_ascii_lowercase(), port), addr);
        }
        Ok(ResolveMap(Arc::new(map)))
    }
}

/// An `HttpConnector` that first applies the resolve pins.
///
/// Every destination it is asked for was chosen by the config: a backend,
/// or a host the operator granted a plugin (`fetchHosts`, or a bundled
/// policy's own issuer and key URLs). The config is trusted, so a name is
/// connected to whatever it resolves to, loopback and private addresses
/// included, exactly like an IP literal. What the operator did not name is
/// refused before a connection is attempted (see `policy::imports::fetch`).
#[derive(Clone)]
pub struct ResolveConnector {
    inner: HttpConnector,
    pins: ResolveMap,
}

impl tower_service::Service<Uri> for ResolveConnector {
    type Response = <HttpConnector as tower_service::Service<Uri>>::Response;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let target = pinned(&self.pins, &uri).unwrap_or(uri);
        let fut = self.inner.call(target);
        Box::pin(async move { fut.await.map_err(Into::into) })
    }
}

/// Where `host:port` goes: the `--resolve` pin if there is one, otherwise
/// every address DNS gives. For error messages (a failed plugin fetch says
/// which addresses it tried); the connector resolves on its own.
pub async fn addresses(pins: &ResolveMap, uri: &Uri) -> Result<Vec<SocketAddr>, std::io::Error> {
    if let Some(p) = pinned(pins, uri).and_then(|u| u.authority()?.as_str().parse().ok()) {
        return Ok(vec![p]);
    }
    let host = uri
        .host()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
        .unwrap_or_default();
    Ok(tokio::net::lookup_host((host, default_port(uri)))
        .await?
        .collect())
}

/// An error and its causes on one line (hyper-util hides the useful part,
/// the DNS, connect or TLS error, in `source`).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

fn default_port(uri: &Uri) -> u16 {
    uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    })
}

fn pinned(pins: &ResolveMap, uri: &Uri) -> Option<Uri> {
    if pins.0.is_empty() {
        return None;
    }
    let host = uri.host()?.to_ascii_lowercase();
    let addr = pins.0.get(&(host, default_port(uri)))?;
    Uri::builder()
        .scheme("http")
        .authority(addr.to_string())
        .path_and_query("/")
        .build()
        .ok()
}

/// The client plugin fetches use, with the pins it applies (so a failure
/// can say which addresses it tried).
#[derive(Clone)]
pub struct FetchClient {
    pub client: HttpClient,
    pub pins: ResolveMap,
}

impl std::fmt::Debug for FetchClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchClient")
            .field("pins", &self.pins)
            .finish_non_exhaustive()
    }
}

/// TLS settings that need a client of their own.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct TlsKey {
    pub extra_root: Option<PathBuf>,
}

/// Builds and shares upstream clients.
pub struct Upstreams {
    pins: ResolveMap,
    connect_timeout: Duration,
    clients: Mutex<HashMap<TlsKey, HttpClient>>,
}

impl Upstreams {
    pub fn new(pins: ResolveMap, connect_timeout: Duration) -> Self {
        Upstreams {
            pins,
            connect_timeout,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The shared client for these TLS settings.
    pub fn client(&self, key: &TlsKey) -> Result<HttpClient, ClientError> {
        let mut clients = self.clients.lock().expect("client cache poisoned");
        if let Some(c) = clients.get(key) {
            return Ok(c.clone());
        }
        let client = self.build(key)?;
        clients.insert(key.clone(), client.clone());
        Ok(client)
    }

    /// A client for plugin fetches: a pool of its own (a slow IdP never
    /// holds provider connections), the same trust store and pins.
    pub fn fetch_client(&self) -> Result<FetchClient, ClientError> {
        Ok(FetchClient {
            client: self.build(&TlsKey::default())?,
            pins: self.pins.clone(),
        })
    }

    fn build(&self, key: &TlsKey) -> Result<HttpClient, ClientError> {
        let mut roots = base_roots().clone();
        if let Some(path) = &key.extra_root {
            add_pem_file(&mut roots, path)?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(self.connect_timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(ResolveConnector {
                inner: http,
                pins: self.pins.clone(),
            });
        Ok(Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            // After a burst of HTTP/1.1 streams, keep a working set of idle
            // upstream connections, not all thousand of them with their
            // buffers (h2 providers multiplex over one anyway).
            .pool_max_idle_per_host(MAX_IDLE_PER_UPSTREAM)
            .build(connector))
    }
}

/// Idle upstream connections kept per upstream host.
const MAX_IDLE_PER_UPSTREAM: usize = 128;

/// Mozilla's roots plus the OS store, loaded once (loading the OS store is slow).
fn base_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::debug!(error = %e, "skipping an unreadable OS certificate");
        }
        let (added, _) = roots.add_parsable_certificates(native.certs);
        tracing::debug!(added, "loaded OS trust roots");
        if let Some(file) = std::env::var_os("SSL_CERT_FILE") {
            if let Err(e) = add_pem_file(&mut roots, Path::new(&file)) {
                tracing::warn!(error = %e, "SSL_CERT_FILE");
            }
        }
        roots
    })
}

fn add_pem_file(roots: &mut RootCertStore, path: &Path) -> Result<(), ClientError> {
    let err = |reason: String| ClientError::CaFile {
        path: path.to_path_buf(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no certificates in file".into()));
    }
    for c in certs {
        roots.add(c).map_err(|e| err(e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_map_pins_name_and_port() {
        let m = ResolveMap::parse(&["api.anthropic.com:443=127.0.0.1:9999".into()]).unwrap();
        let u: Uri = "https://api.anthropic.com/v1/messages".parse().unwrap();
        assert_eq!(
            pinned(&m, &u).unwrap().authority().unwrap(),
            "127.0.0.1:9999"
        );
        let other: Uri = "https://api.openai.com/v1".parse().unwrap();
        assert!(pinned(&m, &other).is_none());
        assert!(ResolveMap::parse(&["nonsense".into()]).is_err());
    }
}
