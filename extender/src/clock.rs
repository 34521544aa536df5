//! Where the extender reads the time: the system clock, or a simulator's.

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;

/// A source of the current time. The scheduling core never reads a clock; the shell passes
/// `now` in, from here.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A shared clock.
pub type SharedClock = Arc<dyn Clock>;
