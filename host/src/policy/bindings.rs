//! Host bindings generated from `wit/policy.wit` (world `policy-plugin`).
//!
//! Kept alone so the generated names stay out of the rest of the runtime.
wasmtime::component::bindgen!({
    world: "policy-plugin",
    path: "../wit",
});

pub use self::exports::sluice::policy::policy::InitResult;
pub use self::sluice::policy::host;
pub use self::sluice::policy::types;
