//! sparkgang-common: the domain shared by the admission webhook and the scheduler extender.
//!
//! Everything here is pure: no I/O, no clock (time is passed in), no async runtime. Binaries
//! translate HTTP, JSON and Kubernetes watches into calls on these functions.

pub mod affinity;
pub mod annotations;
pub mod api;
pub mod binpack;
pub mod cluster;
pub mod demand_decision;
pub mod durations;
pub mod gang_demand;
pub mod gate;
pub mod labels;
pub mod names;
pub mod pods;
pub mod properties;
pub mod quantities;
pub mod queues;
pub mod resources;
pub mod sparkconf;
pub mod text;

pub use gang_demand::GangDemand;
pub use resources::{GpuResourceNames, Resources};
