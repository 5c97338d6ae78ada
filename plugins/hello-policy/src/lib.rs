//! `hello-policy`: the SDK's complete example, bundled with the gateway.
//!
//! Adds `x-hello: <greeting>` to every response, and answers 403 to requests
//! whose path contains the configured `deny` substring.
//!
//! ```yaml
//! plugins:
//!   - name: hello
//!     path: bundled:hello-policy
//!     config: { greeting: "hi there", deny: "/admin" }
//! ```

use serde::Deserialize;
use sluice_sdk::prelude::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Value of the `x-hello` response header.
    #[serde(default = "default_greeting")]
    pub greeting: String,
    /// Deny requests whose path contains this substring (none if absent).
    #[serde(default)]
    pub deny: Option<String>,
}

fn default_greeting() -> String {
    "hello from sluice".to_owned()
}

pub struct Hello {
    config: Config,
}

impl Policy for Hello {
    type Config = Config;

    fn validate(config: &Config) -> Result<(), String> {
        if config.deny.as_deref() == Some("") {
            return Err("`deny` must not be empty (it would deny every request)".into());
        }
        if config.greeting.contains(['\r', '\n']) {
            return Err("`greeting` must be a single line".into());
        }
        Ok(())
    }

    fn new(config: Config) -> Result<Self, String> {
        Ok(Hello { config })
    }

    fn hooks(&self) -> Hooks {
        let mut hooks = Hooks::RESPONSE_HEADERS;
        if self.config.deny.is_some() {
            hooks |= Hooks::REQUEST_HEADERS;
        }
        hooks
    }

    fn on_request_headers(&self, ctx: &RequestContext, _headers: &Headers) -> HeadersAction {
        match &self.config.deny {
            Some(deny) if ctx.path.contains(deny.as_str()) => {
                host::info(&format!("denying {}", ctx.path));
                Respond::status(403)
                    .message(format!("path {} is not allowed", ctx.path))
                    .error_type("permission_error")
                    .into()
            }
            _ => HeaderOps::new().proceed(),
        }
    }

    fn on_response_headers(
        &self,
        _ctx: &RequestContext,
        _status: u16,
        _headers: &Headers,
    ) -> ResponseHeadersAction {
        HeaderOps::new()
            .set("x-hello", self.config.greeting.clone())
            .proceed_response()
    }
}

sluice_sdk::export_policy!(Hello);

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::rt::parse_config;

    fn ctx(path: &str) -> RequestContext {
        RequestContext {
            request_id: "r1".into(),
            route: "r".into(),
            backend: "b".into(),
            provider: Provider::Anthropic,
            kind: AiKind::Messages,
            method: "POST".into(),
            path: path.into(),
            query: None,
            client_ip: "127.0.0.1".into(),
            model: None,
            streaming: false,
        }
    }

    #[test]
    fn denies_configured_paths() {
        let p = Hello::new(parse_config::<Hello>(r#"{"deny":"/admin"}"#).unwrap()).unwrap();
        assert!(p.hooks().contains(Hooks::REQUEST_HEADERS));
        match p.on_request_headers(&ctx("/admin/x"), &vec![]) {
            HeadersAction::Respond(r) => assert_eq!(r.status, 403),
            other => panic!("expected respond, got {other:?}"),
        }
        assert!(matches!(
            p.on_request_headers(&ctx("/v1/messages"), &vec![]),
            HeadersAction::Continue(_)
        ));
    }

    #[test]
    fn bad_config_names_the_key() {
        let err = parse_config::<Hello>(r#"{"greeting": 5}"#).unwrap_err();
        assert!(err.contains("greeting"), "{err}");
        assert!(Hello::validate(&parse_config::<Hello>(r#"{"deny":""}"#).unwrap()).is_err());
    }
}
