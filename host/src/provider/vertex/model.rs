//! Which family a model name on Vertex belongs to, and its Vertex id.
//!
//! Why by name: Vertex serves Anthropic's models through `rawPredict`
//! (Anthropic's wire format) and Google's own through other methods, and
//! a route's `vertex:` provider serves whichever model the client (or the
//! config's `model:`) names. The names are distinct: Anthropic's start
//! with `claude-`, Google's chat models with `gemini-`. Clients write them
//! bare, with a publisher prefix (`anthropic/`, `google/`) or as a full
//! resource name (`publishers/anthropic/models/...`); all are accepted.

/// A model's family and its id as Vertex's URLs spell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelFamily {
    /// A Claude model; the id uses Vertex's `@` before a date version
    /// (`claude-3-5-sonnet@20241022`).
    Anthropic(String),
    /// A Gemini chat model (`gemini-2.5-flash`).
    Gemini(String),
    /// Anything else (embedding models, other publishers' models, or a
    /// name that could not be one path segment).
    Other,
}

/// Embedding models share the `gemini-` prefix but are not chat models.
const EMBEDDING_PREFIXES: &[&str] = &[
    "text-embedding-",
    "gemini-embedding-",
    "text-multilingual-embedding-",
    "textembedding-",
    "multimodalembedding",
];

/// Classifies `model`.
pub fn family(model: &str) -> ModelFamily {
    if let Some(m) = anthropic_id(model) {
        return ModelFamily::Anthropic(m);
    }
    let bare = model
        .split_once("publishers/google/models/")
        .map(|(_, m)| m)
        .or_else(|| model.strip_prefix("models/"))
        .or_else(|| model.strip_prefix("google/"))
        .unwrap_or(model);
    if is_safe_segment(bare)
        && (bare.starts_with("gemini-") || bare.starts_with("gemini@"))
        && !EMBEDDING_PREFIXES.iter().any(|p| bare.starts_with(p))
    {
        return ModelFamily::Gemini(bare.to_string());
    }
    ModelFamily::Other
}

fn anthropic_id(model: &str) -> Option<String> {
    let bare = model
        .split_once("publishers/anthropic/models/")
        .map(|(_, m)| m)
        .or_else(|| model.strip_prefix("anthropic/"))
        .unwrap_or(model);
    if !bare.starts_with("claude-") || !is_safe_segment(bare) {
        return None;
    }
    // Anthropic's `-YYYYMMDD` version suffix is `@YYYYMMDD` on Vertex.
    if let Some((base, date)) = bare.rsplit_once('-') {
        if date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()) {
            return Some(format!("{base}@{date}"));
        }
    }
    Some(bare.to_string())
}

/// Whether `s` can be one URL path segment as is: a model name from a
/// client's body is put into the upstream path, so it must not be able to
/// add a segment, climb (`..`), start a query or need escaping.
pub fn is_safe_segment(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> ModelFamily {
        ModelFamily::Anthropic(s.into())
    }
    fn g(s: &str) -> ModelFamily {
        ModelFamily::Gemini(s.into())
    }

    #[test]
    fn claude_names_become_vertex_ids() {
        for (input, want) in [
            (
                "claude-sonnet-4-5-20250929",
                a("claude-sonnet-4-5@20250929"),
            ),
            (
                "claude-3-5-sonnet-20241022",
                a("claude-3-5-sonnet@20241022"),
            ),
            (
                "claude-sonnet-4-5@20250929",
                a("claude-sonnet-4-5@20250929"),
            ),
            ("claude-opus-4-6", a("claude-opus-4-6")),
            (
                "anthropic/claude-haiku-4-5-20251001",
                a("claude-haiku-4-5@20251001"),
            ),
            (
                "publishers/anthropic/models/claude-haiku-4-5",
                a("claude-haiku-4-5"),
            ),
            ("claude-haiku-4-5-2025abcd", a("claude-haiku-4-5-2025abcd")),
        ] {
            assert_eq!(family(input), want, "{input}");
        }
    }

    #[test]
    fn gemini_names_and_what_is_neither() {
        for (input, want) in [
            ("gemini-2.5-flash", g("gemini-2.5-flash")),
            ("google/gemini-2.5-pro", g("gemini-2.5-pro")),
            ("models/gemini-2.5-flash", g("gemini-2.5-flash")),
            ("publishers/google/models/gemini-3-pro", g("gemini-3-pro")),
            ("gemini-embedding-001", ModelFamily::Other),
            ("text-embedding-005", ModelFamily::Other),
            ("gpt-4o", ModelFamily::Other),
            ("meta/llama-3.3-70b", ModelFamily::Other),
        ] {
            assert_eq!(family(input), want, "{input}");
        }
    }

    #[test]
    fn names_that_would_change_the_path_are_neither() {
        for bad in [
            "claude-x/../../other",
            "gemini-2.5-flash/../../x",
            "claude-x?alt=sse",
            "gemini-x%2F..",
            "claude-x#f",
            "gemini 2",
            "claude-\n",
            "",
        ] {
            assert_eq!(family(bad), ModelFamily::Other, "{bad:?}");
        }
        assert!(!is_safe_segment(".."));
        assert!(is_safe_segment("claude-sonnet-4-5@20250929"));
    }
}
