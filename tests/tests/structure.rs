//! The structure the issue "one concept, one place" asked for, kept: no import cycle between the
//! source files of any crate, no source file over 800 lines (tests, benches, examples aside), and
//! a domain crate without the client stack.

use std::path::Path;

use sparkgang_tests::structure::{cycles, read_crate, too_long, uses, workspace_crates};

/// The longest a source file may be and still be read in one sitting.
const MAX_LINES: usize = 800;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn no_import_cycles_in_any_crate() {
    let mut found = Vec::new();
    for dir in workspace_crates(root()) {
        let sources = read_crate(&dir).expect("the crate's sources are readable");
        for cycle in cycles(&uses(&sources)) {
            found.push(format!("{}: {}", dir.display(), cycle.join(", ")));
        }
    }
    assert!(
        found.is_empty(),
        "files that import each other (one cycle a line):\n{}",
        found.join("\n")
    );
}

#[test]
fn no_source_file_is_too_long_to_read_in_one_sitting() {
    let mut found = Vec::new();
    for dir in workspace_crates(root()) {
        let sources = read_crate(&dir).expect("the crate's sources are readable");
        for (file, lines) in too_long(&sources, MAX_LINES) {
            found.push(format!("{}/{file}: {lines} lines", dir.display()));
        }
    }
    assert!(
        found.is_empty(),
        "over {MAX_LINES} lines:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_domain_crate_carries_no_client_stack() {
    // `cargo tree -p sparkgang-common -e normal` is the reference; Cargo.toml is what feeds it.
    let manifest = std::fs::read_to_string(root().join("common/Cargo.toml")).expect("readable");
    let workspace = std::fs::read_to_string(root().join("Cargo.toml")).expect("readable");
    let dependencies = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|s| s.split("\n[").next())
        .unwrap_or("");
    for banned in [
        "tokio",
        "hyper",
        "rustls",
        "axum",
        "reqwest",
        "kube-client",
        "kube-runtime",
    ] {
        assert!(
            !dependencies
                .lines()
                .any(|l| l.trim_start().starts_with(banned)),
            "sparkgang-common depends on {banned}"
        );
    }
    let kube = workspace
        .lines()
        .find(|l| l.starts_with("kube ="))
        .expect("kube in the workspace dependencies");
    for feature in ["\"client\"", "\"runtime\"", "\"rustls-tls\""] {
        assert!(
            !kube.contains(feature),
            "the workspace's kube enables {feature} for every crate, sparkgang-common included: {kube}"
        );
    }
}
