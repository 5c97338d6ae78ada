//! Google credential files: what `backendAuth.gcp.credential` names (a
//! path or the JSON inline), or Application Default Credentials.
//!
//! Why parse only what the token exchange needs: a service-account file
//! carries a dozen fields, but the gateway signs with `private_key`, names
//! itself with `client_email`, and posts to `token_uri` (honoured, so a
//! test or a private endpoint can serve the exchange). Everything secret
//! is held as [`Secret`] so no `Debug` of a credential ever prints it.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::GcpAuthError;
use crate::config::Secret;

/// Google's OAuth token endpoint, for files that do not name one
/// (`authorized_user` files from `gcloud auth application-default login`).
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// The environment variable Application Default Credentials read first.
pub const ADC_ENV: &str = "GOOGLE_APPLICATION_CREDENTIALS";

/// A parsed credential.
#[derive(Debug, Clone)]
pub enum Credential {
    ServiceAccount(ServiceAccount),
    AuthorizedUser(AuthorizedUser),
    /// OAuth 2.0 client credentials (Microsoft Entra ID's app secret for
    /// Azure): the same exchange, cache and refresh, another grant.
    ClientCredentials(ClientCredentials),
}

/// `grant_type=client_credentials` with a secret, for `scope`.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: Secret,
    pub scope: String,
    pub token_uri: String,
}

/// `"type": "service_account"`.
#[derive(Debug, Clone)]
pub struct ServiceAccount {
    pub client_email: String,
    /// Sent as the assertion's `kid`, so Google picks the right public key.
    pub private_key_id: Option<String>,
    /// PEM, PKCS#8 RSA (what Google issues).
    pub private_key: Secret,
    pub token_uri: String,
}

/// `"type": "authorized_user"` (a user's refresh token).
#[derive(Debug, Clone)]
pub struct AuthorizedUser {
    pub client_id: String,
    pub client_secret: Secret,
    pub refresh_token: Secret,
    pub token_uri: String,
}

impl Credential {
    /// Where tokens are exchanged.
    pub fn token_uri(&self) -> &str {
        match self {
            Credential::ServiceAccount(s) => &s.token_uri,
            Credential::AuthorizedUser(u) => &u.token_uri,
            Credential::ClientCredentials(c) => &c.token_uri,
        }
    }

    /// Parses a credential JSON document.
    pub fn from_json(bytes: &[u8]) -> Result<Self, GcpAuthError> {
        let raw: Raw = serde_json::from_slice(bytes).map_err(|e| GcpAuthError::Credential {
            // serde's message names the field and position, never the value
            // of a string it could not read.
            reason: format!("not a Google credential JSON: {}", e.classify_str()),
        })?;
        let missing = |field: &str| GcpAuthError::Credential {
            reason: format!("{} credential without `{field}`", raw.kind),
        };
        let token_uri = raw
            .token_uri
            .clone()
            .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_string());
        match raw.kind.as_str() {
            "service_account" => Ok(Credential::ServiceAccount(ServiceAccount {
                client_email: raw
                    .client_email
                    .clone()
                    .ok_or_else(|| missing("client_email"))?,
                private_key_id: raw.private_key_id.clone(),
                private_key: Secret::new(
                    raw.private_key
                        .clone()
                        .ok_or_else(|| missing("private_key"))?,
                ),
                token_uri,
            })),
            "authorized_user" => Ok(Credential::AuthorizedUser(AuthorizedUser {
                client_id: raw.client_id.clone().ok_or_else(|| missing("client_id"))?,
                client_secret: Secret::new(
                    raw.client_secret
                        .clone()
                        .ok_or_else(|| missing("client_secret"))?,
                ),
                refresh_token: Secret::new(
                    raw.refresh_token
                        .clone()
                        .ok_or_else(|| missing("refresh_token"))?,
                ),
                token_uri,
            })),
            other => Err(GcpAuthError::Credential {
                reason: format!(
                    "credential type {other:?} is not supported \
                     (service_account or authorized_user)"
                ),
            }),
        }
    }

    /// `backendAuth.gcp.credential`: inline JSON when it starts with `{`,
    /// otherwise a file path (agentgateway accepts both).
    pub fn from_config_value(value: &str) -> Result<Self, GcpAuthError> {
        let v = value.trim_start();
        if v.starts_with('{') {
            Self::from_json(v.as_bytes())
        } else {
            Self::from_file(Path::new(value))
        }
    }

    /// Reads and parses a credential file.
    pub fn from_file(path: &Path) -> Result<Self, GcpAuthError> {
        let bytes = std::fs::read(path).map_err(|e| GcpAuthError::CredentialFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::from_json(&bytes).map_err(|e| match e {
            GcpAuthError::Credential { reason } => GcpAuthError::CredentialFile {
                path: path.to_path_buf(),
                reason,
            },
            other => other,
        })
    }

    /// Application Default Credentials, file-based: `$GOOGLE_APPLICATION_CREDENTIALS`,
    /// then gcloud's `application_default_credentials.json`. The metadata
    /// server (a gateway running on GCE/GKE) is not consulted.
    pub fn application_default() -> Result<Self, GcpAuthError> {
        if let Some(p) = std::env::var_os(ADC_ENV).filter(|p| !p.is_empty()) {
            return Self::from_file(Path::new(&p));
        }
        match gcloud_adc_path() {
            Some(p) if p.is_file() => Self::from_file(&p),
            _ => Err(GcpAuthError::NoDefaultCredential),
        }
    }
}

/// gcloud's well-known ADC file.
fn gcloud_adc_path() -> Option<PathBuf> {
    let base = match std::env::var_os("CLOUDSDK_CONFIG") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME")?)
            .join(".config")
            .join("gcloud"),
    };
    Some(base.join("application_default_credentials.json"))
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "type")]
    kind: String,
    client_email: Option<String>,
    private_key_id: Option<String>,
    private_key: Option<String>,
    token_uri: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
}

/// serde_json's error without the input echoed (its messages quote at most
/// an unexpected *token kind*, but the category plus position is all a
/// user needs to find the fault).
trait Classify {
    fn classify_str(&self) -> String;
}

impl Classify for serde_json::Error {
    fn classify_str(&self) -> String {
        let what = match self.classify() {
            serde_json::error::Category::Io => "read error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "wrong shape",
            serde_json::error::Category::Eof => "truncated",
        };
        format!("{what} at line {} column {}", self.line(), self.column())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SA: &str = r#"{"type":"service_account","project_id":"p","private_key_id":"kid1",
        "private_key":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        "client_email":"sa@p.iam.gserviceaccount.com","token_uri":"http://127.0.0.1:9/token"}"#;

    #[test]
    fn parses_a_service_account_and_honours_token_uri() {
        let Credential::ServiceAccount(sa) = Credential::from_json(SA.as_bytes()).unwrap() else {
            panic!("not a service account");
        };
        assert_eq!(sa.client_email, "sa@p.iam.gserviceaccount.com");
        assert_eq!(sa.private_key_id.as_deref(), Some("kid1"));
        assert_eq!(sa.token_uri, "http://127.0.0.1:9/token");
        assert!(!format!("{sa:?}").contains("BEGIN PRIVATE KEY"));
    }

    #[test]
    fn authorized_user_defaults_to_googles_token_endpoint() {
        let c = Credential::from_json(
            br#"{"type":"authorized_user","client_id":"c","client_secret":"s3cr3t",
                 "refresh_token":"rt-XYZ"}"#,
        )
        .unwrap();
        assert_eq!(c.token_uri(), DEFAULT_TOKEN_URI);
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cr3t") && !dbg.contains("rt-XYZ"), "{dbg}");
    }

    #[test]
    fn refuses_other_types_and_missing_fields_without_echoing_values() {
        let e = Credential::from_json(br#"{"type":"external_account"}"#).unwrap_err();
        assert!(e.to_string().contains("external_account"), "{e}");
        let e =
            Credential::from_json(br#"{"type":"service_account","client_email":"x"}"#).unwrap_err();
        assert!(e.to_string().contains("private_key"), "{e}");
        let e = Credential::from_json(br#"{"type":"service_account","private_key":"SECRETPEM""#)
            .unwrap_err();
        assert!(!e.to_string().contains("SECRETPEM"), "{e}");
    }

    #[test]
    fn config_value_is_inline_json_or_a_path() {
        assert!(matches!(
            Credential::from_config_value(&format!("  {SA}")).unwrap(),
            Credential::ServiceAccount(_)
        ));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sa.json");
        std::fs::write(&p, SA).unwrap();
        assert!(Credential::from_config_value(p.to_str().unwrap()).is_ok());
        let e = Credential::from_config_value("/nonexistent/sa.json").unwrap_err();
        assert!(e.to_string().contains("/nonexistent/sa.json"), "{e}");
    }
}
