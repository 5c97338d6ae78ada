//! Google Cloud fakes: an OAuth token endpoint that verifies service-account
//! assertions the way Google's does, and a Vertex AI front that only answers
//! bearer tokens that endpoint issued and that have not expired.
//!
//! The test service account signs with [`crate::idp::TEST_RSA_KEY_1`]; its
//! JSON (written by [`FakeTokenEndpoint::write_service_account`]) names the
//! fake as its `token_uri`, which is how a gateway under test is pointed at
//! it without touching Google.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

use crate::idp::{public_jwk, sign, TEST_RSA_KEY_1, TEST_RSA_KEY_2};
use crate::upstream::{FakeUpstream, RecordedRequest, UpstreamOptions};

/// The test service account's e-mail (its `iss`).
pub const TEST_CLIENT_EMAIL: &str = "sluice-test@sluice-test.iam.gserviceaccount.com";
/// Its `private_key_id` (the assertion's `kid`).
pub const TEST_KEY_ID: &str = "sluice-test-key-1";
/// Its project.
pub const TEST_PROJECT: &str = "sluice-test";
/// The refresh token of the test `authorized_user` credential.
pub const TEST_REFRESH_TOKEN: &str = "1//sluice-test-refresh-token";
/// The scope Vertex needs.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// One exchange as the endpoint saw it.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub grant_type: String,
    /// The verified assertion's claims (service-account grants).
    pub claims: Option<Value>,
    /// The token issued, if the exchange succeeded.
    pub issued: Option<String>,
    /// Why it was refused, if it was.
    pub refused: Option<String>,
    pub at: Instant,
}

#[derive(Default)]
struct TokenState {
    token_uri: String,
    expires_in: u64,
    delay: Duration,
    /// Scripted refusals for the next exchanges: (status, OAuth error).
    fail_next: VecDeque<(u16, String)>,
    /// Issued access tokens and when each expires.
    issued: HashMap<String, Instant>,
    exchanges: Vec<Exchange>,
}

/// The Entra ID app the fake token endpoint knows (client credentials at
/// `/{TEST_AZURE_TENANT}/oauth2/v2.0/token`).
pub const TEST_AZURE_TENANT: &str = "sluice-test-tenant";
pub const TEST_AZURE_CLIENT_ID: &str = "sluice-test-app";
pub const TEST_AZURE_CLIENT_SECRET: &str = "sluice-test-app-secret";

/// A fake `https://oauth2.googleapis.com/token` on 127.0.0.1 (plain HTTP).
pub struct FakeTokenEndpoint {
    addr: SocketAddr,
    state: Arc<Mutex<TokenState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeTokenEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeTokenEndpoint {
    /// Binds 127.0.0.1:0; tokens live an hour unless [`Self::set_expires_in`].
    pub async fn start() -> FakeTokenEndpoint {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake token endpoint");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(TokenState {
            token_uri: format!("http://{addr}/token"),
            expires_in: 3600,
            ..TokenState::default()
        }));
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle_token(st.clone(), req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        FakeTokenEndpoint { addr, state, task }
    }

    /// `http://127.0.0.1:PORT/token`: the credential's `token_uri`.
    pub fn token_uri(&self) -> String {
        self.state.lock().unwrap().token_uri.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `expires_in` of tokens issued from now on (and their real lifetime).
    pub fn set_expires_in(&self, secs: u64) {
        self.state.lock().unwrap().expires_in = secs;
    }

    /// Pauses before answering each exchange (to pile up concurrent callers).
    pub fn set_delay(&self, d: Duration) {
        self.state.lock().unwrap().delay = d;
    }

    /// Refuses the next exchange with `status` and OAuth `error`.
    pub fn fail_next(&self, status: u16, error: &str) {
        self.state
            .lock()
            .unwrap()
            .fail_next
            .push_back((status, error.to_string()));
    }

    /// Every exchange so far (successful or not).
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.state.lock().unwrap().exchanges.clone()
    }

    /// Exchanges that issued a token.
    pub fn issued_count(&self) -> usize {
        self.exchanges()
            .iter()
            .filter(|e| e.issued.is_some())
            .count()
    }

    /// Whether `token` was issued here and has not expired.
    pub fn is_valid(&self, token: &str) -> bool {
        token_valid(&self.state, token)
    }

    /// The test service-account JSON, pointing at this endpoint.
    pub fn service_account_json(&self) -> String {
        json!({
            "type": "service_account",
            "project_id": TEST_PROJECT,
            "private_key_id": TEST_KEY_ID,
            "private_key": TEST_RSA_KEY_1,
            "client_email": TEST_CLIENT_EMAIL,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri(),
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "universe_domain": "googleapis.com"
        })
        .to_string()
    }

    /// A service account signing with a key this endpoint does not know
    /// (its exchanges are refused `invalid_grant`).
    pub fn foreign_service_account_json(&self) -> String {
        let mut v: Value = serde_json::from_str(&self.service_account_json()).unwrap();
        v["private_key"] = json!(TEST_RSA_KEY_2);
        v.to_string()
    }

    /// A user credential (`gcloud auth application-default login`'s file).
    pub fn authorized_user_json(&self) -> String {
        json!({
            "type": "authorized_user",
            "client_id": "sluice-test.apps.googleusercontent.com",
            "client_secret": "sluice-test-client-secret",
            "refresh_token": TEST_REFRESH_TOKEN,
            "token_uri": self.token_uri()
        })
        .to_string()
    }

    /// Writes [`Self::service_account_json`] to `dir/service-account.json`.
    pub fn write_service_account(&self, dir: &Path) -> PathBuf {
        let p = dir.join("service-account.json");
        std::fs::write(&p, self.service_account_json()).expect("write service account");
        p
    }
}

fn token_valid(state: &Mutex<TokenState>, token: &str) -> bool {
    state
        .lock()
        .unwrap()
        .issued
        .get(token)
        .is_some_and(|exp| Instant::now() < *exp)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

type Body = Full<Bytes>;

fn reply(status: u16, body: Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

async fn handle_token(
    state: Arc<Mutex<TokenState>>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, Infallible> {
    let at = Instant::now();
    // Google's `/token`, or Entra ID's `/{tenant}/oauth2/v2.0/token`.
    let ok_method = req.method() == hyper::Method::POST
        && (req.uri().path() == "/token"
            || req.uri().path() == format!("/{TEST_AZURE_TENANT}/oauth2/v2.0/token"));
    let form_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let delay = state.lock().unwrap().delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let grant_type = form.get("grant_type").cloned().unwrap_or_default();
    let (scripted_failure, token_uri) = {
        let mut st = state.lock().unwrap();
        (st.fail_next.pop_front(), st.token_uri.clone())
    };
    let (verdict, claims) = if !ok_method {
        (Err((404, "not_found".to_string())), None)
    } else if !form_type {
        (Err((400, "invalid_request: not a form".to_string())), None)
    } else if let Some(f) = scripted_failure {
        (Err(f), None)
    } else {
        match grant_type.as_str() {
            "urn:ietf:params:oauth:grant-type:jwt-bearer" => {
                match verify_assertion(form.get("assertion"), &token_uri) {
                    Ok(c) => (Ok(()), Some(c)),
                    Err(e) => (Err((400, format!("invalid_grant: {e}"))), None),
                }
            }
            "refresh_token"
                if form.get("refresh_token").map(String::as_str) == Some(TEST_REFRESH_TOKEN) =>
            {
                (Ok(()), None)
            }
            "refresh_token" => (Err((400, "invalid_grant: bad refresh token".into())), None),
            "client_credentials"
                if form.get("client_id").map(String::as_str) == Some(TEST_AZURE_CLIENT_ID)
                    && form.get("client_secret").map(String::as_str)
                        == Some(TEST_AZURE_CLIENT_SECRET)
                    && form.get("scope").map(String::as_str)
                        == Some("https://cognitiveservices.azure.com/.default") =>
            {
                (Ok(()), None)
            }
            "client_credentials" => (Err((401, "invalid_client".into())), None),
            _ => (Err((400, "unsupported_grant_type".into())), None),
        }
    };
    let mut st = state.lock().unwrap();
    let resp = match verdict {
        Ok(()) => {
            let n = st.exchanges.len();
            let expires_in = st.expires_in;
            let audience = claims
                .as_ref()
                .and_then(|c| c.get("target_audience"))
                .and_then(Value::as_str)
                .map(str::to_string);
            let (token, body) = match audience {
                Some(aud) => {
                    let id = sign(
                        TEST_RSA_KEY_2,
                        "google-test",
                        &json!({"iss": "https://accounts.google.com", "aud": aud,
                                "sub": TEST_CLIENT_EMAIL, "iat": now_secs(),
                                "exp": now_secs() + expires_in}),
                    );
                    (id.clone(), json!({"id_token": id}))
                }
                None => {
                    let t = format!("ya29.sluice-test-{n}");
                    (
                        t.clone(),
                        json!({"access_token": t, "expires_in": expires_in,
                               "token_type": "Bearer"}),
                    )
                }
            };
            st.issued
                .insert(token.clone(), at + Duration::from_secs(expires_in));
            st.exchanges.push(Exchange {
                grant_type,
                claims,
                issued: Some(token),
                refused: None,
                at,
            });
            reply(200, body)
        }
        Err((status, why)) => {
            let (error, description) = why.split_once(": ").unwrap_or((&why, ""));
            st.exchanges.push(Exchange {
                grant_type,
                claims,
                issued: None,
                refused: Some(why.clone()),
                at,
            });
            reply(
                status,
                json!({"error": error, "error_description": description}),
            )
        }
    };
    Ok(resp)
}

/// Checks an assertion as Google does: RS256 by the test account's key,
/// `iss`, `aud` = token_uri, a scope or target audience, and a lifetime of
/// at most an hour that has not ended.
fn verify_assertion(assertion: Option<&String>, token_uri: &str) -> Result<Value, String> {
    let jwt = assertion.ok_or("no assertion")?;
    let header = jsonwebtoken::decode_header(jwt).map_err(|e| format!("bad header: {e}"))?;
    if header.alg != Algorithm::RS256 {
        return Err(format!("alg {:?} is not RS256", header.alg));
    }
    if header.kid.as_deref() != Some(TEST_KEY_ID) {
        return Err(format!("unknown kid {:?}", header.kid));
    }
    let jwk: jsonwebtoken::jwk::Jwk =
        serde_json::from_value(public_jwk(TEST_RSA_KEY_1, TEST_KEY_ID)).unwrap();
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&[token_uri]);
    v.set_issuer(&[TEST_CLIENT_EMAIL]);
    v.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
    v.leeway = 0;
    let claims = jsonwebtoken::decode::<Value>(jwt, &key, &v)
        .map_err(|e| format!("Invalid JWT Signature or claims: {e}"))?
        .claims;
    let iat = claims["iat"].as_u64().ok_or("no iat")?;
    let exp = claims["exp"].as_u64().ok_or("no exp")?;
    if exp <= iat || exp - iat > 3600 {
        return Err("lifetime over an hour".into());
    }
    if iat > now_secs() + 60 {
        return Err("iat in the future".into());
    }
    let scope_ok = claims["scope"].as_str() == Some(CLOUD_PLATFORM_SCOPE);
    let audience_ok = claims["target_audience"]
        .as_str()
        .is_some_and(|a| !a.is_empty());
    if !scope_ok && !audience_ok {
        return Err("neither the cloud-platform scope nor a target_audience".into());
    }
    Ok(claims)
}

/// Google's error envelope, as Vertex answers a bad credential.
pub fn google_error(code: u16, status: &str, message: &str) -> String {
    json!({"error": {"code": code, "message": message, "status": status}}).to_string()
}

/// A fake Vertex AI (and Gemini OpenAI-compatible) front: the shared
/// [`FakeUpstream`] (scripts, recording, SSE pacing) behind a credential
/// check. A request without `Authorization: Bearer <token>` that `tokens`
/// issued and that has not expired gets 401 in Google's error shape (and is
/// still recorded). It answers `…/models/{m}:rawPredict` (Anthropic JSON),
/// `…:streamRawPredict` (Anthropic SSE), `…/models/count-tokens:rawPredict`
/// (`{"input_tokens": N}`) and `…/endpoints/openapi/chat/completions`
/// (OpenAI JSON or SSE by the body's `stream`).
pub struct FakeVertex {
    upstream: FakeUpstream,
}

impl std::ops::Deref for FakeVertex {
    type Target = FakeUpstream;
    fn deref(&self) -> &FakeUpstream {
        &self.upstream
    }
}

impl FakeVertex {
    /// Plain HTTP on 127.0.0.1, trusting tokens from `tokens`.
    pub async fn start(tokens: &FakeTokenEndpoint) -> FakeVertex {
        Self::start_with(tokens, UpstreamOptions::plain()).await
    }

    /// With options (TLS, an initial script); the guard is set here.
    pub async fn start_with(tokens: &FakeTokenEndpoint, opts: UpstreamOptions) -> FakeVertex {
        let state = tokens.state.clone();
        let guard = Arc::new(move |rec: &RecordedRequest| {
            let token = rec
                .header("authorization")
                .and_then(|v| v.strip_prefix("Bearer "));
            match token {
                Some(t) if token_valid(&state, t) => None,
                Some(_) => Some((
                    401,
                    google_error(
                        401,
                        "UNAUTHENTICATED",
                        "Request had invalid authentication credentials. Expected OAuth 2 \
                         access token, login cookie or other valid authentication credential.",
                    ),
                )),
                None => Some((
                    401,
                    google_error(
                        401,
                        "UNAUTHENTICATED",
                        "Request is missing required authentication credential.",
                    ),
                )),
            }
        });
        FakeVertex {
            upstream: FakeUpstream::start(opts.guard(guard)).await,
        }
    }

    /// The recorded requests the credential check let through.
    pub fn authorized_requests(&self, tokens: &FakeTokenEndpoint) -> Vec<RecordedRequest> {
        // Validity is re-checked now, so call this before tokens expire.
        self.requests()
            .into_iter()
            .filter(|r| {
                r.header("authorization")
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .is_some_and(|t| tokens.issued_ever(t))
            })
            .collect()
    }
}

impl FakeTokenEndpoint {
    /// Whether `token` was ever issued here (expired or not).
    pub fn issued_ever(&self, token: &str) -> bool {
        self.state.lock().unwrap().issued.contains_key(token)
    }
}

/// A fake Gemini API (`generativelanguage.googleapis.com`) serving its
/// OpenAI-compatible endpoint (`/v1beta/openai/chat/completions`,
/// `/embeddings`, `/models`) through the shared [`FakeUpstream`]. A request
/// without `Authorization: Bearer <api_key>` gets Google's answer to a bad
/// key: 400 `INVALID_ARGUMENT`, the envelope in a one-element array.
pub struct FakeGemini {
    upstream: FakeUpstream,
}

impl std::ops::Deref for FakeGemini {
    type Target = FakeUpstream;
    fn deref(&self) -> &FakeUpstream {
        &self.upstream
    }
}

impl FakeGemini {
    /// Plain HTTP on 127.0.0.1, accepting `api_key`.
    pub async fn start(api_key: &str) -> FakeGemini {
        Self::start_with(api_key, UpstreamOptions::plain()).await
    }

    pub async fn start_with(api_key: &str, opts: UpstreamOptions) -> FakeGemini {
        let want = format!("Bearer {api_key}");
        let guard = Arc::new(move |rec: &RecordedRequest| {
            if rec.header("authorization") == Some(want.as_str()) {
                return None;
            }
            let body = google_error(
                400,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
            );
            Some((400, format!("[{body}]")))
        });
        FakeGemini {
            upstream: FakeUpstream::start(opts.guard(guard)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idp::sign;

    const LIMIT: Duration = Duration::from_secs(10);

    fn claims(aud: &str) -> Value {
        json!({"iss": TEST_CLIENT_EMAIL, "aud": aud, "scope": CLOUD_PLATFORM_SCOPE,
               "iat": now_secs(), "exp": now_secs() + 3600})
    }

    #[test]
    fn the_endpoint_checks_what_google_checks() {
        let uri = "http://127.0.0.1:1/token";
        let good = sign(TEST_RSA_KEY_1, TEST_KEY_ID, &claims(uri));
        assert!(verify_assertion(Some(&good), uri).is_ok());
        let wrong_aud = sign(
            TEST_RSA_KEY_1,
            TEST_KEY_ID,
            &claims("http://elsewhere/token"),
        );
        assert!(verify_assertion(Some(&wrong_aud), uri).is_err());
        let wrong_key = sign(TEST_RSA_KEY_2, TEST_KEY_ID, &claims(uri));
        assert!(verify_assertion(Some(&wrong_key), uri).is_err());
        let mut c = claims(uri);
        c["scope"] = json!("https://www.googleapis.com/auth/userinfo.email");
        let wrong_scope = sign(TEST_RSA_KEY_1, TEST_KEY_ID, &c);
        assert!(verify_assertion(Some(&wrong_scope), uri).is_err());
        let mut c = claims(uri);
        c["exp"] = json!(now_secs() + 7200);
        assert!(verify_assertion(Some(&sign(TEST_RSA_KEY_1, TEST_KEY_ID, &c)), uri).is_err());
        assert!(verify_assertion(None, uri).is_err());
    }

    async fn post(url: String, auth: Option<&str>, body: Value) -> (u16, String) {
        let mut req = reqwest::Client::new().post(url).json(&body).timeout(LIMIT);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("body"))
    }

    #[tokio::test]
    async fn vertex_serves_count_tokens_and_the_openai_compatible_endpoint() {
        let tokens = FakeTokenEndpoint::start().await;
        let vertex = FakeVertex::start(&tokens).await;
        let token = {
            let mut st = tokens.state.lock().unwrap();
            st.issued.insert(
                "ya29.manual".into(),
                Instant::now() + Duration::from_secs(60),
            );
            "Bearer ya29.manual"
        };
        let base = format!("{}/v1/projects/p/locations/global", vertex.url());
        let (s, b) = post(
            format!("{base}/publishers/anthropic/models/count-tokens:rawPredict"),
            Some(token),
            json!({"model": "claude-x", "messages": []}),
        )
        .await;
        assert_eq!((s, b.as_str()), (200, r#"{"input_tokens":11}"#));
        let chat = format!("{base}/endpoints/openapi/chat/completions");
        let (s, b) = post(
            chat.clone(),
            Some(token),
            json!({"model": "google/gemini-2.5-flash", "messages": []}),
        )
        .await;
        assert_eq!(s, 200);
        assert_eq!(
            serde_json::from_str::<Value>(&b).unwrap()["object"],
            "chat.completion"
        );
        let (s, b) = post(
            chat,
            Some(token),
            json!({"model": "google/gemini-2.5-flash", "stream": true, "messages": []}),
        )
        .await;
        assert_eq!(s, 200);
        assert!(
            b.contains("chat.completion.chunk") && b.ends_with("data: [DONE]\n\n"),
            "{b}"
        );
        // Tokens lapse: an expired token is refused like a forged one.
        tokens
            .state
            .lock()
            .unwrap()
            .issued
            .insert("ya29.old".into(), Instant::now());
        let (s, b) = post(
            format!("{base}/publishers/anthropic/models/claude-x:rawPredict"),
            Some("Bearer ya29.old"),
            json!({}),
        )
        .await;
        assert_eq!(s, 401, "{b}");
        assert_eq!(vertex.requests().len(), 4);
    }

    #[tokio::test]
    async fn gemini_checks_its_key() {
        let gemini = FakeGemini::start("AIzaTEST").await;
        let url = format!("{}/v1beta/openai/chat/completions", gemini.url());
        let body = json!({"model": "gemini-2.5-flash", "messages": []});
        let (s, _) = post(url.clone(), Some("Bearer AIzaTEST"), body.clone()).await;
        assert_eq!(s, 200);
        let (s, b) = post(url, Some("Bearer AIzaWRONG"), body).await;
        assert_eq!(s, 400);
        let v: Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v[0]["error"]["status"], "INVALID_ARGUMENT");
    }
}
