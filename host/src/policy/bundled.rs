//! Policies bundled in the binary: every `plugins/*` crate, built for
//! `wasm32-wasip2` by `host/build.rs` and embedded with `include_bytes!`.

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

/// The component bytes of bundled plugin `name` (e.g. `hello-policy`).
pub fn wasm(name: &str) -> Option<&'static [u8]> {
    BUNDLED
        .iter()
        .find(|(n, ..)| *n == name)
        .map(|(_, w, _)| *w)
}

/// The sha256 of [`wasm`], computed at build time: reading it does not
/// touch (and so does not make resident) the embedded bytes.
pub fn digest(name: &str) -> Option<&'static [u8; 32]> {
    BUNDLED.iter().find(|(n, ..)| *n == name).map(|(.., d)| d)
}

/// Names of the bundled plugins.
pub fn names() -> impl Iterator<Item = &'static str> {
    BUNDLED.iter().map(|(n, ..)| *n)
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    #[test]
    fn build_time_digests_are_the_bytes_digests() {
        for name in super::names() {
            let want: [u8; 32] = Sha256::digest(super::wasm(name).unwrap()).into();
            assert_eq!(super::digest(name), Some(&want), "{name}");
        }
    }
}
