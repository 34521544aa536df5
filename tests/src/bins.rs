//! The workspace's binaries for tests of another package (Cargo gives `CARGO_BIN_EXE_*` only
//! to a binary's own package): the one next to the test's build, built first when missing.

use std::path::PathBuf;
use std::process::Command;

/// `target/<profile>/<name>`, building it with `cargo build --bin <name>` when it is missing.
/// `cargo test --workspace` (scripts/test.sh) rebuilds every binary of a package that has
/// integration tests first; `cargo test -p sparkgang-tests` alone does not, so after changing a
/// binary run `cargo build --bins` before it, or the test sees the old one.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test>-<hash>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lives in target/<profile>/deps")
        .to_path_buf();
    let bin = profile_dir.join(name);
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut build = Command::new(cargo);
        build
            .current_dir(crate::repo_root())
            .args(["build", "--locked", "--bin", name]);
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "cargo build --bin {name} failed");
    }
    assert!(bin.exists(), "{} is missing after the build", bin.display());
    bin
}
