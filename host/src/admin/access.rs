//! Who may use the admin API, and which plugin files a reload may load.

use super::error;
use crate::config::Admin;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use std::net::{IpAddr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use subtle::ConstantTimeEq;

/// The one answer for a reload path outside the allowed directories, whether
/// or not the file exists (the API must not probe the filesystem).
pub const PATH_REFUSED: &str =
    "path is not inside the plugin's directory or an `admin.pluginDirs` entry";

/// Refuse a request the admin API must not serve.
#[allow(clippy::result_large_err)]
pub fn check<B>(
    admin: &Admin,
    req: &Request<B>,
    peer: SocketAddr,
) -> Result<(), Response<Full<Bytes>>> {
    let h = req.headers();
    if h.contains_key(header::ORIGIN) {
        return Err(error(
            StatusCode::FORBIDDEN,
            "the admin API does not serve web pages (Origin header present)".into(),
        ));
    }
    let open = req.method() == Method::GET && req.uri().path() == "/healthz";
    match &admin.token {
        Some(token) if !open => {
            let presented = h
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    let (scheme, t) = v.trim().split_once(' ')?;
                    scheme.eq_ignore_ascii_case("bearer").then(|| t.trim())
                });
            let ok = presented
                .is_some_and(|p| bool::from(p.as_bytes().ct_eq(token.expose().as_bytes())));
            if !ok {
                let mut r = error(
                    StatusCode::UNAUTHORIZED,
                    "admin API requires `Authorization: Bearer <admin.token>`".into(),
                );
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
                return Err(r);
            }
        }
        Some(_) => {}
        None => {
            if !peer.ip().is_loopback() && !mapped_loopback(peer.ip()) {
                return Err(error(
                    StatusCode::FORBIDDEN,
                    "admin API without `admin.token` serves loopback clients only".into(),
                ));
            }
            if !loopback_host(req) {
                return Err(error(
                    StatusCode::MISDIRECTED_REQUEST,
                    "admin API without `admin.token` answers for localhost only".into(),
                ));
            }
        }
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let json = h
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "admin requests that change state need `Content-Type: application/json`".into(),
            ));
        }
    }
    Ok(())
}

fn mapped_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        IpAddr::V4(_) => false,
    }
}

/// `Host` names loopback (or is absent: not a browser).
fn loopback_host<B>(req: &Request<B>) -> bool {
    let raw = match req.uri().authority() {
        Some(a) => a.host().to_string(),
        None => match req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
        {
            Some(h) => h.to_string(),
            None => return true,
        },
    };
    let host = match raw.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or("").to_string(),
        None => raw
            .rsplit_once(':')
            .map_or(raw.as_str(), |(h, _)| h)
            .to_string(),
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || mapped_loopback(ip))
}

/// `requested` may be loaded only if it lies inside the directory of
/// `declared` or one of `dirs`, lexically and after resolving symlinks.
pub fn plugin_path_allowed(
    requested: &Path,
    declared: &Path,
    dirs: &[PathBuf],
) -> Result<(), &'static str> {
    if !requested.is_absolute() {
        return Err(PATH_REFUSED);
    }
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Some(parent) = declared.parent() {
        roots.push(parent.to_path_buf());
    }
    roots.extend(dirs.iter().cloned());
    let roots: Vec<PathBuf> = roots
        .iter()
        .flat_map(|r| [normalize(r), std::fs::canonicalize(r).unwrap_or_default()])
        .filter(|r| !r.as_os_str().is_empty())
        .collect();
    let inside = |p: &Path| roots.iter().any(|r| p.starts_with(r) && p != r);
    if !inside(&normalize(requested)) {
        return Err(PATH_REFUSED);
    }
    // A symlink inside an allowed directory must not lead out of them. A
    // file that does not exist inside an allowed directory is left for the
    // loader to report.
    match std::fs::canonicalize(requested) {
        Ok(real) if !inside(&real) => Err(PATH_REFUSED),
        _ => Ok(()),
    }
}

/// `.` and `..` resolved without touching the filesystem.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_paths() {
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        std::fs::create_dir(&plugins).unwrap();
        let declared = plugins.join("gate.wasm");
        let other = dir.path().join("other");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join("x.wasm"), b"x").unwrap();
        let ok = |p: &Path, dirs: &[PathBuf]| plugin_path_allowed(p, &declared, dirs);
        assert!(ok(&plugins.join("v2.wasm"), &[]).is_ok());
        assert_eq!(ok(&other.join("x.wasm"), &[]), Err(PATH_REFUSED));
        assert_eq!(ok(&other.join("missing.wasm"), &[]), Err(PATH_REFUSED));
        assert!(ok(&other.join("x.wasm"), std::slice::from_ref(&other)).is_ok());
        assert_eq!(ok(&plugins.join("../other/x.wasm"), &[]), Err(PATH_REFUSED));
        assert_eq!(ok(Path::new("gate.wasm"), &[]), Err(PATH_REFUSED));
        assert_eq!(ok(Path::new("/root/.ssh/id_rsa"), &[]), Err(PATH_REFUSED));
        std::os::unix::fs::symlink(other.join("x.wasm"), plugins.join("link.wasm")).unwrap();
        assert_eq!(ok(&plugins.join("link.wasm"), &[]), Err(PATH_REFUSED));
    }
}
