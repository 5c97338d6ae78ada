//! Where a route forwards to: the upstream origin, the path it expects, the
//! credential it takes, and what kind of AI call a path is.

use crate::config::{self, AiKind, PathRewrite};
use crate::provider::auth::Credential;
use crate::provider::{self, Api};
use http::uri::{Authority, Scheme};
use std::sync::Arc;

/// A compiled backend.
#[derive(Debug, Clone)]
pub struct Target {
    /// The provider behind an AI backend; `None` for a plain `host:` backend.
    pub provider: Option<Arc<dyn Api>>,
    pub name: String,
    pub scheme: Scheme,
    pub authority: Authority,
    path_prefix: Option<String>,
    path_override: Option<String>,
    /// `provider.<name>.model`: the model every request here is sent to.
    pub model: Option<String>,
    /// `backendAuth` when it injects a credential (not passthrough).
    pub credential: Option<Credential>,
}

impl Target {
    pub fn compile(b: &config::Backend, tls_configured: bool) -> Result<Self, String> {
        match b {
            config::Backend::Ai(ai) => {
                let api = provider::build(ai).map_err(|e| e.to_string())?;
                let default = api.default_origin();
                let (scheme, authority) = origin(
                    ai.host_override.as_deref().unwrap_or(&default),
                    tls_configured,
                )?;
                Ok(Target {
                    provider: Some(api),
                    name: ai.name.clone(),
                    scheme,
                    authority,
                    path_prefix: ai.path_prefix.clone(),
                    path_override: ai.path_override.clone(),
                    model: ai.model.clone(),
                    credential: None,
                })
            }
            config::Backend::Groups(_) => {
                Err("a group of providers is compiled one provider at a time".into())
            }
            config::Backend::Host(h) => {
                let (scheme, authority) = origin(h, tls_configured)?;
                Ok(Target {
                    provider: None,
                    name: h.clone(),
                    scheme,
                    authority,
                    path_prefix: None,
                    path_override: None,
                    model: None,
                    credential: None,
                })
            }
        }
    }

    /// The provider as a plain reference, for questions.
    pub fn api(&self) -> Option<&dyn Api> {
        self.provider.as_deref()
    }

    /// `pathOverride`, which wins over any path a provider would choose.
    pub fn path_override(&self) -> Option<&str> {
        self.path_override.as_deref()
    }

    /// The path the upstream expects for a (rewritten) client path.
    ///
    /// `pathPrefix` replaces the provider's `/v1` base: with the guide's Codex
    /// route, `/v1/responses` becomes `/backend-api/codex/responses`.
    pub fn upstream_path(&self, path: &str) -> String {
        if let Some(full) = &self.path_override {
            return full.clone();
        }
        match &self.path_prefix {
            None => path.to_string(),
            Some(prefix) => {
                let rest = if self.provider.is_some() {
                    strip_segment_prefix(path, "/v1").unwrap_or(path)
                } else {
                    path
                };
                join_paths(prefix, rest)
            }
        }
    }
}

/// `host:port`, `http://host:port` or `https://host[:port]` → scheme + authority.
/// Without a scheme, port 443 or a `backendTLS` policy means TLS.
fn origin(s: &str, tls_configured: bool) -> Result<(Scheme, Authority), String> {
    let (scheme, rest) = if let Some(r) = s.strip_prefix("https://") {
        (Scheme::HTTPS, r)
    } else if let Some(r) = s.strip_prefix("http://") {
        (Scheme::HTTP, r)
    } else {
        let tls = tls_configured || s.rsplit_once(':').is_some_and(|(_, p)| p == "443");
        (if tls { Scheme::HTTPS } else { Scheme::HTTP }, s)
    };
    let rest = rest.trim_end_matches('/');
    let authority: Authority = rest
        .parse()
        .map_err(|e| format!("invalid host {s:?}: {e}"))?;
    Ok((scheme, authority))
}

fn strip_segment_prefix<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// Join two path pieces with exactly one `/` between them.
pub fn join_paths(a: &str, b: &str) -> String {
    let a = a.trim_end_matches('/');
    let b = b.trim_start_matches('/');
    let mut out = String::with_capacity(a.len() + b.len() + 2);
    if !a.is_empty() {
        if !a.starts_with('/') {
            out.push('/');
        }
        out.push_str(a);
    }
    out.push('/');
    out.push_str(b);
    out
}

/// Apply `urlRewrite.path`: `prefix` replaces the part the route's path prefix
/// matched; `full` replaces the whole path.
pub fn rewrite_path(
    path: &str,
    rewrite: Option<&PathRewrite>,
    prefix_len: Option<usize>,
) -> String {
    match rewrite {
        None => path.to_string(),
        Some(PathRewrite::Full(full)) => full.clone(),
        Some(PathRewrite::Prefix(new)) => {
            let rest = &path[prefix_len.unwrap_or(0).min(path.len())..];
            let joined = join_paths(new, rest);
            if rest.is_empty() && !new.ends_with('/') && joined.len() > 1 {
                joined.trim_end_matches('/').to_string()
            } else {
                joined
            }
        }
    }
}

/// The kind of AI call at `path`, from the route's `ai.routes` table: the
/// longest matching suffix wins, then `'*'`. Without a table, the kind is
/// inferred from the standard provider paths.
pub fn ai_kind(routes: Option<&[(String, AiKind)]>, path: &str) -> AiKind {
    match routes {
        Some(table) if !table.is_empty() => {
            let mut best: Option<(usize, AiKind)> = None;
            let mut wildcard = None;
            for (suffix, kind) in table {
                if suffix == "*" {
                    wildcard.get_or_insert(*kind);
                } else if path.ends_with(suffix.as_str())
                    && best.is_none_or(|(len, _)| suffix.len() > len)
                {
                    best = Some((suffix.len(), *kind));
                }
            }
            best.map(|(_, k)| k)
                .or(wildcard)
                .unwrap_or(AiKind::Passthrough)
        }
        _ => infer_kind(path),
    }
}

fn infer_kind(path: &str) -> AiKind {
    if path.ends_with("/messages/count_tokens") {
        AiKind::AnthropicTokenCount
    } else if path.ends_with("/messages") {
        AiKind::Messages
    } else if path.ends_with("/chat/completions") {
        AiKind::Completions
    } else if path.ends_with("/responses") {
        AiKind::Responses
    } else if path.ends_with("/embeddings") {
        AiKind::Embeddings
    } else if path.ends_with("/models") {
        AiKind::Models
    } else {
        AiKind::Passthrough
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::Provider;

    fn ai(provider: Provider, host: Option<&str>, prefix: Option<&str>) -> config::Backend {
        config::Backend::Ai(config::AiBackend {
            name: "b".into(),
            provider,
            model: None,
            params: Default::default(),
            host_override: host.map(str::to_string),
            path_prefix: prefix.map(str::to_string),
            path_override: None,
            policies: Default::default(),
        })
    }

    #[test]
    fn guide_codex_route_reaches_chatgpt_backend() {
        let t = Target::compile(
            &ai(
                Provider::OpenAi,
                Some("chatgpt.com:443"),
                Some("/backend-api/codex"),
            ),
            false,
        )
        .unwrap();
        assert_eq!(t.scheme, Scheme::HTTPS);
        assert_eq!(t.authority.as_str(), "chatgpt.com:443");
        let rewritten = rewrite_path(
            "/codex/v1/responses",
            Some(&PathRewrite::Prefix("/".into())),
            Some(6),
        );
        assert_eq!(rewritten, "/v1/responses");
        assert_eq!(t.upstream_path(&rewritten), "/backend-api/codex/responses");
    }

    #[test]
    fn defaults_and_plain_http_overrides() {
        let t = Target::compile(&ai(Provider::Anthropic, None, None), false).unwrap();
        assert_eq!(t.authority.as_str(), "api.anthropic.com:443");
        assert_eq!(t.scheme, Scheme::HTTPS);
        assert_eq!(t.upstream_path("/v1/messages"), "/v1/messages");
        let t = Target::compile(
            &ai(Provider::Anthropic, Some("127.0.0.1:8080"), None),
            false,
        )
        .unwrap();
        assert_eq!(t.scheme, Scheme::HTTP);
        let t =
            Target::compile(&ai(Provider::Anthropic, Some("127.0.0.1:8443"), None), true).unwrap();
        assert_eq!(t.scheme, Scheme::HTTPS);
        let t = Target::compile(
            &ai(Provider::Anthropic, Some("https://localhost:9"), None),
            false,
        )
        .unwrap();
        assert_eq!(t.scheme, Scheme::HTTPS);
    }

    #[test]
    fn prefix_rewrites() {
        let p = Some(PathRewrite::Prefix("/".into()));
        assert_eq!(
            rewrite_path("/claude/v1/messages", p.as_ref(), Some(7)),
            "/v1/messages"
        );
        assert_eq!(rewrite_path("/claude", p.as_ref(), Some(7)), "/");
        let p = Some(PathRewrite::Prefix("/api".into()));
        assert_eq!(
            rewrite_path("/claude/v1/messages", p.as_ref(), Some(7)),
            "/api/v1/messages"
        );
        assert_eq!(rewrite_path("/claude", p.as_ref(), Some(7)), "/api");
        let f = Some(PathRewrite::Full("/v1/messages".into()));
        assert_eq!(rewrite_path("/anything", f.as_ref(), None), "/v1/messages");
    }

    #[test]
    fn kinds_longest_suffix_then_wildcard() {
        let table = vec![
            ("/v1/messages".to_string(), AiKind::Messages),
            (
                "/v1/messages/count_tokens".to_string(),
                AiKind::AnthropicTokenCount,
            ),
            ("*".to_string(), AiKind::Passthrough),
        ];
        assert_eq!(ai_kind(Some(&table), "/v1/messages"), AiKind::Messages);
        assert_eq!(
            ai_kind(Some(&table), "/v1/messages/count_tokens"),
            AiKind::AnthropicTokenCount
        );
        assert_eq!(ai_kind(Some(&table), "/v1/models"), AiKind::Passthrough);
        assert_eq!(ai_kind(None, "/v1/chat/completions"), AiKind::Completions);
    }
}
