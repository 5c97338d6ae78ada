//! Host bindings generated from `wit/policy.wit` (world `policy-plugin`).
//!
//! Kept alone so the generated names stay out of the rest of the runtime.
wasmtime::component::bindgen!({
    world: "policy-plugin",
    path: "../wit",
    // State imports fail the hook (a trap carrying `StateUnavailable`) when
    // the store is down and fails closed; the others never trap.
    imports: { default: trappable },
});

pub use self::exports::sluice::policy::policy::InitResult;
pub use self::sluice::policy::host;
pub use self::sluice::policy::types;
