//! Test fixture: answers every request with 403 and the configured message.
use serde::Deserialize;
use sluice_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub message: String,
}

pub struct Deny(Config);

impl Policy for Deny {
    type Config = Config;
    fn validate(c: &Config) -> Result<(), String> {
        if c.message.is_empty() {
            return Err("message must not be empty".into());
        }
        Ok(())
    }
    fn new(c: Config) -> Result<Self, String> {
        Ok(Deny(c))
    }
    fn hooks(&self) -> Hooks {
        Hooks::REQUEST_HEADERS
    }
    fn on_request_headers(&self, _ctx: &RequestContext, _h: &Headers) -> HeadersAction {
        Respond::status(403)
            .message(self.0.message.clone())
            .error_type("permission_error")
            .header("x-denied-by", "deny")
            .into()
    }
}

sluice_sdk::export_policy!(Deny);
