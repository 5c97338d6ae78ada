//! Property tests for the config loader (operator input, but also what the
//! file watcher reloads unattended): any text gives a config or errors, never
//! a panic; alias expansion stays bounded.

use super::load_str;
use proptest::prelude::*;

fn env(name: &str) -> Option<String> {
    (name == "KEY").then(|| "sk-prop-secret".to_string())
}

/// YAML-ish text built from the loader's own vocabulary, so the properties
/// reach deep into decoding rather than stopping at syntax errors.
fn yamlish() -> impl Strategy<Value = String> {
    let word = prop::sample::select(vec![
        "binds",
        "port",
        "listeners",
        "routes",
        "name",
        "matches",
        "path",
        "pathPrefix",
        "policies",
        "backends",
        "ai",
        "provider",
        "anthropic",
        "openAI",
        "hostOverride",
        "backendAuth",
        "key",
        "$KEY",
        "limits",
        "maxConnections",
        "admin",
        "token",
        "plugins",
        "hostname",
        "allowedOrigins",
        "auth",
        "keys",
        "4060",
        "-1",
        "1s",
        "{}",
        "[]",
        "*a",
        "&a",
        "true",
        "null",
        "'x'",
        "/claude",
        "127.0.0.1:9",
    ]);
    let line = (
        0usize..4,
        prop::bool::ANY,
        word.clone(),
        prop::option::of(word),
    )
        .prop_map(|(indent, dash, k, v)| {
            let pad = "  ".repeat(indent);
            let dash = if dash { "- " } else { "" };
            match v {
                Some(v) => format!("{pad}{dash}{k}: {v}\n"),
                None => format!("{pad}{dash}{k}:\n"),
            }
        });
    prop::collection::vec(line, 0..30).prop_map(|l| l.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_text_loads_or_errors(text in "\\PC{0,300}") {
        let _ = load_str("p.yaml", &text, &env);
    }

    #[test]
    fn config_shaped_text_never_panics_nor_leaks(text in yamlish()) {
        match load_str("p.yaml", &text, &env) {
            Ok(l) => prop_assert!(!l.config.redacted_json().to_string().contains("sk-prop-secret")),
            Err(e) => prop_assert!(!e.to_string().contains("sk-prop-secret")),
        }
    }

    /// `width` aliases per level, `depth` levels: refused exactly when the
    /// expansion exceeds the cap.
    #[test]
    fn alias_expansion_is_bounded(width in 1usize..12, depth in 1usize..8) {
        let mut t = String::from("x0: &x0 [a]\n");
        for i in 1..=depth {
            let items = vec![format!("*x{}", i - 1); width].join(", ");
            t.push_str(&format!("x{i}: &x{i} [{items}]\n"));
        }
        let r = load_str("p.yaml", &t, &env);
        let text = match &r { Ok(_) => String::new(), Err(e) => e.to_string() };
        // Nodes copied by aliases: sum over levels of width * size(level-1).
        let mut size = 2usize; // x0: the list + one scalar
        let mut copied = 0usize;
        for _ in 1..=depth {
            copied = copied.saturating_add(width.saturating_mul(size));
            size = 1 + width.saturating_mul(size);
        }
        let refused = text.contains("aliases expand");
        prop_assert_eq!(refused, copied > super::tree::MAX_ALIAS_NODES, "copied {} / {}", copied, text);
    }
}
