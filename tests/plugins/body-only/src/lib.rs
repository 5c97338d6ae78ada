//! Test fixture: declares only the request-body hook (no headers hook, so it
//! never says `need-body`), and answers 403 when the body contains `needle`.
use serde::Deserialize;
use sluice_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub needle: String,
}

pub struct BodyOnly(Config);

impl Policy for BodyOnly {
    type Config = Config;
    fn new(c: Config) -> Result<Self, String> {
        Ok(BodyOnly(c))
    }
    fn hooks(&self) -> Hooks {
        Hooks::REQUEST_BODY
    }
    fn on_request_body(&self, _c: &RequestContext, _h: &Headers, body: Vec<u8>) -> BodyAction {
        let needle = self.0.needle.as_bytes();
        if !needle.is_empty() && body.windows(needle.len()).any(|w| w == needle) {
            return Respond::status(403)
                .message("body-only fixture found the needle")
                .error_type("permission_error")
                .into();
        }
        BodyAction::Continue
    }
}

sluice_sdk::export_policy!(BodyOnly);
