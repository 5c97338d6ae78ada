//! `read-headers`: which headers an attachment's hooks are handed.
//!
//! Every header crosses into the guest as two strings on every hook call
//! (two `cabi_realloc` calls, two copies, two frees in the guest). Claude
//! Code sends about twenty, so a policy that reads only `authorization` paid
//! for forty strings per call: measured with `cargo bench --workspace --bench
//! policy -- hook_reused`, one header-only call costs 2.5 µs with two
//! headers and 9.5 µs with Claude Code's twenty. A plugin that declares what
//! it reads in `init` gets just that; one that does not gets everything, as
//! before. Narrowing what a plugin sees never narrows what it may edit.

use std::sync::Arc;

use http::{HeaderMap, HeaderName};

use super::HostState;

/// The headers one attachment reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderView(Option<Arc<[HeaderName]>>);

impl HeaderView {
    /// Every header (a plugin that declared nothing).
    pub fn all() -> Self {
        HeaderView(None)
    }

    /// Only these names.
    pub fn only(names: Vec<HeaderName>) -> Self {
        HeaderView(Some(names.into()))
    }

    /// `headers` as the WIT list this attachment is given: lowercase names,
    /// in the map's order, non-UTF-8 values lossily.
    pub fn list(&self, headers: &HeaderMap) -> Vec<(String, String)> {
        match &self.0 {
            None => headers.iter().map(pair).collect(),
            Some(names) if names.is_empty() => Vec::new(),
            Some(names) => headers
                .iter()
                .filter(|(k, _)| names.contains(k))
                .map(pair)
                .collect(),
        }
    }
}

fn pair((k, v): (&HeaderName, &http::HeaderValue)) -> (String, String) {
    let v = match v.to_str() {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
    };
    (k.as_str().to_owned(), v)
}

/// The import: recorded only while `init` runs, so a hook cannot widen or
/// narrow its view behind the attachment's back.
pub fn declare(s: &mut HostState, names: Vec<String>) {
    if !s.in_init {
        tracing::warn!(
            plugin = &*s.plugin,
            "read-headers called outside init; ignored"
        );
        return;
    }
    let mut parsed: Vec<HeaderName> = Vec::with_capacity(names.len());
    for n in names {
        match HeaderName::from_bytes(n.to_ascii_lowercase().as_bytes()) {
            Ok(h) if !parsed.contains(&h) => parsed.push(h),
            Ok(_) => {}
            Err(_) => tracing::warn!(
                plugin = &*s.plugin,
                name = %n,
                "read-headers: not a header name; ignored"
            ),
        }
    }
    s.read_headers = HeaderView::only(parsed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn a_view_keeps_the_named_headers_every_value_in_order() {
        let h = map(&[
            ("host", "a"),
            ("authorization", "Bearer t"),
            ("x-org", "1"),
            ("x-org", "2"),
        ]);
        let view = HeaderView::only(vec![
            HeaderName::from_static("x-org"),
            HeaderName::from_static("authorization"),
        ]);
        assert_eq!(
            view.list(&h),
            vec![
                ("authorization".to_owned(), "Bearer t".to_owned()),
                ("x-org".to_owned(), "1".to_owned()),
                ("x-org".to_owned(), "2".to_owned()),
            ]
        );
        assert_eq!(HeaderView::all().list(&h).len(), 4);
        assert!(HeaderView::only(Vec::new()).list(&h).is_empty());
    }
}
