//! Test clients: thin reqwest helpers that keep what assertions need.
//!
//! Responses are returned whole ([`Resp`]) with raw bytes, and SSE streams are read chunk by
//! chunk so each event is stamped with the instant it ARRIVED: that is how tests prove the
//! gateway streams rather than buffers. Request bodies mimicking real agents live in
//! [`bodies`].

pub mod bodies;

use std::io::Write as _;
use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt as _;
use serde_json::Value;

pub use bodies::{claude_code_headers, claude_code_request, codex_headers, codex_request};

use crate::pki::TestPki;
use crate::sse::{SseEvent, SseParser};

/// An SSE event and when it arrived.
pub type TimedEvent = (Instant, SseEvent);

/// An empty header list, for calls that need none.
pub const NO_HEADERS: &[(&str, &str)] = &[];

/// A complete response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    /// Header names lower-case, repeated names kept.
    pub headers: Vec<(String, String)>,
    /// The body as received (not decompressed).
    pub body: Bytes,
}

impl Resp {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header_of(&self.headers, name)
    }

    /// The body with a gzip `content-encoding` undone.
    pub fn decoded_body(&self) -> Vec<u8> {
        if self.header("content-encoding") == Some("gzip") {
            let mut d = flate2::write::GzDecoder::new(Vec::new());
            if d.write_all(&self.body).is_ok() {
                if let Ok(v) = d.finish() {
                    return v;
                }
            }
        }
        self.body.to_vec()
    }

    /// The decoded body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.decoded_body()).into_owned()
    }

    /// The decoded body as JSON (`Value::Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.decoded_body()).unwrap_or(Value::Null)
    }
}

/// The result of reading an SSE response to its end.
#[derive(Debug, Clone)]
pub struct SseStream {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub events: Vec<TimedEvent>,
    /// Set when the body ended with an error (connection dropped mid-stream).
    pub error: Option<String>,
    /// The undecoded body of a response that was not a stream (e.g. an error JSON).
    pub raw: Vec<u8>,
}

impl SseStream {
    pub fn header(&self, name: &str) -> Option<&str> {
        header_of(&self.headers, name)
    }

    /// Names of the events, `"<none>"` for unnamed ones.
    pub fn names(&self) -> Vec<String> {
        self.events
            .iter()
            .map(|(_, e)| e.event.clone().unwrap_or_else(|| "<none>".into()))
            .collect()
    }
}

fn header_of<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A reqwest client configured for tests: no proxies, no automatic decompression, no
/// redirects.
#[derive(Clone)]
pub struct TestClient {
    inner: reqwest::Client,
}

impl Default for TestClient {
    fn default() -> Self {
        Self::new()
    }
}

/// Longest a test request may take, body included: a hung gateway becomes a
/// failure naming the request instead of a hung suite.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(std::time::Duration::from_secs(10))
        .no_proxy()
        .use_rustls_tls()
        .redirect(reqwest::redirect::Policy::none())
}

impl TestClient {
    /// Plain client (system roots for https).
    pub fn new() -> Self {
        TestClient {
            inner: builder().build().expect("reqwest client"),
        }
    }

    /// Trusts `pki`'s CA for https.
    pub fn trusting(pki: &TestPki) -> Self {
        let ca = reqwest::Certificate::from_pem(pki.ca_pem().as_bytes()).expect("CA pem");
        TestClient {
            inner: builder()
                .add_root_certificate(ca)
                .build()
                .expect("reqwest client"),
        }
    }

    /// Speaks HTTP/2 without TLS (h2c prior knowledge).
    pub fn h2c() -> Self {
        TestClient {
            inner: builder()
                .http2_prior_knowledge()
                .build()
                .expect("reqwest client"),
        }
    }

    /// Wraps a client built elsewhere.
    pub fn from_reqwest(inner: reqwest::Client) -> Self {
        TestClient { inner }
    }

    pub fn reqwest(&self) -> &reqwest::Client {
        &self.inner
    }

    fn request<K: AsRef<str>, V: AsRef<str>>(
        &self,
        method: reqwest::Method,
        url: &str,
        headers: &[(K, V)],
    ) -> reqwest::RequestBuilder {
        let mut rb = self.inner.request(method, url);
        for (k, v) in headers {
            rb = rb.header(k.as_ref(), v.as_ref());
        }
        rb
    }

    /// POSTs `body` as JSON (adds `content-type: application/json` unless given).
    pub async fn post_json<K: AsRef<str>, V: AsRef<str>>(
        &self,
        url: &str,
        headers: &[(K, V)],
        body: &Value,
    ) -> Resp {
        self.post_bytes(url, headers, body.to_string().into_bytes())
            .await
    }

    /// POSTs raw bytes (adds `content-type: application/json` unless given).
    pub async fn post_bytes<K: AsRef<str>, V: AsRef<str>>(
        &self,
        url: &str,
        headers: &[(K, V)],
        body: Vec<u8>,
    ) -> Resp {
        let mut rb = self.request(reqwest::Method::POST, url, headers);
        if !headers
            .iter()
            .any(|(k, _)| k.as_ref().eq_ignore_ascii_case("content-type"))
        {
            rb = rb.header("content-type", "application/json");
        }
        send(rb.body(body)).await
    }

    pub async fn get(&self, url: &str) -> Resp {
        self.get_with(url, NO_HEADERS).await
    }

    pub async fn get_with<K: AsRef<str>, V: AsRef<str>>(
        &self,
        url: &str,
        headers: &[(K, V)],
    ) -> Resp {
        send(self.request(reqwest::Method::GET, url, headers)).await
    }

    /// POSTs `body` and reads the SSE response, stamping each event on arrival.
    pub async fn stream_sse_full<K: AsRef<str>, V: AsRef<str>>(
        &self,
        url: &str,
        headers: &[(K, V)],
        body: &Value,
    ) -> SseStream {
        let mut rb = self.request(reqwest::Method::POST, url, headers);
        if !headers
            .iter()
            .any(|(k, _)| k.as_ref().eq_ignore_ascii_case("content-type"))
        {
            rb = rb.header("content-type", "application/json");
        }
        let resp = rb
            .body(body.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e:?}"));
        let status = resp.status().as_u16();
        let headers = header_vec(resp.headers());
        let gzip = header_of(&headers, "content-encoding") == Some("gzip");
        let mut decoder = gzip.then(|| flate2::write::GzDecoder::new(Vec::new()));
        let mut parser = SseParser::new();
        let mut events = Vec::new();
        let mut raw = Vec::new();
        let mut error = None;
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => {
                    raw.extend_from_slice(&chunk);
                    let plain = match &mut decoder {
                        Some(d) => {
                            if let Err(e) = d.write_all(&chunk).and_then(|_| d.flush()) {
                                error = Some(format!("gzip: {e}"));
                                break;
                            }
                            std::mem::take(d.get_mut())
                        }
                        None => chunk.to_vec(),
                    };
                    let now = Instant::now();
                    events.extend(parser.push(&plain).into_iter().map(|e| (now, e)));
                }
                Err(e) => {
                    error = Some(format!("{e:?}"));
                    break;
                }
            }
        }
        SseStream {
            status,
            headers,
            events,
            error,
            raw,
        }
    }

    /// POSTs `body` and returns the SSE events with their arrival instants.
    pub async fn stream_sse<K: AsRef<str>, V: AsRef<str>>(
        &self,
        url: &str,
        headers: &[(K, V)],
        body: &Value,
    ) -> Vec<TimedEvent> {
        self.stream_sse_full(url, headers, body).await.events
    }
}

fn header_vec(h: &reqwest::header::HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

async fn send(rb: reqwest::RequestBuilder) -> Resp {
    let resp = rb.send().await.unwrap_or_else(|e| panic!("request: {e:?}"));
    let status = resp.status().as_u16();
    let headers = header_vec(resp.headers());
    let body = resp
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("reading body: {e:?}"));
    Resp {
        status,
        headers,
        body,
    }
}

/// [`TestClient::post_json`] with a plain client.
pub async fn post_json<K: AsRef<str>, V: AsRef<str>>(
    url: &str,
    headers: &[(K, V)],
    body: &Value,
) -> Resp {
    TestClient::new().post_json(url, headers, body).await
}

/// [`TestClient::get`] with a plain client.
pub async fn get(url: &str) -> Resp {
    TestClient::new().get(url).await
}

/// [`TestClient::stream_sse`] with a plain client.
pub async fn stream_sse<K: AsRef<str>, V: AsRef<str>>(
    url: &str,
    headers: &[(K, V)],
    body: &Value,
) -> Vec<TimedEvent> {
    TestClient::new().stream_sse(url, headers, body).await
}

/// [`TestClient::stream_sse_full`] with a plain client.
pub async fn stream_sse_full<K: AsRef<str>, V: AsRef<str>>(
    url: &str,
    headers: &[(K, V)],
    body: &Value,
) -> SseStream {
    TestClient::new().stream_sse_full(url, headers, body).await
}
