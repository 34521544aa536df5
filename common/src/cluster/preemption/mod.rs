//! Gang-safe preemption: which lower-priority work to evict so that a pending gang fits.

mod choose;
mod plan;

pub use choose::{Candidate, NoVictims, VictimKind, choose_victims, freed};
pub(super) use plan::{Preemption, PreemptionLog};
pub use plan::{PreemptionPlan, Victim};

#[cfg(test)]
mod tests;
