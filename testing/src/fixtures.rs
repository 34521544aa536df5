//! The repository's `fixtures/` (see `fixtures/README.md`): one folder per set, each with the
//! README that says where it came from.

use std::path::{Path, PathBuf};

/// Spark 4.3.0 captures: what spark-submit and the driver sent to the API server.
pub const SPARK: &str = "spark-4.3.0";
/// kube-scheduler's extender wire samples.
pub const KUBE_SCHEDULER_WIRE: &str = "kube-scheduler-wire";
/// palantir's bin-packing results on generated clusters.
pub const PALANTIR_BINPACK: &str = "palantir-binpack";

/// The repository's root (this crate lives one folder below it).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// The folder of fixture set `set`. Panics with where it was looked for when the set is not
/// there (a checkout without `fixtures/`).
pub fn dir(set: &str) -> PathBuf {
    let dir = repo_root().join("fixtures").join(set);
    assert!(
        dir.join("README.md").is_file(),
        "fixture set {set} is missing: expected {} with its README.md (fixtures/ in the repository)",
        dir.display()
    );
    dir
}

/// The path of `file` in fixture set `set`.
pub fn path(set: &str, file: &str) -> PathBuf {
    dir(set).join(file)
}

/// The text of `file` in fixture set `set`; panics naming the file when it cannot be read.
pub fn read(set: &str, file: &str) -> String {
    let path = path(set, file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("fixture {} is not readable: {e}", path.display()))
}

/// Every line of a `.jsonl` fixture, parsed; panics naming the file and line of a bad one.
pub fn jsonl(set: &str, file: &str) -> Vec<serde_json::Value> {
    read(set, file)
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("fixture {set}/{file} line {}: {e}", i + 1))
        })
        .collect()
}
