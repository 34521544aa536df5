//! The gang driver loop (§6.2) and the single-zone wrapper (§6.6), with failure diagnosis.

use super::capacity::{bounded, capacity_in_dimension, executor_capacity};
use super::efficiency::zone_score;
use super::executors::{Distribution, Slot};
use super::failure::{PackingFailure, ResourceDimension};
use super::{Packing, PackingRequest, PackingResult};
use crate::resources::Resources;

/// Marks a node that is not an executor candidate in [`Packer::base`].
const NOT_EXECUTOR_CANDIDATE: i64 = -1;

/// One packing request with the executor candidates' capacities computed once.
pub(super) struct Packer<'r, 'a> {
    req: &'r PackingRequest<'a>,
    /// `req.executor_count` as a capacity.
    wanted: i64,
    /// Per node index: its capacity for executors with nothing placed, or
    /// [`NOT_EXECUTOR_CANDIDATE`].
    base: Vec<i64>,
    /// The executor candidates in priority order (valid indices, duplicates dropped), with
    /// their capacity when nothing is placed; nodes without room are kept for diagnosis.
    slots: Vec<Slot>,
}

impl<'r, 'a> Packer<'r, 'a> {
    pub(super) fn new(req: &'r PackingRequest<'a>) -> Self {
        let mut base = vec![NOT_EXECUTOR_CANDIDATE; req.nodes.len()];
        let mut slots = Vec::with_capacity(req.executor_order.len());
        for &n in req.executor_order {
            let (Some(node), Some(b)) = (req.nodes.get(n), base.get_mut(n)) else {
                continue;
            };
            if *b != NOT_EXECUTOR_CANDIDATE {
                continue;
            }
            let capacity = executor_capacity(node.available, Resources::ZERO, req.executor);
            *b = capacity;
            slots.push(Slot { node: n, capacity });
        }
        Packer {
            req,
            wanted: i64::try_from(req.executor_count).unwrap_or(i64::MAX),
            base,
            slots,
        }
    }

    /// The driver loop over all zones at once.
    pub(super) fn across_zones(&self, distribution: Distribution) -> PackingResult {
        let mut diagnosis = Diagnosis::default();
        match self.pack_scope(
            self.req.driver_order,
            &self.slots,
            distribution,
            &mut diagnosis,
            None,
        ) {
            Some(packing) => Ok(packing),
            None => Err(diagnosis.failure(self, |_| &self.slots, |_| None)),
        }
    }

    /// The driver loop once per zone (zones in order of first appearance among the driver
    /// candidates), each zone with only its own executor candidates; of the zones that fit,
    /// the one with the greatest [`zone_score`] wins, the earlier zone on ties. For tightly
    /// packing that is the mean efficiency of its chosen nodes with the gang placed; for
    /// minimal fragmentation, as in palantir, with only the driver placed: the zone whose
    /// chosen nodes were already the fullest, which keeps empty nodes empty.
    ///
    /// As in palantir, a zone without executor candidates is not a place for the gang, even
    /// with 0 executors: a single-zone application's executors belong in its driver's zone
    /// (later ones too, with `dynamic_executors_in_same_zone`), and that zone could host none.
    /// Checked against palantir by `common/tests/palantir_parity.rs`.
    ///
    /// One deliberate difference (palantir quirk 10): the first zone that fits is the
    /// baseline, so a packing is returned even when every efficiency is 0 (palantir compared
    /// against 0 and returned "no capacity").
    pub(super) fn single_zone(&self, distribution: Distribution) -> PackingResult {
        let nodes = self.req.nodes;
        let mut zones: Vec<&str> = Vec::new();
        let mut zone_drivers: Vec<Vec<usize>> = Vec::new();
        let mut hint = 0;
        for &d in self.req.driver_order {
            let Some(node) = nodes.get(d) else { continue };
            let z = match find_zone(&zones, &node.zone, &mut hint) {
                Some(z) => z,
                None => {
                    zones.push(&node.zone);
                    zone_drivers.push(Vec::new());
                    zones.len() - 1
                }
            };
            if let Some(drivers) = zone_drivers.get_mut(z) {
                drivers.push(d);
            }
        }
        let mut zone_slots: Vec<Vec<Slot>> = vec![Vec::new(); zones.len()];
        for slot in &self.slots {
            let Some(node) = nodes.get(slot.node) else {
                continue;
            };
            if let Some(slots) =
                find_zone(&zones, &node.zone, &mut hint).and_then(|z| zone_slots.get_mut(z))
            {
                slots.push(*slot);
            }
        }

        let mut diagnosis = Diagnosis::default();
        let mut best: Option<(Packing, f64)> = None;
        let mut without_executor_candidates: Vec<String> = Vec::new();
        for (z, (drivers, slots)) in zone_drivers.iter().zip(&zone_slots).enumerate() {
            let Some(packing) =
                self.pack_scope(drivers, slots, distribution, &mut diagnosis, Some(z))
            else {
                continue;
            };
            if slots.is_empty() {
                // Only a gang without executors fits in a zone without executor candidates.
                if let Some(zone) = zones.get(z) {
                    without_executor_candidates.push((*zone).to_owned());
                }
                continue;
            }
            let score = zone_score(
                nodes,
                packing.driver_node,
                packing.driver_request,
                &packing.executor_nodes,
                distribution.counted_in_zone_score(self.req.executor),
            );
            if best.as_ref().is_none_or(|(_, b)| score > *b) {
                best = Some((packing, score));
            }
        }
        best.map(|(packing, _)| packing).ok_or_else(|| {
            if !without_executor_candidates.is_empty() {
                return PackingFailure::OnlyZonesWithoutExecutorCandidates {
                    zones: without_executor_candidates,
                };
            }
            diagnosis.failure(
                self,
                |zone| {
                    zone.and_then(|z| zone_slots.get(z))
                        .map_or(&[], Vec::as_slice)
                },
                |zone| zone.and_then(|z| zones.get(z)).map(|z| (*z).to_owned()),
            )
        })
    }

    /// Palantir's `SparkBinPack`: the first driver candidate (in order) on which the driver
    /// fits and, with the driver there, all executors fit on `slots`.
    ///
    /// Executors fit exactly when the capacities add up to the count (for all three
    /// distributions), so each driver candidate is checked in O(1) and only the winner is
    /// distributed.
    fn pack_scope(
        &self,
        drivers: &[usize],
        slots: &[Slot],
        distribution: Distribution,
        diagnosis: &mut Diagnosis,
        zone: Option<usize>,
    ) -> Option<Packing> {
        let req = self.req;
        let wanted = self.wanted;
        let total = slots.iter().fold(0i64, |sum, s| {
            sum.saturating_add(bounded(s.capacity, wanted))
        });
        for &d in drivers {
            let Some(node) = req.nodes.get(d) else {
                continue;
            };
            diagnosis.driver_candidate(&node.available);
            if !req.driver.fits_in(&node.available) {
                continue;
            }
            let base = self
                .base
                .get(d)
                .copied()
                .unwrap_or(NOT_EXECUTOR_CANDIDATE)
                .max(0);
            let with_driver = if base > 0 {
                executor_capacity(node.available, req.driver, req.executor)
            } else {
                0
            };
            let placeable = total - bounded(base, wanted) + bounded(with_driver, wanted);
            if placeable >= wanted {
                let driver_slot = Slot {
                    node: d,
                    capacity: with_driver,
                };
                if let Some(executors) = distribution.place(slots, driver_slot, req.executor_count)
                {
                    return Some(Packing::new(req, d, executors));
                }
            }
            diagnosis.executors_short(placeable, d, zone);
        }
        None
    }
}

/// Finds `zone` in `zones`, trying `hint` first (nodes in priority order come zone by zone).
fn find_zone(zones: &[&str], zone: &str, hint: &mut usize) -> Option<usize> {
    if zones.get(*hint).is_some_and(|z| *z == zone) {
        return Some(*hint);
    }
    let found = zones.iter().position(|z| *z == zone)?;
    *hint = found;
    Some(found)
}

/// What went wrong, gathered while trying driver candidates.
#[derive(Default)]
struct Diagnosis {
    driver_candidates: usize,
    most_available: Option<Resources>,
    closest: Option<Closest>,
}

/// The driver candidate with which the most executors fitted.
struct Closest {
    placeable: i64,
    driver: usize,
    zone: Option<usize>,
}

impl Diagnosis {
    fn driver_candidate(&mut self, available: &Resources) {
        self.driver_candidates += 1;
        self.most_available = Some(match self.most_available {
            Some(m) => m.max(available),
            None => *available,
        });
    }

    fn executors_short(&mut self, placeable: i64, driver: usize, zone: Option<usize>) {
        if self
            .closest
            .as_ref()
            .is_none_or(|c| placeable > c.placeable)
        {
            self.closest = Some(Closest {
                placeable,
                driver,
                zone,
            });
        }
    }

    fn failure<'s>(
        self,
        packer: &Packer<'_, '_>,
        slots_of_zone: impl Fn(Option<usize>) -> &'s [Slot],
        zone_name: impl Fn(Option<usize>) -> Option<String>,
    ) -> PackingFailure {
        let req = packer.req;
        let Some(most_available) = self.most_available else {
            return PackingFailure::NoDriverCandidates;
        };
        let Some(closest) = self.closest else {
            return PackingFailure::DriverDoesNotFit {
                driver: req.driver,
                candidates: self.driver_candidates,
                most_available,
                short_in: ResourceDimension::ALL
                    .into_iter()
                    .filter(|d| d.of(&req.driver) > d.of(&most_available))
                    .collect(),
            };
        };
        let slots = slots_of_zone(closest.zone);
        PackingFailure::ExecutorsDoNotFit {
            requested: req.executor_count,
            placeable: usize::try_from(closest.placeable.max(0)).unwrap_or(usize::MAX),
            executor: req.executor,
            driver_node: req
                .nodes
                .get(closest.driver)
                .map(|n| n.name.clone())
                .unwrap_or_default(),
            zone: zone_name(closest.zone),
            short_in: ResourceDimension::ALL
                .into_iter()
                .filter(|dim| dimension_room(packer, slots, closest.driver, *dim) < packer.wanted)
                .collect(),
        }
    }
}

/// How many executors `slots` could hold counting only `dim`, with the driver on `driver`.
fn dimension_room(
    packer: &Packer<'_, '_>,
    slots: &[Slot],
    driver: usize,
    dim: ResourceDimension,
) -> i64 {
    let req = packer.req;
    slots
        .iter()
        .filter_map(|s| req.nodes.get(s.node).map(|n| (s.node, n)))
        .map(|(i, node)| {
            let reserved = if i == driver { dim.of(&req.driver) } else { 0 };
            let room =
                capacity_in_dimension(dim.of(&node.available), reserved, dim.of(&req.executor));
            bounded(room, packer.wanted)
        })
        .fold(0i64, i64::saturating_add)
}
