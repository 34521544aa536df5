//! The test kit of sparkgang's end-to-end suites (`tests/tests/`): a simulated cluster with the
//! real webhook and extender, the real `spark-submit`, scenario runs with short verdicts, waits
//! on conditions, the README's shell blocks and the workspace's binaries.

pub mod bins;
pub mod readme;
pub mod scenarios;
pub mod spark_submit;
pub mod structure;
pub mod testbed;
pub mod wait;

pub use sparkgang_testing::fixtures::repo_root;
