//! `policies.ai.modelAliases`: agentgateway's model name aliases.
//!
//! ```yaml
//! policies:
//!   ai:
//!     modelAliases:
//!       fast: claude-haiku-4-5            # exact name
//!       claude-3-*: claude-sonnet-4-5     # `*` matches any run of characters
//! ```
//!
//! A requested model resolves to the target of its exact name if there is
//! one, otherwise to the target of the longest wildcard pattern that
//! matches it (agentgateway sorts patterns by length; equal lengths go in
//! config order here, where agentgateway's map order is unspecified). Only
//! `*` is special, as in agentgateway, which escapes everything else.
//!
//! This module is the config and the lookup; rewriting the body's `model`
//! before policies and the upstream see it is the pipeline's job.

use serde::{Serialize, Serializer};

/// Why an alias entry is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AliasError {
    #[error("a model alias name must not be empty")]
    EmptyName,
    #[error("the target of model alias `{0}` must be a non-empty model name")]
    EmptyTarget(String),
}

/// Compiled aliases: exact names and wildcard patterns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelAliases {
    /// (name or pattern, target), in config order.
    entries: Vec<(String, String)>,
    /// Indexes into `entries` of the patterns, longest first (stable, so
    /// equal lengths keep config order).
    patterns: Vec<usize>,
}

impl ModelAliases {
    /// Compile `entries` (config order).
    pub fn new(entries: Vec<(String, String)>) -> Result<ModelAliases, AliasError> {
        for (name, target) in &entries {
            if name.is_empty() {
                return Err(AliasError::EmptyName);
            }
            if target.trim().is_empty() {
                return Err(AliasError::EmptyTarget(name.clone()));
            }
        }
        let mut patterns: Vec<usize> = (0..entries.len())
            .filter(|&i| entries[i].0.contains('*'))
            .collect();
        patterns.sort_by_key(|&i| std::cmp::Reverse(entries[i].0.len()));
        Ok(ModelAliases { entries, patterns })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The exact alias names (not the wildcard patterns), in config order:
    /// the names a client may ask for.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .filter(|(n, _)| !n.contains('*'))
            .map(|(n, _)| n.as_str())
    }

    /// The model `model` is an alias for, if it is one.
    pub fn resolve(&self, model: &str) -> Option<&str> {
        // An exact entry wins, even one whose name contains `*`
        // (agentgateway looks the map up before trying patterns).
        if let Some((_, t)) = self.entries.iter().find(|(n, _)| n == model) {
            return Some(t);
        }
        self.patterns
            .iter()
            .map(|&i| &self.entries[i])
            .find(|(p, _)| wildcard_match(p, model))
            .map(|(_, t)| t.as_str())
    }
}

impl Serialize for ModelAliases {
    /// As configured: a map in config order (for `GET /config`).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.entries.iter().map(|(k, v)| (k, v)))
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of
/// characters (none included) and every other character itself.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let mut parts: Vec<&str> = parts.collect();
    let Some(last) = parts.pop() else {
        return rest.is_empty(); // no `*` at all: an exact comparison
    };
    // Middle pieces: leftmost occurrence (greedy-free matching is exact
    // for `*`-only patterns), then the last piece anchors the end.
    for piece in parts {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aliases(e: &[(&str, &str)]) -> ModelAliases {
        ModelAliases::new(
            e.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn wildcards() {
        for (p, t, want) in [
            ("claude-*", "claude-haiku", true),
            ("claude-*", "claude-", true),
            ("claude-*", "claud", false),
            ("*-mini", "gpt-4o-mini", true),
            ("*-mini", "gpt-4o-mini-x", false),
            ("gpt-*-mini", "gpt-4o-mini", true),
            ("gpt-*-mini", "gpt-mini", false),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "acb", false),
            ("ab*ba", "aba", false),
            ("*", "", true),
            ("a.b*", "aXb", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
        ] {
            assert_eq!(wildcard_match(p, t), want, "{p} ~ {t}");
        }
    }

    #[test]
    fn exact_beats_the_longest_wildcard() {
        let a = aliases(&[
            ("claude-*", "short"),
            ("claude-3-5-*", "long"),
            ("claude-3-5-sonnet", "exact"),
            ("*", "catch-all"),
        ]);
        assert_eq!(a.resolve("claude-3-5-sonnet"), Some("exact"));
        assert_eq!(a.resolve("claude-3-5-haiku"), Some("long"));
        assert_eq!(a.resolve("claude-4"), Some("short"));
        assert_eq!(a.resolve("gpt-4o"), Some("catch-all"));
        let b = aliases(&[("fast", "claude-haiku-4-5")]);
        assert_eq!(b.resolve("fast"), Some("claude-haiku-4-5"));
        assert_eq!(b.resolve("Fast"), None, "names are case-sensitive");
    }

    #[test]
    fn equal_lengths_keep_config_order() {
        let a = aliases(&[("a-*", "first"), ("*-b", "second")]);
        assert_eq!(a.resolve("a-b"), Some("first"));
    }

    #[test]
    fn empty_entries_are_refused() {
        let e = |a: &str, b: &str| ModelAliases::new(vec![(a.into(), b.into())]).unwrap_err();
        assert_eq!(e("", "x"), AliasError::EmptyName);
        assert_eq!(e("x", " "), AliasError::EmptyTarget("x".into()));
    }

    #[test]
    fn serializes_as_configured() {
        let a = aliases(&[("z", "1"), ("a*", "2")]);
        assert_eq!(serde_json::to_string(&a).unwrap(), r#"{"z":"1","a*":"2"}"#);
    }
}
