//! Minting keys and ids, and the digest the plugin looks a key up by.
//!
//! Secrets come from `rand`'s thread RNG (ChaCha seeded from the OS, a
//! CSPRNG); 32 base62 characters carry about 190 bits.

use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};

/// What every minted key starts with (lets secret scanners spot a leak).
pub const PREFIX: &str = "sk-sluice-";

/// A fresh secret, `sk-sluice-<32 base62>`.
pub fn mint() -> String {
    format!(
        "{PREFIX}{}",
        Alphanumeric.sample_string(&mut rand::rng(), 32)
    )
}

/// A fresh runtime key id, `key_<16 base62>` (not derived from the secret,
/// so it survives a rotation and reveals nothing about the key).
pub fn new_id() -> String {
    format!("key_{}", Alphanumeric.sample_string(&mut rand::rng(), 16))
}

/// Lowercase hex SHA-256 of `key`.
pub fn digest_hex(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The stable id of a config key: the first 16 hex digits of its SHA-256
/// (the contract with the budget policy: `apiKey.id`).
pub fn config_id(digest_hex: &str) -> String {
    digest_hex.chars().take(16).collect()
}

/// Whether `id` can name a key: runtime ids and config ids only use
/// letters, digits and `_`, so a path like `../config` never reaches a
/// lookup.
pub fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_keys_are_fresh_and_base62() {
        let (a, b) = (mint(), mint());
        assert_ne!(a, b);
        let tail = a.strip_prefix(PREFIX).unwrap();
        assert_eq!(tail.len(), 32);
        assert!(tail.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert!(valid_id(&new_id()));
        assert_ne!(new_id(), new_id());
    }

    #[test]
    fn ids_and_digests() {
        // sha256("abc"), a published test vector.
        let d = digest_hex("abc");
        assert_eq!(
            d,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(config_id(&d), "ba7816bf8f01cfea");
        for bad in ["", "..", "../config", "a/b", "a%2fb", &"a".repeat(65)] {
            assert!(!valid_id(bad), "{bad}");
        }
    }
}
