//! Builds the bundled policies (`plugins/*`, workspace members) for
//! `wasm32-wasip2` with a nested cargo into `<workspace>/target/plugins` (a
//! separate target dir, so the outer build's lock is not contended) and
//! generates `$OUT_DIR/bundled.rs` embedding each `.wasm`.
//!
//! Crate `plugins/rate-limit` = package `sluice-plugin-rate-limit` = bundled
//! name `rate-limit`. Set `SLUICE_SKIP_BUNDLED=1` to embed nothing.
//!
//! Also generates `$OUT_DIR/plugin_keys.rs`, the host's table of policy keys
//! handed to bundled plugins, from what each plugin declares in its
//! manifest (always, even with `SLUICE_SKIP_BUNDLED`: config decoding
//! needs it):
//!
//! ```toml
//! [package.metadata.sluice]
//! keys = ["rateLimit", "localRateLimit"]   # YAML keys under `policies:`
//! ```

use sha2::Digest as _;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
const PREFIX: &str = "sluice-plugin-";

/// What build.rs reads from a plugin's `Cargo.toml`.
struct Manifest {
    package: String,
    /// `[package.metadata.sluice] keys`.
    keys: Vec<String>,
}

fn read_manifest(manifest: &Path) -> Option<Manifest> {
    let text = std::fs::read_to_string(manifest).ok()?;
    let doc: toml_edit::DocumentMut = text
        .parse()
        .unwrap_or_else(|e| panic!("{}: invalid TOML: {e}", manifest.display()));
    let package = doc.get("package")?;
    let name = package.get("name")?.as_str()?.to_owned();
    let mut keys = Vec::new();
    if let Some(k) = package
        .get("metadata")
        .and_then(|m| m.get("sluice"))
        .and_then(|s| s.get("keys"))
    {
        let arr = k.as_array().unwrap_or_else(|| {
            panic!(
                "{}: [package.metadata.sluice] keys must be a list of strings",
                manifest.display()
            )
        });
        for v in arr {
            let key = v.as_str().unwrap_or_else(|| {
                panic!(
                    "{}: [package.metadata.sluice] keys must be strings, got {}",
                    manifest.display(),
                    v.type_name()
                )
            });
            keys.push(key.to_owned());
        }
    }
    Some(Manifest {
        package: name,
        keys,
    })
}

/// `plugin_keys.rs`: `BUNDLED_PLUGINS` (the plugins that answer to policy
/// keys) and `PLUGIN_KEYS` (key, plugin name).
fn keys_table(manifests: &[(String, Manifest)]) -> String {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    let mut code = String::from(
        "/// Bundled plugins that answer to policy keys (from their manifests).\n\
         pub const BUNDLED_PLUGINS: &[&str] = &[\n",
    );
    for (name, m) in manifests {
        if !m.keys.is_empty() {
            writeln!(code, "    {name:?},").unwrap();
        }
    }
    code.push_str(
        "];\n\n/// Policy keys whose subtree is handed to a bundled plugin.\n\
         pub const PLUGIN_KEYS: &[(&str, &str)] = &[\n",
    );
    for (name, m) in manifests {
        for key in &m.keys {
            if let Some((_, other)) = seen.iter().find(|(k, _)| k == key) {
                panic!("policy key `{key}` is declared by both plugins/{other} and plugins/{name}");
            }
            seen.push((key, name));
            writeln!(code, "    ({key:?}, {name:?}),").unwrap();
        }
    }
    code.push_str("];\n");
    code
}

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let ws = manifest_dir.parent().unwrap().to_path_buf();
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("bundled.rs");
    for dir in ["plugins", "sdk", "wit"] {
        println!("cargo:rerun-if-changed={}", ws.join(dir).display());
    }
    println!("cargo:rerun-if-env-changed=SLUICE_SKIP_BUNDLED");

    let mut manifests: Vec<(String, Manifest)> = Vec::new(); // (bundled name, manifest)
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(ws.join("plugins"))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    dirs.sort();
    for dir in dirs {
        let Some(m) = read_manifest(&dir.join("Cargo.toml")) else {
            continue;
        };
        match m.package.strip_prefix(PREFIX) {
            Some(name) => manifests.push((name.to_owned(), m)),
            None => println!(
                "cargo:warning=plugins/{}: package `{}` is not named `{PREFIX}<name>`; not bundled",
                dir.file_name().unwrap().to_string_lossy(),
                m.package
            ),
        }
    }
    let keys_out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("plugin_keys.rs");
    std::fs::write(keys_out, keys_table(&manifests)).unwrap();

    let plugins: Vec<(String, String)> = if std::env::var_os("SLUICE_SKIP_BUNDLED").is_none() {
        manifests
            .iter()
            .map(|(name, m)| (name.clone(), m.package.clone()))
            .collect()
    } else {
        Vec::new()
    };

    let target_dir = ws.join("target").join("plugins");
    if !plugins.is_empty() {
        check_target();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(&ws)
            .args(["build", "--release", "--target", TARGET, "--target-dir"])
            .arg(&target_dir);
        for (_, pkg) in &plugins {
            cmd.args(["-p", pkg]);
        }
        for var in [
            "CARGO_TARGET_DIR",
            "RUSTFLAGS",
            "CARGO_ENCODED_RUSTFLAGS",
            "CARGO_BUILD_TARGET",
            "CARGO_BUILD_RUSTFLAGS",
            "RUSTC_WORKSPACE_WRAPPER",
        ] {
            cmd.env_remove(var);
        }
        // Same settings as `policy::testing`, so the two share artifacts.
        cmd.env("CARGO_PROFILE_RELEASE_DEBUG", "false")
            .env("CARGO_PROFILE_RELEASE_STRIP", "true");
        let status = cmd
            .status()
            .expect("failed to run cargo for the bundled plugins");
        if !status.success() {
            panic!("building the bundled plugins (plugins/*) for {TARGET} failed; see the errors above");
        }
    }

    // The digest is computed here, once, so a start with a warm cache finds
    // its compiled artifact without reading (and so keeping resident) the
    // megabytes of embedded component bytes.
    let mut code = String::from(
        "/// Bundled policies: (name, component bytes, sha256 of the bytes).\npub static BUNDLED: &[(&str, &[u8], [u8; 32])] = &[\n",
    );
    for (name, pkg) in &plugins {
        let wasm = target_dir
            .join(TARGET)
            .join("release")
            .join(format!("{}.wasm", pkg.replace('-', "_")));
        assert!(wasm.exists(), "missing {}", wasm.display());
        let bytes = std::fs::read(&wasm).unwrap();
        let digest: [u8; 32] = sha2::Sha256::digest(&bytes).into();
        writeln!(
            code,
            "    ({name:?}, include_bytes!({:?}), {digest:?}),",
            wasm.display().to_string()
        )
        .unwrap();
    }
    code.push_str("];\n");
    std::fs::write(out, code).unwrap();
}

/// The sysroot of the compiler cargo uses, if it tells.
fn sysroot() -> Option<PathBuf> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
}

fn target_installed(sysroot: &Path) -> bool {
    sysroot.join("lib/rustlib").join(TARGET).exists()
}

/// Make sure the wasm target is installed. A fresh machine (or one with
/// `RUSTUP_AUTO_INSTALL=0`) may have the toolchain without it: install it
/// through rustup for the toolchain this build runs with, and fail with a
/// clear message only when that is impossible.
fn check_target() {
    let Some(sysroot) = sysroot() else {
        return; // cargo will report the compiler problem itself
    };
    if target_installed(&sysroot) {
        return;
    }
    // Inside a rustup-managed build, RUSTUP_TOOLCHAIN names the active
    // toolchain (from rust-toolchain.toml, an override or the default).
    let toolchain = std::env::var("RUSTUP_TOOLCHAIN").ok();
    let rustup = std::env::var_os("CARGO_HOME")
        .map(|h| PathBuf::from(h).join("bin").join("rustup"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("rustup"));
    let mut cmd = Command::new(&rustup);
    cmd.args(["target", "add", TARGET]);
    if let Some(t) = &toolchain {
        cmd.args(["--toolchain", t]);
    }
    println!(
        "cargo:warning=the {TARGET} target is missing; installing it: {} target add {TARGET}{}",
        rustup.display(),
        toolchain
            .as_deref()
            .map(|t| format!(" --toolchain {t}"))
            .unwrap_or_default()
    );
    let outcome = match cmd.status() {
        Ok(s) if s.success() && target_installed(&sysroot) => return,
        Ok(s) if s.success() => format!(
            "rustup reported success, but {} still has no {TARGET} target",
            sysroot.display()
        ),
        Ok(s) => format!("`rustup target add {TARGET}` failed ({s}); see its output above"),
        Err(e) => format!("rustup could not be run ({e}); this toolchain is not managed by rustup"),
    };
    panic!(
        "the {TARGET} Rust target is not installed, and the bundled policies need it.\n\
         {outcome}.\n\
         Install the {TARGET} standard library for the compiler at {} (with rustup: \
         `rustup target add {TARGET}`), or set SLUICE_SKIP_BUNDLED=1 to build without \
         bundled policies.",
        sysroot.display()
    );
}
