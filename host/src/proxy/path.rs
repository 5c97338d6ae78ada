//! One reading of the request path, made once before routing.
//!
//! A policy that denies `/admin` must also deny `/%61dmin`, `/x/../admin` and
//! `//admin`, because the upstream reads them all as `/admin`. So the path is
//! normalised before anything looks at it, and routing, policy layers, plugins
//! (`ctx.path`) and the upstream all see the same string:
//!
//! - percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded;
//!   other escapes stay encoded, with upper-case hex;
//! - `.` and `..` segments are resolved (RFC 3986 §5.2.4; `..` never climbs
//!   above the root);
//! - empty segments (`//`) are collapsed; a trailing `/` is kept;
//! - raw non-ASCII bytes (which hyper accepts) are percent-encoded, so
//!   `/café` and `/caf%C3%A9` are one path (found by the `path_normaliser`
//!   fuzz target: the bytes used to be read as Latin-1 characters).
//!
//! An encoded `/` (`%2F`), `\` (`%5C`) or NUL (`%00`), and a malformed escape,
//! make the path ambiguous (servers disagree on whether `%2F` splits a segment),
//! so it is refused with 400. The query string is not touched.

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the request path contains an encoded '/' (%2F)")]
    EncodedSlash,
    #[error("the request path contains an encoded '\\' (%5C)")]
    EncodedBackslash,
    #[error("the request path contains an encoded NUL (%00)")]
    EncodedNul,
    #[error("the request path contains a malformed percent-escape")]
    BadEscape,
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decode unreserved escapes in one segment; refuse ambiguous ones.
fn decode_segment(seg: &str) -> Result<String, PathError> {
    let b = seg.as_bytes();
    let mut out = String::with_capacity(seg.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] >= 0x80 {
            // hyper's parser lets raw UTF-8 through; its canonical form is
            // percent-encoded, so `/café` and `/caf%C3%A9` read the same.
            out.push('%');
            out.push_str(&format!("{:02X}", b[i]));
            i += 1;
            continue;
        }
        if b[i] != b'%' {
            out.push(b[i] as char);
            i += 1;
            continue;
        }
        let (Some(&h), Some(&l)) = (b.get(i + 1), b.get(i + 2)) else {
            return Err(PathError::BadEscape);
        };
        let (Some(h), Some(l)) = (hex(h), hex(l)) else {
            return Err(PathError::BadEscape);
        };
        let v = h << 4 | l;
        match v {
            b'/' => return Err(PathError::EncodedSlash),
            b'\\' => return Err(PathError::EncodedBackslash),
            0 => return Err(PathError::EncodedNul),
            v if unreserved(v) => out.push(v as char),
            v => {
                out.push('%');
                out.push_str(&format!("{v:02X}"));
            }
        }
        i += 3;
    }
    Ok(out)
}

/// The normalised form of `path` (a URI path, without the query).
pub fn normalize(path: &str) -> Result<String, PathError> {
    if path == "*" {
        return Ok(path.to_string());
    }
    let trailing = path.len() > 1 && path.ends_with('/');
    let mut out: Vec<String> = Vec::new();
    let mut last_was_dir = false;
    for raw in path.split('/') {
        if raw.is_empty() {
            continue;
        }
        let seg = decode_segment(raw)?;
        match seg.as_str() {
            "." => last_was_dir = true,
            ".." => {
                out.pop();
                last_was_dir = true;
            }
            _ => {
                out.push(seg);
                last_was_dir = false;
            }
        }
    }
    let mut s = String::with_capacity(path.len());
    for seg in &out {
        s.push('/');
        s.push_str(seg);
    }
    if s.is_empty() || ((trailing || last_was_dir) && !s.ends_with('/')) {
        s.push('/');
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(p: &str) -> String {
        normalize(p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    #[test]
    fn honest_paths_are_unchanged() {
        for p in [
            "/",
            "/claude/v1/messages",
            "/v1/messages/count_tokens",
            "/codex/v1/responses",
            "/v1/models/",
            "/a/b%20c/d",
            "/a/%E2%9C%93",
            "/v1/messages@x:y",
        ] {
            assert_eq!(n(p), p);
        }
    }

    #[test]
    fn raw_utf8_reads_as_its_percent_encoding() {
        assert_eq!(n("/a/caf\u{e9}/"), "/a/caf%C3%A9/");
        assert_eq!(n("/a/caf%c3%a9/"), "/a/caf%C3%A9/");
        let once = n("/a/\u{25e}/.//");
        assert_eq!(once, "/a/%C9%9E/");
        assert_eq!(n(&once), once);
    }

    #[test]
    fn unreserved_escapes_are_decoded() {
        assert_eq!(n("/claude/%61dmin/x"), "/claude/admin/x");
        assert_eq!(n("/%7Euser/%2D%2e%5F"), "/~user/-._");
        // Reserved ones stay encoded, hex upper-cased.
        assert_eq!(n("/a%3fb/c%2ad"), "/a%3Fb/c%2Ad");
    }

    #[test]
    fn dot_segments_and_empty_segments() {
        assert_eq!(n("/claude/x/../admin"), "/claude/admin");
        assert_eq!(n("/claude/./admin"), "/claude/admin");
        assert_eq!(n("//claude///admin"), "/claude/admin");
        assert_eq!(n("/../../admin"), "/admin");
        assert_eq!(n("/claude/%2e%2e/admin"), "/admin");
        assert_eq!(n("/claude/admin/.."), "/claude/");
        assert_eq!(n("/claude/admin/."), "/claude/admin/");
        assert_eq!(n(""), "/");
        assert_eq!(n("/.."), "/");
    }

    #[test]
    fn ambiguous_escapes_are_refused() {
        assert_eq!(normalize("/claude%2Fadmin"), Err(PathError::EncodedSlash));
        assert_eq!(normalize("/claude%2fadmin"), Err(PathError::EncodedSlash));
        assert_eq!(normalize("/a%5Cb"), Err(PathError::EncodedBackslash));
        assert_eq!(normalize("/a%00b"), Err(PathError::EncodedNul));
        assert_eq!(normalize("/a%zzb"), Err(PathError::BadEscape));
        assert_eq!(normalize("/a%4"), Err(PathError::BadEscape));
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for p in ["/a/%61/../b//c/", "/x/%7e/%41%3f", "/./.././a"] {
            let once = n(p);
            assert_eq!(n(&once), once, "{p}");
        }
    }
}
