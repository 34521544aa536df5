//! The real `kubectl` against a cluster of the tests (the simulated API server), as a user
//! runs it: its stdout, or a panic with its stderr.

use std::path::Path;

/// `kubectl --kubeconfig CONFIG ARGS…`; panics (with kubectl's words) when it fails.
pub async fn kubectl(config: &Path, args: &[&str]) -> String {
    let out = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(config)
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("kubectl does not run: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}
