//! The plugin's command line without a cluster: its help, and the errors it gives when there
//! is no kubeconfig or nothing listens at `--url`.

use std::process::Command;

fn plugin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kubectl-sparkgang"))
}

#[test]
fn help_names_the_commands_and_the_flags_kubectl_cannot_pass() {
    let out = plugin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for word in [
        "apps",
        "why",
        "capacity",
        "--kubeconfig",
        "--context",
        "--url",
        "-o",
    ] {
        assert!(help.contains(word), "{word} missing from:\n{help}");
    }
}

#[test]
fn a_missing_kubeconfig_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let out = plugin()
        .args(["apps", "--kubeconfig"])
        .arg(&missing)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot load the kubeconfig"), "{err}");
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn nothing_listening_at_the_url_is_said_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let out = plugin()
        .args(["why", "x", "-n", "spark", "--url", "http://127.0.0.1:1"])
        .env("KUBECONFIG", dir.path().join("none"))
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the explain API at http://127.0.0.1:1"),
        "{err}"
    );
    let out = plugin()
        .args(["apps", "--url", "https://127.0.0.1:1"])
        .env("KUBECONFIG", dir.path().join("none"))
        .env("HOME", dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("only http:// URLs"), "{err}");
}
