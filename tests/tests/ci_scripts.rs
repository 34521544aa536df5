//! The workspace's hygiene checks that CI runs: `scripts/check-rust-version.sh` against a
//! stand-in `rustc` older and newer than `rust-version`, `scripts/docker-build.sh` without a
//! container engine, and a Dockerfile that builds locked, with the pinned toolchain, as
//! non-root.

use std::path::Path;
use std::process::{Command, Output};

fn repo() -> std::path::PathBuf {
    sparkgang_tests::repo_root()
}

fn rust_version() -> String {
    let toml = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    toml.lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("rust-version in [workspace.package]")
        .to_owned()
}

fn stand_in(dir: &Path, name: &str, script: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join(name);
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn check_with_rustc(version: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    stand_in(
        dir.path(),
        "rustc",
        &format!("#!/bin/sh\necho 'rustc {version} (0000000 2020-01-01)'\n"),
    );
    Command::new("bash")
        .arg(repo().join("scripts/check-rust-version.sh"))
        .env("RUSTC", dir.path().join("rustc"))
        .output()
        .unwrap()
}

#[test]
fn rust_version_check_fails_on_an_older_rustc_and_names_the_version() {
    let wanted = rust_version();
    let (major, minor) = wanted.split_once('.').unwrap();
    let minor: u32 = minor.split('.').next().unwrap().parse().unwrap();
    let older = check_with_rustc(&format!("{major}.{}.9", minor - 1));
    let stderr = String::from_utf8_lossy(&older.stderr);
    assert_eq!(older.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("rust-version {wanted}")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("rustup toolchain install {wanted}")),
        "{stderr}"
    );
    for ok in [format!("{wanted}.0"), format!("{major}.{}.0", minor + 1)] {
        let o = check_with_rustc(&ok);
        assert!(
            o.status.success(),
            "{ok}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn docker_build_says_it_skipped_without_an_engine() {
    let dir = tempfile::tempdir().unwrap();
    // A client without a daemon: `docker info` fails, as on this project's CI machines.
    stand_in(dir.path(), "docker", "#!/bin/sh\nexit 1\n");
    stand_in(dir.path(), "podman", "#!/bin/sh\nexit 125\n");
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = Command::new("bash")
        .arg(repo().join("scripts/docker-build.sh"))
        .env("PATH", path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}");
    assert!(stdout.contains("SKIPPED"), "{stdout}");
}

#[test]
fn dockerfile_builds_locked_with_the_pinned_toolchain_as_non_root() {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let wanted = rust_version();
    assert!(
        dockerfile.contains(&format!("FROM rust:{wanted}-")),
        "the build stage's rust image is not rust-version {wanted}"
    );
    assert!(dockerfile.contains("cargo build --release --locked"));
    let user = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER in the final stage");
    assert!(
        !user.starts_with('0') && !user.starts_with("root"),
        "USER {user}"
    );
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    for path in ["target/", ".cache/", "**/*.key"] {
        assert!(
            ignore.lines().any(|l| l == path),
            ".dockerignore lacks {path}"
        );
    }
    // .ci/run calls both, and the README's test command.
    let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    for step in [
        "scripts/check-rust-version.sh",
        "scripts/test.sh",
        "scripts/docker-build.sh",
    ] {
        assert!(ci.contains(step), ".ci/run does not run {step}");
    }
}
