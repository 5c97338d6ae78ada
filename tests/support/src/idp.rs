//! A tiny OIDC identity provider on loopback, with throwaway RSA keys and a
//! token signer: used by the JWT end-to-end tests and by the benchmark that
//! measures the guide's production route (RS256 via a JWKS).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::{jwk::Jwk, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::TestPki;

/// Throwaway RSA test keys (PKCS#8), generated once for these tests only.
pub const TEST_RSA_KEY_1: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDWa79UKOxYKHIh\n\
e/hhu1x7YHuK0pnvntc3mlGBBF6L/MXdEchGHaTMRaBpVkHgLtezftvxXqwqUMeu\n\
OB39l6SvwP29vJqqqMJLaidLPPgsJFCtYGzQSoU9BEmruiyTQX2rFYKFTbPObaso\n\
/XAOI7LoxA9lp5gr5Oe9A5hJJQkl+88k+gyaVIrhzJKcVZMvnikLfwoqSsmS2Qjc\n\
Sp9ZRX+mjCaUTJLPenZEjxcPc73gFTiD4JI/lWQfgT5nzf4gl+1ptRVUjGvtBkd7\n\
xbB7cba4XCxjNlWdkR9qB8GN9mSGiBqxczU6BI/+RZ6GAXCiRLfcGd7D2TSNZzyG\n\
RB3AfqANAgMBAAECggEAMVfLSElAlkr8dLMsJgVxU10RIRG05f0mJsAG+IsyXMGX\n\
IPgKIASLW4y8TPFSKI5vCfnsEGAKe5RqVy/HywdeGSnu2n5wE0zRpXwwvbIypCnZ\n\
PQS/FbHIdpGpiHDH+D0ud7Pz/Mw0UBFRvZWQ91gEwGb56hlGvfcn0wnkPhTdRZWA\n\
qOw/LVqr2HVR2REHSZ2U9X5bk7PVNVLPJdShgG+zOGDAo89a/HXcTJaZyGrJ6Y3M\n\
eXKqhITIC3MxV7tBaHFZhvepxuZjrwRVvWaFfkrA83VYocDNSy0GG1+M3MPu247M\n\
nUPCE5MgRXBCfmtCj74GGEuQW3fBbdfg/dUEdsSV8QKBgQDwIV2oFv4HmkhHtD6+\n\
2zW4BOvKqc5tcaPZfQMREV+PxubmOnQrV3IgGF+2zUKUUgN8CFSlHucHRwmX2cZH\n\
TJ7HXjTJRfWY70I2gVYDcBZam1/crCO0f5jRTRjm6A6NhJcPanLuUE5TRU04f1I5\n\
2i22F2gfLVTdiYsn3fx7pWZ2qQKBgQDkl2rcCW4amIZD0lsCfUAtR4fu8txvzOmS\n\
qWtMXjL9ZHZkpCjVIHsjiek/kMP3+azW9484S7tQJzu1egP+kS7UrlnHJ5BwvH+0\n\
ta9xNm8N9ZU3MaEcrKSopd8j54YXKaI2OuaFX4uD4Ne9qX+6c8jtYGpGYaXs8tiY\n\
Ykbup9zQxQKBgQCzEa6t8rdtI/hSwG8qFH5yw/iyIP73To9JWJg42iPRLBp0BZMr\n\
3wIUPRjjUR4dTSucCvpUSD8whiD5REVAVjrxoabrkWgcrA9MZhamaafB2awa+6OE\n\
rsJfEodHajWwAvhDXrZmUSyXnE6BmzDOQ41jBQF4fm2S50cGa9wkuKs4QQKBgFzN\n\
+I1SqsfTapc4XMia7yYy50YkhUhCigWIEM7VY6AqXEKpvwYgBL497FtpO5Z+YCR6\n\
J0Q0wtxcwUoBOoPsj3W7Pymyr1qFvNcx+ANflSC2tpjM5lsM4GCzzu71vSPEPF4F\n\
9bbqPmsRKqWOnhOllEqDHUJrvICBa1waci/MKML9AoGBAOp2U4WTiz2m+rjWMBNW\n\
uncyQFaAXHpr58q2JxzmX41ITjeNkt6wx36eyR1rPBVJkdcWdvLUDLLLKu3WWd+r\n\
usFZnRi7gWknYAyIRPMPIlzHaLDzQio/DJM1UyKbxN55hI+/b7jZCwrwj1NflVwX\n\
+ZPN2HPy9ALK4JdDtcsrqQ5F\n\
-----END PRIVATE KEY-----\n";
pub const TEST_RSA_KEY_2: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDevGkFWT13zDj1\n\
+X/NHarg1g3BiQixnDMkpNljA8wyB0TF4jq8Bo4T+FpgpiKew/iBS4OkvckLYiNv\n\
Zv/GolG4hu0AOjplzM4ssVKwqF4E17V8iRC7rubVGDUz69xX6YyJ+m7711p2n3EY\n\
MZQr1G9nTDlE59yjelIP9zT656n78VZa2tM35dGoYF2MqmHGNW4Abgm1mFhMtwON\n\
Dnx6ZaRWk9apWk1Pw2TUBbvHwlcRNQoQAT11tigp+CaCH1G7SaM1Lm6FI0TfDJwy\n\
wYdRp9OP2+RtUNWmsduA2CWc+XaPOK7jXqufvplXsrX3K03eRJpUOGd4WZycoqOH\n\
sLV+XOzNAgMBAAECggEAEMVB6Q+vk6ISVd7r0v9dWuFzFrPhLjJTHXq2DYD/MnMe\n\
qAGhJ4Ac2X8VGvrXV3ns75tGdbR+ezdv8JbiQkv9eDXciWxY8kpJ6c6OKdP7hETT\n\
muVdF6yTH89bTiX/qLTiio8LJTYxTwYxRz+QZv5vRulT1I7aq4ptvFsCJ7Qitd/x\n\
dAjzJSPgXj/LPk1IiC417SKawnZA5mHFqkCEat2jrmZztJhpOoZKM0sGJrboYxLT\n\
Y6nvbTbNAh4FN17NVVsUcMFtrMcWRA2ekQhcKJlhmpqTFKdv6xAKIGu1c9F1NRc1\n\
l8UdnfG0P7TowvDgQU+uTAUfJa0PW+d0ivIqxRoQEQKBgQD/r/YvV/9dTx+THbri\n\
/PNvB79Rt4NeRXcjUWHpEsiovb52GyILpck3u1Z4kLzEBTlyGGWveXkYKeOxTtaF\n\
O84C1VHBq+SFmvbY7Vm8AfdDHvkMlEjE/5+ZbUlhAGGXDjQiUNmsntKbV4NK6uyK\n\
vraXRwomiZ69n6+omBSFwoeWBQKBgQDfAiI84459/eJ5Vyxb0jhrLKNqF4CVCaCG\n\
dEPtAcVDz7cZlO6fXKZTt2y0MkWQCewpTvtlxVaMv8YM5uqnFacp/mMSrXiXNSZO\n\
YOEoGaEKq4192chnrkJDTDFdhoXr3++UiXSo7qTAX1MCXM6dPc3K1FnMRAkGoD/4\n\
6vS72L0uKQKBgQDcWSmBbYWuRUUBxOpNOg8UjYmsg8lb0eO1dSo68awp97OPFx0F\n\
Cq/ZLsJ7jsiO6a2zDSF80uOwFlGaeUXYdky5Flup21hKZ9z537qoks0jdCrPU29P\n\
DrjdQViuluSDiIMXW7Pr1sfLheSpCMInY+n5fwhZY9qAsoBwe/ebuqScfQKBgQCn\n\
wCElED+Vgq8je3GAuId8Bx39piQw+AbqXPbjh5ttwQgIlEFTWww6mRWKDu7IxM4C\n\
3Mi661CJm5BNED6e5OjT6+l2mUrG41InTzTPR0gekKFkc7gOVcS+fsf7hD+lCNRd\n\
NXCtyqXfl1UHx+wb1+u/kTDjOKJZe53jjkn+K7FS0QKBgA8cMEjUI5RXWo7IkvY0\n\
cO0a4BvKA//9d903yL4HFaNhKDrBnq6jFLuEQTp5xztj1pbnDZ7rFpoKh9ZwyJaY\n\
YQQK6yHGem5ecgFffKuu97QyjlV9me12iL7r86fT0zwm7cprg8ozrMQucoxGFBh1\n\
0pvkeYbNc3kpjSHjoMiqr1qy\n\
-----END PRIVATE KEY-----\n";

pub fn encoding_key(pem: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap()
}

/// The public JWK of `pem`, with `kid`.
pub fn public_jwk(pem: &str, kid: &str) -> Value {
    let jwk = Jwk::from_encoding_key(&encoding_key(pem), Algorithm::RS256).unwrap();
    let mut v = serde_json::to_value(jwk).unwrap();
    v["kid"] = json!(kid);
    v["use"] = json!("sig");
    v
}

pub fn sign(pem: &str, kid: &str, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&h, claims, &encoding_key(pem)).unwrap()
}

/// A tiny identity provider: `/.well-known/openid-configuration` pointing at
/// `/jwks.json` on the same issuer, over plain HTTP or TLS. The JWKS can be
/// swapped (key rotation) and every request path is recorded.
pub struct Idp {
    pub addr: SocketAddr,
    pub issuer: String,
    /// The JWKS served at `/jwks.json`; replace it to rotate keys.
    pub jwks: Arc<Mutex<Value>>,
    hits: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Idp {
    /// Plain HTTP; the issuer is `http://127.0.0.1:PORT`.
    pub async fn plain(jwks: Value) -> Idp {
        Idp::start(jwks, None, None).await
    }

    /// Plain HTTP reached by name; the issuer is `http://{host}:PORT` (e.g.
    /// `localhost`, a name that resolves to loopback).
    pub async fn plain_named(jwks: Value, host: &str) -> Idp {
        Idp::start(jwks, None, Some(host)).await
    }

    /// TLS with a leaf for `host` from `pki`; the issuer is `https://{host}`.
    pub async fn tls(jwks: Value, pki: &TestPki, host: &str) -> Idp {
        Idp::tls_at(jwks, pki, host, "127.0.0.1:0".parse().unwrap()).await
    }

    /// [`Idp::tls`] listening on `bind` (e.g. port 443 of a loopback
    /// address, for a test that resolves `host` through DNS, not a pin).
    pub async fn tls_at(jwks: Value, pki: &TestPki, host: &str, bind: SocketAddr) -> Idp {
        Idp::start_at(jwks, Some(pki.server_config(&[host])), Some(host), bind).await
    }

    async fn start(jwks: Value, tls: Option<Arc<rustls::ServerConfig>>, host: Option<&str>) -> Idp {
        Idp::start_at(jwks, tls, host, "127.0.0.1:0".parse().unwrap()).await
    }

    async fn start_at(
        jwks: Value,
        tls: Option<Arc<rustls::ServerConfig>>,
        host: Option<&str>,
        bind: SocketAddr,
    ) -> Idp {
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .unwrap_or_else(|e| panic!("IdP bind {bind}: {e}"));
        let addr = listener.local_addr().unwrap();
        let issuer = match (host, &tls) {
            (Some(h), Some(_)) => format!("https://{h}"),
            (Some(h), None) => format!("http://{h}:{}", addr.port()),
            (None, _) => format!("http://{addr}"),
        };
        let jwks = Arc::new(Mutex::new(jwks));
        let hits = Arc::new(Mutex::new(Vec::new()));
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let (iss, keys, log) = (issuer.clone(), jwks.clone(), hits.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (iss, keys, log) = (iss.clone(), keys.clone(), log.clone());
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let path = req.uri().path().to_owned();
                        log.lock().unwrap().push(path.clone());
                        let (status, body) = match path.as_str() {
                            "/.well-known/openid-configuration" => (
                                200,
                                json!({"issuer": iss, "jwks_uri": format!("{iss}/jwks.json"),
                                    "id_token_signing_alg_values_supported": ["RS256"]}),
                            ),
                            "/jwks.json" => (200, keys.lock().unwrap().clone()),
                            _ => (404, json!({"error": "not found"})),
                        };
                        let resp = Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(body.to_string())))
                            .unwrap();
                        async move { Ok::<_, Infallible>(resp) }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match acceptor {
                        Some(a) => {
                            if let Ok(tls) = a.accept(tcp).await {
                                let _ = builder.serve_connection(TokioIo::new(tls), svc).await;
                            }
                        }
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(tcp), svc).await;
                        }
                    }
                });
            }
        });
        Idp {
            addr,
            issuer,
            jwks,
            hits,
            task,
        }
    }

    pub fn hits(&self, path: &str) -> usize {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|p| *p == path)
            .count()
    }
}
