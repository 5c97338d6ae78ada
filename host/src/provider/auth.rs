//! Credentials the gateway puts on a backend request (`backendAuth`).
//!
//! Why apart from the providers: the credential is the backend's config,
//! the scheme is the provider's. An API key goes where the provider's
//! [`KeyScheme`](super::KeyScheme) says; signed and token credentials
//! (AWS SigV4, Google OAuth) are computed here, last, once every header and
//! the body are final, so nothing after them can invalidate a signature.

use super::{put_key, Api, ProviderError};
use crate::config::Secret;

/// A backend's credential, compiled from its `backendAuth`.
#[derive(Debug, Clone)]
pub enum Credential {
    /// `backendAuth.key`.
    Key(Secret),
}

impl Credential {
    /// Replace the client's credential with the backend's.
    pub async fn apply(
        &self,
        api: Option<&dyn Api>,
        parts: &mut http::request::Parts,
        _body: &[u8],
    ) -> Result<(), ProviderError> {
        match self {
            Credential::Key(k) => {
                let scheme = api.map_or(super::KeyScheme::Bearer, |a| a.key_scheme());
                put_key(&mut parts.headers, scheme, k.expose())
            }
        }
    }
}
