//! Waiting on conditions, never on sleeps alone (shared with the simulator's tests).

pub use sparkgang_testing::wait::eventually;
