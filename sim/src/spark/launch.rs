//! How a Spark pod's container starts as a local process: the command Spark's image entrypoint
//! runs for `driver` and `executor` (apache/spark-docker `entrypoint.sh`), rewritten for the
//! local PyPI installation and a loopback address per pod. Pure: the kubelet that runs
//! processes (issue 17) writes [`Launch::files`], then starts [`Launch::program`].
//!
//! What is rewritten, and why (docs/notes/real-spark-research.md):
//! - `/opt/spark/…` (the image's `SPARK_HOME`) becomes the local `SPARK_HOME`, whatever the
//!   image name; `local://` paths follow.
//! - Every volume mount becomes a directory under the pod's own directory; a ConfigMap volume's
//!   items are written there.
//! - `status.podIP` is the pod's 127.0.0.x address; the driver binds to it and advertises it as
//!   `spark.driver.host` (executors cannot resolve `<app>-driver-svc.<ns>.svc`), and talks to
//!   the simulated API server (`spark.kubernetes.driver.master`), not
//!   `https://kubernetes.default.svc`.
//! - Heaps are the pod's memory scaled by [`HeapPolicy`], so a few applications fit a small
//!   machine.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};
use sparkgang_common::quantities::parse_memory_bytes;

/// The image's `SPARK_HOME`.
pub const IMAGE_SPARK_HOME: &str = "/opt/spark";

/// The executor's main class in Spark 4.x images.
pub const EXECUTOR_BACKEND: &str =
    "org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend";

/// The local Spark installation that stands in for every Spark image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installation {
    /// The PyPI `pyspark` package directory (it has `bin/`, `jars/`, `python/`).
    pub spark_home: PathBuf,
    /// The `java` of Java 17.
    pub java: PathBuf,
    /// The Python of PySpark drivers and their workers, unless the pod names one
    /// (`PYSPARK_PYTHON`).
    pub python: PathBuf,
}

/// How much of a pod's memory its JVM gets as heap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeapPolicy {
    /// The share of the memory Spark asked for (`spark.executor.memory`, `spark.driver.memory`).
    pub factor: f64,
    /// Never less than this (MiB): a smaller Spark JVM does not start.
    pub min_mib: u64,
}

impl Default for HeapPolicy {
    /// A quarter of what Spark asked for, at least 512 MiB: four 4g executors take 4 GiB.
    fn default() -> Self {
        HeapPolicy {
            factor: 0.25,
            min_mib: 512,
        }
    }
}

impl HeapPolicy {
    /// The heap for `bytes` asked, in MiB.
    pub fn heap_mib(&self, bytes: i64) -> u64 {
        let asked = (bytes.max(0) as f64 / f64::from(1u32 << 20)) * self.factor;
        (asked as u64).max(self.min_mib)
    }
}

/// What the pod runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Driver,
    Executor,
}

/// Everything about the pod that is not in its spec.
#[derive(Debug)]
pub struct PodContext<'a> {
    pub pod: &'a Pod,
    /// The pod's address (`status.podIP`).
    pub ip: Ipv4Addr,
    /// The simulated API server, e.g. `http://127.0.0.1:41234`.
    pub api_server: &'a str,
    /// A directory of the pod's own (mounts, work directory).
    pub dir: &'a Path,
    /// The data of the ConfigMaps of the pod's namespace, by name.
    pub config_maps: &'a BTreeMap<String, BTreeMap<String, String>>,
}

/// A process to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub role: Role,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The whole environment of the process.
    pub env: BTreeMap<String, String>,
    pub cwd: PathBuf,
    /// Directories to create and files to write first (the pod's volumes).
    pub dirs: Vec<PathBuf>,
    pub files: Vec<(PathBuf, String)>,
}

/// Why a pod cannot be started as a local process; the kubelet puts it in the pod's status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaunchError {
    #[error(
        "pod {pod}: container {container} does not run Spark's entrypoint (args {args:?}); \
         only `driver` and `executor` are run as local processes"
    )]
    NotSpark {
        pod: String,
        container: String,
        args: Vec<String>,
    },
    #[error("pod {pod} has no container")]
    NoContainer { pod: String },
    #[error("pod {pod} mounts ConfigMap {name}, which does not exist (yet)")]
    MissingConfigMap { pod: String, name: String },
    #[error("pod {pod}: ConfigMap {name} has no key {key}")]
    MissingConfigMapKey {
        pod: String,
        name: String,
        key: String,
    },
    #[error("pod {pod}: env {name} needs {what}, which the local kubelet does not provide")]
    UnsupportedEnv {
        pod: String,
        name: String,
        what: String,
    },
    #[error("pod {pod}: the executor entrypoint needs env {name}")]
    MissingEnv { pod: String, name: String },
    #[error("pod {pod}: env {name}={value:?} is not a memory size: {why}")]
    BadMemory {
        pod: String,
        name: String,
        value: String,
        why: String,
    },
}

/// What `pod` runs, if its first container runs Spark's image entrypoint (`driver` or
/// `executor` as the first argument, as Spark's Kubernetes backend writes them).
pub fn role_of(pod: &Pod) -> Option<Role> {
    let container = pod.spec.as_ref()?.containers.first()?;
    match container.args.as_ref()?.first()?.as_str() {
        "driver" => Some(Role::Driver),
        "executor" => Some(Role::Executor),
        _ => None,
    }
}

/// The process that runs `cx.pod`'s first container.
pub fn launch(
    install: &Installation,
    cx: &PodContext<'_>,
    heap: HeapPolicy,
) -> Result<Launch, LaunchError> {
    let pod_name = format!(
        "{}/{}",
        cx.pod.metadata.namespace.as_deref().unwrap_or(""),
        cx.pod.metadata.name.as_deref().unwrap_or("")
    );
    let container = cx
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .ok_or_else(|| LaunchError::NoContainer {
            pod: pod_name.clone(),
        })?;
    let args = container.args.clone().unwrap_or_default();
    let Some(role) = role_of(cx.pod) else {
        return Err(LaunchError::NotSpark {
            pod: pod_name,
            container: container.name.clone(),
            args,
        });
    };
    let paths = Paths::of(install, cx, container, &pod_name)?;
    let mut env = resolve_env(cx, container, &pod_name, &paths)?;
    let ip = cx.ip.to_string();
    env.insert("SPARK_HOME".to_owned(), path_text(&install.spark_home));
    env.insert("SPARK_LOCAL_IP".to_owned(), ip.clone());
    if let Some(java_home) = install.java.parent().and_then(Path::parent) {
        env.insert("JAVA_HOME".to_owned(), path_text(java_home));
    }
    for var in ["PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON"] {
        env.entry(var.to_owned())
            .or_insert_with(|| path_text(&install.python));
    }
    if let Ok(path) = std::env::var("PATH") {
        env.entry("PATH".to_owned()).or_insert(path);
    }
    let cwd = cx.dir.join("work");
    let (program, process_args) = match role {
        Role::Driver => {
            let mut a = vec![
                "--conf".to_owned(),
                format!("spark.driver.bindAddress={ip}"),
                "--conf".to_owned(),
                format!("spark.executorEnv.SPARK_DRIVER_POD_IP={ip}"),
                "--conf".to_owned(),
                format!("spark.driver.host={ip}"),
                "--conf".to_owned(),
                format!("spark.kubernetes.driver.master={}", cx.api_server),
                "--deploy-mode".to_owned(),
                "client".to_owned(),
            ];
            if let Some(memory) = driver_memory(&paths.files) {
                a.push("--driver-memory".to_owned());
                a.push(format!("{}m", heap.heap_mib(memory)));
            }
            a.extend(args[1..].iter().map(|x| paths.rewrite(x)));
            (install.spark_home.join("bin").join("spark-submit"), a)
        }
        Role::Executor => {
            let need = |name: &str| {
                env.get(name)
                    .cloned()
                    .ok_or_else(|| LaunchError::MissingEnv {
                        pod: pod_name.clone(),
                        name: name.to_owned(),
                    })
            };
            let memory = need("SPARK_EXECUTOR_MEMORY")?;
            let bytes =
                parse_memory_bytes(&spark_memory(&memory)).map_err(|e| LaunchError::BadMemory {
                    pod: pod_name.clone(),
                    name: "SPARK_EXECUTOR_MEMORY".to_owned(),
                    value: memory.clone(),
                    why: e.to_string(),
                })?;
            let heap = format!("{}m", heap.heap_mib(bytes));
            let mut a = java_opts(&env);
            a.push(format!("-Xms{heap}"));
            a.push(format!("-Xmx{heap}"));
            let conf_dir = env.get("SPARK_CONF_DIR").cloned().unwrap_or_default();
            a.push("-cp".to_owned());
            a.push(format!(
                "{conf_dir}:{}/jars/*:{}",
                path_text(&install.spark_home),
                path_text(&cwd)
            ));
            a.push(EXECUTOR_BACKEND.to_owned());
            for (flag, var) in [
                ("--driver-url", "SPARK_DRIVER_URL"),
                ("--executor-id", "SPARK_EXECUTOR_ID"),
                ("--cores", "SPARK_EXECUTOR_CORES"),
                ("--app-id", "SPARK_APPLICATION_ID"),
                ("--resourceProfileId", "SPARK_RESOURCE_PROFILE_ID"),
            ] {
                a.push(flag.to_owned());
                a.push(need(var)?);
            }
            a.push("--hostname".to_owned());
            a.push(ip.clone());
            a.push("--podName".to_owned());
            a.push(cx.pod.metadata.name.clone().unwrap_or_default());
            (install.java.clone(), a)
        }
    };
    let mut dirs = paths.dirs.clone();
    dirs.push(cwd.clone());
    Ok(Launch {
        role,
        program,
        args: process_args,
        env,
        cwd,
        dirs,
        files: paths.files,
    })
}

/// Where the pod's mounts and the image's paths are on this machine.
struct Paths {
    /// (mount path in the container, local directory), longest first.
    mounts: Vec<(String, PathBuf)>,
    spark_home: String,
    dirs: Vec<PathBuf>,
    files: Vec<(PathBuf, String)>,
}

impl Paths {
    fn of(
        install: &Installation,
        cx: &PodContext<'_>,
        container: &Container,
        pod: &str,
    ) -> Result<Paths, LaunchError> {
        let volumes = cx
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.clone())
            .unwrap_or_default();
        let mut paths = Paths {
            mounts: Vec::new(),
            spark_home: path_text(&install.spark_home),
            dirs: Vec::new(),
            files: Vec::new(),
        };
        for m in container.volume_mounts.iter().flatten() {
            let local = cx
                .dir
                .join("mounts")
                .join(m.mount_path.trim_start_matches('/'));
            paths.dirs.push(local.clone());
            let volume = volumes.iter().find(|v| v.name == m.name);
            if let Some(cm) = volume.and_then(|v| v.config_map.as_ref()) {
                let data =
                    cx.config_maps
                        .get(&cm.name)
                        .ok_or_else(|| LaunchError::MissingConfigMap {
                            pod: pod.to_owned(),
                            name: cm.name.clone(),
                        })?;
                let items: Vec<(String, String)> = match &cm.items {
                    Some(items) => items
                        .iter()
                        .map(|i| (i.key.clone(), i.path.clone()))
                        .collect(),
                    None => data.keys().map(|k| (k.clone(), k.clone())).collect(),
                };
                for (key, path) in items {
                    let text = data
                        .get(&key)
                        .ok_or_else(|| LaunchError::MissingConfigMapKey {
                            pod: pod.to_owned(),
                            name: cm.name.clone(),
                            key: key.clone(),
                        })?;
                    paths.files.push((local.join(path), text.clone()));
                }
            }
            paths.mounts.push((m.mount_path.clone(), local));
        }
        paths
            .mounts
            .sort_by_key(|(m, _)| std::cmp::Reverse(m.len()));
        Ok(paths)
    }

    /// `value` with a mounted path or the image's `SPARK_HOME` replaced by where it is here.
    fn rewrite(&self, value: &str) -> String {
        let (scheme, path) = match value.strip_prefix("local://") {
            Some(p) => ("local://", p),
            None => ("", value),
        };
        for (mount, local) in &self.mounts {
            if let Some(rest) = under(path, mount) {
                return format!("{scheme}{}{rest}", path_text(local));
            }
        }
        match under(path, IMAGE_SPARK_HOME) {
            Some(rest) => format!("{scheme}{}{rest}", self.spark_home),
            None => value.to_owned(),
        }
    }
}

/// The rest of `path` after directory `dir` (`""` or `/…`), if it is under it.
fn under<'p>(path: &'p str, dir: &str) -> Option<&'p str> {
    let rest = path.strip_prefix(dir)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

fn path_text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The container's env with `valueFrom` resolved as the kubelet does, paths rewritten.
fn resolve_env(
    cx: &PodContext<'_>,
    container: &Container,
    pod: &str,
    paths: &Paths,
) -> Result<BTreeMap<String, String>, LaunchError> {
    let mut env = BTreeMap::new();
    for e in container.env.iter().flatten() {
        let value = match (&e.value, &e.value_from) {
            (Some(v), _) => v.clone(),
            (None, None) => String::new(),
            (None, Some(from)) => {
                let unsupported = |what: String| LaunchError::UnsupportedEnv {
                    pod: pod.to_owned(),
                    name: e.name.clone(),
                    what,
                };
                if let Some(field) = &from.field_ref {
                    match field.field_path.as_str() {
                        "status.podIP" | "status.hostIP" => cx.ip.to_string(),
                        "metadata.name" => cx.pod.metadata.name.clone().unwrap_or_default(),
                        "metadata.namespace" => {
                            cx.pod.metadata.namespace.clone().unwrap_or_default()
                        }
                        "spec.nodeName" => cx
                            .pod
                            .spec
                            .as_ref()
                            .and_then(|s| s.node_name.clone())
                            .unwrap_or_default(),
                        other => return Err(unsupported(format!("field {other}"))),
                    }
                } else if let Some(key) = &from.config_map_key_ref {
                    cx.config_maps
                        .get(&key.name)
                        .and_then(|d| d.get(&key.key))
                        .cloned()
                        .ok_or_else(|| {
                            unsupported(format!("ConfigMap {} key {}", key.name, key.key))
                        })?
                } else {
                    return Err(unsupported("a Secret or resource field".to_owned()));
                }
            }
        };
        env.insert(e.name.clone(), paths.rewrite(&value));
    }
    Ok(env)
}

/// `SPARK_JAVA_OPT_<n>` values in the order of `n`, as the entrypoint collects them.
fn java_opts(env: &BTreeMap<String, String>) -> Vec<String> {
    let mut opts: Vec<(u64, &String)> = env
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("SPARK_JAVA_OPT_")
                .and_then(|n| n.parse().ok())
                .map(|n| (n, v))
        })
        .collect();
    opts.sort();
    opts.into_iter().map(|(_, v)| v.clone()).collect()
}

/// Spark writes memory as `4096m` / `4g` (a bare number is MiB); Kubernetes quantities spell
/// them `4096Mi` / `4Gi`.
fn spark_memory(value: &str) -> String {
    let v = value.trim();
    match v.char_indices().last() {
        Some((i, c)) if "kKmMgGtT".contains(c) => {
            format!("{}{}i", &v[..i], c.to_ascii_uppercase())
        }
        Some(_) if v.bytes().all(|b| b.is_ascii_digit()) => format!("{v}Mi"),
        _ => v.to_owned(),
    }
}

/// `spark.driver.memory` of the pod's `spark.properties`, in bytes.
fn driver_memory(files: &[(PathBuf, String)]) -> Option<i64> {
    let (_, text) = files
        .iter()
        .find(|(p, _)| p.file_name().is_some_and(|f| f == "spark.properties"))?;
    let props = sparkgang_common::properties::parse_properties(text).ok()?;
    let value = props.get("spark.driver.memory")?;
    parse_memory_bytes(&spark_memory(value)).ok()
}

#[cfg(test)]
#[path = "launch_tests.rs"]
mod tests;
