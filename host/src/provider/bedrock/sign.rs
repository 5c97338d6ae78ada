//! AWS SigV4 request signing for Bedrock, with the maintained `aws-sigv4`
//! crate (never a hand-written signer).
//!
//! What is signed, and why: the method, the path and query as sent, the
//! body's SHA-256, and these headers only:
//! - `host` (the `Host` header if the request has one, else the URI's
//!   authority without a default port, exactly what hyper sends);
//! - `content-type`;
//! - every `x-amz-*` header, including the `x-amz-date` and
//!   `x-amz-security-token` this module sets.
//!
//! Everything else (`user-agent`, `accept`, `content-length`,
//! `anthropic-*`, tracing headers, ...) stays unsigned on purpose: a proxy
//! or client library between the gateway and AWS may rewrite or add such
//! headers after signing, and AWS accepts unsigned headers, so signing them
//! would only make a valid request fail. `x-amz-content-sha256` is not
//! added: Bedrock does not require it (the body hash is still part of the
//! signature through the canonical request).
//!
//! Call [`sign`] last, once the method, URI, `host`, `content-type`, any
//! `x-amz-*` header and the body are final: changing any of them afterwards
//! breaks the signature.

use std::fmt;
use std::time::SystemTime;

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4::SigningParams;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use http::request::Parts;

use crate::config::Secret;

/// The SigV4 service name Bedrock's runtime API is signed for.
pub const BEDROCK_SERVICE: &str = "bedrock";

/// Headers this module sets; stale copies (from the client, or a previous
/// attempt) are removed before signing so they can neither leak nor be
/// signed twice.
const SET_BY_SIGNER: [&str; 4] = [
    "authorization",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

/// Static AWS credentials: from `backendAuth.aws` or the environment.
#[derive(Clone)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

impl fmt::Debug for AwsCredentials {
    /// The access key id identifies the key but grants nothing; the secret
    /// and the session token print as `<redacted>` through [`Secret`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field("session_token", &self.session_token)
            .finish()
    }
}

impl AwsCredentials {
    /// The environment's credentials (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, optional `AWS_SESSION_TOKEN`), as
    /// `backendAuth: {aws: {}}` uses them. `get` reads one variable (e.g.
    /// `|k| std::env::var(k).ok()`), so tests never touch the process
    /// environment. `None` unless both keys are set and non-empty; an empty
    /// session token counts as none.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let non_empty = |k: &str| get(k).filter(|v| !v.is_empty());
        Some(AwsCredentials {
            access_key_id: non_empty("AWS_ACCESS_KEY_ID")?,
            secret_access_key: Secret::new(non_empty("AWS_SECRET_ACCESS_KEY")?),
            session_token: non_empty("AWS_SESSION_TOKEN").map(Secret::new),
        })
    }

    fn to_smithy(&self) -> aws_credential_types::Credentials {
        aws_credential_types::Credentials::new(
            self.access_key_id.clone(),
            self.secret_access_key.expose().to_string(),
            self.session_token.as_ref().map(|t| t.expose().to_string()),
            None,
            "sluice",
        )
    }
}

/// Why a request could not be signed. Never carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("the request has neither a Host header nor an absolute URI to sign")]
    MissingHost,
    #[error("header {0} is not valid UTF-8 text and cannot be signed")]
    NonTextHeader(String),
    #[error("invalid SigV4 signing parameters: {0}")]
    Params(String),
    #[error("SigV4 signing failed: {0}")]
    Signing(#[from] aws_sigv4::http_request::SigningError),
    #[error("the signer produced an invalid header value for {0}")]
    BadOutput(&'static str),
}

/// Whether `name` (lower-case) is one of the headers [`sign`] signs.
pub fn is_signed_header(name: &str) -> bool {
    name == HOST.as_str() || name == CONTENT_TYPE.as_str() || name.starts_with("x-amz-")
}

/// Signs the request in place with SigV4 (signature in headers): sets
/// `authorization`, `x-amz-date` and, with a session token,
/// `x-amz-security-token`. `at` is the signing time (`SystemTime::now()` in
/// the gateway, fixed in tests). `service` is `bedrock` unless
/// `backendAuth.aws.serviceName` says otherwise.
pub fn sign(
    parts: &mut Parts,
    body: &[u8],
    creds: &AwsCredentials,
    region: &str,
    service: &str,
    at: SystemTime,
) -> Result<(), SignError> {
    for name in SET_BY_SIGNER {
        parts.headers.remove(name);
    }
    let host = host_to_sign(parts)?;
    let mut headers: Vec<(&str, &str)> = vec![("host", host.as_str())];
    for (name, value) in &parts.headers {
        let name = name.as_str();
        if name == HOST.as_str() || !is_signed_header(name) {
            continue;
        }
        let value = value
            .to_str()
            .map_err(|_| SignError::NonTextHeader(name.to_string()))?;
        headers.push((name, value));
    }
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let identity = creds.to_smithy().into();
    let params: aws_sigv4::http_request::SigningParams<'_> = SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| SignError::Params(e.to_string()))?
        .into();
    let request = SignableRequest::new(
        parts.method.as_str(),
        path,
        headers.into_iter(),
        SignableBody::Bytes(body),
    )?;
    let (instructions, _signature) = aws_sigv4::http_request::sign(request, &params)?.into_parts();
    let (out, _params) = instructions.into_parts();
    for header in out {
        let mut value = HeaderValue::from_str(header.value())
            .map_err(|_| SignError::BadOutput(header.name()))?;
        value.set_sensitive(header.sensitive() || header.name() == AUTHORIZATION.as_str());
        parts
            .headers
            .insert(HeaderName::from_static(header.name()), value);
    }
    Ok(())
}

/// The `host` value the upstream will see: the request's `Host` header when
/// set (hyper sends it as is), else the URI authority with a default port
/// dropped (as hyper writes it).
fn host_to_sign(parts: &Parts) -> Result<String, SignError> {
    if let Some(h) = parts.headers.get(HOST) {
        return h
            .to_str()
            .map(str::to_string)
            .map_err(|_| SignError::NonTextHeader("host".to_string()));
    }
    let host = parts.uri.host().ok_or(SignError::MissingHost)?;
    let default_port = match parts.uri.scheme_str() {
        Some("http") => Some(80),
        Some("https") | None => Some(443),
        _ => None,
    };
    Ok(match parts.uri.port_u16() {
        Some(p) if Some(p) != default_port => format!("{host}:{p}"),
        _ => host.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// 2015-08-30T12:36:00Z, the time of AWS's SigV4 test suite.
    fn suite_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    fn suite_creds(token: Option<&str>) -> AwsCredentials {
        AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: token.map(Secret::new),
        }
    }

    fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().method(method).uri(uri);
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    const SUITE_TOKEN: &str = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";

    /// AWS's published test suite, `get-vanilla`: only `host` and
    /// `x-amz-date` are signed; the client's `user-agent` is not.
    #[test]
    fn matches_aws_test_vector_get_vanilla() {
        let mut p = parts(
            "GET",
            "https://example.amazonaws.com/",
            &[("user-agent", "curl/8"), ("accept", "*/*")],
        );
        sign(
            &mut p,
            b"",
            &suite_creds(None),
            "us-east-1",
            "service",
            suite_time(),
        )
        .unwrap();
        assert_eq!(p.headers["x-amz-date"], "20150830T123600Z");
        assert_eq!(
            p.headers["authorization"],
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        assert!(p.headers.get("x-amz-security-token").is_none());
        assert!(p.headers.get("x-amz-content-sha256").is_none());
    }

    /// AWS's `post-sts-header-before`: the session token is sent and signed.
    #[test]
    fn matches_aws_test_vector_with_session_token() {
        let mut p = parts("POST", "/", &[("host", "example.amazonaws.com")]);
        let creds = suite_creds(Some(SUITE_TOKEN));
        sign(&mut p, b"", &creds, "us-east-1", "service", suite_time()).unwrap();
        assert_eq!(p.headers["x-amz-security-token"], SUITE_TOKEN);
        assert_eq!(
            p.headers["authorization"],
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date;x-amz-security-token, \
             Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"
        );
        assert!(p.headers["authorization"].is_sensitive());
        assert!(p.headers["x-amz-security-token"].is_sensitive());
    }

    #[test]
    fn stale_signing_headers_are_replaced_and_default_port_dropped() {
        let mut p = parts(
            "POST",
            "https://example.amazonaws.com:443/",
            &[
                ("authorization", "Bearer client"),
                ("x-amz-security-token", "client-token"),
                ("x-amz-date", "19990101T000000Z"),
            ],
        );
        sign(
            &mut p,
            b"",
            &suite_creds(None),
            "us-east-1",
            "service",
            suite_time(),
        )
        .unwrap();
        // Same answer as AWS's `post-vanilla`.
        assert!(p.headers["authorization"].to_str().unwrap().ends_with(
            "Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        ));
        assert!(p.headers.get("x-amz-security-token").is_none());
        assert_eq!(p.headers.get_all("x-amz-date").iter().count(), 1);
    }

    #[test]
    fn signs_content_type_and_amz_headers_only() {
        let mut p = parts(
            "POST",
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/invoke",
            &[
                ("content-type", "application/json"),
                ("accept", "application/json"),
                ("anthropic-version", "2023-06-01"),
                ("x-amz-user-agent", "sluice"),
            ],
        );
        let creds = suite_creds(None);
        sign(
            &mut p,
            b"{}",
            &creds,
            "us-east-1",
            BEDROCK_SERVICE,
            suite_time(),
        )
        .unwrap();
        let auth = p.headers["authorization"].to_str().unwrap();
        assert!(
            auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-user-agent,"),
            "{auth}"
        );
        assert!(auth.contains("/us-east-1/bedrock/aws4_request"), "{auth}");
    }

    #[test]
    fn missing_host_is_an_error() {
        let mut p = parts("POST", "/model/m/invoke", &[]);
        let e = sign(
            &mut p,
            b"",
            &suite_creds(None),
            "us-east-1",
            "bedrock",
            suite_time(),
        );
        assert!(matches!(e, Err(SignError::MissingHost)), "{e:?}");
    }

    #[test]
    fn from_env_needs_both_keys() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let c = AwsCredentials::from_env(env(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
            ("AWS_SESSION_TOKEN", "tok"),
        ]))
        .unwrap();
        assert_eq!(c.access_key_id, "AKID");
        assert_eq!(c.secret_access_key.expose(), "s3cr3t");
        assert_eq!(c.session_token.as_ref().map(Secret::expose), Some("tok"));
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cr3t") && !dbg.contains("tok\""), "{dbg}");
        assert!(AwsCredentials::from_env(env(&[("AWS_ACCESS_KEY_ID", "AKID")])).is_none());
        assert!(AwsCredentials::from_env(env(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", ""),
        ]))
        .is_none());
        let no_token = AwsCredentials::from_env(env(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_SESSION_TOKEN", ""),
        ]))
        .unwrap();
        assert!(no_token.session_token.is_none());
    }
}
