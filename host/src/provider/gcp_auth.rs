//! Google Cloud credentials for `backendAuth: {gcp: ...}`: a token source
//! that trades a service account's signed assertion (or a user's refresh
//! token) for an OAuth access token or an OIDC ID token, caches it, and
//! refreshes it before it expires.
//!
//! Why cache and single-flight: every Vertex request needs a bearer token,
//! a token lives an hour, and an exchange costs a round trip to Google. The
//! first request after start-up (or near expiry) refreshes; the requests
//! arriving meanwhile wait for that one exchange instead of each starting
//! their own. A token is refreshed [`DEFAULT_REFRESH_EARLY`] before it
//! expires (or halfway through a shorter life) so one in flight never
//! lapses upstream; if that early refresh fails, the still-valid token
//! keeps serving.
//!
//! Nothing here logs or prints a key, an assertion, a refresh token or an
//! issued token: they are held as [`Secret`] or as sensitive header values.

mod assertion;
mod credentials;
mod exchange;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use http::{HeaderValue, Uri};

pub use assertion::{Grant, Signer, ASSERTION_LIFETIME, CLOUD_PLATFORM_SCOPE};
pub use credentials::{
    AuthorizedUser, ClientCredentials, Credential, ServiceAccount, ADC_ENV, DEFAULT_TOKEN_URI,
};
pub use exchange::{FormAnswer, FormPoster};

use crate::config::Secret;

/// How long before expiry a token is refreshed.
pub const DEFAULT_REFRESH_EARLY: Duration = Duration::from_secs(300);
/// How long one exchange may take before callers get an error.
pub const DEFAULT_EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Assumed lifetime when the endpoint does not say (Google's is an hour).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// Why a token could not be had. Never carries a key, assertion or token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GcpAuthError {
    #[error("GCP credential: {reason}")]
    Credential { reason: String },
    #[error("GCP credential file {path}: {reason}")]
    CredentialFile { path: PathBuf, reason: String },
    #[error(
        "no GCP credential: set backendAuth.gcp.credential or ${} \
         (or run `gcloud auth application-default login`)",
        ADC_ENV
    )]
    NoDefaultCredential,
    #[error("GCP credential: token_uri {0:?} is not an http(s) URL")]
    TokenUri(String),
    #[error("GCP credential: {0}")]
    Unsupported(&'static str),
    #[error("the system clock is before 1970")]
    Clock,
    #[error("signing the GCP token assertion failed")]
    Sign,
    #[error("GCP token endpoint {token_uri} unreachable: {reason}")]
    Unreachable { token_uri: String, reason: String },
    #[error("GCP token endpoint {token_uri} did not answer within {timeout:?}")]
    Timeout {
        token_uri: String,
        timeout: Duration,
    },
    #[error("GCP token endpoint {token_uri} refused the exchange (HTTP {status}): {detail}")]
    Refused {
        token_uri: String,
        status: u16,
        detail: String,
    },
    #[error("GCP token endpoint {token_uri} answered without a usable token: {what}")]
    Malformed { token_uri: String, what: String },
}

/// `backendAuth.gcp.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenType {
    /// An OAuth access token (what Vertex AI takes).
    #[default]
    AccessToken,
    /// An OIDC ID token (for Cloud Run and other IAP-style services).
    IdToken,
}

/// How a [`GcpTokenSource`] asks and caches.
#[derive(Debug, Clone)]
pub struct GcpAuthOptions {
    pub token_type: TokenType,
    /// The ID token's audience (`backendAuth.gcp.audience`); required for
    /// [`TokenType::IdToken`].
    pub audience: Option<String>,
    /// The access token's scope.
    pub scope: String,
    pub refresh_early: Duration,
    pub exchange_timeout: Duration,
}

impl Default for GcpAuthOptions {
    fn default() -> Self {
        GcpAuthOptions {
            token_type: TokenType::AccessToken,
            audience: None,
            scope: CLOUD_PLATFORM_SCOPE.to_string(),
            refresh_early: DEFAULT_REFRESH_EARLY,
            exchange_timeout: DEFAULT_EXCHANGE_TIMEOUT,
        }
    }
}

/// A cached token, ready to send.
struct Cached {
    token: Secret,
    /// `Bearer <token>`, marked sensitive.
    header: HeaderValue,
    /// When the next caller refreshes it.
    refresh_at: Instant,
    expires_at: Instant,
}

enum Method {
    ServiceAccount {
        // Boxed: the parsed RSA key is large, and the enum is built once.
        signer: Box<Signer>,
        email: String,
        key_id: Option<String>,
        grant: Grant,
    },
    RefreshToken(AuthorizedUser),
    ClientCredentials(credentials::ClientCredentials),
}

/// Issues, caches and refreshes Google tokens for one credential. Share it
/// (it is cheap to clone) between every request to the backends using it.
#[derive(Clone)]
pub struct GcpTokenSource(Arc<Inner>);

struct Inner {
    method: Method,
    token_uri: Uri,
    token_uri_text: String,
    opts: GcpAuthOptions,
    cached: ArcSwapOption<Cached>,
    /// Held by the one caller exchanging; holds the last failed attempt's
    /// number and error so callers that queued behind it share its outcome.
    refresh: tokio::sync::Mutex<Option<(u64, GcpAuthError)>>,
    attempts: AtomicU64,
    exchanges: AtomicU64,
}

impl std::fmt::Debug for GcpTokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcpTokenSource")
            .field("token_uri", &self.0.token_uri_text)
            .field("token_type", &self.0.opts.token_type)
            .finish_non_exhaustive()
    }
}

impl GcpTokenSource {
    /// An access-token source for a credential JSON document.
    pub fn from_json(bytes: &[u8]) -> Result<Self, GcpAuthError> {
        Self::new(Credential::from_json(bytes)?, GcpAuthOptions::default())
    }

    /// The source `backendAuth.gcp` describes: `credential` is a file path
    /// or inline JSON; without it, Application Default Credentials (files).
    pub fn from_config(
        credential: Option<&str>,
        opts: GcpAuthOptions,
    ) -> Result<Self, GcpAuthError> {
        let cred = match credential {
            Some(c) => Credential::from_config_value(c)?,
            None => Credential::application_default()?,
        };
        Self::new(cred, opts)
    }

    /// A source for a parsed credential.
    pub fn new(credential: Credential, opts: GcpAuthOptions) -> Result<Self, GcpAuthError> {
        let token_uri_text = credential.token_uri().to_string();
        let token_uri: Uri = token_uri_text
            .parse()
            .ok()
            .filter(|u: &Uri| {
                matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()
            })
            .ok_or_else(|| GcpAuthError::TokenUri(token_uri_text.clone()))?;
        let method = match credential {
            Credential::ServiceAccount(sa) => {
                let grant = match opts.token_type {
                    TokenType::AccessToken => Grant::AccessToken {
                        scope: opts.scope.clone(),
                    },
                    TokenType::IdToken => Grant::IdToken {
                        audience: opts
                            .audience
                            .clone()
                            .ok_or(GcpAuthError::Unsupported("type idToken needs an audience"))?,
                    },
                };
                Method::ServiceAccount {
                    signer: Box::new(Signer::from_pem(sa.private_key.expose())?),
                    email: sa.client_email,
                    key_id: sa.private_key_id,
                    grant,
                }
            }
            Credential::AuthorizedUser(u) => {
                if opts.token_type == TokenType::IdToken {
                    return Err(GcpAuthError::Unsupported(
                        "type idToken needs a service_account credential",
                    ));
                }
                Method::RefreshToken(u)
            }
            Credential::ClientCredentials(c) => {
                if opts.token_type == TokenType::IdToken {
                    return Err(GcpAuthError::Unsupported(
                        "type idToken needs a service_account credential",
                    ));
                }
                Method::ClientCredentials(c)
            }
        };
        Ok(GcpTokenSource(Arc::new(Inner {
            method,
            token_uri,
            token_uri_text,
            opts,
            cached: ArcSwapOption::empty(),
            refresh: tokio::sync::Mutex::new(None),
            attempts: AtomicU64::new(0),
            exchanges: AtomicU64::new(0),
        })))
    }

    /// Where tokens are exchanged (for logs and errors).
    pub fn token_uri(&self) -> &str {
        &self.0.token_uri_text
    }

    /// Exchanges that reached the endpoint so far (for metrics and tests).
    pub fn exchanges(&self) -> u64 {
        self.0.exchanges.load(Ordering::Relaxed)
    }

    /// The current token, exchanging through `poster` if none is fresh.
    pub async fn token<P: FormPoster>(&self, poster: &P) -> Result<Secret, GcpAuthError> {
        Ok(self.current(poster).await?.token.clone())
    }

    /// `Authorization: Bearer <token>` for the current token, marked
    /// sensitive (cheap to clone per request).
    pub async fn authorization<P: FormPoster>(
        &self,
        poster: &P,
    ) -> Result<HeaderValue, GcpAuthError> {
        Ok(self.current(poster).await?.header.clone())
    }

    /// A cached token not yet due for refresh.
    fn fresh(&self) -> Option<Arc<Cached>> {
        let c = self.0.cached.load_full()?;
        (Instant::now() < c.refresh_at).then_some(c)
    }

    async fn current<P: FormPoster>(&self, poster: &P) -> Result<Arc<Cached>, GcpAuthError> {
        if let Some(c) = self.fresh() {
            return Ok(c);
        }
        let seen = self.0.attempts.load(Ordering::Acquire);
        let mut last_failure = self.0.refresh.lock().await;
        // Someone refreshed while this caller waited: theirs is ours.
        if let Some(c) = self.fresh() {
            return Ok(c);
        }
        if let Some((attempt, err)) = &*last_failure {
            if *attempt > seen {
                return self.still_valid().ok_or_else(|| err.clone());
            }
        }
        let timeout = self.0.opts.exchange_timeout;
        let result = match tokio::time::timeout(timeout, self.exchange(poster)).await {
            Ok(r) => r,
            Err(_) => Err(GcpAuthError::Timeout {
                token_uri: self.0.token_uri_text.clone(),
                timeout,
            }),
        };
        let attempt = self.0.attempts.fetch_add(1, Ordering::AcqRel) + 1;
        match result {
            Ok(c) => {
                let c = Arc::new(c);
                self.0.cached.store(Some(c.clone()));
                *last_failure = None;
                Ok(c)
            }
            Err(e) => {
                tracing::warn!(token_uri = %self.0.token_uri_text, error = %e, "GCP token refresh failed");
                *last_failure = Some((attempt, e.clone()));
                self.still_valid().ok_or(e)
            }
        }
    }

    /// The cached token if it has not actually expired (used when an early
    /// refresh fails).
    fn still_valid(&self) -> Option<Arc<Cached>> {
        let c = self.0.cached.load_full()?;
        (Instant::now() < c.expires_at).then_some(c)
    }

    async fn exchange<P: FormPoster>(&self, poster: &P) -> Result<Cached, GcpAuthError> {
        let inner = &self.0;
        let (form, want_id) = match &inner.method {
            Method::ServiceAccount {
                signer,
                email,
                key_id,
                grant,
            } => {
                let jwt = signer.assertion(
                    email,
                    key_id.as_deref(),
                    &inner.token_uri_text,
                    grant,
                    SystemTime::now(),
                )?;
                (
                    exchange::jwt_bearer_form(&jwt),
                    matches!(grant, Grant::IdToken { .. }),
                )
            }
            Method::RefreshToken(u) => (
                exchange::refresh_token_form(
                    &u.client_id,
                    u.client_secret.expose(),
                    u.refresh_token.expose(),
                ),
                false,
            ),
            Method::ClientCredentials(c) => (
                exchange::client_credentials_form(&c.client_id, c.client_secret.expose(), &c.scope),
                false,
            ),
        };
        let started = Instant::now();
        let answer = poster.post_form(&inner.token_uri, form).await?;
        inner.exchanges.fetch_add(1, Ordering::Relaxed);
        let issued = exchange::read_answer(&inner.token_uri_text, &answer, want_id)?;
        let lifetime = match issued.expires_in {
            Some(s) => Duration::from_secs(s),
            None if want_id => id_token_lifetime(issued.token.expose()),
            None => DEFAULT_LIFETIME,
        };
        let mut header = HeaderValue::try_from(format!("Bearer {}", issued.token.expose()))
            .map_err(|_| GcpAuthError::Malformed {
                token_uri: inner.token_uri_text.clone(),
                what: "token is not a header-safe string".into(),
            })?;
        header.set_sensitive(true);
        tracing::debug!(
            token_uri = %inner.token_uri_text,
            expires_in_s = lifetime.as_secs(),
            took_ms = started.elapsed().as_millis() as u64,
            "GCP token issued"
        );
        // A token living less than twice the early margin is refreshed
        // halfway through its life, not on every call.
        let early = inner.opts.refresh_early.min(lifetime / 2);
        Ok(Cached {
            token: issued.token,
            header,
            // Measured from the request's start: the token was issued no
            // earlier, so the gateway never believes it lives longer.
            refresh_at: started + lifetime - early,
            expires_at: started + lifetime,
        })
    }
}

/// An ID token's remaining life from its `exp` claim.
fn id_token_lifetime(jwt: &str) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    assertion::unverified_exp(jwt)
        .map(|exp| Duration::from_secs(exp.saturating_sub(now)))
        .unwrap_or(DEFAULT_LIFETIME)
}

#[cfg(test)]
mod tests;
