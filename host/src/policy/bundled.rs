//! Policies bundled in the binary: every `plugins/*` crate, built for
//! `wasm32-wasip2` by `host/build.rs` and embedded with `include_bytes!`.

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

/// The component bytes of bundled plugin `name` (e.g. `hello-policy`).
pub fn wasm(name: &str) -> Option<&'static [u8]> {
    BUNDLED.iter().find(|(n, _)| *n == name).map(|(_, w)| *w)
}

/// Names of the bundled plugins.
pub fn names() -> impl Iterator<Item = &'static str> {
    BUNDLED.iter().map(|(n, _)| *n)
}
