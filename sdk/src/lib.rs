//! `sluice-sdk`: write Sluice gateway policies in Rust.
//!
//! The contract lives in `wit/policy.wit`; [`bindings`] is generated from it by
//! wit-bindgen. On top of it this crate offers an idiomatic layer: implement
//! [`Policy`] (typed config, default no-op hooks) and export it with
//! [`export_policy!`]. Helpers cover headers ([`HeaderOps`], [`header`], and
//! the set rule of [`header_set`]: a header a policy sets never keeps the
//! client's value), `$(...)` header templates ([`template`]),
//! immediate responses ([`Respond`]), AI bodies ([`ai`]: the one text walker
//! and normalisation), SSE events ([`sse`]), config reading ([`config`]),
//! sizes and durations ([`units`]), PII detectors ([`pii`]) and the host
//! imports ([`host`]).
//!
//! ```ignore
//! use sluice_sdk::prelude::*;
//!
//! #[derive(serde::Deserialize)]
//! struct Config { deny: String }
//! struct Deny(Config);
//!
//! impl Policy for Deny {
//!     type Config = Config;
//!     fn new(config: Config) -> Result<Self, String> { Ok(Deny(config)) }
//!     fn hooks(&self) -> Hooks { Hooks::REQUEST_HEADERS }
//!     fn on_request_headers(&self, ctx: &RequestContext, _h: &Headers) -> HeadersAction {
//!         if ctx.path.contains(&self.0.deny) {
//!             return Respond::status(403).message("denied").into();
//!         }
//!         HeadersAction::Continue(HeaderOps::new().into())
//!     }
//! }
//! sluice_sdk::export_policy!(Deny);
//! ```
#![allow(clippy::too_many_arguments)]

pub mod ai;
pub mod config;
pub mod header_set;
pub mod host;
mod ops;
#[doc(hidden)]
pub mod pii;
mod policy;
pub mod prompt_guard;
pub mod rt;
pub mod sse;
pub mod template;
pub mod text;

/// Sizes and durations: the one grammar of host and plugins (`1MB` =
/// 1,000,000 bytes, `1MiB` = 1,048,576; `30s`, `1h30m`). See [`sluice_units`].
pub mod units {
    pub use sluice_units::*;
}

/// Raw bindings generated from `wit/` by wit-bindgen.
pub mod bindings {
    wit_bindgen::generate!({
        world: "policy-plugin",
        path: "../wit",
        pub_export_macro: true,
        default_bindings_module: "sluice_sdk::bindings",
        generate_all,
    });
}

pub use bindings::exports::sluice::policy::policy::InitResult;
pub use bindings::sluice::policy::host::{
    Bucket, BucketTake, BudgetAmount, BudgetExhausted, BudgetPeriod, BudgetRef, BudgetReserved,
    BudgetState, BudgetUnit, FetchResponse, Level, PublicKey, RsaPublicKey, SignatureScheme,
    WindowCount, WindowLimit, WindowTakeResult,
};
pub use bindings::sluice::policy::types::{
    AiKind, BodyAction, Completion, HeadersAction, Hooks, ImmediateResponse, Provider,
    RequestContext, ResponseHeadersAction, SseEvent, TokenUsage, Usage,
};
pub use ops::{header, header_all, HeaderOps, Respond};
pub use policy::Policy;

/// The header list type of the contract: lowercase names, a name may repeat.
pub type Headers = Vec<(String, String)>;

/// Everything a policy usually needs.
pub mod prelude {
    pub use crate::header_set::{NoValue, OnMissing};
    pub use crate::host;
    pub use crate::sse::SseEventExt;
    pub use crate::{
        header, header_all, AiKind, BodyAction, Completion, HeaderOps, Headers, HeadersAction,
        Hooks, Policy, Provider, RequestContext, Respond, ResponseHeadersAction, SseEvent,
    };
}

/// Export a [`Policy`] implementation as the component's `policy` interface.
///
/// The config is parsed (JSON) and validated in `validate`, and parsed and
/// kept in `init`; every hook then calls the stored policy.
#[macro_export]
macro_rules! export_policy {
    ($ty:ty) => {
        ::std::thread_local! {
            static __SLUICE_POLICY: ::std::cell::RefCell<::std::option::Option<$ty>> =
                const { ::std::cell::RefCell::new(::std::option::Option::None) };
        }

        #[doc(hidden)]
        pub struct __SluiceExport;

        impl $crate::bindings::exports::sluice::policy::policy::Guest for __SluiceExport {
            fn validate(config: ::std::string::String) -> ::std::result::Result<(), ::std::string::String> {
                $crate::rt::validate::<$ty>(&config)
            }
            fn init(
                config: ::std::string::String,
            ) -> ::std::result::Result<$crate::InitResult, ::std::string::String> {
                $crate::rt::init::<$ty>(&__SLUICE_POLICY, &config)
            }
            fn on_request_headers(
                ctx: $crate::RequestContext,
                headers: $crate::Headers,
            ) -> $crate::HeadersAction {
                $crate::rt::with(&__SLUICE_POLICY, |p| {
                    $crate::Policy::on_request_headers(p, &ctx, &headers)
                })
            }
            fn on_request_body(
                ctx: $crate::RequestContext,
                headers: $crate::Headers,
                body: ::std::vec::Vec<u8>,
            ) -> $crate::BodyAction {
                $crate::rt::with(&__SLUICE_POLICY, |p| {
                    $crate::Policy::on_request_body(p, &ctx, &headers, body)
                })
            }
            fn on_response_headers(
                ctx: $crate::RequestContext,
                status: u16,
                headers: $crate::Headers,
            ) -> $crate::ResponseHeadersAction {
                $crate::rt::with(&__SLUICE_POLICY, |p| {
                    $crate::Policy::on_response_headers(p, &ctx, status, &headers)
                })
            }
            fn on_response_body(
                ctx: $crate::RequestContext,
                status: u16,
                body: ::std::vec::Vec<u8>,
            ) -> $crate::BodyAction {
                $crate::rt::with(&__SLUICE_POLICY, |p| {
                    $crate::Policy::on_response_body(p, &ctx, status, body)
                })
            }
            fn on_response_event(
                ctx: $crate::RequestContext,
                event: $crate::SseEvent,
            ) -> ::std::vec::Vec<$crate::SseEvent> {
                $crate::rt::with(&__SLUICE_POLICY, |p| {
                    $crate::Policy::on_response_event(p, &ctx, event)
                })
            }
            fn on_response_end(ctx: $crate::RequestContext) -> ::std::vec::Vec<$crate::SseEvent> {
                $crate::rt::with(&__SLUICE_POLICY, |p| $crate::Policy::on_response_end(p, &ctx))
            }
            fn on_complete(ctx: $crate::RequestContext, summary: $crate::Completion) {
                $crate::rt::with(&__SLUICE_POLICY, |p| {
                    $crate::Policy::on_complete(p, &ctx, &summary)
                })
            }
        }

        // Component exports only exist on wasm: export names such as
        // `sluice:policy/policy@0.1.0#init` cannot be linked into a native
        // cdylib, and native builds are for unit tests anyway.
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::export!(__SluiceExport with_types_in $crate::bindings);
    };
}
