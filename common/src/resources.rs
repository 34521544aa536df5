//! `Resources` (cpu, memory, GPUs) and how pods request and nodes offer them.

use std::collections::BTreeMap;
use std::ops::{Add, AddAssign, Sub, SubAssign};

use k8s_openapi::api::core::v1::{Container, Node, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as KubeQuantity;
use serde::{Deserialize, Serialize};

use crate::quantities::{
    QuantityError, format_cpu_millis, format_memory_bytes, parse_count, parse_cpu_millis,
    parse_memory_bytes,
};

/// The default extended resource that counts as a GPU.
pub const DEFAULT_GPU_RESOURCE: &str = "nvidia.com/gpu";

/// An amount of the three resources sparkgang schedules: cpu in millicores, memory in bytes,
/// and GPUs (the sum over the configured extended resource names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    pub cpu_milli: i64,
    pub memory_bytes: i64,
    #[serde(default)]
    pub gpus: i64,
}

impl Resources {
    pub const ZERO: Resources = Resources {
        cpu_milli: 0,
        memory_bytes: 0,
        gpus: 0,
    };

    pub const fn new(cpu_milli: i64, memory_bytes: i64, gpus: i64) -> Self {
        Resources {
            cpu_milli,
            memory_bytes,
            gpus,
        }
    }

    /// True when every dimension of `self` is at most the same dimension of `available`.
    pub fn fits_in(&self, available: &Resources) -> bool {
        self.cpu_milli <= available.cpu_milli
            && self.memory_bytes <= available.memory_bytes
            && self.gpus <= available.gpus
    }

    /// `self + o`, saturating (sums of user-given limits, which may be huge).
    pub fn saturating_add(&self, o: &Resources) -> Resources {
        Resources {
            cpu_milli: self.cpu_milli.saturating_add(o.cpu_milli),
            memory_bytes: self.memory_bytes.saturating_add(o.memory_bytes),
            gpus: self.gpus.saturating_add(o.gpus),
        }
    }

    /// `self` times `n`, saturating.
    pub fn times(&self, n: i64) -> Resources {
        Resources {
            cpu_milli: self.cpu_milli.saturating_mul(n),
            memory_bytes: self.memory_bytes.saturating_mul(n),
            gpus: self.gpus.saturating_mul(n),
        }
    }

    /// Per-dimension maximum.
    pub fn max(&self, other: &Resources) -> Resources {
        Resources {
            cpu_milli: self.cpu_milli.max(other.cpu_milli),
            memory_bytes: self.memory_bytes.max(other.memory_bytes),
            gpus: self.gpus.max(other.gpus),
        }
    }

    /// Per dimension, how much `self` exceeds `allowance` (never negative).
    pub fn excess_over(&self, allowance: &Resources) -> Resources {
        Resources {
            cpu_milli: (self.cpu_milli - allowance.cpu_milli).max(0),
            memory_bytes: (self.memory_bytes - allowance.memory_bytes).max(0),
            gpus: (self.gpus - allowance.gpus).max(0),
        }
    }

    /// Per dimension, how much more than `available` `self` needs (never negative): what is
    /// missing for `self` to fit.
    pub fn shortfall(&self, available: &Resources) -> Resources {
        self.excess_over(available)
    }

    /// How many copies of `unit` fit in `self` (the minimum over dimensions that `unit` uses).
    /// A zero unit fits `i64::MAX` times; a negative remainder fits zero times.
    pub fn capacity_for(&self, unit: &Resources) -> i64 {
        fn dim(avail: i64, need: i64) -> i64 {
            if avail < 0 {
                0
            } else if need <= 0 {
                i64::MAX
            } else {
                avail / need
            }
        }
        dim(self.cpu_milli, unit.cpu_milli)
            .min(dim(self.memory_bytes, unit.memory_bytes))
            .min(dim(self.gpus, unit.gpus))
    }

    /// Kubernetes-style resource list with canonical quantities, GPUs under `gpu_name`.
    pub fn to_quantities(&self, gpu_name: &str) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("cpu".to_owned(), format_cpu_millis(self.cpu_milli));
        m.insert("memory".to_owned(), format_memory_bytes(self.memory_bytes));
        m.insert(gpu_name.to_owned(), self.gpus.to_string());
        m
    }

    /// Reads a resource list written by [`Resources::to_quantities`] (or by palantir).
    pub fn from_quantities(
        list: &BTreeMap<String, String>,
        gpus: &GpuResourceNames,
    ) -> Result<Resources, ResourceError> {
        let mut r = Resources::ZERO;
        for (name, value) in list {
            r.add_named(name, value, gpus)?;
        }
        Ok(r)
    }

    fn add_named(
        &mut self,
        name: &str,
        value: &str,
        gpus: &GpuResourceNames,
    ) -> Result<(), ResourceError> {
        let err = |source| ResourceError::Quantity {
            resource: name.to_owned(),
            source,
        };
        match name {
            "cpu" => self.cpu_milli += parse_cpu_millis(value).map_err(err)?,
            "memory" => self.memory_bytes += parse_memory_bytes(value).map_err(err)?,
            n if gpus.contains(n) => self.gpus += parse_count(value).map_err(err)?,
            _ => {}
        }
        Ok(())
    }
}

impl Add for Resources {
    type Output = Resources;
    fn add(self, o: Resources) -> Resources {
        Resources {
            cpu_milli: self.cpu_milli + o.cpu_milli,
            memory_bytes: self.memory_bytes + o.memory_bytes,
            gpus: self.gpus + o.gpus,
        }
    }
}

impl Sub for Resources {
    type Output = Resources;
    fn sub(self, o: Resources) -> Resources {
        Resources {
            cpu_milli: self.cpu_milli - o.cpu_milli,
            memory_bytes: self.memory_bytes - o.memory_bytes,
            gpus: self.gpus - o.gpus,
        }
    }
}

impl AddAssign for Resources {
    fn add_assign(&mut self, o: Resources) {
        *self = *self + o;
    }
}

impl SubAssign for Resources {
    fn sub_assign(&mut self, o: Resources) {
        *self = *self - o;
    }
}

impl std::iter::Sum for Resources {
    fn sum<I: Iterator<Item = Resources>>(iter: I) -> Resources {
        iter.fold(Resources::ZERO, Add::add)
    }
}

impl std::fmt::Display for Resources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cpu {}, memory {}",
            format_cpu_millis(self.cpu_milli),
            format_memory_bytes(self.memory_bytes)
        )?;
        if self.gpus != 0 {
            write!(f, ", gpus {}", self.gpus)?;
        }
        Ok(())
    }
}

/// The extended resource names counted as GPUs (config; default `nvidia.com/gpu`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GpuResourceNames(Vec<String>);

impl GpuResourceNames {
    pub fn new(names: impl IntoIterator<Item = String>) -> Self {
        GpuResourceNames(names.into_iter().collect())
    }
    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|n| n == name)
    }
    /// The name used when writing GPU amounts (the first configured).
    pub fn primary(&self) -> &str {
        self.0.first().map_or(DEFAULT_GPU_RESOURCE, String::as_str)
    }
    pub fn names(&self) -> &[String] {
        &self.0
    }
}

impl Default for GpuResourceNames {
    fn default() -> Self {
        GpuResourceNames(vec![DEFAULT_GPU_RESOURCE.to_owned()])
    }
}

/// A resource value in a pod or node that is not a valid quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    #[error("resource {resource}: {source}")]
    Quantity {
        resource: String,
        #[source]
        source: QuantityError,
    },
}

fn sum_list(
    list: Option<&BTreeMap<String, KubeQuantity>>,
    gpus: &GpuResourceNames,
) -> Result<Resources, ResourceError> {
    let mut r = Resources::ZERO;
    for (name, q) in list.into_iter().flatten() {
        r.add_named(name, &q.0, gpus)?;
    }
    Ok(r)
}

/// What one container requests; a limit without a request counts as the request (as the API
/// server defaults it).
pub fn container_requests(
    c: &Container,
    gpus: &GpuResourceNames,
) -> Result<Resources, ResourceError> {
    requirements(c.resources.as_ref(), gpus)
}

fn requirements(
    rr: Option<&ResourceRequirements>,
    gpus: &GpuResourceNames,
) -> Result<Resources, ResourceError> {
    let Some(rr) = rr else {
        return Ok(Resources::ZERO);
    };
    let mut merged: BTreeMap<String, KubeQuantity> = rr.limits.clone().unwrap_or_default();
    for (k, v) in rr.requests.iter().flatten() {
        merged.insert(k.clone(), v.clone());
    }
    sum_list(Some(&merged), gpus)
}

/// The effective request of a pod, as kube-scheduler computes it:
/// `max(sum of containers + restartable init containers, each init container plus the
/// restartable init containers before it) + spec.overhead`.
pub fn pod_requests(spec: &PodSpec, gpus: &GpuResourceNames) -> Result<Resources, ResourceError> {
    let mut containers = Resources::ZERO;
    for c in &spec.containers {
        containers += container_requests(c, gpus)?;
    }
    let mut sidecars = Resources::ZERO;
    let mut init_peak = Resources::ZERO;
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c, gpus)?;
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars += r;
            init_peak = init_peak.max(&sidecars);
        } else {
            init_peak = init_peak.max(&(sidecars + r));
        }
    }
    let overhead = sum_list(spec.overhead.as_ref(), gpus)?;
    Ok((containers + sidecars).max(&init_peak) + overhead)
}

/// What a node offers to pods: `status.allocatable` (missing keys are zero).
pub fn node_allocatable(node: &Node, gpus: &GpuResourceNames) -> Result<Resources, ResourceError> {
    sum_list(
        node.status.as_ref().and_then(|s| s.allocatable.as_ref()),
        gpus,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn sums_containers_and_counts_limits_without_requests() {
        let s = spec(json!({"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "1", "memory": "1408Mi"}, "limits": {"memory": "1408Mi", "nvidia.com/gpu": "1"}}},
            {"name": "b", "resources": {"requests": {"cpu": "250m"}}}
        ]}));
        let r = pod_requests(&s, &GpuResourceNames::default()).unwrap();
        assert_eq!(r, Resources::new(1250, 1408 << 20, 1));
    }

    #[test]
    fn init_containers_and_overhead() {
        let s = spec(json!({
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "4", "memory": "1Gi"}}}],
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}}],
            "overhead": {"cpu": "100m", "memory": "64Mi"}
        }));
        let r = pod_requests(&s, &GpuResourceNames::default()).unwrap();
        assert_eq!(r, Resources::new(4100, (2 << 30) + (64 << 20), 0));
    }

    #[test]
    fn restartable_init_containers_are_sidecars() {
        let s = spec(json!({
            "initContainers": [
                {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "500m"}}},
                {"name": "init", "resources": {"requests": {"cpu": "2"}}}
            ],
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}]
        }));
        let r = pod_requests(&s, &GpuResourceNames::default()).unwrap();
        // max(1 + 0.5, 0.5 + 2) = 2.5
        assert_eq!(r.cpu_milli, 2500);
    }

    #[test]
    fn configured_gpu_names_are_summed() {
        let s = spec(json!({"containers": [
            {"name": "a", "resources": {"limits": {"amd.com/gpu": "2", "nvidia.com/gpu": "1"}}}
        ]}));
        let names = GpuResourceNames::new(["amd.com/gpu".to_owned()]);
        assert_eq!(pod_requests(&s, &names).unwrap().gpus, 2);
        assert_eq!(
            pod_requests(&s, &GpuResourceNames::default()).unwrap().gpus,
            1
        );
    }

    #[test]
    fn capacity_is_the_tightest_dimension() {
        let avail = Resources::new(8000, 10 << 30, 2);
        assert_eq!(avail.capacity_for(&Resources::new(2000, 1 << 30, 0)), 4);
        assert_eq!(avail.capacity_for(&Resources::new(1000, 4 << 30, 0)), 2);
        assert_eq!(avail.capacity_for(&Resources::new(1000, 1, 1)), 2);
        assert_eq!(avail.capacity_for(&Resources::ZERO), i64::MAX);
        assert_eq!(
            Resources::new(-1, 0, 0).capacity_for(&Resources::new(1, 0, 0)),
            0
        );
    }

    #[test]
    fn quantity_lists_round_trip() {
        let r = Resources::new(3500, 9216 << 20, 1);
        let q = r.to_quantities("nvidia.com/gpu");
        assert_eq!(q["cpu"], "3500m");
        assert_eq!(q["memory"], "9Gi");
        assert_eq!(
            Resources::from_quantities(&q, &GpuResourceNames::default()).unwrap(),
            r
        );
    }
}
