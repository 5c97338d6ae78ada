//! Choosing the route for a request, and the policy layers that wrap it.
//!
//! Precedence is deterministic: the most specific match wins (exact path, then
//! regex, then the longest path prefix, then more header matches, then a method
//! match), and among equals the route written first in the config. Policy
//! layers (route entries without backends) don't compete: every layer whose
//! matches select the request applies, in config order.

use crate::config::{self, PathMatch, ValueMatch};
use http::{HeaderMap, HeaderName, Method};
use regex::Regex;

/// How specific a match is; compared lexicographically, larger wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Specificity {
    path_rank: u8,
    path_len: usize,
    headers: usize,
    method: bool,
}

#[derive(Debug)]
enum PathRule {
    Prefix(String),
    Exact(String),
    Regex(Regex),
}

#[derive(Debug)]
enum ValueRule {
    Exact(String),
    Regex(Regex),
}

/// One compiled `matches[]` entry.
#[derive(Debug)]
pub struct Matcher {
    path: Option<PathRule>,
    headers: Vec<(HeaderName, ValueRule)>,
    method: Option<Method>,
}

/// The result of a successful match.
#[derive(Debug, Clone, Copy)]
pub struct Hit {
    pub specificity: Specificity,
    /// Length of the path prefix that matched, for `urlRewrite.path.prefix`.
    pub prefix_len: Option<usize>,
}

impl Matcher {
    pub fn compile(m: &config::Match) -> Result<Self, String> {
        let path = match &m.path {
            None => None,
            Some(PathMatch::Prefix(p)) => Some(PathRule::Prefix(p.clone())),
            Some(PathMatch::Exact(p)) => Some(PathRule::Exact(p.clone())),
            Some(PathMatch::Regex(r)) => Some(PathRule::Regex(
                Regex::new(&format!("^(?:{r})$")).map_err(|e| e.to_string())?,
            )),
        };
        let mut headers = Vec::new();
        for h in &m.headers {
            let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|e| e.to_string())?;
            let rule = match &h.value {
                ValueMatch::Exact(v) => ValueRule::Exact(v.clone()),
                ValueMatch::Regex(r) => {
                    ValueRule::Regex(Regex::new(&format!("^(?:{r})$")).map_err(|e| e.to_string())?)
                }
            };
            headers.push((name, rule));
        }
        let method = match &m.method {
            None => None,
            Some(s) => Some(Method::from_bytes(s.as_bytes()).map_err(|e| e.to_string())?),
        };
        Ok(Matcher {
            path,
            headers,
            method,
        })
    }

    /// Does this matcher select the request, and how specifically?
    pub fn hit(&self, method: &Method, path: &str, headers: &HeaderMap) -> Option<Hit> {
        let mut spec = Specificity::default();
        let mut prefix_len = None;
        match &self.path {
            None => {}
            Some(PathRule::Exact(p)) => {
                if path != p {
                    return None;
                }
                spec.path_rank = 3;
                spec.path_len = p.len();
            }
            Some(PathRule::Regex(r)) => {
                if !r.is_match(path) {
                    return None;
                }
                spec.path_rank = 2;
                spec.path_len = r.as_str().len();
            }
            Some(PathRule::Prefix(p)) => {
                if !prefix_matches(p, path) {
                    return None;
                }
                spec.path_rank = 1;
                spec.path_len = p.len();
                prefix_len = Some(p.trim_end_matches('/').len());
            }
        }
        for (name, rule) in &self.headers {
            let ok = headers.get_all(name).iter().any(|v| {
                let Ok(v) = v.to_str() else { return false };
                match rule {
                    ValueRule::Exact(e) => v == e,
                    ValueRule::Regex(r) => r.is_match(v),
                }
            });
            if !ok {
                return None;
            }
        }
        spec.headers = self.headers.len();
        if let Some(m) = &self.method {
            if m != method {
                return None;
            }
            spec.method = true;
        }
        Some(Hit {
            specificity: spec,
            prefix_len,
        })
    }
}

/// Path-prefix matching on segment boundaries: `/claude` selects `/claude` and
/// `/claude/v1/messages`, not `/claudette`.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    let p = prefix.trim_end_matches('/');
    if p.is_empty() {
        return true;
    }
    match path.strip_prefix(p) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The matchers of one route entry; an empty list selects everything.
#[derive(Debug)]
pub struct MatchSet(Vec<Matcher>);

impl MatchSet {
    pub fn compile(ms: &[config::Match]) -> Result<Self, String> {
        ms.iter()
            .map(Matcher::compile)
            .collect::<Result<_, _>>()
            .map(MatchSet)
    }

    /// The best hit among this entry's matchers.
    pub fn best(&self, method: &Method, path: &str, headers: &HeaderMap) -> Option<Hit> {
        if self.0.is_empty() {
            return Some(Hit {
                specificity: Specificity::default(),
                prefix_len: None,
            });
        }
        self.0
            .iter()
            .filter_map(|m| m.hit(method, path, headers))
            .max_by_key(|h| h.specificity)
    }
}

/// Pick the winning entry: highest specificity, then lowest index (file order).
pub fn select<'a, T>(
    entries: &'a [(MatchSet, T)],
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Option<(&'a T, Hit)> {
    let mut best: Option<(&'a T, Hit)> = None;
    for (set, item) in entries {
        if let Some(hit) = set.best(method, path, headers) {
            if best
                .as_ref()
                .is_none_or(|(_, b)| hit.specificity > b.specificity)
            {
                best = Some((item, hit));
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(
        path: Option<PathMatch>,
        headers: Vec<(&str, &str)>,
        method: Option<&str>,
    ) -> config::Match {
        config::Match {
            path,
            headers: headers
                .into_iter()
                .map(|(n, v)| config::HeaderMatch {
                    name: n.into(),
                    value: ValueMatch::Exact(v.into()),
                })
                .collect(),
            method: method.map(str::to_string),
        }
    }

    fn table(ms: Vec<(Vec<config::Match>, &'static str)>) -> Vec<(MatchSet, &'static str)> {
        ms.into_iter()
            .map(|(m, n)| (MatchSet::compile(&m).unwrap(), n))
            .collect()
    }

    #[test]
    fn prefix_respects_segments() {
        assert!(prefix_matches("/claude", "/claude"));
        assert!(prefix_matches("/claude", "/claude/v1/messages"));
        assert!(prefix_matches("/claude/", "/claude/v1"));
        assert!(!prefix_matches("/claude", "/claudette"));
        assert!(prefix_matches("/", "/anything"));
    }

    #[test]
    fn most_specific_then_file_order() {
        let t = table(vec![
            (
                vec![m(Some(PathMatch::Prefix("/".into())), vec![], None)],
                "root",
            ),
            (
                vec![m(Some(PathMatch::Prefix("/claude".into())), vec![], None)],
                "claude",
            ),
            (
                vec![m(Some(PathMatch::Prefix("/claude".into())), vec![], None)],
                "claude-dup",
            ),
            (
                vec![m(
                    Some(PathMatch::Prefix("/claude".into())),
                    vec![("x-team", "a")],
                    None,
                )],
                "claude-team",
            ),
            (
                vec![m(
                    Some(PathMatch::Exact("/claude/v1/models".into())),
                    vec![],
                    None,
                )],
                "exact",
            ),
        ]);
        let h = HeaderMap::new();
        let get = |p: &str, h: &HeaderMap| select(&t, &Method::POST, p, h).map(|(n, _)| *n);
        assert_eq!(get("/claude/v1/messages", &h), Some("claude"));
        assert_eq!(get("/claude/v1/models", &h), Some("exact"));
        assert_eq!(get("/other", &h), Some("root"));
        let mut h2 = HeaderMap::new();
        h2.insert("x-team", "a".parse().unwrap());
        assert_eq!(get("/claude/v1/messages", &h2), Some("claude-team"));
    }

    #[test]
    fn regex_and_method() {
        let t = table(vec![(
            vec![m(
                Some(PathMatch::Regex("/v[0-9]+/models".into())),
                vec![],
                Some("GET"),
            )],
            "models",
        )]);
        let h = HeaderMap::new();
        assert!(select(&t, &Method::GET, "/v1/models", &h).is_some());
        assert!(select(&t, &Method::POST, "/v1/models", &h).is_none());
        assert!(select(&t, &Method::GET, "/v1/models/x", &h).is_none());
    }

    #[test]
    fn nothing_matches() {
        let t = table(vec![(
            vec![m(Some(PathMatch::Prefix("/claude".into())), vec![], None)],
            "c",
        )]);
        assert!(select(&t, &Method::GET, "/codex/v1", &HeaderMap::new()).is_none());
    }
}
