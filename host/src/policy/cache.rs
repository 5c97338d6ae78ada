//! On-disk cache of compiled components, so a restart does not recompile.
//!
//! Key: sha256 of the wasm bytes and of the engine's
//! `precompile_compatibility_hash` (wasmtime version + engine config), so an
//! artifact is only ever loaded by an engine that can run it. Each file ends
//! with a sha256 of its content; a corrupt or truncated entry is ignored and
//! recompiled, never fatal. Writes go through a temp file + rename.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

const SUFFIX: &str = "cwasm";
const CHECKSUM_LEN: usize = 32;

/// Where compiled components are kept.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: Option<PathBuf>,
}

/// Feeds `Hash` output into sha256 (std's `DefaultHasher` is not stable).
struct ShaHasher(Sha256);
impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The default cache dir: `$XDG_CACHE_HOME/sluice` or `~/.cache/sluice`.
pub fn default_dir() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        return Some(PathBuf::from(x).join("sluice"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".cache").join("sluice"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl ComponentCache {
    /// `None` disables the disk cache.
    pub fn new(dir: Option<PathBuf>) -> Self {
        ComponentCache { dir }
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The cache key of `wasm` for `engine`.
    pub fn key(engine: &Engine, wasm: &[u8]) -> String {
        let mut h = ShaHasher(Sha256::new());
        h.0.update(Sha256::digest(wasm));
        engine.precompile_compatibility_hash().hash(&mut h);
        hex(&h.0.finalize())
    }

    fn path(&self, key: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{key}.{SUFFIX}")))
    }

    /// A cached component, or `None` (missing, corrupt or incompatible).
    pub fn load(&self, engine: &Engine, key: &str) -> Option<Component> {
        let path = self.path(key)?;
        let data = std::fs::read(&path).ok()?;
        if data.len() < CHECKSUM_LEN {
            tracing::warn!(path = %path.display(), "truncated component cache entry; recompiling");
            return None;
        }
        let (body, sum) = data.split_at(data.len() - CHECKSUM_LEN);
        if Sha256::digest(body).as_slice() != sum {
            tracing::warn!(path = %path.display(), "corrupt component cache entry; recompiling");
            return None;
        }
        // SAFETY: the bytes were produced by `Component::serialize` of an
        // engine with the same compatibility hash (part of the key), and the
        // checksum proves they are unchanged since we wrote them.
        match unsafe { Component::deserialize(engine, body) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "unusable component cache entry; recompiling");
                None
            }
        }
    }

    /// Store a compiled component; failures are logged, never fatal.
    pub fn store(&self, key: &str, component: &Component) {
        let Some(path) = self.path(key) else { return };
        let result = (|| -> std::io::Result<()> {
            let mut bytes = component
                .serialize()
                .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
            let sum = Sha256::digest(&bytes);
            bytes.extend_from_slice(&sum);
            let dir = path.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir)?;
            let tmp = dir.join(format!(".{key}.{}.tmp", std::process::id()));
            std::fs::write(&tmp, &bytes)?;
            std::fs::rename(&tmp, &path)
        })();
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), error = %e, "could not write component cache entry");
        }
    }
}
