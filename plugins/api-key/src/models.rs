//! `allowedModels`: agentgateway's model patterns, where `*` matches any
//! run of characters. Omitted: any model; an empty list: no model.

/// A key's model restriction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowed(Option<Vec<String>>);

impl Allowed {
    pub fn compile(patterns: Option<Vec<String>>) -> Self {
        Allowed(patterns)
    }

    /// Whether any model is allowed (nothing to check in the body).
    pub fn is_any(&self) -> bool {
        self.0.is_none()
    }

    pub fn allows(&self, model: &str) -> bool {
        match &self.0 {
            None => true,
            Some(ps) => ps.iter().any(|p| glob(p, model)),
        }
    }
}

/// `*`-only glob, iterative with one backtrack point (linear in practice,
/// never exponential on hostile model names).
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

impl Allowed {
    /// The patterns as a JSON list (`[]` for none; `null` for any).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "[]".into())
    }
}
