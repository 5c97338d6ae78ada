//! Credentials the gateway puts on a backend request (`backendAuth`).
//!
//! Why apart from the providers: the credential is the backend's config,
//! the scheme is the provider's. An API key goes where the provider's
//! [`KeyScheme`](super::KeyScheme) says; signed and token credentials
//! (AWS SigV4, Google OAuth) are computed here, last, once every header and
//! the body are final, so nothing after them can invalidate a signature.

use super::bedrock::{sign, AwsCredentials, BEDROCK_SERVICE};
use super::gcp_auth::{
    ClientCredentials, FormPoster, GcpAuthError, GcpAuthOptions, GcpTokenSource,
};

/// The scope Azure OpenAI and Foundry tokens are issued for.
const AZURE_SCOPE: &str = "https://cognitiveservices.azure.com/.default";
use super::{put_key, Api, ProviderError};
use crate::config::{BackendAuth, GcpCredential, Secret};
use std::time::SystemTime;

/// A backend's credential, compiled from its `backendAuth`.
#[derive(Debug, Clone)]
pub enum Credential {
    /// `backendAuth.key`.
    Key(Secret),
    /// `backendAuth.key` with a `location`: the key in that header, after
    /// its prefix.
    KeyAt {
        key: Secret,
        header: http::HeaderName,
        prefix: String,
    },
    /// `backendAuth.gcp`: a Google OAuth access token, cached and
    /// refreshed by the source.
    Gcp(GcpTokenSource),
    /// `backendAuth.aws`: SigV4 over the final request.
    Aws {
        creds: AwsCredentials,
        region: String,
        service: String,
    },
}

/// Why a `backendAuth` cannot be used for its backend.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("backendAuth.aws: no credentials: set `accessKeyId`/`secretAccessKey`, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the gateway's environment")]
    NoAwsCredentials,
    #[error("backendAuth.aws needs a region: the provider's `region` or `aws.region`")]
    NoAwsRegion,
    #[error("backendAuth.key location: {0:?} is not a header name")]
    BadHeader(String),
    #[error("backendAuth token source: {0}")]
    Gcp(#[from] GcpAuthError),
}

impl Credential {
    /// Compile `auth` for a backend whose provider is `api`; the
    /// environment is read once, here (`env`), never per request.
    pub fn compile(
        auth: &BackendAuth,
        api: Option<&dyn Api>,
        provider_region: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Credential>, AuthError> {
        let _ = api;
        Ok(match auth {
            BackendAuth::Passthrough => None,
            BackendAuth::Key(k) => Some(Credential::Key(k.clone())),
            BackendAuth::KeyAt {
                key,
                header,
                prefix,
            } => Some(Credential::KeyAt {
                key: key.clone(),
                header: http::HeaderName::from_bytes(header.as_bytes())
                    .map_err(|_| AuthError::BadHeader(header.clone()))?,
                prefix: prefix.clone(),
            }),
            BackendAuth::Aws(a) => {
                let creds = match (&a.access_key_id, &a.secret_access_key) {
                    (Some(id), Some(secret)) => AwsCredentials {
                        access_key_id: id.clone(),
                        secret_access_key: secret.clone(),
                        session_token: a.session_token.clone(),
                    },
                    _ => AwsCredentials::from_env(env).ok_or(AuthError::NoAwsCredentials)?,
                };
                let region = a
                    .region
                    .as_deref()
                    .or(provider_region)
                    .ok_or(AuthError::NoAwsRegion)?
                    .to_string();
                Some(Credential::Aws {
                    creds,
                    region,
                    service: a
                        .service_name
                        .clone()
                        .unwrap_or_else(|| BEDROCK_SERVICE.to_string()),
                })
            }
            BackendAuth::Azure(a) => {
                // The Azure SDKs' own override of the authority, e.g. for a
                // sovereign cloud; Microsoft's public cloud otherwise.
                let authority = env("AZURE_AUTHORITY_HOST")
                    .unwrap_or_else(|| "https://login.microsoftonline.com".to_string());
                let token_uri = format!(
                    "{}/{}/oauth2/v2.0/token",
                    authority.trim_end_matches('/'),
                    a.tenant_id
                );
                let cred = super::gcp_auth::Credential::ClientCredentials(ClientCredentials {
                    client_id: a.client_id.clone(),
                    client_secret: a.client_secret.clone(),
                    scope: AZURE_SCOPE.to_string(),
                    token_uri,
                });
                Some(Credential::Gcp(GcpTokenSource::new(
                    cred,
                    GcpAuthOptions::default(),
                )?))
            }
            BackendAuth::Gcp(g) => {
                let inline;
                let credential = match &g.credential {
                    None => None,
                    Some(GcpCredential::Inline(s)) => Some(s.expose()),
                    Some(GcpCredential::File(p)) => {
                        inline = p.to_string_lossy().into_owned();
                        Some(inline.as_str())
                    }
                };
                Some(Credential::Gcp(GcpTokenSource::from_config(
                    credential,
                    GcpAuthOptions::default(),
                )?))
            }
        })
    }
}

impl Credential {
    /// Replace the client's credential with the backend's.
    pub async fn apply<P: FormPoster>(
        &self,
        api: Option<&dyn Api>,
        parts: &mut http::request::Parts,
        body: &[u8],
        poster: &P,
    ) -> Result<(), ProviderError> {
        match self {
            Credential::Key(k) => {
                let scheme = api.map_or(super::KeyScheme::Bearer, |a| a.key_scheme());
                put_key(&mut parts.headers, scheme, k.expose())
            }
            Credential::KeyAt {
                key,
                header,
                prefix,
            } => {
                for name in ["authorization", "x-api-key", "api-key", "x-goog-api-key"] {
                    parts.headers.remove(name);
                }
                let mut v = http::HeaderValue::from_str(&format!("{prefix}{}", key.expose()))
                    .map_err(|_| {
                        ProviderError::Internal(
                            "the backend key has characters a header cannot carry".into(),
                        )
                    })?;
                v.set_sensitive(true);
                parts.headers.insert(header.clone(), v);
                Ok(())
            }
            Credential::Gcp(source) => {
                let value = source
                    .authorization(poster)
                    .await
                    .map_err(|e| ProviderError::Unavailable(format!("Google access token: {e}")))?;
                for name in ["x-api-key", "api-key", "x-goog-api-key"] {
                    parts.headers.remove(name);
                }
                parts.headers.insert(http::header::AUTHORIZATION, value);
                Ok(())
            }
            Credential::Aws {
                creds,
                region,
                service,
            } => {
                for name in ["authorization", "x-api-key", "api-key", "x-goog-api-key"] {
                    parts.headers.remove(name);
                }
                sign(parts, body, creds, region, service, SystemTime::now())
                    .map_err(|e| ProviderError::Internal(format!("SigV4 signing: {e}")))
            }
        }
    }
}
