//! `CandidateNode`: what bin packing needs to know about one node, and the zone of a node.

use std::collections::BTreeMap;

use crate::resources::Resources;

/// The zone label Kubernetes sets on nodes (GA since 1.17).
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// The deprecated zone label, still set by some providers; read when [`ZONE_LABEL`] is absent.
pub const BETA_ZONE_LABEL: &str = "failure-domain.beta.kubernetes.io/zone";

/// The zone of a node that carries neither zone label (palantir used the same name).
pub const DEFAULT_ZONE: &str = "default";

/// The zone of a node with these labels: [`ZONE_LABEL`], else [`BETA_ZONE_LABEL`], else
/// [`DEFAULT_ZONE`].
///
/// Palantir read only the beta label for bin packing but the GA label for executor zone pinning
/// (its quirk 9), so a cluster with only the GA label was one zone to its bin packers. Here both
/// use this function.
pub fn zone_of(labels: &BTreeMap<String, String>) -> &str {
    labels
        .get(ZONE_LABEL)
        .or_else(|| labels.get(BETA_ZONE_LABEL))
        .map_or(DEFAULT_ZONE, String::as_str)
}

/// One node as the bin packer sees it (palantir's `NodeSchedulingMetadata`).
///
/// Packing functions take `&[CandidateNode]` plus lists of indices into it, so the caller can
/// keep one slice of all nodes and never clone nodes per call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandidateNode {
    /// The node name (`metadata.name`); the last tie-breaker of the node order.
    pub name: String,
    /// The zone, normally [`zone_of`] the node's labels.
    pub zone: String,
    /// What pods may still request here: allocatable − reservations − pods without a
    /// reservation (overhead). May be negative in a dimension when the node is overcommitted.
    pub available: Resources,
    /// Allocatable − pods that are not managed by sparkgang (non-reservation overhead): the
    /// denominator of packing efficiency.
    pub schedulable: Resources,
    /// The node's `Ready` condition is `True`.
    pub ready: bool,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
    /// The node's labels, read by the optional label priority of the node order.
    pub labels: BTreeMap<String, String>,
}

impl CandidateNode {
    /// A ready, schedulable node without labels in `zone`.
    pub fn new(
        name: impl Into<String>,
        zone: impl Into<String>,
        available: Resources,
        schedulable: Resources,
    ) -> Self {
        CandidateNode {
            name: name.into(),
            zone: zone.into(),
            available,
            schedulable,
            ready: true,
            unschedulable: false,
            labels: BTreeMap::new(),
        }
    }

    /// A ready, schedulable node whose zone is read from `labels` with [`zone_of`].
    pub fn with_labels(
        name: impl Into<String>,
        labels: BTreeMap<String, String>,
        available: Resources,
        schedulable: Resources,
    ) -> Self {
        let zone = zone_of(&labels).to_owned();
        CandidateNode {
            labels,
            ..CandidateNode::new(name, zone, available, schedulable)
        }
    }

    /// May host executors: ready and not cordoned.
    pub fn accepts_executors(&self) -> bool {
        self.ready && !self.unschedulable
    }
}
