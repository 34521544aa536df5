//! Applications: their pods, their `ResourceReservation` and soft reservations, and the
//! conversion between the in-memory reservation and the API object.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::api::reservation::{
    DRIVER_SLOT, ReservationSlot, ResourceReservation, ResourceReservationSpec,
    ResourceReservationStatus,
};
use crate::api::{APP_ID_LABEL, PREEMPTING_ANNOTATION};
use crate::resources::{GpuResourceNames, Resources};

use super::keys::{AppKey, PodKey};

/// One reserved place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub node: String,
    pub resources: Resources,
    /// The pod bound to the slot, by name (it may since have finished or moved).
    pub pod: Option<String>,
}

/// An application's reservation, as held in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppReservation {
    /// `driver`, `executor-1`, ... → slot.
    pub slots: BTreeMap<String, Slot>,
    pub instance_group: Option<String>,
    /// The owning driver pod.
    pub driver_name: String,
    pub driver_uid: String,
    /// The API object's `resourceVersion`, once written or observed.
    pub resource_version: Option<String>,
    /// The pods evicted to make this room (`namespace/name/uid`), when it was taken by
    /// preemption: kept on the object so a restarted leader finishes evicting them.
    pub preempting: Vec<String>,
}

impl AppReservation {
    /// Executor slots (every slot but the driver's).
    pub fn executor_slots(&self) -> impl Iterator<Item = (&String, &Slot)> {
        self.slots.iter().filter(|(k, _)| k.as_str() != DRIVER_SLOT)
    }

    /// The driver's node.
    pub fn driver_node(&self) -> Option<&str> {
        self.slots.get(DRIVER_SLOT).map(|s| s.node.as_str())
    }

    /// The slot holding `pod`, if any.
    pub fn slot_of_pod(&self, pod: &str) -> Option<(&String, &Slot)> {
        self.slots
            .iter()
            .find(|(_, s)| s.pod.as_deref() == Some(pod))
    }

    /// Reads an API object. Slots with unreadable resources are an error naming the slot.
    pub fn from_object(
        rr: &ResourceReservation,
        gpus: &GpuResourceNames,
    ) -> Result<AppReservation, String> {
        let pods = rr.status.as_ref().map(|s| &s.pods);
        let mut slots = BTreeMap::new();
        for (name, slot) in &rr.spec.reservations {
            let resources = Resources::from_quantities(&slot.resources, gpus)
                .map_err(|e| format!("slot {name}: {e}"))?;
            slots.insert(
                name.clone(),
                Slot {
                    node: slot.node.clone(),
                    resources,
                    pod: pods.and_then(|p| p.get(name)).cloned(),
                },
            );
        }
        let owner = rr
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.kind == "Pod" && o.controller == Some(true));
        Ok(AppReservation {
            slots,
            instance_group: rr.spec.instance_group.clone(),
            driver_name: owner.map(|o| o.name.clone()).unwrap_or_default(),
            driver_uid: owner.map(|o| o.uid.clone()).unwrap_or_default(),
            resource_version: rr.metadata.resource_version.clone(),
            preempting: rr
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(PREEMPTING_ANNOTATION))
                .map(|v| {
                    v.split(',')
                        .filter(|p| !p.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// The API object for `app`, owned by its driver.
    pub fn to_object(&self, app: &AppKey, gpus: &GpuResourceNames) -> ResourceReservation {
        let spec = ResourceReservationSpec {
            app_id: app.app_id.clone(),
            instance_group: self.instance_group.clone(),
            reservations: self
                .slots
                .iter()
                .map(|(name, s)| {
                    (
                        name.clone(),
                        ReservationSlot {
                            node: s.node.clone(),
                            resources: s.resources.to_quantities(gpus.primary()),
                        },
                    )
                })
                .collect(),
        };
        let pods = self
            .slots
            .iter()
            .filter_map(|(name, s)| s.pod.clone().map(|p| (name.clone(), p)))
            .collect();
        let status = ResourceReservationStatus::summarise(&spec, pods);
        let mut labels = BTreeMap::new();
        labels.insert(APP_ID_LABEL.to_owned(), label_value(&app.app_id));
        ResourceReservation {
            metadata: ObjectMeta {
                name: Some(app.reservation_name()),
                namespace: Some(app.namespace.clone()),
                labels: Some(labels),
                annotations: (!self.preempting.is_empty()).then(|| {
                    BTreeMap::from([(PREEMPTING_ANNOTATION.to_owned(), self.preempting.join(","))])
                }),
                resource_version: self.resource_version.clone(),
                owner_references: Some(vec![OwnerReference {
                    api_version: "v1".to_owned(),
                    kind: "Pod".to_owned(),
                    name: self.driver_name.clone(),
                    uid: self.driver_uid.clone(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..ObjectMeta::default()
            },
            spec,
            status: Some(status),
        }
    }
}

/// A label value: at most 63 characters of `[A-Za-z0-9._-]`, alphanumeric at both ends.
fn label_value(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect();
    cleaned
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

/// A soft reservation: an executor above the minimum, placed where capacity was free.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoftSlot {
    pub node: String,
    pub resources: Resources,
}

/// Where the API object of a reservation stands relative to memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ReservationSync {
    /// Incremented on every in-memory change that must be written.
    pub desired: u64,
    /// The `desired` value last written successfully.
    pub written: u64,
    /// After a successful write: ignore watch events older than this resourceVersion.
    pub awaiting: Option<String>,
}

impl ReservationSync {
    pub fn has_unwritten_changes(&self) -> bool {
        self.desired != self.written
    }
}

/// Everything known about one application.
#[derive(Debug, Clone, Default)]
pub(super) struct AppEntry {
    pub driver: Option<PodKey>,
    pub executors: BTreeSet<PodKey>,
    pub reservation: Option<AppReservation>,
    pub soft: BTreeMap<String, SoftSlot>,
    /// Executors that ever held a soft reservation: a dead executor's late request must not
    /// take a new one.
    pub soft_seen: BTreeSet<String>,
    pub sync: ReservationSync,
    /// The driver's last filter call: outcome, message, when (for the explain API).
    pub last_decision: Option<(super::FilterOutcome, String, super::Timestamp)>,
    /// When this extender placed the gang.
    pub placed_at: Option<super::Timestamp>,
}

impl AppEntry {
    pub fn is_empty(&self) -> bool {
        self.driver.is_none()
            && self.executors.is_empty()
            && self.reservation.is_none()
            && self.soft.is_empty()
            && !self.sync.has_unwritten_changes()
    }
}
