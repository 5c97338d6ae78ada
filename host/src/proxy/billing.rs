//! Billing headers: which organisation, project or workspace a provider
//! charges. When the gateway injects its own key, the operator pays, so the
//! client must not pick the account: these headers are dropped unless the
//! route lists them in `backendAuth.passHeaders`.

use http::HeaderMap;

/// Header names (lowercase) that choose the account a call is billed to.
const BILLING: &[&str] = &[
    "openai-organization",
    "openai-project",
    "anthropic-workspace-id",
    "anthropic-organization-id",
];

pub fn is_billing_header(name: &str) -> bool {
    BILLING.contains(&name)
}

/// Remove every billing header not in `pass` (lowercase names).
pub fn drop_billing_headers(h: &mut HeaderMap, pass: &[String]) {
    for name in BILLING {
        if !pass.iter().any(|p| p == name) {
            h.remove(*name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_all_but_passed() {
        let mut h = HeaderMap::new();
        h.insert("OpenAI-Organization", "org-client".parse().unwrap());
        h.insert("openai-project", "proj-client".parse().unwrap());
        h.insert("anthropic-workspace-id", "ws".parse().unwrap());
        h.insert("anthropic-version", "2023-06-01".parse().unwrap());
        drop_billing_headers(&mut h, &["openai-project".to_string()]);
        assert!(h.get("openai-organization").is_none());
        assert!(h.get("anthropic-workspace-id").is_none());
        assert_eq!(h.get("openai-project").unwrap(), "proj-client");
        assert_eq!(h.get("anthropic-version").unwrap(), "2023-06-01");
    }
}
