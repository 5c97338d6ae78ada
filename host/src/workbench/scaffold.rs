//! `sluice plugin new`: a plugin directory that builds as it is, with a
//! snapshot test (`test.sh`) driven by `sluice plugin run`.
//!
//! Rust gets a small policy of its own on plain wit-bindgen (the SDK crate is
//! not published). Python, JavaScript and C start from the SDK's `team-keys`
//! example in that language (`sdk/examples/`), the same files the gateway's
//! tests build. Every scaffold carries its own copy of `wit/` so it builds
//! outside this repository.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    Rust,
    Python,
    Js,
    C,
}

const WIT: &str = include_str!("../../../wit/policy.wit");
const TEST_SH: &str = include_str!("templates/test.sh");
const README: &str = include_str!("templates/README.md");

macro_rules! example {
    ($path:literal) => {
        include_str!(concat!("../../../sdk/examples/", $path))
    };
}

const TEAM_KEYS_CONFIG: &str = "# The plugin's config: what goes under its name in a route's `policies`.\nteams:\n  alpha: [alpha-key-1, alpha-key-2]\n  beta: [beta-key]\n";
const TEAM_KEYS_REQUEST: &str = r#"{
  "method": "POST",
  "path": "/v1/messages",
  "headers": {
    "x-api-key": "alpha-key-1",
    "anthropic-version": "2023-06-01",
    "content-type": "application/json"
  },
  "body": {
    "model": "claude-sonnet-4-5",
    "max_tokens": 1024,
    "messages": [{"role": "user", "content": "hello"}]
  }
}
"#;

/// (relative path, contents, executable)
type File = (&'static str, String, bool);

fn files(name: &str, lang: Lang) -> Vec<File> {
    let crate_name = name.replace('-', "_");
    let sub = |s: &str, wasm: &str, lang_name: &str, notes: &str| {
        s.replace("{{name}}", name)
            .replace("{{crate}}", &crate_name)
            .replace("{{wasm}}", wasm)
            .replace("{{lang}}", lang_name)
            .replace("{{notes}}", notes)
    };
    let example_note = "\nThis scaffold starts from the SDK's `team-keys` example (a team API-key\nallow-list): see `sdk/README.md` in the Sluice repository for what it does.\n";
    let (wasm, lang_name, notes, mut out): (String, &str, &str, Vec<File>) = match lang {
        Lang::Rust => {
            let wasm = format!("{crate_name}.wasm");
            let files = vec![
                ("Cargo.toml", include_str!("templates/rust-Cargo.toml").to_string(), false),
                ("src/lib.rs", include_str!("templates/rust-lib.rs").to_string(), false),
                ("build.sh", include_str!("templates/rust-build.sh").to_string(), true),
                ("config.yaml", format!("# The plugin's config: what goes under its name in a route's `policies`.\nvalue: hello from {name}\n"), false),
                ("request.json", TEAM_KEYS_REQUEST.to_string(), false),
                (".gitignore", "out/\ntarget/\n".to_string(), false),
            ];
            (wasm, "Rust", "", files)
        }
        Lang::Python => (
            "team_keys_python.wasm".into(),
            "Python",
            example_note,
            vec![
                ("app.py", example!("python/app.py").to_string(), false),
                ("build.sh", example!("python/build.sh").to_string(), true),
                (".gitignore", "out/\n".to_string(), false),
            ],
        ),
        Lang::Js => (
            "team_keys_js.wasm".into(),
            "JavaScript",
            example_note,
            vec![
                (
                    "team-keys.js",
                    example!("js/team-keys.js").to_string(),
                    false,
                ),
                ("build.mjs", example!("js/build.mjs").to_string(), false),
                ("build.sh", example!("js/build.sh").to_string(), true),
                (
                    "package.json",
                    example!("js/package.json").to_string(),
                    false,
                ),
                (
                    "package-lock.json",
                    example!("js/package-lock.json").to_string(),
                    false,
                ),
                (".gitignore", "out/\nnode_modules/\n".to_string(), false),
            ],
        ),
        Lang::C => (
            "team_keys_c.wasm".into(),
            "C",
            example_note,
            vec![
                ("team_keys.c", example!("c/team_keys.c").to_string(), false),
                ("json.c", example!("c/json.c").to_string(), false),
                ("json.h", example!("c/json.h").to_string(), false),
                ("build.sh", example!("c/build.sh").to_string(), true),
                (
                    "adapter/Cargo.toml",
                    example!("c/adapter/Cargo.toml").to_string(),
                    false,
                ),
                (
                    "adapter/Cargo.lock",
                    example!("c/adapter/Cargo.lock").to_string(),
                    false,
                ),
                (
                    "adapter/lib.rs",
                    example!("c/adapter/lib.rs").to_string(),
                    false,
                ),
                (".gitignore", "out/\n".to_string(), false),
            ],
        ),
    };
    if lang != Lang::Rust {
        out.push(("config.yaml", TEAM_KEYS_CONFIG.to_string(), false));
        out.push(("request.json", TEAM_KEYS_REQUEST.to_string(), false));
    }
    out.push(("wit/policy.wit", WIT.to_string(), false));
    out.push(("test.sh", TEST_SH.to_string(), true));
    out.push(("README.md", README.to_string(), false));
    out.into_iter()
        .map(|(p, s, x)| (p, sub(&s, &wasm, lang_name, notes), x))
        .collect()
}

fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && !name.ends_with('-')
}

/// Write the scaffold into `dir` (default `./NAME`), which must not exist or
/// be empty.
pub fn new(name: &str, lang: Lang, dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    if !valid_name(name) {
        bail!(
            "plugin name {name:?}: use lowercase letters, digits and `-`, starting with a letter"
        );
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    if dir.exists()
        && std::fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} already exists and is not empty; nothing written",
            dir.display()
        );
    }
    for (rel, text, exec) in files(name, lang) {
        write(&dir.join(rel), &text, exec)?;
    }
    println!("created {} ({lang:?} plugin `{name}`)", dir.display());
    println!("next: cd {} && ./test.sh", dir.display());
    Ok(ExitCode::SUCCESS)
}

fn write(path: &Path, text: &str, exec: bool) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    if exec {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("chmod {}", path.display()))?;
    }
    let _ = exec;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("team-keys"));
        assert!(valid_name("a1"));
        for bad in ["", "Team", "1a", "a_b", "a-", "a/b", "../x"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn every_scaffold_has_a_build_a_test_and_the_contract() {
        for lang in [Lang::Rust, Lang::Python, Lang::Js, Lang::C] {
            let f = files("demo", lang);
            for needed in [
                "build.sh",
                "test.sh",
                "wit/policy.wit",
                "config.yaml",
                "request.json",
            ] {
                assert!(
                    f.iter().any(|(p, _, _)| *p == needed),
                    "{lang:?} lacks {needed}"
                );
            }
            assert!(
                f.iter().all(|(_, s, _)| !s.contains("{{")),
                "{lang:?}: unreplaced placeholder"
            );
        }
    }
}
