//! `verify-signature`: public-key signature checks done natively.
//!
//! Why in the host: RSA verification compiled to Wasm (a pure-Rust bignum
//! running under Cranelift) took ~1.6 ms per RS256 token, which made JWT
//! auth cost more than everything else on the guide's production route
//! together. `ring` does the same check in tens of microseconds. The plugin
//! keeps every decision (which keys, which algorithms, which claims); this
//! module only answers "does this signature verify under this key".
//!
//! Successful checks are remembered in a bounded two-generation set keyed
//! by SHA-256 over all four inputs, so a client that reuses one JWT for
//! hours pays for RSA once. Only successes are stored: a client sending
//! random signatures cannot fill the set, and a rotated-out key simply stops
//! being passed in (the key is part of the cache key).

use std::collections::HashSet;

use parking_lot::Mutex;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};

use crate::policy::bindings::host::{PublicKey, SignatureScheme};

/// Entries per generation; two generations are kept (~64 bytes each).
const GENERATION: usize = 8192;

/// Remembered successful verifications.
#[derive(Default)]
pub struct VerifiedCache {
    inner: Mutex<Generations>,
}

#[derive(Default)]
struct Generations {
    current: HashSet<[u8; 32]>,
    previous: HashSet<[u8; 32]>,
}

impl VerifiedCache {
    fn contains(&self, id: &[u8; 32]) -> bool {
        let mut g = self.inner.lock();
        if g.current.contains(id) {
            return true;
        }
        if g.previous.remove(id) {
            // Still in use: carry it into the current generation.
            g.insert(*id);
            return true;
        }
        false
    }

    fn insert(&self, id: [u8; 32]) {
        self.inner.lock().insert(id);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        let g = self.inner.lock();
        g.current.len() + g.previous.len()
    }
}

impl Generations {
    fn insert(&mut self, id: [u8; 32]) {
        if self.current.len() >= GENERATION {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(id);
    }
}

/// The cache key: a hash over every input, each length-prefixed so that no
/// two different argument lists hash the same bytes.
fn cache_id(scheme: SignatureScheme, key: &PublicKey, message: &[u8], sig: &[u8]) -> [u8; 32] {
    let mut h = ring::digest::Context::new(&ring::digest::SHA256);
    let mut part = |bytes: &[u8]| {
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    part(&[scheme as u8]);
    match key {
        PublicKey::Rsa(k) => {
            part(b"rsa");
            part(&k.n);
            part(&k.e);
        }
        PublicKey::EcPoint(p) => {
            part(b"ec");
            part(p);
        }
        PublicKey::Ed25519(x) => {
            part(b"ed");
            part(x);
        }
    }
    part(message);
    part(sig);
    let mut id = [0u8; 32];
    id.copy_from_slice(h.finish().as_ref());
    id
}

/// `ring` refuses big-endian integers with leading zeros; JWKs sometimes
/// carry one (an unsigned encoding of a modulus with its top bit set).
fn strip_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    &b[start..]
}

/// The check itself, without the cache.
fn verify_uncached(scheme: SignatureScheme, key: &PublicKey, message: &[u8], sig: &[u8]) -> bool {
    use SignatureScheme as S;
    match (scheme, key) {
        (S::RsaPkcs1Sha256 | S::RsaPkcs1Sha384 | S::RsaPkcs1Sha512, PublicKey::Rsa(k))
        | (S::RsaPssSha256 | S::RsaPssSha384 | S::RsaPssSha512, PublicKey::Rsa(k)) => {
            let params: &signature::RsaParameters = match scheme {
                S::RsaPkcs1Sha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                S::RsaPkcs1Sha384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                S::RsaPkcs1Sha512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                S::RsaPssSha256 => &signature::RSA_PSS_2048_8192_SHA256,
                S::RsaPssSha384 => &signature::RSA_PSS_2048_8192_SHA384,
                _ => &signature::RSA_PSS_2048_8192_SHA512,
            };
            RsaPublicKeyComponents {
                n: strip_zeros(&k.n),
                e: strip_zeros(&k.e),
            }
            .verify(params, message, sig)
            .is_ok()
        }
        (S::EcdsaP256Sha256, PublicKey::EcPoint(p)) => {
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, p)
                .verify(message, sig)
                .is_ok()
        }
        (S::EcdsaP384Sha384, PublicKey::EcPoint(p)) => {
            UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, p)
                .verify(message, sig)
                .is_ok()
        }
        (S::Ed25519, PublicKey::Ed25519(x)) => UnparsedPublicKey::new(&signature::ED25519, x)
            .verify(message, sig)
            .is_ok(),
        // A key that does not fit the scheme never verifies.
        _ => false,
    }
}

/// Verify, answering from the cache of earlier successes when it can.
pub fn verify(
    cache: &VerifiedCache,
    scheme: SignatureScheme,
    key: &PublicKey,
    message: &[u8],
    sig: &[u8],
) -> bool {
    let id = cache_id(scheme, key, message, sig);
    if cache.contains(&id) {
        return true;
    }
    let ok = verify_uncached(scheme, key, message, sig);
    if ok {
        cache.insert(id);
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::bindings::host::RsaPublicKey;
    use ring::rand::SystemRandom;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    fn ed_key() -> (Ed25519KeyPair, PublicKey) {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap();
        let public = PublicKey::Ed25519(pair.public_key().as_ref().to_vec());
        (pair, public)
    }

    #[test]
    fn verifies_good_signatures_and_refuses_the_rest() {
        let cache = VerifiedCache::default();
        let (pair, public) = ed_key();
        let sig = pair.sign(b"header.payload");
        let s = SignatureScheme::Ed25519;
        assert!(verify(&cache, s, &public, b"header.payload", sig.as_ref()));
        assert!(!verify(&cache, s, &public, b"header.payloaD", sig.as_ref()));
        let mut bad = sig.as_ref().to_vec();
        bad[0] ^= 1;
        assert!(!verify(&cache, s, &public, b"header.payload", &bad));
        // The right signature under the wrong scheme or key type.
        assert!(!verify(
            &cache,
            SignatureScheme::EcdsaP256Sha256,
            &public,
            b"header.payload",
            sig.as_ref()
        ));
        let rsa = PublicKey::Rsa(RsaPublicKey {
            n: vec![1; 256],
            e: vec![1, 0, 1],
        });
        assert!(!verify(
            &cache,
            SignatureScheme::RsaPkcs1Sha256,
            &rsa,
            b"header.payload",
            sig.as_ref()
        ));
        // Only the one success was remembered.
        assert_eq!(cache.len(), 1);
        assert!(verify(&cache, s, &public, b"header.payload", sig.as_ref()));
    }

    #[test]
    fn a_cached_success_does_not_vouch_for_another_key() {
        let cache = VerifiedCache::default();
        let (pair, public) = ed_key();
        let (_, other) = ed_key();
        let sig = pair.sign(b"m");
        assert!(verify(
            &cache,
            SignatureScheme::Ed25519,
            &public,
            b"m",
            sig.as_ref()
        ));
        assert!(!verify(
            &cache,
            SignatureScheme::Ed25519,
            &other,
            b"m",
            sig.as_ref()
        ));
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = VerifiedCache::default();
        for i in 0..(3 * GENERATION as u32) {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&i.to_le_bytes());
            cache.insert(id);
        }
        assert!(cache.len() <= 2 * GENERATION);
        // A recent one is still there, the oldest are gone.
        let mut recent = [0u8; 32];
        recent[..4].copy_from_slice(&(3 * GENERATION as u32 - 1).to_le_bytes());
        assert!(cache.contains(&recent));
        assert!(!cache.contains(&[0u8; 32]));
    }
}
