//! The gang Spark 4.x will request for a conf: driver and executor pod sizes and executor counts.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::gang_demand::GangDemand;
use crate::resources::{GpuResourceNames, Resources};

use super::{SPARK_INT_FORMS, SparkConf, SparkConfError, invalid, keys, out_of_range};

impl SparkConf {
    /// The gang demand Spark 4.x will create from this conf (default resource profile).
    ///
    /// Driver: cpu = `spark.kubernetes.driver.request.cores` (a quantity) else
    /// `spark.driver.cores` (default 1); memory = `spark.driver.memory` (default 1g) + overhead,
    /// overhead = `spark.driver.memoryOverhead` else
    /// `max((factor * memoryMiB).toInt, spark.driver.minMemoryOverhead (384m))`, factor =
    /// `spark.driver.memoryOverheadFactor` else `spark.kubernetes.memoryOverheadFactor` else 0.4
    /// for Python/R apps (`spark.kubernetes.resource.type`), 0.1 otherwise.
    ///
    /// Executor: cpu = `spark.kubernetes.executor.request.cores` else `spark.executor.cores`
    /// (default 1); memory = `spark.executor.memory` (default 1g) plus the overhead (executor keys;
    /// factor = `spark.executor.memoryOverheadFactor` else `spark.kubernetes.memoryOverheadFactor`),
    /// plus `spark.memory.offHeap.size` when off-heap is enabled, plus
    /// `spark.executor.pyspark.memory` for Python apps. Spark's executor code has no 0.4 default of
    /// its own: in cluster mode the driver writes its default factor into
    /// `spark.kubernetes.memoryOverheadFactor` (so a driver's ConfigMap always carries it); when it
    /// is absent we apply the driver's rule only for `spark.submit.deployMode=cluster` and use 0.1
    /// otherwise (client mode, where no driver step runs).
    ///
    /// GPUs: `spark.{driver,executor}.resource.<name>.amount` (> 0) with `.vendor`; the Kubernetes
    /// resource is `<vendor>/<name>` and counts as GPUs when it is in `gpus`.
    ///
    /// Executors: static: `spark.executor.instances` (default 2), min = max. Dynamic allocation:
    /// `min_executors` is the **initial target** `max(minExecutors, initialExecutors, instances)`,
    /// the executors the driver creates at once, so the gang reserves those; the floor
    /// `spark.dynamicAllocation.minExecutors` is in [`ConfDemand::dynamic_min_executors`];
    /// `max_executors` = `spark.dynamicAllocation.maxExecutors`, default Spark's `Int.MaxValue`
    /// ([`UNBOUNDED_EXECUTORS`]).
    pub fn demand(&self, gpus: &GpuResourceNames) -> Result<ConfDemand, SparkConfError> {
        let resource_type = self.resource_type()?;
        let (driver, driver_custom_resources) =
            self.role_resources(&DRIVER_KEYS, resource_type, gpus)?;
        let (executor, executor_custom_resources) =
            self.role_resources(&EXECUTOR_KEYS, resource_type, gpus)?;
        let counts = self.executor_counts()?;

        let allocation_batch_size = match self.get_int(keys::BATCH_SIZE)? {
            None => 5,
            Some(n) if n > 0 => n as u32,
            Some(_) => {
                return Err(out_of_range(
                    keys::BATCH_SIZE,
                    self.get(keys::BATCH_SIZE).unwrap_or_default(),
                    "a whole number ≥ 1",
                ));
            }
        };
        let allocation_batch_delay_ms = match self.get_time_ms(keys::BATCH_DELAY)? {
            None => 1000,
            Some(ms) if ms > 0 => ms,
            Some(_) => {
                return Err(out_of_range(
                    keys::BATCH_DELAY,
                    self.get(keys::BATCH_DELAY).unwrap_or_default(),
                    "a positive time such as 1s",
                ));
            }
        };

        let global_selector = self.prefixed_map(keys::NODE_SELECTOR_PREFIX);
        let mut driver_node_selector = global_selector.clone();
        driver_node_selector.extend(self.prefixed_map(keys::DRIVER_NODE_SELECTOR_PREFIX));
        let mut executor_node_selector = global_selector;
        executor_node_selector.extend(self.prefixed_map(keys::EXECUTOR_NODE_SELECTOR_PREFIX));
        let scheduler_name = self.get(keys::SCHEDULER_NAME);

        Ok(ConfDemand {
            demand: GangDemand {
                driver,
                executor,
                min_executors: counts.initial,
                max_executors: counts.max,
            },
            dynamic_allocation: counts.dynamic,
            dynamic_min_executors: counts.floor,
            resource_type,
            deploy_mode: self.get(keys::DEPLOY_MODE).map(str::to_owned),
            app_id: self.get(keys::APP_ID).map(str::to_owned),
            app_name: self.get(keys::APP_NAME).map(str::to_owned),
            namespace: self.get(keys::NAMESPACE).unwrap_or("default").to_owned(),
            driver_scheduler_name: self
                .get(keys::DRIVER_SCHEDULER_NAME)
                .or(scheduler_name)
                .map(str::to_owned),
            executor_scheduler_name: self
                .get(keys::EXECUTOR_SCHEDULER_NAME)
                .or(scheduler_name)
                .map(str::to_owned),
            driver_node_selector,
            executor_node_selector,
            driver_annotations: self.prefixed_map(keys::DRIVER_ANNOTATION_PREFIX),
            executor_labels: self.prefixed_map(keys::EXECUTOR_LABEL_PREFIX),
            driver_custom_resources,
            executor_custom_resources,
            allocation_batch_size,
            allocation_batch_delay_ms,
        })
    }

    fn is_cluster_mode(&self) -> bool {
        self.get(keys::DEPLOY_MODE) == Some("cluster")
    }

    /// An overhead factor; `strictly_positive` for the per-role keys (Spark: `> 0`), else `>= 0`.
    fn overhead_factor(
        &self,
        key: &str,
        strictly_positive: bool,
    ) -> Result<Option<f64>, SparkConfError> {
        let Some(factor) = self.get_double(key)? else {
            return Ok(None);
        };
        let ok = if strictly_positive {
            factor > 0.0
        } else {
            factor >= 0.0
        };
        if ok {
            Ok(Some(factor))
        } else {
            Err(out_of_range(
                key,
                self.get(key).unwrap_or_default(),
                if strictly_positive {
                    "a number > 0"
                } else {
                    "a number ≥ 0"
                },
            ))
        }
    }

    /// `defaultOverheadFactor` of BasicDriverFeatureStep.
    fn driver_default_factor(
        &self,
        resource_type: Option<AppResourceType>,
    ) -> Result<f64, SparkConfError> {
        let shared = self.overhead_factor(keys::K8S_OVERHEAD_FACTOR, false)?;
        Ok(
            match (
                shared,
                resource_type.is_some_and(AppResourceType::is_non_jvm),
            ) {
                (Some(f), _) => f,
                (None, true) => NON_JVM_OVERHEAD_FACTOR,
                (None, false) => JVM_OVERHEAD_FACTOR,
            },
        )
    }

    fn role_overhead_factor(
        &self,
        role: &RoleKeys,
        resource_type: Option<AppResourceType>,
    ) -> Result<f64, SparkConfError> {
        if let Some(f) = self.overhead_factor(role.overhead_factor, true)? {
            return Ok(f);
        }
        if role.is_driver || self.is_cluster_mode() {
            return self.driver_default_factor(resource_type);
        }
        Ok(self
            .overhead_factor(keys::K8S_OVERHEAD_FACTOR, false)?
            .unwrap_or(JVM_OVERHEAD_FACTOR))
    }

    /// cpu, memory and GPUs of one pod of `role`, plus every custom resource by Kubernetes name.
    fn role_resources(
        &self,
        role: &RoleKeys,
        resource_type: Option<AppResourceType>,
        gpus: &GpuResourceNames,
    ) -> Result<(Resources, BTreeMap<String, i64>), SparkConfError> {
        let cpu_milli = match self.get_cpu_millis(role.request_cores)? {
            Some(m) => m,
            None => {
                let cores = self.get_int(role.cores)?.unwrap_or(1);
                if cores < role.min_cores {
                    return Err(out_of_range(
                        role.cores,
                        self.get(role.cores).unwrap_or_default(),
                        format!("a whole number ≥ {}", role.min_cores),
                    ));
                }
                i64::from(cores) * 1000
            }
        };

        let memory_mib = self.get_size_mib(role.memory)?.unwrap_or(1024);
        let explicit_overhead = self.get_size_mib(role.overhead)?;
        let min_overhead = self
            .get_size_mib(role.min_overhead)?
            .unwrap_or(DEFAULT_MIN_OVERHEAD_MIB);
        let overhead_mib = match explicit_overhead {
            Some(mib) => mib,
            None => {
                let factor = self.role_overhead_factor(role, resource_type)?;
                // Scala's `(factor * memoryMiB).toInt`: truncation toward zero, saturating.
                let scaled = (factor * memory_mib as f64) as i32;
                u64::try_from(scaled).unwrap_or(0).max(min_overhead)
            }
        };
        let mut total_mib = u128::from(memory_mib) + u128::from(overhead_mib);
        if !role.is_driver {
            total_mib += u128::from(self.off_heap_mib()?);
            let pyspark = self.get_size_mib(keys::PYSPARK_MEMORY)?.unwrap_or(0);
            if resource_type == Some(AppResourceType::Python) {
                total_mib += u128::from(pyspark);
            }
        }
        let memory_bytes = i64::try_from(total_mib << 20).map_err(|_| {
            out_of_range(
                role.memory,
                self.get(role.memory).unwrap_or("1g"),
                "a total memory (with overhead) below 8 EiB",
            )
        })?;

        let custom = self.custom_resources(role.resource_prefix)?;
        let gpu_count = custom
            .iter()
            .filter(|(name, _)| gpus.contains(name))
            .map(|(_, amount)| *amount)
            .sum();
        Ok((Resources::new(cpu_milli, memory_bytes, gpu_count), custom))
    }

    /// `Utils.executorOffHeapMemorySizeAsMb`: the size is always validated; it counts only when
    /// `spark.memory.offHeap.enabled` (alternative `spark.unsafe.offHeap`) is true, and must then be
    /// at least 1 MiB.
    fn off_heap_mib(&self) -> Result<u64, SparkConfError> {
        let size_mib = self.get_byte_size_as_mib(keys::OFF_HEAP_SIZE)?.unwrap_or(0);
        let enabled_key = if self.contains(keys::OFF_HEAP_ENABLED) {
            keys::OFF_HEAP_ENABLED
        } else {
            keys::OFF_HEAP_ENABLED_ALTERNATIVE
        };
        if !self.get_bool(enabled_key)?.unwrap_or(false) {
            return Ok(0);
        }
        if size_mib == 0 {
            return Err(SparkConfError::Missing {
                key: enabled_key.to_owned(),
                value: self.get(enabled_key).unwrap_or_default().to_owned(),
                required_key: keys::OFF_HEAP_SIZE.to_owned(),
                accepted: "a size of at least 1 MiB, such as 2g, when off-heap memory is enabled"
                    .to_owned(),
            });
        }
        Ok(size_mib)
    }

    /// `spark.<role>.resource.<name>.{amount,vendor}` → Kubernetes name `<vendor>/<name>` → amount,
    /// like `ResourceUtils.parseAllResourceRequests` (amounts ≤ 0 are dropped) and
    /// `KubernetesUtils.buildResourcesQuantities` (a vendor is required).
    fn custom_resources(&self, prefix: &str) -> Result<BTreeMap<String, i64>, SparkConfError> {
        let mut names: BTreeSet<&str> = BTreeSet::new();
        for (rest, value) in self.with_prefix(prefix) {
            match rest.split_once('.') {
                Some((name, _)) => {
                    names.insert(name);
                }
                None => {
                    return Err(invalid(
                        &format!("{prefix}{rest}"),
                        value,
                        format!("keys of the form {prefix}<name>.amount and {prefix}<name>.vendor"),
                    ));
                }
            }
        }
        let mut resources = BTreeMap::new();
        for name in names {
            let amount_key = format!("{prefix}{name}.amount");
            let vendor_key = format!("{prefix}{name}.vendor");
            let Some(raw_amount) = self.get(&amount_key) else {
                let (first_key, first_value) = self
                    .with_prefix(prefix)
                    .find(|(rest, _)| rest.split_once('.').is_some_and(|(n, _)| n == name))
                    .map(|(rest, v)| (format!("{prefix}{rest}"), v.to_owned()))
                    .unwrap_or_default();
                return Err(SparkConfError::Missing {
                    key: first_key,
                    value: first_value,
                    required_key: amount_key,
                    accepted: "a whole number of units, such as 1".to_owned(),
                });
            };
            // `ResourceUtils.parseResourceRequest`: `.toInt`, no trimming.
            let amount: i32 = raw_amount
                .parse()
                .map_err(|_| invalid(&amount_key, raw_amount, SPARK_INT_FORMS))?;
            if amount <= 0 {
                continue;
            }
            let vendor = self.get(&vendor_key).filter(|v| !v.is_empty()).ok_or_else(|| {
                SparkConfError::Missing {
                    key: amount_key.clone(),
                    value: raw_amount.to_owned(),
                    required_key: vendor_key.clone(),
                    accepted: format!(
                        "the vendor domain of the Kubernetes resource <vendor>/{name}, such as nvidia.com"
                    ),
                }
            })?;
            *resources.entry(format!("{vendor}/{name}")).or_insert(0) += i64::from(amount);
        }
        Ok(resources)
    }

    /// `SchedulerBackendUtils.getInitialTargetExecutorNumber` plus the checks of
    /// `ExecutorAllocationManager.validateSettings`.
    fn executor_counts(&self) -> Result<ExecutorCounts, SparkConfError> {
        let raw = |key: &str| self.get(key).unwrap_or_default().to_owned();
        let instances = self.get_int(keys::INSTANCES)?;
        if let Some(n) = instances
            && n < 0
        {
            return Err(out_of_range(
                keys::INSTANCES,
                &raw(keys::INSTANCES),
                "a whole number ≥ 0",
            ));
        }
        if !self.get_bool(keys::DA_ENABLED)?.unwrap_or(false) {
            let n = instances.map_or(DEFAULT_EXECUTOR_INSTANCES, |n| n as u32);
            return Ok(ExecutorCounts {
                dynamic: false,
                initial: n,
                floor: n,
                max: n,
            });
        }
        let min = self.get_int(keys::DA_MIN)?.unwrap_or(0);
        let initial_setting = self.get_int(keys::DA_INITIAL)?.unwrap_or(min);
        let max = self.get_int(keys::DA_MAX)?.unwrap_or(i32::MAX);
        if min < 0 {
            return Err(out_of_range(
                keys::DA_MIN,
                &raw(keys::DA_MIN),
                "a whole number ≥ 0",
            ));
        }
        if max <= 0 {
            return Err(out_of_range(
                keys::DA_MAX,
                &raw(keys::DA_MAX),
                "a whole number ≥ 1",
            ));
        }
        if min > max {
            return Err(SparkConfError::Conflict {
                key: keys::DA_MIN.to_owned(),
                value: raw(keys::DA_MIN),
                other_key: keys::DA_MAX.to_owned(),
                other_value: raw(keys::DA_MAX),
                rule: "minExecutors ≤ maxExecutors".to_owned(),
            });
        }
        let from_instances = instances.unwrap_or(0);
        let initial = min.max(initial_setting).max(from_instances);
        if initial > max {
            let key = if from_instances == initial {
                keys::INSTANCES
            } else {
                keys::DA_INITIAL
            };
            return Err(SparkConfError::Conflict {
                key: key.to_owned(),
                value: raw(key),
                other_key: keys::DA_MAX.to_owned(),
                other_value: raw(keys::DA_MAX),
                rule: "the initial executors max(minExecutors, initialExecutors, spark.executor.instances) \
                       must not exceed maxExecutors"
                    .to_owned(),
            });
        }
        Ok(ExecutorCounts {
            dynamic: true,
            initial: initial as u32,
            floor: min as u32,
            max: max as u32,
        })
    }
}

/// `spark.dynamicAllocation.maxExecutors` when unset: Spark's `Int.MaxValue`, i.e. no upper bound.
pub const UNBOUNDED_EXECUTORS: u32 = i32::MAX as u32;

const DEFAULT_EXECUTOR_INSTANCES: u32 = 2;
const DEFAULT_MIN_OVERHEAD_MIB: u64 = 384;
const JVM_OVERHEAD_FACTOR: f64 = 0.1;
const NON_JVM_OVERHEAD_FACTOR: f64 = 0.4;

/// The per-role keys of the cpu/memory/resource formulas.
struct RoleKeys {
    is_driver: bool,
    cores: &'static str,
    min_cores: i32,
    request_cores: &'static str,
    memory: &'static str,
    overhead: &'static str,
    overhead_factor: &'static str,
    min_overhead: &'static str,
    resource_prefix: &'static str,
}

const DRIVER_KEYS: RoleKeys = RoleKeys {
    is_driver: true,
    cores: "spark.driver.cores",
    min_cores: 0,
    request_cores: "spark.kubernetes.driver.request.cores",
    memory: "spark.driver.memory",
    overhead: "spark.driver.memoryOverhead",
    overhead_factor: "spark.driver.memoryOverheadFactor",
    min_overhead: "spark.driver.minMemoryOverhead",
    resource_prefix: "spark.driver.resource.",
};

const EXECUTOR_KEYS: RoleKeys = RoleKeys {
    is_driver: false,
    cores: "spark.executor.cores",
    min_cores: 1,
    request_cores: "spark.kubernetes.executor.request.cores",
    memory: "spark.executor.memory",
    overhead: "spark.executor.memoryOverhead",
    overhead_factor: "spark.executor.memoryOverheadFactor",
    min_overhead: "spark.executor.minMemoryOverhead",
    resource_prefix: "spark.executor.resource.",
};

struct ExecutorCounts {
    dynamic: bool,
    initial: u32,
    floor: u32,
    max: u32,
}

/// The main resource type Spark records in `spark.kubernetes.resource.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AppResourceType {
    Java,
    Python,
    R,
}

impl AppResourceType {
    /// Python and R apps get the 0.4 default overhead factor.
    pub fn is_non_jvm(self) -> bool {
        matches!(self, AppResourceType::Python | AppResourceType::R)
    }
}

/// What a Spark conf says about the gang, plus what the extender and simulator need besides.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfDemand {
    /// Driver, one executor, and executors to reserve (`min_executors` is the initial target
    /// under dynamic allocation; see [`SparkConf::demand`]).
    pub demand: GangDemand,
    /// `spark.dynamicAllocation.enabled`.
    pub dynamic_allocation: bool,
    /// The dynamic-allocation floor `spark.dynamicAllocation.minExecutors` (equals the count when
    /// static).
    pub dynamic_min_executors: u32,
    pub resource_type: Option<AppResourceType>,
    /// `spark.submit.deployMode` (`cluster` in a driver's ConfigMap).
    pub deploy_mode: Option<String>,
    pub app_id: Option<String>,
    pub app_name: Option<String>,
    /// `spark.kubernetes.namespace` (default `default`).
    pub namespace: String,
    /// `spark.kubernetes.driver.scheduler.name` else `spark.kubernetes.scheduler.name`.
    pub driver_scheduler_name: Option<String>,
    /// `spark.kubernetes.executor.scheduler.name` else `spark.kubernetes.scheduler.name`.
    pub executor_scheduler_name: Option<String>,
    /// `spark.kubernetes.node.selector.*` overlaid with `spark.kubernetes.driver.node.selector.*`.
    pub driver_node_selector: BTreeMap<String, String>,
    /// `spark.kubernetes.node.selector.*` overlaid with `spark.kubernetes.executor.node.selector.*`.
    pub executor_node_selector: BTreeMap<String, String>,
    /// `spark.kubernetes.driver.annotation.*` (raw; Spark substitutes `{{APP_ID}}` later).
    pub driver_annotations: BTreeMap<String, String>,
    /// `spark.kubernetes.executor.label.*`: labels Spark puts on every executor pod (its own
    /// `spark-*` labels win).
    pub executor_labels: BTreeMap<String, String>,
    /// Every extended resource of the driver (`<vendor>/<name>` → amount), GPUs or not.
    pub driver_custom_resources: BTreeMap<String, i64>,
    /// Every extended resource of one executor.
    pub executor_custom_resources: BTreeMap<String, i64>,
    /// `spark.kubernetes.allocation.batch.size` (default 5): executors created per round.
    pub allocation_batch_size: u32,
    /// `spark.kubernetes.allocation.batch.delay` in ms (default 1000): pause between rounds.
    pub allocation_batch_delay_ms: i64,
}
