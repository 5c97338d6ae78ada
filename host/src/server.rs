//! Listeners: accept connections and serve HTTP/1.1 and HTTP/2 on them.
//!
//! Plain listeners speak HTTP/1.1 and h2c (prior knowledge) on the same port;
//! TLS listeners negotiate h2 or HTTP/1.1 with ALPN. Each connection is a task;
//! shutdown stops accepting and lets in-flight requests finish.

use crate::config::TlsFiles;
use crate::proxy::guard::Sni;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioTimer;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read TLS certificate {path}: {reason}")]
    Cert { path: String, reason: String },
    #[error("cannot read TLS key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("invalid TLS certificate/key pair: {0}")]
    Config(String),
}

/// A TLS acceptor from PEM cert and key files, offering h2 and HTTP/1.1.
pub fn tls_acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let cert_path = files.cert.display().to_string();
    let key_path = files.key.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| TlsError::Cert {
            path: cert_path.clone(),
            reason: e.to_string(),
        })?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::Key {
        path: key_path,
        reason: e.to_string(),
    })?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| TlsError::Config(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| TlsError::Config(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// Per-port connection limits (from the config's `limits:`).
#[derive(Debug, Clone)]
pub struct ServeLimits {
    /// Time to receive a request's headers; on HTTP/1.1 it also bounds how
    /// long an idle keep-alive connection waits for its next request.
    pub header_read_timeout: Duration,
    pub http2_keep_alive_interval: Duration,
    pub max_connections: usize,
    pub max_concurrent_streams: u32,
}

impl From<&crate::config::Limits> for ServeLimits {
    fn from(l: &crate::config::Limits) -> Self {
        ServeLimits {
            header_read_timeout: l.header_read_timeout,
            http2_keep_alive_interval: l.http2_keep_alive_interval,
            max_connections: l.max_connections,
            max_concurrent_streams: l.max_concurrent_streams,
        }
    }
}

/// Most connections being turned away (503) at once; beyond it, a
/// connection over the cap is closed without an answer.
const MAX_REJECTING: usize = 64;

fn builder(limits: &ServeLimits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .keep_alive_interval(limits.http2_keep_alive_interval)
        .keep_alive_timeout(Duration::from_secs(20));
    b
}

/// Tell a connection over the cap to come back later, then close it.
async fn turn_away(mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Read what the client sent first (briefly), so closing doesn't reset
    // the connection before it sees the answer.
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await;
    let body = crate::proxy::errors::error_body(
        crate::proxy::errors::ErrorShape::OpenAi,
        503,
        "",
        "too many connections to the gateway; retry shortly",
    );
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body).await?;
        stream.shutdown().await
    })
    .await;
}

/// Accept connections until `shutdown` resolves, then drain them.
pub async fn serve<H, F, B>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    limits: ServeLimits,
    handler: H,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let graceful = GracefulShutdown::new();
    let builder = Arc::new(builder(&limits));
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let rejecting = Arc::new(Semaphore::new(MAX_REJECTING));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off, don't spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            tracing::debug!(%peer, max = limits.max_connections, "connection cap reached; turning away");
            if tls.is_none() {
                if let Ok(p) = rejecting.clone().try_acquire_owned() {
                    tokio::spawn(async move {
                        turn_away(stream).await;
                        drop(p);
                    });
                }
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let counted = crate::memtrim::connection();
        let handler = handler.clone();
        let service = move |sni: Option<Sni>| {
            service_fn(move |mut req: Request<Incoming>| {
                if let Some(s) = &sni {
                    req.extensions_mut().insert(s.clone());
                }
                let h = handler.clone();
                async move { Ok::<_, Infallible>(h(req, peer).await) }
            })
        };
        let builder = builder.clone();
        let watcher = graceful.watcher();
        match tls.clone() {
            None => {
                tokio::spawn(async move {
                    let conn = builder.serve_connection(TokioIo::new(stream), service(None));
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(error = %e, %peer, "connection ended with an error");
                    }
                    drop((permit, counted));
                });
            }
            Some(acceptor) => {
                let handshake = limits.header_read_timeout;
                tokio::spawn(async move {
                    let stream =
                        match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(error = %e, %peer, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                    let sni = stream.get_ref().1.server_name().map(|s| Sni(s.to_string()));
                    let conn = builder.serve_connection(TokioIo::new(stream), service(sni));
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(error = %e, %peer, "connection ended with an error");
                    }
                    drop((permit, counted));
                });
            }
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(std::time::Duration::from_secs(30)) => {
            tracing::warn!("connections still open after 30s; closing them");
        }
    }
}
