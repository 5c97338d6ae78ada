//! Verification keys: JWKS documents and the HMAC `secret`.
//!
//! JWKs are read field by field (not with a strict typed JWKS parser) so one
//! key the plugin can't use — an encryption key, Ed448, P-521 — is skipped
//! instead of failing the whole set, as IdPs often publish such keys beside
//! the signing ones.
//!
//! Public keys are kept as raw components and verified by the host
//! (`host::verify_signature`, native `ring`): RSA in the guest cost ~1.6 ms
//! per token. Only HMAC, which is cheap anywhere, is checked in the guest.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde_json::Value;
use sluice_sdk::{PublicKey, RsaPublicKey};

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// The curve of an EC/OKP key, which pins the algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
    Ed25519,
}

/// One usable verification key.
#[derive(Clone)]
pub struct Key {
    pub kid: Option<String>,
    /// The JWK's `alg`, when it declares one: tokens must then use exactly it.
    pub alg: Option<Algorithm>,
    pub family: AlgorithmFamily,
    pub curve: Option<Curve>,
    pub material: Material,
}

/// What a signature is checked with.
#[derive(Clone)]
pub enum Material {
    /// A shared secret: HMAC, verified in the guest.
    Hmac(DecodingKey),
    /// A public key: verified by the host.
    Public(PublicKey),
}

impl std::fmt::Debug for Key {
    // Never print key material (an `oct` key is a shared secret).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("family", &self.family)
            .field("curve", &self.curve)
            .finish()
    }
}

impl Key {
    /// An HMAC key from the config's `secret` (raw bytes of the string).
    pub fn secret(secret: &str) -> Key {
        Key {
            kid: None,
            alg: None,
            family: AlgorithmFamily::Hmac,
            curve: None,
            material: Material::Hmac(DecodingKey::from_secret(secret.as_bytes())),
        }
    }

    /// Can a token signed with `alg` be checked with this key? This is the
    /// algorithm-confusion guard: the key type decides the family (an RSA
    /// public key is never an HMAC secret), the curve decides the ECDSA hash,
    /// and a declared JWK `alg` must match exactly.
    pub fn accepts(&self, alg: Algorithm) -> bool {
        if self.alg.is_some_and(|a| a != alg) || self.family != alg.family() {
            return false;
        }
        match alg {
            Algorithm::ES256 => self.curve == Some(Curve::P256),
            Algorithm::ES384 => self.curve == Some(Curve::P384),
            Algorithm::EdDSA => self.curve == Some(Curve::Ed25519),
            _ => true,
        }
    }
}

/// The signature algorithms this plugin verifies, by JOSE name.
pub fn algorithm(name: &str) -> Option<Algorithm> {
    Some(match name {
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

/// The host's name for a public-key algorithm (`None` for HMAC).
pub fn scheme(alg: Algorithm) -> Option<sluice_sdk::SignatureScheme> {
    use sluice_sdk::SignatureScheme as S;
    Some(match alg {
        Algorithm::RS256 => S::RsaPkcs1Sha256,
        Algorithm::RS384 => S::RsaPkcs1Sha384,
        Algorithm::RS512 => S::RsaPkcs1Sha512,
        Algorithm::PS256 => S::RsaPssSha256,
        Algorithm::PS384 => S::RsaPssSha384,
        Algorithm::PS512 => S::RsaPssSha512,
        Algorithm::ES256 => S::EcdsaP256Sha256,
        Algorithm::ES384 => S::EcdsaP384Sha384,
        Algorithm::EdDSA => S::Ed25519,
        // HMAC (and anything newer than this list) is not a public-key scheme.
        _ => return None,
    })
}

/// A parsed JWKS: the usable keys, and why others were skipped.
#[derive(Debug, Default)]
pub struct KeySet {
    pub keys: Vec<Key>,
    pub skipped: Vec<String>,
}

/// Parse a JWKS document (`{"keys": [...]}`); a single JWK object is taken as
/// a set of one. Fails only when the document is not a JWKS at all.
pub fn parse_jwks(doc: &Value) -> Result<KeySet, String> {
    let list: Vec<&Value> = match doc.get("keys") {
        Some(Value::Array(keys)) => keys.iter().collect(),
        Some(_) => return Err("`keys` is not an array".into()),
        None if doc.get("kty").is_some() => vec![doc],
        None => return Err("not a JWKS document (no `keys`)".into()),
    };
    let mut set = KeySet::default();
    for (i, jwk) in list.into_iter().enumerate() {
        match parse_jwk(jwk) {
            Ok(k) => set.keys.push(k),
            Err(why) => {
                let kid = jwk.get("kid").and_then(Value::as_str).unwrap_or("-");
                set.skipped.push(format!("key {i} (kid {kid}): {why}"));
            }
        }
    }
    Ok(set)
}

fn field<'a>(jwk: &'a Value, name: &str) -> Result<&'a str, String> {
    jwk.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing `{name}`"))
}

fn b64(jwk: &Value, name: &str) -> Result<Vec<u8>, String> {
    let text = field(jwk, name)?;
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| format!("`{name}` is not base64url"))
}

/// One JWK into a [`Key`].
pub fn parse_jwk(jwk: &Value) -> Result<Key, String> {
    if let Some(u) = jwk.get("use").and_then(Value::as_str) {
        if u != "sig" {
            return Err(format!("`use` is {u}, not sig"));
        }
    }
    if let Some(ops) = jwk.get("key_ops").and_then(Value::as_array) {
        if !ops.iter().any(|o| o.as_str() == Some("verify")) {
            return Err("`key_ops` has no verify".into());
        }
    }
    let alg = match jwk.get("alg").and_then(Value::as_str) {
        None => None,
        Some(a) => Some(algorithm(a).ok_or_else(|| format!("unsupported alg {a}"))?),
    };
    let kid = jwk.get("kid").and_then(Value::as_str).map(str::to_owned);
    let kty = field(jwk, "kty")?;
    let (family, curve, material) = match kty {
        "RSA" => {
            let n = b64(jwk, "n")?;
            let e = b64(jwk, "e")?;
            let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            if bits < MIN_RSA_BITS {
                return Err(format!("RSA key smaller than {MIN_RSA_BITS} bits"));
            }
            if e.iter().all(|b| *b == 0) {
                return Err("RSA exponent is zero".into());
            }
            (
                AlgorithmFamily::Rsa,
                None,
                Material::Public(PublicKey::Rsa(RsaPublicKey { n, e })),
            )
        }
        "EC" => {
            let (curve, len) = match field(jwk, "crv")? {
                "P-256" => (Curve::P256, 32),
                "P-384" => (Curve::P384, 48),
                other => return Err(format!("unsupported curve {other}")),
            };
            let (x, y) = (b64(jwk, "x")?, b64(jwk, "y")?);
            if x.len() != len || y.len() != len {
                return Err("EC coordinates have the wrong length".into());
            }
            // Uncompressed SEC1 point; the host checks it is on the curve.
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (
                AlgorithmFamily::Ec,
                Some(curve),
                Material::Public(PublicKey::EcPoint(point)),
            )
        }
        "OKP" => {
            let crv = field(jwk, "crv")?;
            if crv != "Ed25519" {
                return Err(format!("unsupported curve {crv}"));
            }
            let x = b64(jwk, "x")?;
            if x.len() != 32 {
                return Err("Ed25519 `x` must be 32 bytes".into());
            }
            (
                AlgorithmFamily::Ed,
                Some(Curve::Ed25519),
                Material::Public(PublicKey::Ed25519(x)),
            )
        }
        "oct" => {
            let k = b64(jwk, "k")?;
            if k.is_empty() {
                return Err("empty `k`".into());
            }
            (
                AlgorithmFamily::Hmac,
                None,
                Material::Hmac(DecodingKey::from_secret(&k)),
            )
        }
        other => return Err(format!("unsupported kty {other}")),
    };
    if let Some(a) = alg {
        if a.family() != family {
            return Err(format!("alg {a:?} does not fit kty {kty}"));
        }
    }
    Ok(Key {
        kid,
        alg,
        family,
        curve,
        material,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn skips_unusable_keys_and_keeps_the_rest() {
        let doc = json!({"keys": [
            {"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"},
            {"kty": "OKP", "crv": "Ed25519", "x": "AAAA"},
            {"kty": "RSA", "kid": "small", "n": "AQAB", "e": "AQAB"},
            {"kty": "oct", "kid": "h", "alg": "HS256", "k": "c2VjcmV0"},
            {"kty": "oct", "alg": "RS256", "k": "c2VjcmV0"},
            {"kty": "weird"}
        ]});
        let set = parse_jwks(&doc).unwrap();
        assert_eq!(set.keys.len(), 1, "{:?}", set.skipped);
        assert_eq!(set.keys[0].kid.as_deref(), Some("h"));
        assert_eq!(set.skipped.len(), 6);
        assert!(parse_jwks(&json!({"nope": 1})).is_err());
        assert!(parse_jwks(&json!({"keys": 1})).is_err());
    }

    #[test]
    fn key_accepts_only_its_own_algorithms() {
        let hmac = Key::secret("s");
        assert!(hmac.accepts(Algorithm::HS256));
        assert!(!hmac.accepts(Algorithm::RS256));
        let es = parse_jwk(&json!({"kty": "EC", "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode([1u8; 32]), "y": URL_SAFE_NO_PAD.encode([2u8; 32])}))
        .unwrap();
        assert!(es.accepts(Algorithm::ES256));
        assert!(!es.accepts(Algorithm::ES384));
        assert!(!es.accepts(Algorithm::HS256));
    }
}
