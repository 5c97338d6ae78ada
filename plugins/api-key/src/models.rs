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

/// What a request body says its model is.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyModel {
    /// A string `model`.
    Named(String),
    /// No string `model` (or not a JSON object).
    None,
    /// `model` twice: the gateway and the provider could read different
    /// ones, so the request cannot show it is allowed.
    Repeated,
}

/// The body's top-level `model`, keys compared after JSON unescaping
/// (`"mod\u0065l"` is `model`).
pub fn body_model(body: &[u8]) -> BodyModel {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
    struct Top;
    impl<'de> Visitor<'de> for Top {
        type Value = BodyModel;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<BodyModel, A::Error> {
            let mut model: Option<Option<String>> = None;
            let mut repeated = false;
            // The whole map is read: serde_json checks its end afterwards.
            while let Some(k) = m.next_key::<String>()? {
                if k != "model" || model.is_some() {
                    repeated |= k == "model";
                    m.next_value::<IgnoredAny>()?;
                    continue;
                }
                let v: serde_json::Value = m.next_value()?;
                model = Some(v.as_str().map(str::to_owned));
            }
            if repeated {
                return Ok(BodyModel::Repeated);
            }
            Ok(match model.flatten() {
                Some(m) => BodyModel::Named(m),
                None => BodyModel::None,
            })
        }
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    de.deserialize_map(Top).unwrap_or(BodyModel::None)
}
