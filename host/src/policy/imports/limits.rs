//! Memory/table caps of one instance, recording which cap was hit so a trap
//! can be reported as "memory cap exceeded" rather than a bare trap.

use wasmtime::ResourceLimiter;

const MAX_TABLE_ELEMENTS: usize = 100_000;

pub struct Limiter {
    memory_cap: usize,
    /// Set when a growth was refused for exceeding the cap.
    pub memory_hit: bool,
}

impl Limiter {
    pub fn new(memory_cap: usize) -> Self {
        Limiter {
            memory_cap,
            memory_hit: false,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            self.memory_hit = true;
            wasmtime::bail!("memory cap of {} bytes exceeded", self.memory_cap);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
