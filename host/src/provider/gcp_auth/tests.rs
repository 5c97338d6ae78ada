//! The token source against the testkit's fake Google token endpoint.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sluice_testkit::gcp::{FakeTokenEndpoint, FakeVertex, TEST_CLIENT_EMAIL};

use super::*;
use crate::proxy::client::UpstreamBody;

type Plain = Client<HttpConnector, UpstreamBody>;

/// Every wait in these tests is bounded by this.
const LIMIT: Duration = Duration::from_secs(10);

fn client() -> Plain {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

fn source(json: &str, opts: GcpAuthOptions) -> GcpTokenSource {
    GcpTokenSource::new(Credential::from_json(json.as_bytes()).unwrap(), opts).unwrap()
}

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("test wait timed out")
}

#[tokio::test]
async fn exchanges_a_signed_assertion_once_and_caches_the_token() {
    let ep = FakeTokenEndpoint::start().await;
    let src = GcpTokenSource::from_json(ep.service_account_json().as_bytes()).unwrap();
    let c = client();
    let t1 = bounded(src.token(&c)).await.unwrap();
    let t2 = bounded(src.token(&c)).await.unwrap();
    assert_eq!(t1.expose(), t2.expose());
    assert!(ep.is_valid(t1.expose()));
    assert_eq!(ep.issued_count(), 1);
    assert_eq!(src.exchanges(), 1);
    let ex = &ep.exchanges()[0];
    assert_eq!(ex.grant_type, "urn:ietf:params:oauth:grant-type:jwt-bearer");
    let claims = ex.claims.as_ref().unwrap();
    assert_eq!(claims["iss"], TEST_CLIENT_EMAIL);
    assert_eq!(claims["aud"], ep.token_uri());
    let h = bounded(src.authorization(&c)).await.unwrap();
    assert!(h.is_sensitive());
    assert_eq!(h.to_str().unwrap(), format!("Bearer {}", t1.expose()));
    assert!(!format!("{src:?}").contains(t1.expose()));
}

#[tokio::test]
async fn refreshes_before_expiry() {
    let ep = FakeTokenEndpoint::start().await;
    ep.set_expires_in(2);
    let opts = GcpAuthOptions {
        refresh_early: Duration::from_secs(1),
        ..GcpAuthOptions::default()
    };
    let src = source(&ep.service_account_json(), opts);
    let c = client();
    let t1 = bounded(src.token(&c)).await.unwrap();
    assert_eq!(bounded(src.token(&c)).await.unwrap().expose(), t1.expose());
    assert_eq!(ep.issued_count(), 1);
    // One second before the two-second token expires it is due again,
    // while the old one is still valid upstream.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(ep.is_valid(t1.expose()));
    let t2 = bounded(src.token(&c)).await.unwrap();
    assert_ne!(t1.expose(), t2.expose());
    assert_eq!(ep.issued_count(), 2);
}

#[tokio::test]
async fn a_short_lived_token_is_refreshed_halfway_not_on_every_call() {
    let ep = FakeTokenEndpoint::start().await;
    // Two seconds is far less than the default five-minute early margin.
    ep.set_expires_in(2);
    let src = GcpTokenSource::from_json(ep.service_account_json().as_bytes()).unwrap();
    let c = client();
    let t1 = bounded(src.token(&c)).await.unwrap();
    assert_eq!(bounded(src.token(&c)).await.unwrap().expose(), t1.expose());
    assert_eq!(ep.issued_count(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_ne!(bounded(src.token(&c)).await.unwrap().expose(), t1.expose());
    assert_eq!(ep.issued_count(), 2);
}

#[tokio::test]
async fn concurrent_callers_share_one_exchange() {
    let ep = FakeTokenEndpoint::start().await;
    ep.set_delay(Duration::from_millis(300));
    let src = GcpTokenSource::from_json(ep.service_account_json().as_bytes()).unwrap();
    let c = client();
    let calls = (0..16).map(|_| {
        let (src, c) = (src.clone(), c.clone());
        tokio::spawn(async move { src.token(&c).await })
    });
    let tokens: Vec<String> = bounded(futures_util::future::join_all(calls))
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap().expose().to_string())
        .collect();
    assert!(tokens.iter().all(|t| t == &tokens[0]), "{tokens:?}");
    assert_eq!(ep.exchanges().len(), 1);
}

#[tokio::test]
async fn callers_queued_behind_a_failed_exchange_share_its_error() {
    let ep = FakeTokenEndpoint::start().await;
    ep.set_delay(Duration::from_millis(300));
    ep.fail_next(503, "temporarily_unavailable");
    let src = GcpTokenSource::from_json(ep.service_account_json().as_bytes()).unwrap();
    let c = client();
    let calls = (0..8).map(|_| {
        let (src, c) = (src.clone(), c.clone());
        tokio::spawn(async move { src.token(&c).await })
    });
    for r in bounded(futures_util::future::join_all(calls)).await {
        let e = r.unwrap().unwrap_err();
        assert!(
            matches!(e, GcpAuthError::Refused { status: 503, .. }),
            "{e}"
        );
    }
    assert_eq!(ep.exchanges().len(), 1);
    // The next caller tries again.
    bounded(src.token(&c)).await.unwrap();
    assert_eq!(ep.issued_count(), 1);
}

#[tokio::test]
async fn a_failed_early_refresh_keeps_serving_the_valid_token() {
    let ep = FakeTokenEndpoint::start().await;
    ep.set_expires_in(3);
    let opts = GcpAuthOptions {
        refresh_early: Duration::from_secs(1),
        ..GcpAuthOptions::default()
    };
    let src = source(&ep.service_account_json(), opts);
    let c = client();
    let t1 = bounded(src.token(&c)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    ep.fail_next(500, "internal_failure");
    let t2 = bounded(src.token(&c)).await.unwrap();
    assert_eq!(t1.expose(), t2.expose());
    assert_eq!(ep.exchanges().len(), 2);
}

#[tokio::test]
async fn a_refused_assertion_is_a_typed_error_without_secrets() {
    let ep = FakeTokenEndpoint::start().await;
    let src = GcpTokenSource::from_json(ep.foreign_service_account_json().as_bytes()).unwrap();
    let e = bounded(src.token(&client())).await.unwrap_err();
    let GcpAuthError::Refused { status, detail, .. } = &e else {
        panic!("{e:?}");
    };
    assert_eq!(*status, 400);
    assert!(detail.starts_with("invalid_grant"), "{detail}");
    let shown = format!("{e} {e:?}");
    assert!(
        !shown.contains("PRIVATE KEY") && !shown.contains("eyJ"),
        "{shown}"
    );
}

#[tokio::test]
async fn unreachable_and_slow_endpoints_fail_in_time() {
    let ep = FakeTokenEndpoint::start().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let json = ep
        .service_account_json()
        .replace(&ep.token_uri(), &format!("http://{closed}/token"));
    let e = bounded(source(&json, GcpAuthOptions::default()).token(&client()))
        .await
        .unwrap_err();
    assert!(matches!(e, GcpAuthError::Unreachable { .. }), "{e}");

    ep.set_delay(Duration::from_secs(3));
    let opts = GcpAuthOptions {
        exchange_timeout: Duration::from_millis(200),
        ..GcpAuthOptions::default()
    };
    let e = bounded(source(&ep.service_account_json(), opts).token(&client()))
        .await
        .unwrap_err();
    assert!(matches!(e, GcpAuthError::Timeout { .. }), "{e}");
}

#[tokio::test]
async fn authorized_user_uses_the_refresh_token_grant() {
    let ep = FakeTokenEndpoint::start().await;
    let src = source(&ep.authorized_user_json(), GcpAuthOptions::default());
    let t = bounded(src.token(&client())).await.unwrap();
    assert!(ep.is_valid(t.expose()));
    assert_eq!(ep.exchanges()[0].grant_type, "refresh_token");
}

#[tokio::test]
async fn id_tokens_carry_the_audience() {
    let ep = FakeTokenEndpoint::start().await;
    let opts = GcpAuthOptions {
        token_type: TokenType::IdToken,
        audience: Some("https://svc.example".into()),
        ..GcpAuthOptions::default()
    };
    let src = source(&ep.service_account_json(), opts.clone());
    let t = bounded(src.token(&client())).await.unwrap();
    assert!(ep.is_valid(t.expose()));
    assert_eq!(
        ep.exchanges()[0].claims.as_ref().unwrap()["target_audience"],
        "https://svc.example"
    );
    let no_aud = GcpAuthOptions {
        audience: None,
        ..opts.clone()
    };
    assert!(matches!(
        GcpTokenSource::new(
            Credential::from_json(ep.service_account_json().as_bytes()).unwrap(),
            no_aud
        ),
        Err(GcpAuthError::Unsupported(_))
    ));
    assert!(GcpTokenSource::new(
        Credential::from_json(ep.authorized_user_json().as_bytes()).unwrap(),
        opts
    )
    .is_err());
}

#[test]
fn token_uri_must_be_http() {
    let json = r#"{"type":"authorized_user","client_id":"c","client_secret":"s",
        "refresh_token":"r","token_uri":"file:///etc/passwd"}"#;
    let e = GcpTokenSource::from_json(json.as_bytes()).unwrap_err();
    assert!(matches!(e, GcpAuthError::TokenUri(_)), "{e}");
}

async fn post(c: &Plain, url: String, auth: Option<HeaderValue>, body: &str) -> (u16, String) {
    let mut b = http::Request::post(url).header("content-type", "application/json");
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    let req = b
        .body(
            Full::new(Bytes::from(body.to_owned()))
                .map_err(|never| match never {})
                .boxed(),
        )
        .unwrap();
    let resp = bounded(c.request(req)).await.unwrap();
    let status = resp.status().as_u16();
    let body = bounded(resp.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn the_fake_vertex_takes_only_tokens_the_endpoint_issued() {
    let ep = FakeTokenEndpoint::start().await;
    let vertex = FakeVertex::start(&ep).await;
    let src = GcpTokenSource::from_json(ep.service_account_json().as_bytes()).unwrap();
    let c = client();
    let auth = bounded(src.authorization(&c)).await.unwrap();
    let base = format!(
        "{}/v1/projects/p/locations/global/publishers/anthropic/models/claude-sonnet-4-5",
        vertex.url()
    );
    let body = r#"{"anthropic_version":"vertex-2023-10-16","max_tokens":8,
        "messages":[{"role":"user","content":"hi"}]}"#;
    let (s, b) = post(&c, format!("{base}:rawPredict"), Some(auth.clone()), body).await;
    assert_eq!(s, 200, "{b}");
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["model"], "claude-sonnet-4-5");
    let (s, b) = post(
        &c,
        format!("{base}:streamRawPredict"),
        Some(auth.clone()),
        body,
    )
    .await;
    assert_eq!(s, 200);
    assert!(
        b.contains("event: message_start") && b.contains("event: message_stop"),
        "{b}"
    );
    let (s, b) = post(&c, format!("{base}:rawPredict"), None, body).await;
    assert_eq!(s, 401);
    assert!(b.contains("UNAUTHENTICATED"), "{b}");
    let forged = HeaderValue::from_static("Bearer ya29.forged");
    assert_eq!(
        post(&c, format!("{base}:rawPredict"), Some(forged), body)
            .await
            .0,
        401
    );
    assert_eq!(vertex.authorized_requests(&ep).len(), 2);
}

#[tokio::test]
async fn works_through_the_gateways_own_client_and_its_resolve_pins() {
    use crate::proxy::client::{ResolveMap, TlsKey, Upstreams};
    let ep = FakeTokenEndpoint::start().await;
    let port = ep.addr().port();
    // A name only the pin resolves: the exchange must go through the
    // gateway's connector, as a backend's request would.
    let named = format!("http://oauth2.sluice.test:{port}/token");
    let json = ep.service_account_json().replace(&ep.token_uri(), &named);
    let pins = ResolveMap::parse(&[format!("oauth2.sluice.test:{port}={}", ep.addr())]).unwrap();
    let client = Upstreams::new(pins, Duration::from_secs(2))
        .client(&TlsKey::default())
        .unwrap();
    // The fake checks `aud` against its own URI, so it refuses the renamed
    // one: reaching it at all (a typed refusal, not an unreachable host)
    // is what shows the pin was applied.
    let e = bounded(source(&json, GcpAuthOptions::default()).token(&client))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, GcpAuthError::Refused { detail, .. } if detail.contains("invalid_grant")),
        "{e}"
    );
    // With its own URI the same client gets a token.
    let t = bounded(
        GcpTokenSource::from_json(ep.service_account_json().as_bytes())
            .unwrap()
            .token(&client),
    )
    .await
    .unwrap();
    assert!(ep.is_valid(t.expose()));
}
