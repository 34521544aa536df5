//! How many executors fit on a node (palantir `capacity.go`, §6.8).

use crate::resources::Resources;

/// How many copies of `executor` fit in `available` once `reserved` is taken, per dimension:
/// 0 when `reserved` exceeds `available`, unlimited (`i64::MAX`) when the executor does not use
/// the dimension, else `⌊(available − reserved) / executor⌋`; the node's capacity is the minimum
/// over cpu, memory and GPUs.
pub fn executor_capacity(available: Resources, reserved: Resources, executor: Resources) -> i64 {
    capacity_in_dimension(available.cpu_milli, reserved.cpu_milli, executor.cpu_milli)
        .min(capacity_in_dimension(
            available.memory_bytes,
            reserved.memory_bytes,
            executor.memory_bytes,
        ))
        .min(capacity_in_dimension(
            available.gpus,
            reserved.gpus,
            executor.gpus,
        ))
}

/// One dimension of [`executor_capacity`].
pub(super) fn capacity_in_dimension(available: i64, reserved: i64, required: i64) -> i64 {
    let free = available.saturating_sub(reserved);
    if free < 0 {
        0
    } else if required <= 0 {
        i64::MAX
    } else {
        free / required
    }
}

/// `min(capacity, count)`: what one node contributes towards `count` executors.
pub(super) fn bounded(capacity: i64, count: i64) -> i64 {
    capacity.clamp(0, count)
}
