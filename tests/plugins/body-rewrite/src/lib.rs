//! Test fixture: asks for the request body, then sets JSON field `field` to
//! `value`; also rewrites the response body the same way.
use serde::Deserialize;
use serde_json::Value;
use sluice_sdk::prelude::*;

#[derive(Deserialize)]
pub struct Config {
    field: String,
    value: Value,
}

pub struct BodyRewrite(Config);

impl BodyRewrite {
    fn rewrite(&self, body: &[u8]) -> BodyAction {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(mut o)) => {
                o.insert(self.0.field.clone(), self.0.value.clone());
                BodyAction::Replace(serde_json::to_vec(&o).unwrap_or_default())
            }
            _ => Respond::status(400)
                .message("body is not a JSON object")
                .into(),
        }
    }
}

impl Policy for BodyRewrite {
    type Config = Config;
    fn new(c: Config) -> Result<Self, String> {
        Ok(BodyRewrite(c))
    }
    fn hooks(&self) -> Hooks {
        Hooks::REQUEST_HEADERS | Hooks::REQUEST_BODY | Hooks::RESPONSE_BODY
    }
    fn on_request_headers(&self, _ctx: &RequestContext, _h: &Headers) -> HeadersAction {
        HeaderOps::new().need_body()
    }
    fn on_request_body(&self, _c: &RequestContext, _h: &Headers, body: Vec<u8>) -> BodyAction {
        self.rewrite(&body)
    }
    fn on_response_body(&self, _c: &RequestContext, _s: u16, body: Vec<u8>) -> BodyAction {
        self.rewrite(&body)
    }
}

sluice_sdk::export_policy!(BodyRewrite);
