//! "Did you mean X?" for unknown keys and enum values.
//!
//! Exists so that a typo like `rateLimt` produces an actionable message
//! instead of a bare "unknown key".

/// The closest candidate to `word`, if it is close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let w = word.to_ascii_lowercase();
    let mut best: Option<(f64, &'a str)> = None;
    for &c in candidates {
        let cl = c.to_ascii_lowercase();
        let jw = strsim::jaro_winkler(&w, &cl);
        let lev = strsim::levenshtein(&w, &cl);
        let close = jw >= 0.85 || lev <= (cl.len() / 4).max(1);
        if close && best.is_none_or(|(s, _)| jw > s) {
            best = Some((jw, c));
        }
    }
    best.map(|(_, c)| c)
}

/// " Did you mean `x`?" or " Expected one of: a, b, c." (leading space).
pub(crate) fn hint(word: &str, candidates: &[&str]) -> String {
    match did_you_mean(word, candidates) {
        Some(c) => format!("; did you mean `{c}`?"),
        None if candidates.is_empty() => String::new(),
        None => format!(
            " (expected one of: {})",
            candidates
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys() {
        let keys = ["rateLimit", "localRateLimit", "urlRewrite", "backendAuth"];
        assert_eq!(did_you_mean("rateLimt", &keys), Some("rateLimit"));
        assert_eq!(did_you_mean("urlrewrite", &keys), Some("urlRewrite"));
        assert_eq!(did_you_mean("zzz", &keys), None);
        assert_eq!(hint("rateLimt", &keys), "; did you mean `rateLimit`?");
        assert!(hint("zzz", &["a", "b"]).contains("expected one of: `a`, `b`"));
    }
}
