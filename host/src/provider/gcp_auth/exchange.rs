//! The token exchange on the wire: a form POST to `token_uri` and its JSON
//! answer.
//!
//! Why a trait: the gateway posts with its own pooled upstream client (its
//! trust store and `--resolve` pins apply to the token endpoint as to any
//! backend), and tests post over plain HTTP to a loopback fake. Anything
//! that can POST a form and hand back status and body will do.

use std::future::Future;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::Connect;
use hyper_util::client::legacy::Client;
use serde::Deserialize;

use super::GcpAuthError;
use crate::config::Secret;
use crate::proxy::client::{error_chain, UpstreamBody};

/// The largest token-endpoint answer read (tokens are ~2 KB).
const MAX_ANSWER: usize = 64 * 1024;

/// A status and body from the token endpoint.
#[derive(Debug)]
pub struct FormAnswer {
    pub status: StatusCode,
    pub body: Bytes,
}

/// POSTs `application/x-www-form-urlencoded` bodies.
pub trait FormPoster: Send + Sync {
    /// Posts `body` to `uri`. The body holds a signed assertion or a refresh
    /// token: implementations must not log it.
    fn post_form(
        &self,
        uri: &Uri,
        body: Secret,
    ) -> impl Future<Output = Result<FormAnswer, GcpAuthError>> + Send;
}

/// The gateway's upstream client (`proxy::client::HttpClient`) and any other
/// hyper-util legacy client with the same body type.
impl<C> FormPoster for Client<C, UpstreamBody>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    async fn post_form(&self, uri: &Uri, body: Secret) -> Result<FormAnswer, GcpAuthError> {
        let unreachable = |reason: String| GcpAuthError::Unreachable {
            token_uri: uri.to_string(),
            reason,
        };
        let full = Full::new(Bytes::from(body.expose().to_owned()))
            .map_err(|never| match never {})
            .boxed();
        let req = Request::builder()
            .method(Method::POST)
            .uri(uri.clone())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .body(full)
            .map_err(|e| unreachable(e.to_string()))?;
        let resp = self
            .request(req)
            .await
            .map_err(|e| unreachable(error_chain(&e)))?;
        let status = resp.status();
        let limited = http_body_util::Limited::new(resp.into_body(), MAX_ANSWER);
        let body = limited
            .collect()
            .await
            .map_err(|e| unreachable(format!("reading the answer: {e}")))?
            .to_bytes();
        Ok(FormAnswer { status, body })
    }
}

/// `grant_type=...&assertion=...` for a service account.
pub fn jwt_bearer_form(assertion: &str) -> Secret {
    Secret::new(
        form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
            .append_pair("assertion", assertion)
            .finish(),
    )
}

/// `grant_type=client_credentials&...` for an app's secret.
pub fn client_credentials_form(client_id: &str, client_secret: &str, scope: &str) -> Secret {
    Secret::new(
        form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", client_id)
            .append_pair("client_secret", client_secret)
            .append_pair("scope", scope)
            .finish(),
    )
}

/// `grant_type=refresh_token&...` for an authorized user.
pub fn refresh_token_form(client_id: &str, client_secret: &str, refresh_token: &str) -> Secret {
    Secret::new(
        form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("client_id", client_id)
            .append_pair("client_secret", client_secret)
            .append_pair("refresh_token", refresh_token)
            .finish(),
    )
}

/// What the token endpoint answered, read.
#[derive(Debug)]
pub struct Issued {
    pub token: Secret,
    /// Seconds the token is valid for, if the endpoint said.
    pub expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct TokenJson {
    access_token: Option<String>,
    id_token: Option<String>,
    expires_in: Option<u64>,
    token_type: Option<String>,
}

#[derive(Deserialize)]
struct OAuthErrorJson {
    error: Option<String>,
    error_description: Option<String>,
}

/// Reads the endpoint's answer: an access token (`want_id_token` false) or
/// an ID token. A refusal keeps OAuth's `error` and `error_description`
/// (Google's never echo the assertion).
pub fn read_answer(
    token_uri: &str,
    answer: &FormAnswer,
    want_id_token: bool,
) -> Result<Issued, GcpAuthError> {
    if !answer.status.is_success() {
        let detail = serde_json::from_slice::<OAuthErrorJson>(&answer.body)
            .ok()
            .map(|e| {
                let mut s = e.error.unwrap_or_default();
                if let Some(d) = e.error_description {
                    s.push_str(": ");
                    s.push_str(&d);
                }
                truncate(s, 200)
            })
            .unwrap_or_default();
        return Err(GcpAuthError::Refused {
            token_uri: token_uri.to_string(),
            status: answer.status.as_u16(),
            detail,
        });
    }
    let malformed = |what: &str| GcpAuthError::Malformed {
        token_uri: token_uri.to_string(),
        what: what.to_string(),
    };
    let parsed: TokenJson =
        serde_json::from_slice(&answer.body).map_err(|_| malformed("not a token JSON"))?;
    let token = if want_id_token {
        parsed.id_token.ok_or_else(|| malformed("no id_token"))?
    } else {
        if let Some(t) = &parsed.token_type {
            if !t.eq_ignore_ascii_case("bearer") {
                return Err(malformed("token_type is not Bearer"));
            }
        }
        parsed
            .access_token
            .ok_or_else(|| malformed("no access_token"))?
    };
    if token.is_empty() || token.bytes().any(|b| !(0x21..0x7f).contains(&b)) {
        return Err(malformed("token is not a header-safe string"));
    }
    Ok(Issued {
        token: Secret::new(token),
        expires_in: parsed.expires_in,
    })
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> FormAnswer {
        FormAnswer {
            status: StatusCode::from_u16(status).unwrap(),
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn forms_are_url_encoded() {
        let f = jwt_bearer_form("a.b+c/d=");
        assert_eq!(
            f.expose(),
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a.b%2Bc%2Fd%3D"
        );
        assert_eq!(format!("{f:?}"), "<redacted>");
        let r = refresh_token_form("id", "s e", "rt");
        assert!(r.expose().contains("client_secret=s+e"));
    }

    #[test]
    fn reads_access_and_id_tokens() {
        let ok = answer(
            200,
            r#"{"access_token":"ya29.abc","expires_in":3599,"token_type":"Bearer"}"#,
        );
        let t = read_answer("u", &ok, false).unwrap();
        assert_eq!(t.token.expose(), "ya29.abc");
        assert_eq!(t.expires_in, Some(3599));
        assert!(read_answer("u", &ok, true).is_err());
        let id = answer(200, r#"{"id_token":"h.p.s"}"#);
        assert_eq!(read_answer("u", &id, true).unwrap().token.expose(), "h.p.s");
    }

    #[test]
    fn refusals_keep_the_oauth_error_and_never_the_body_otherwise() {
        let e = read_answer(
            "http://t/token",
            &answer(
                400,
                r#"{"error":"invalid_grant","error_description":"Invalid JWT"}"#,
            ),
            false,
        )
        .unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("400") && s.contains("invalid_grant: Invalid JWT"),
            "{s}"
        );
        let e = read_answer("u", &answer(500, "secret-ish html"), false).unwrap_err();
        assert!(!e.to_string().contains("secret-ish"), "{e}");
    }

    #[test]
    fn malformed_answers_do_not_echo_the_token() {
        for body in [
            r#"{"access_token":"ya29.x","token_type":"mac"}"#,
            r#"{"access_token":"ya29 with space"}"#,
            r#"{"expires_in":1}"#,
            "nope",
        ] {
            let e = read_answer("u", &answer(200, body), false).unwrap_err();
            assert!(!e.to_string().contains("ya29"), "{e}");
        }
    }
}
