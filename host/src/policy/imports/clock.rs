//! `now-ms`: the host's clock (the wall clock, or a test's manual one).

use super::HostState;

pub fn now_ms(s: &HostState) -> u64 {
    s.env.clock.now_ms()
}
