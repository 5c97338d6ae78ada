//! The JWT-bearer assertion a service account trades for a token
//! (RFC 7523, Google's "OAuth 2.0 for server to server applications").
//!
//! Why `ring` and not `jsonwebtoken`: `ring` is already the gateway's crypto
//! (rustls), its RSA signing is constant-time, and `jsonwebtoken`'s pure-Rust
//! backend signs with the `rsa` crate, which carries an open timing advisory
//! (RUSTSEC-2023-0071) for private-key operations. The JWT itself is three
//! base64url segments joined by dots; `base64` encodes, `ring` signs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer};
use serde_json::json;

use super::GcpAuthError;

/// The scope a Vertex AI call needs.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// How long an assertion (and the token Google issues for it) is valid:
/// Google's maximum.
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(3600);

/// What the assertion asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// An OAuth access token with this scope.
    AccessToken { scope: String },
    /// An OIDC ID token for this audience (`target_audience`).
    IdToken { audience: String },
}

/// A service account's signing key, parsed once.
pub struct Signer {
    key: RsaKeyPair,
    rng: SystemRandom,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(<redacted>)")
    }
}

impl Signer {
    /// Parses a PEM RSA private key (PKCS#8 as Google issues, or PKCS#1).
    pub fn from_pem(pem: &str) -> Result<Self, GcpAuthError> {
        let bad = |reason: &str| GcpAuthError::Credential {
            reason: format!("private_key: {reason}"),
        };
        let der = PrivateKeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| bad("not a PEM private key"))?;
        let key = match &der {
            PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(pkcs8(k)),
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(pkcs1(k)),
            _ => return Err(bad("not an RSA key (PKCS#8 or PKCS#1 expected)")),
        }
        .map_err(|_| bad("not a usable RSA key"))?;
        Ok(Signer {
            key,
            rng: SystemRandom::new(),
        })
    }

    /// A signed assertion from `issuer` to `token_uri`, issued at `now`.
    pub fn assertion(
        &self,
        issuer: &str,
        key_id: Option<&str>,
        token_uri: &str,
        grant: &Grant,
        now: SystemTime,
    ) -> Result<String, GcpAuthError> {
        let iat = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| GcpAuthError::Clock)?
            .as_secs();
        let mut header = json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = key_id {
            header["kid"] = json!(kid);
        }
        let mut claims = json!({
            "iss": issuer,
            "aud": token_uri,
            "iat": iat,
            "exp": iat + ASSERTION_LIFETIME.as_secs(),
        });
        match grant {
            Grant::AccessToken { scope } => claims["scope"] = json!(scope),
            Grant::IdToken { audience } => claims["target_audience"] = json!(audience),
        }
        let mut jwt = String::with_capacity(1024);
        jwt.push_str(&URL_SAFE_NO_PAD.encode(header.to_string()));
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &self.rng, jwt.as_bytes(), &mut sig)
            .map_err(|_| GcpAuthError::Sign)?;
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(sig));
        Ok(jwt)
    }
}

fn pkcs8<'a>(k: &'a PrivatePkcs8KeyDer<'_>) -> &'a [u8] {
    k.secret_pkcs8_der()
}

fn pkcs1<'a>(k: &'a PrivatePkcs1KeyDer<'_>) -> &'a [u8] {
    k.secret_pkcs1_der()
}

/// The `exp` claim of an (unverified) JWT: how long an ID token Google
/// issued is good for. The gateway only forwards it; the upstream verifies.
pub fn unverified_exp(jwt: &str) -> Option<u64> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()?
        .get("exp")?
        .as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
    use sluice_testkit::idp::{public_jwk, TEST_RSA_KEY_1, TEST_RSA_KEY_2};

    fn verify(jwt: &str, pem: &str) -> Result<serde_json::Value, jsonwebtoken::errors::Error> {
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(public_jwk(pem, "k")).expect("jwk");
        let mut v = Validation::new(Algorithm::RS256);
        v.set_audience(&["http://127.0.0.1:1/token"]);
        v.set_required_spec_claims(&["exp", "aud", "iss"]);
        decode::<serde_json::Value>(jwt, &DecodingKey::from_jwk(&jwk)?, &v).map(|d| d.claims)
    }

    #[test]
    fn signs_an_rs256_assertion_googles_endpoint_accepts() {
        let s = Signer::from_pem(TEST_RSA_KEY_1).unwrap();
        let jwt = s
            .assertion(
                "sa@p.iam.gserviceaccount.com",
                Some("kid1"),
                "http://127.0.0.1:1/token",
                &Grant::AccessToken {
                    scope: CLOUD_PLATFORM_SCOPE.into(),
                },
                SystemTime::now(),
            )
            .unwrap();
        let claims = verify(&jwt, TEST_RSA_KEY_1).unwrap();
        assert_eq!(claims["iss"], "sa@p.iam.gserviceaccount.com");
        assert_eq!(claims["scope"], CLOUD_PLATFORM_SCOPE);
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            3600
        );
        assert_eq!(decode_header(&jwt).unwrap().kid.as_deref(), Some("kid1"));
        // Signed by key 1, so key 2 must not verify it.
        assert!(verify(&jwt, TEST_RSA_KEY_2).is_err());
    }

    #[test]
    fn id_token_grant_asks_for_an_audience_not_a_scope() {
        let s = Signer::from_pem(TEST_RSA_KEY_1).unwrap();
        let jwt = s
            .assertion(
                "sa@x",
                None,
                "http://127.0.0.1:1/token",
                &Grant::IdToken {
                    audience: "https://svc.example".into(),
                },
                SystemTime::now(),
            )
            .unwrap();
        let claims = verify(&jwt, TEST_RSA_KEY_1).unwrap();
        assert_eq!(claims["target_audience"], "https://svc.example");
        assert!(claims.get("scope").is_none());
        assert!(unverified_exp(&jwt).is_some());
    }

    #[test]
    fn refuses_garbage_keys_without_echoing_them() {
        let e = Signer::from_pem("-----BEGIN PRIVATE KEY-----\nQUJD\n-----END PRIVATE KEY-----\n")
            .unwrap_err();
        assert!(!e.to_string().contains("QUJD"), "{e}");
        assert!(Signer::from_pem("not pem").is_err());
    }
}
