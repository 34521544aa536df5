//! Finding the real `spark-submit` (PyPI `pyspark`, installed by `scripts/test.sh`).

use std::path::PathBuf;

/// `spark-submit`, or `None` (the test is skipped) when it is not installed and the run does
/// not require it.
pub fn spark_submit() -> Option<PathBuf> {
    let found = std::env::var("SPARKGANG_SPARK_SUBMIT")
        .map(PathBuf::from)
        .ok()
        .or_else(|| {
            let local = crate::repo_root().join(".cache/venv/bin/spark-submit");
            local.exists().then_some(local)
        });
    if found.is_none() {
        assert!(
            std::env::var("SPARKGANG_REQUIRE_SPARK").is_err(),
            "spark-submit not found: run scripts/test.sh, which installs pyspark"
        );
        eprintln!("SKIPPED: spark-submit not found (scripts/test.sh installs pyspark)");
    }
    found
}
