//! On-disk cache of compiled components, so a restart does not recompile.
//!
//! Key: sha256 of the wasm bytes and of the engine's
//! `precompile_compatibility_hash` (wasmtime version + engine config), so an
//! artifact is only ever loaded by an engine that can run it. Beside each
//! `<key>.cwasm` a `<key>.cwasm.sha256` holds the sha256 of its content; a
//! corrupt, truncated or unsigned entry is ignored and recompiled, never
//! fatal. Writes go through a temp file + rename, so an entry is never
//! rewritten in place.
//!
//! An entry is mapped, not read: wasmtime runs the code straight from the
//! file's pages (`Component::deserialize_file`), so only the code a plugin
//! actually runs is resident, the kernel can drop it under pressure, and
//! replicas on one machine share it. Reading it into memory instead kept
//! every plugin's whole artifact resident (megabytes each, for code that
//! mostly never runs). The checksum is checked by streaming the file once.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

const SUFFIX: &str = "cwasm";
/// The checksum file's name: `<key>.cwasm.sha256`.
const SUM_SUFFIX: &str = "cwasm.sha256";

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

/// sha256 of a file's content, read through a small buffer.
fn sha256_of_file(path: &Path) -> std::io::Result<[u8; 32]> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match f.read(&mut buf)? {
            0 => break,
            n => h.update(&buf[..n]),
        }
    }
    Ok(h.finalize().into())
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

    /// The cache key, for `engine`, of the component whose bytes have
    /// sha256 `wasm_sha256`.
    pub fn key(engine: &Engine, wasm_sha256: &[u8; 32]) -> String {
        let mut h = ShaHasher(Sha256::new());
        h.0.update(wasm_sha256);
        engine.precompile_compatibility_hash().hash(&mut h);
        hex(&h.0.finalize())
    }

    fn path(&self, key: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{key}.{SUFFIX}")))
    }

    fn sum_path(&self, key: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{key}.{SUM_SUFFIX}")))
    }

    /// A cached component, or `None` (missing, corrupt or incompatible).
    pub fn load(&self, engine: &Engine, key: &str) -> Option<Component> {
        let path = self.path(key)?;
        let want = std::fs::read(self.sum_path(key)?).ok()?;
        let got = match sha256_of_file(&path) {
            Ok(sum) => sum,
            Err(_) => return None,
        };
        if want != got.as_slice() {
            tracing::warn!(path = %path.display(), "corrupt component cache entry; recompiling");
            return None;
        }
        // SAFETY: the file was produced by `Component::serialize` of an
        // engine with the same compatibility hash (part of the key), the
        // checksum proves it is unchanged since we wrote it, and entries are
        // only ever replaced by rename (a mapped file is never truncated or
        // rewritten in place by us).
        match unsafe { Component::deserialize_file(engine, &path) } {
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
            let bytes = component
                .serialize()
                .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
            let sum = Sha256::digest(&bytes);
            let dir = path.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir)?;
            // The artifact first, then its checksum: a reader that sees the
            // checksum sees the artifact it belongs to.
            let put = |to: &Path, what: &[u8], tag: &str| {
                let tmp = dir.join(format!(".{key}.{}.{tag}.tmp", std::process::id()));
                std::fs::write(&tmp, what)?;
                std::fs::rename(&tmp, to)
            };
            put(&path, &bytes, "cwasm")?;
            let sum_path = dir.join(format!("{key}.{SUM_SUFFIX}"));
            put(&sum_path, sum.as_slice(), "sum")
        })();
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), error = %e, "could not write component cache entry");
        }
    }
}
