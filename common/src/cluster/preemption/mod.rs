//! Gang-safe preemption: which lower-priority work to evict so that a pending gang fits.

mod choose;

pub use choose::{Candidate, NoVictims, VictimKind, choose_victims, freed};
