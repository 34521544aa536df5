//! `GangDemand`: the gang one Spark application asks for — the driver, one executor, how many.

use serde::{Deserialize, Serialize};

use crate::resources::Resources;

/// The gang one Spark application asks for.
///
/// `min_executors` are reserved together with the driver; under dynamic allocation executors
/// between `min_executors` and `max_executors` are placed if capacity exists (soft reservations).
/// Static allocation has `min_executors == max_executors`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GangDemand {
    pub driver: Resources,
    pub executor: Resources,
    pub min_executors: u32,
    pub max_executors: u32,
}

impl GangDemand {
    /// True when executors above the minimum may come and go (dynamic allocation).
    pub fn is_dynamic(&self) -> bool {
        self.max_executors > self.min_executors
    }

    /// Driver plus the minimum executors: what must fit before the driver is placed.
    pub fn gang_total(&self) -> Resources {
        self.driver + self.executor.times(i64::from(self.min_executors))
    }
}
