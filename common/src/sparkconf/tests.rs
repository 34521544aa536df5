//! Tests of `SparkConf`: typed getters and Spark's pod sizing.

use super::*;
use crate::resources::{GpuResourceNames, Resources};

const MIB: i64 = 1 << 20;

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn properties_written_by_spark_read_back() {
    let text = "#Java properties built from Kubernetes config map with name: spark-drv-1-conf-map\n\
                #Wed Nov 25 17:08:00 UTC 2026\n\
                spark.executor.memory=4g\n\
                spark.master=k8s\\://http\\://127.0.0.1\\:18081\n\
                spark.submit.pyFiles=\n";
    let conf = SparkConf::parse(text).unwrap();
    assert_eq!(conf.get("spark.executor.memory"), Some("4g"));
    assert_eq!(
        conf.get("spark.master"),
        Some("k8s://http://127.0.0.1:18081")
    );
    assert_eq!(conf.get("spark.submit.pyFiles"), Some(""));
    assert_eq!(conf.as_map().len(), 3);
}

fn conf(pairs: &[(&str, &str)]) -> SparkConf {
    pairs.iter().copied().collect()
}

fn demand(pairs: &[(&str, &str)]) -> ConfDemand {
    conf(pairs).demand(&GpuResourceNames::default()).unwrap()
}

fn demand_err(pairs: &[(&str, &str)]) -> SparkConfError {
    conf(pairs)
        .demand(&GpuResourceNames::default())
        .unwrap_err()
}

#[test]
fn defaults_match_spark() {
    let d = demand(&[]);
    assert_eq!(d.demand.driver, Resources::new(1000, 1408 * MIB, 0));
    assert_eq!(d.demand.executor, Resources::new(1000, 1408 * MIB, 0));
    assert_eq!((d.demand.min_executors, d.demand.max_executors), (2, 2));
    assert!(!d.dynamic_allocation);
    assert_eq!(d.allocation_batch_size, 5);
    assert_eq!(d.allocation_batch_delay_ms, 1000);
    assert_eq!(d.namespace, "default");
}

#[test]
fn driver_cpu_prefers_request_cores() {
    for (pairs, want) in [
        (vec![("spark.driver.cores", "3")], 3000),
        (vec![("spark.driver.cores", " 3 ")], 3000),
        (vec![("spark.kubernetes.driver.request.cores", "500m")], 500),
        (
            vec![
                ("spark.kubernetes.driver.request.cores", "1.5"),
                ("spark.driver.cores", "4"),
            ],
            1500,
        ),
    ] {
        assert_eq!(demand(&pairs).demand.driver.cpu_milli, want, "{pairs:?}");
    }
}

#[test]
fn executor_cpu_prefers_request_cores() {
    for (pairs, want) in [
        (vec![("spark.executor.cores", "4")], 4000),
        (
            vec![
                ("spark.kubernetes.executor.request.cores", "3500m"),
                ("spark.executor.cores", "4"),
            ],
            3500,
        ),
        (
            vec![("spark.kubernetes.executor.request.cores", "0.25")],
            250,
        ),
    ] {
        assert_eq!(demand(&pairs).demand.executor.cpu_milli, want, "{pairs:?}");
    }
}

#[test]
fn memory_overhead_rules() {
    // (settings, driver MiB, executor MiB)
    for (pairs, driver_mib, executor_mib) in [
        // minimum 384 dominates below 3840 MiB; 10% above, truncated.
        (
            vec![
                ("spark.driver.memory", "1g"),
                ("spark.executor.memory", "2g"),
            ],
            1024 + 384,
            2048 + 384,
        ),
        (
            vec![
                ("spark.driver.memory", "4g"),
                ("spark.executor.memory", "4g"),
            ],
            4096 + 409,
            4096 + 409,
        ),
        (vec![("spark.executor.memory", "3841m")], 1408, 3841 + 384),
        (vec![("spark.executor.memory", "3850")], 1408, 3850 + 385),
        (vec![("spark.executor.memory", "3859m")], 1408, 3859 + 385),
        // shared factor applies to both roles.
        (
            vec![
                ("spark.kubernetes.memoryOverheadFactor", "0.25"),
                ("spark.executor.memory", "4g"),
                ("spark.driver.memory", "2g"),
            ],
            2048 + 512,
            4096 + 1024,
        ),
        // per-role factor beats the shared one.
        (
            vec![
                ("spark.kubernetes.memoryOverheadFactor", "0.25"),
                ("spark.driver.memoryOverheadFactor", "0.5"),
                ("spark.executor.memoryOverheadFactor", "0.2"),
                ("spark.driver.memory", "2g"),
                ("spark.executor.memory", "4g"),
            ],
            2048 + 1024,
            4096 + 819,
        ),
        // explicit overhead beats every factor and the minimum.
        (
            vec![
                ("spark.driver.memoryOverhead", "100m"),
                ("spark.driver.memoryOverheadFactor", "0.5"),
                ("spark.executor.memoryOverhead", "1g"),
                ("spark.executor.minMemoryOverhead", "2g"),
            ],
            1024 + 100,
            1024 + 1024,
        ),
        (vec![("spark.executor.memoryOverhead", "0")], 1408, 1024),
        // configurable minimum (Spark 4.0).
        (
            vec![
                ("spark.driver.minMemoryOverhead", "1g"),
                ("spark.executor.minMemoryOverhead", "500m"),
            ],
            1024 + 1024,
            1024 + 500,
        ),
        (
            vec![
                ("spark.executor.minMemoryOverhead", "0"),
                ("spark.executor.memory", "1000m"),
            ],
            1408,
            1000 + 100,
        ),
    ] {
        let d = demand(&pairs);
        assert_eq!(
            d.demand.driver.memory_bytes,
            driver_mib * MIB,
            "driver {pairs:?}"
        );
        assert_eq!(
            d.demand.executor.memory_bytes,
            executor_mib * MIB,
            "executor {pairs:?}"
        );
    }
}

#[test]
fn non_jvm_default_factor() {
    // Python/R: the driver uses 0.4 unless the shared factor is set.
    for (pairs, driver_mib, executor_mib) in [
        (
            vec![
                ("spark.kubernetes.resource.type", "python"),
                ("spark.driver.memory", "2g"),
                ("spark.executor.memory", "2g"),
            ],
            2048 + 819,
            2048 + 384,
        ),
        (
            vec![
                ("spark.kubernetes.resource.type", "r"),
                ("spark.driver.memory", "2g"),
            ],
            2048 + 819,
            1408,
        ),
        (
            vec![
                ("spark.kubernetes.resource.type", "java"),
                ("spark.driver.memory", "2g"),
            ],
            2048 + 384,
            1408,
        ),
        (
            vec![
                ("spark.kubernetes.resource.type", "python"),
                ("spark.kubernetes.memoryOverheadFactor", "0.1"),
                ("spark.driver.memory", "8g"),
            ],
            8192 + 819,
            1408,
        ),
        // cluster mode: executors see what the driver writes into the shared factor.
        (
            vec![
                ("spark.kubernetes.resource.type", "python"),
                ("spark.submit.deployMode", "cluster"),
                ("spark.executor.memory", "2g"),
            ],
            1024 + 409,
            2048 + 819,
        ),
        (
            vec![
                ("spark.kubernetes.resource.type", "java"),
                ("spark.submit.deployMode", "cluster"),
                ("spark.executor.memory", "8g"),
            ],
            1408,
            8192 + 819,
        ),
        // client mode: no driver step, executors use the shared factor or 0.1.
        (
            vec![
                ("spark.kubernetes.resource.type", "python"),
                ("spark.submit.deployMode", "client"),
                ("spark.executor.memory", "8g"),
            ],
            1024 + 409,
            8192 + 819,
        ),
        (
            vec![
                ("spark.kubernetes.resource.type", "python"),
                ("spark.submit.deployMode", "client"),
                ("spark.kubernetes.memoryOverheadFactor", "0.4"),
                ("spark.executor.memory", "8g"),
            ],
            1024 + 409,
            8192 + 3276,
        ),
    ] {
        let d = demand(&pairs);
        assert_eq!(
            d.demand.driver.memory_bytes,
            driver_mib * MIB,
            "driver {pairs:?}"
        );
        assert_eq!(
            d.demand.executor.memory_bytes,
            executor_mib * MIB,
            "executor {pairs:?}"
        );
    }
}

#[test]
fn off_heap_and_pyspark_memory() {
    for (pairs, executor_mib) in [
        (
            vec![
                ("spark.memory.offHeap.enabled", "true"),
                ("spark.memory.offHeap.size", "2g"),
            ],
            1408 + 2048,
        ),
        (
            vec![
                ("spark.memory.offHeap.enabled", " TRUE "),
                ("spark.memory.offHeap.size", "1048576"),
            ],
            1408 + 1,
        ),
        (
            vec![
                ("spark.memory.offHeap.enabled", "false"),
                ("spark.memory.offHeap.size", "2g"),
            ],
            1408,
        ),
        (vec![("spark.memory.offHeap.size", "2g")], 1408),
        (
            vec![
                ("spark.unsafe.offHeap", "true"),
                ("spark.memory.offHeap.size", "512m"),
            ],
            1408 + 512,
        ),
        (
            vec![
                ("spark.memory.offHeap.enabled", "false"),
                ("spark.unsafe.offHeap", "true"),
                ("spark.memory.offHeap.size", "512m"),
            ],
            1408,
        ),
        (vec![("spark.executor.pyspark.memory", "1g")], 1408),
        (
            vec![
                ("spark.executor.pyspark.memory", "1g"),
                ("spark.kubernetes.resource.type", "python"),
            ],
            1408 + 1024,
        ),
        (
            vec![
                ("spark.executor.pyspark.memory", "300"),
                ("spark.kubernetes.resource.type", "python"),
                ("spark.memory.offHeap.enabled", "true"),
                ("spark.memory.offHeap.size", "1g"),
            ],
            1408 + 300 + 1024,
        ),
    ] {
        let d = demand(&pairs);
        assert_eq!(
            d.demand.executor.memory_bytes,
            executor_mib * MIB,
            "{pairs:?}"
        );
        let python = pairs.contains(&("spark.kubernetes.resource.type", "python"));
        let driver_mib = if python { 1024 + 409 } else { 1408 };
        assert_eq!(
            d.demand.driver.memory_bytes,
            driver_mib * MIB,
            "driver {pairs:?}"
        );
    }
}

#[test]
fn gpus_need_a_vendor_and_a_configured_name() {
    let d = demand(&[
        ("spark.driver.resource.gpu.amount", "1"),
        ("spark.driver.resource.gpu.vendor", "nvidia.com"),
        ("spark.driver.resource.gpu.discoveryScript", "/opt/gpu.sh"),
        ("spark.executor.resource.gpu.amount", "2"),
        ("spark.executor.resource.gpu.vendor", "nvidia.com"),
        ("spark.executor.resource.fpga.amount", "1"),
        ("spark.executor.resource.fpga.vendor", "xilinx.com"),
    ]);
    assert_eq!(d.demand.driver.gpus, 1);
    assert_eq!(d.demand.executor.gpus, 2);
    assert_eq!(
        d.executor_custom_resources,
        BTreeMap::from([
            ("nvidia.com/gpu".to_owned(), 2),
            ("xilinx.com/fpga".to_owned(), 1)
        ])
    );

    // Only configured names count as GPUs.
    let amd = conf(&[
        ("spark.executor.resource.gpu.amount", "1"),
        ("spark.executor.resource.gpu.vendor", "amd.com"),
    ]);
    assert_eq!(
        amd.demand(&GpuResourceNames::default())
            .unwrap()
            .demand
            .executor
            .gpus,
        0
    );
    let names = GpuResourceNames::new(["amd.com/gpu".to_owned()]);
    assert_eq!(amd.demand(&names).unwrap().demand.executor.gpus, 1);

    // Amount 0 (or below) requests nothing, and then needs no vendor.
    assert_eq!(
        demand(&[("spark.executor.resource.gpu.amount", "0")])
            .demand
            .executor
            .gpus,
        0
    );
    assert_eq!(
        demand(&[("spark.driver.resource.gpu.amount", "-1")])
            .demand
            .driver
            .gpus,
        0
    );
}

#[test]
fn gpu_errors_name_the_key() {
    let e = demand_err(&[("spark.executor.resource.gpu.amount", "1")]);
    assert_eq!(e.key(), "spark.executor.resource.gpu.amount");
    assert!(
        e.to_string().contains("spark.executor.resource.gpu.vendor"),
        "{e}"
    );
    let e = demand_err(&[("spark.driver.resource.gpu.vendor", "nvidia.com")]);
    assert!(
        e.to_string().contains("spark.driver.resource.gpu.amount"),
        "{e}"
    );
    let e = demand_err(&[
        ("spark.driver.resource.gpu.amount", "1.5"),
        ("spark.driver.resource.gpu.vendor", "nvidia.com"),
    ]);
    assert_eq!(e.key(), "spark.driver.resource.gpu.amount");
    let e = demand_err(&[("spark.driver.resource.gpu", "1")]);
    assert_eq!(e.key(), "spark.driver.resource.gpu");
}

#[test]
fn static_executor_count() {
    for (pairs, want) in [
        (vec![], 2),
        (vec![("spark.executor.instances", "8")], 8),
        (vec![("spark.executor.instances", "0")], 0),
        (
            vec![
                ("spark.executor.instances", "8"),
                ("spark.dynamicAllocation.enabled", "false"),
                ("spark.dynamicAllocation.maxExecutors", "3"),
            ],
            8,
        ),
    ] {
        let d = demand(&pairs);
        assert_eq!(
            (
                d.demand.min_executors,
                d.demand.max_executors,
                d.dynamic_min_executors
            ),
            (want, want, want),
            "{pairs:?}"
        );
        assert!(!d.dynamic_allocation);
    }
}

#[test]
fn dynamic_executor_counts() {
    let da = ("spark.dynamicAllocation.enabled", "true");
    // (settings, initial, floor, max)
    for (pairs, initial, floor, max) in [
        (vec![da], 0, 0, UNBOUNDED_EXECUTORS),
        (
            vec![
                da,
                ("spark.dynamicAllocation.minExecutors", "2"),
                ("spark.dynamicAllocation.maxExecutors", "10"),
            ],
            2,
            2,
            10,
        ),
        (
            vec![
                da,
                ("spark.dynamicAllocation.minExecutors", "2"),
                ("spark.dynamicAllocation.initialExecutors", "5"),
            ],
            5,
            2,
            UNBOUNDED_EXECUTORS,
        ),
        (
            vec![
                da,
                ("spark.dynamicAllocation.minExecutors", "2"),
                ("spark.dynamicAllocation.initialExecutors", "1"),
            ],
            2,
            2,
            UNBOUNDED_EXECUTORS,
        ),
        (
            vec![
                da,
                ("spark.dynamicAllocation.minExecutors", "1"),
                ("spark.executor.instances", "4"),
                ("spark.dynamicAllocation.maxExecutors", "4"),
            ],
            4,
            1,
            4,
        ),
        (
            vec![
                da,
                ("spark.dynamicAllocation.initialExecutors", "3"),
                ("spark.executor.instances", "1"),
            ],
            3,
            0,
            UNBOUNDED_EXECUTORS,
        ),
        (
            vec![
                ("spark.dynamicAllocation.enabled", "True"),
                ("spark.dynamicAllocation.maxExecutors", "1"),
            ],
            0,
            0,
            1,
        ),
    ] {
        let d = demand(&pairs);
        assert!(d.dynamic_allocation, "{pairs:?}");
        assert_eq!(
            (
                d.demand.min_executors,
                d.dynamic_min_executors,
                d.demand.max_executors
            ),
            (initial, floor, max),
            "{pairs:?}"
        );
    }
}

#[test]
fn dynamic_allocation_errors() {
    let da = ("spark.dynamicAllocation.enabled", "true");
    for (pairs, key) in [
        (
            vec![
                da,
                ("spark.dynamicAllocation.minExecutors", "5"),
                ("spark.dynamicAllocation.maxExecutors", "3"),
            ],
            "spark.dynamicAllocation.minExecutors",
        ),
        (
            vec![
                da,
                ("spark.dynamicAllocation.initialExecutors", "5"),
                ("spark.dynamicAllocation.maxExecutors", "3"),
            ],
            "spark.dynamicAllocation.initialExecutors",
        ),
        (
            vec![
                da,
                ("spark.executor.instances", "5"),
                ("spark.dynamicAllocation.maxExecutors", "3"),
            ],
            "spark.executor.instances",
        ),
        (
            vec![da, ("spark.dynamicAllocation.maxExecutors", "0")],
            "spark.dynamicAllocation.maxExecutors",
        ),
        (
            vec![da, ("spark.dynamicAllocation.minExecutors", "-1")],
            "spark.dynamicAllocation.minExecutors",
        ),
        (
            vec![da, ("spark.dynamicAllocation.minExecutors", "two")],
            "spark.dynamicAllocation.minExecutors",
        ),
        (
            vec![("spark.dynamicAllocation.enabled", "yes")],
            "spark.dynamicAllocation.enabled",
        ),
        (
            vec![("spark.executor.instances", "-2")],
            "spark.executor.instances",
        ),
        (
            vec![("spark.executor.instances", "3000000000")],
            "spark.executor.instances",
        ),
    ] {
        let e = demand_err(&pairs);
        assert_eq!(e.key(), key, "{pairs:?}: {e}");
        let value = pairs
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .unwrap();
        assert!(e.to_string().contains(&format!("{value:?}")), "{e}");
        assert!(e.to_string().contains("accepted"), "{e}");
    }
}

#[test]
fn value_errors_name_key_value_and_accepted_forms() {
    for (key, value, accepted) in [
        ("spark.executor.memory", "4gib", "Spark size"),
        ("spark.driver.memory", "-1g", "positive"),
        ("spark.driver.memoryOverhead", "1.5g", "Spark size"),
        ("spark.executor.minMemoryOverhead", "x", "Spark size"),
        ("spark.executor.pyspark.memory", "1 g", "Spark size"),
        (
            "spark.memory.offHeap.size",
            "lots",
            "bare number means bytes",
        ),
        (
            "spark.kubernetes.driver.request.cores",
            "1 core",
            "Kubernetes quantity",
        ),
        ("spark.kubernetes.executor.request.cores", "-1", "positive"),
        ("spark.driver.cores", "1.5", "whole number"),
        ("spark.driver.cores", "-1", "≥ 0"),
        ("spark.executor.cores", "0", "≥ 1"),
        (
            "spark.kubernetes.memoryOverheadFactor",
            "ten percent",
            "decimal number",
        ),
        ("spark.kubernetes.memoryOverheadFactor", "-0.1", "≥ 0"),
        ("spark.driver.memoryOverheadFactor", "0", "> 0"),
        (
            "spark.executor.memoryOverheadFactor",
            "NaN",
            "decimal number",
        ),
        ("spark.memory.offHeap.enabled", "1", "true or false"),
        (
            "spark.kubernetes.resource.type",
            "Python",
            "java, python or r",
        ),
        ("spark.kubernetes.allocation.batch.size", "0", "≥ 1"),
        (
            "spark.kubernetes.allocation.batch.delay",
            "1 sec",
            "Spark time",
        ),
        ("spark.kubernetes.allocation.batch.delay", "0s", "positive"),
        ("spark.executor.memory", "99999999999t", "below 8 EiB"),
    ] {
        let e = demand_err(&[(key, value)]);
        let msg = e.to_string();
        assert_eq!(e.key(), key, "{msg}");
        assert!(msg.contains(&format!("{value:?}")), "{msg}");
        assert!(msg.contains(accepted), "{key}={value}: {msg}");
    }
    let e = demand_err(&[("spark.memory.offHeap.enabled", "true")]);
    assert!(e.to_string().contains("spark.memory.offHeap.size"), "{e}");
    let e = demand_err(&[
        ("spark.memory.offHeap.enabled", "true"),
        ("spark.memory.offHeap.size", "1000"),
    ]);
    assert!(e.to_string().contains("at least 1 MiB"), "{e}");
}

#[test]
fn typed_getters() {
    let c = conf(&[
        ("b1", " FALSE "),
        ("i1", "+7"),
        ("d1", "4e-1"),
        ("d2", ".5d"),
        ("d3", "1."),
        ("t1", "2min"),
        ("t2", "1500us"),
        ("t3", "3H"),
        ("t4", "250"),
        ("s1", "2048k"),
    ]);
    assert_eq!(c.get_bool("b1"), Ok(Some(false)));
    assert_eq!(c.get_bool("missing"), Ok(None));
    assert_eq!(c.get_int("i1"), Ok(Some(7)));
    assert_eq!(c.get_double("d1"), Ok(Some(0.4)));
    assert_eq!(c.get_double("d2"), Ok(Some(0.5)));
    assert_eq!(c.get_double("d3"), Ok(Some(1.0)));
    assert_eq!(c.get_time_ms("t1"), Ok(Some(120_000)));
    assert_eq!(c.get_time_ms("t2"), Ok(Some(1)));
    assert_eq!(c.get_time_ms("t3"), Ok(Some(10_800_000)));
    assert_eq!(c.get_time_ms("t4"), Ok(Some(250)));
    assert_eq!(c.get_size_mib("s1"), Ok(Some(2)));
    assert_eq!(c.get_byte_size_as_mib("s1"), Ok(Some(2)));
    for bad in ["", "e1", "1e", "0x10", "Infinity", "1,5", "--1"] {
        assert!(parse_java_double(bad).is_none(), "{bad:?}");
    }
}

#[test]
fn selectors_annotations_and_names() {
    let d = demand(&[
        ("spark.kubernetes.node.selector.instance-group", "batch"),
        ("spark.kubernetes.node.selector.zone", "a"),
        ("spark.kubernetes.driver.node.selector.zone", "b"),
        ("spark.kubernetes.executor.node.selector.disk", "ssd"),
        (
            "spark.kubernetes.driver.annotation.spark-executor-count",
            "3",
        ),
        ("spark.kubernetes.executor.annotation.ignored", "x"),
        ("spark.kubernetes.scheduler.name", "spark-scheduler"),
        ("spark.kubernetes.executor.scheduler.name", "exec-scheduler"),
        ("spark.app.id", "spark-123"),
        ("spark.app.name", "pi"),
        ("spark.kubernetes.namespace", "spark"),
        ("spark.kubernetes.allocation.batch.size", "10"),
        ("spark.kubernetes.allocation.batch.delay", "2s"),
    ]);
    assert_eq!(
        d.driver_node_selector,
        map(&[("instance-group", "batch"), ("zone", "b")])
    );
    assert_eq!(
        d.executor_node_selector,
        map(&[("instance-group", "batch"), ("zone", "a"), ("disk", "ssd")])
    );
    assert_eq!(d.driver_annotations, map(&[("spark-executor-count", "3")]));
    assert_eq!(d.driver_scheduler_name.as_deref(), Some("spark-scheduler"));
    assert_eq!(d.executor_scheduler_name.as_deref(), Some("exec-scheduler"));
    assert_eq!(d.app_id.as_deref(), Some("spark-123"));
    assert_eq!(d.app_name.as_deref(), Some("pi"));
    assert_eq!(d.namespace, "spark");
    assert_eq!(
        (d.allocation_batch_size, d.allocation_batch_delay_ms),
        (10, 2000)
    );
}

mod props {
    use super::*;
    use proptest::collection::btree_map;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn demand_never_panics(entries in btree_map(
            prop_oneof![
                Just("spark.executor.memory".to_owned()),
                Just("spark.executor.memoryOverheadFactor".to_owned()),
                Just("spark.driver.memoryOverhead".to_owned()),
                Just("spark.executor.instances".to_owned()),
                Just("spark.dynamicAllocation.enabled".to_owned()),
                Just("spark.dynamicAllocation.maxExecutors".to_owned()),
                Just("spark.executor.resource.gpu.amount".to_owned()),
                Just("spark.memory.offHeap.size".to_owned()),
                Just("spark.kubernetes.allocation.batch.delay".to_owned()),
            ],
            "\\PC{0,12}|[0-9]{1,22}[a-z]{0,3}|-?[0-9]{0,5}(\\.[0-9]{0,20})?(e[0-9]{1,4})?",
            0..9,
        )) {
            let conf = SparkConf::from(entries);
            let _ = conf.demand(&GpuResourceNames::default());
        }
    }
}
