//! Just enough URL handling to name a fetch host (`host` or `host:port`, as
//! the host's `fetch-hosts` allow-list wants it).

/// The `host[:port]` of an `http://` or `https://` URL, lowercased.
pub fn http_host(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("`{url}` is not an http(s) URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(format!("`{url}`: credentials in URLs are not allowed"));
    }
    if authority.is_empty() || authority.contains(char::is_whitespace) {
        return Err(format!("`{url}` has no host"));
    }
    Ok(authority.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(
            http_host("https://Auth.Example.com/.well-known/x").unwrap(),
            "auth.example.com"
        );
        assert_eq!(
            http_host("http://127.0.0.1:8080").unwrap(),
            "127.0.0.1:8080"
        );
        assert_eq!(http_host("https://[::1]:9/k").unwrap(), "[::1]:9");
        assert!(http_host("ftp://x").is_err());
        assert!(http_host("https://").is_err());
        assert!(http_host("https://u:p@x/").is_err());
        assert!(http_host("not a url").is_err());
    }
}
