//! The README's install section, run as written: every block marked `readme-test: tested` runs
//! in a copy of the repository with a fresh `$HOME`, the real `sparkgang-certs` (a stand-in
//! `cargo install` links the test build's), and a stand-in `kubectl` that renders what `apply`
//! would send (with the real `kubectl kustomize`) instead of sending it. Checked: what would be
//! applied (images, kube-scheduler per minor, the TLS Secret against the caBundle), that no
//! private key is left under the repository, and that every file written there is git-ignored.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;
use sparkgang_tests::bins::workspace_bin;
use sparkgang_tests::readme::{Block, readme, sh_blocks};

const KINDS: [&str; 4] = [
    "tested",
    "simulator",
    "needs a cluster",
    "needs a container engine",
];

const KUBECTL: &str = r#"#!/bin/sh
# Stand-in kubectl: renders instead of applying; refuses what needs a cluster.
set -e
n=$(ls "$SANDBOX_LOG" | wc -l)
case "$1" in
  kustomize) exec "$REAL_KUBECTL" "$@" ;;
  apply)
    shift
    if [ "$1" = -k ]; then "$REAL_KUBECTL" kustomize "$2" > "$SANDBOX_LOG/$n-apply.yaml"
    elif [ "$1" = -f ] && [ "$2" = - ]; then cat > "$SANDBOX_LOG/$n-apply.yaml"
    elif [ "$1" = -f ]; then cp "$2" "$SANDBOX_LOG/$n-apply.yaml"
    else echo "stand-in kubectl: unsupported apply $*" >&2; exit 2; fi ;;
  *) echo "stand-in kubectl: needs a cluster: kubectl $*" >&2; exit 2 ;;
esac
"#;

const CARGO: &str = r#"#!/bin/sh
# Stand-in cargo: `cargo install --locked --path certs` links the test build's sparkgang-certs.
if [ "$*" = "install --locked --path certs" ]; then
  mkdir -p "$HOME/.cargo/bin"
  ln -sf "$SPARKGANG_CERTS" "$HOME/.cargo/bin/sparkgang-certs"
  exit 0
fi
echo "stand-in cargo: unexpected: cargo $*" >&2
exit 2
"#;

fn install_blocks() -> Vec<Block> {
    sh_blocks(&readme())
        .into_iter()
        .filter(|b| b.section == "Install on a cluster")
        .collect()
}

fn tested_script() -> String {
    install_blocks()
        .into_iter()
        .filter(|b| b.kind.as_deref() == Some("tested"))
        .map(|b| b.text)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A copy of the repository's `deploy/`, `.gitignore` and README in a git work tree, a home
/// outside it, the stand-ins, and a log of what would be applied.
struct Sandbox {
    _dir: tempfile::TempDir,
    repo: PathBuf,
    home: PathBuf,
    bin: PathBuf,
    log: PathBuf,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn files_under(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_name() == ".git" {
                continue;
            }
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            } else {
                out.insert(path);
            }
        }
    }
    out
}

fn write_exe(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("sparkgang");
        let root = sparkgang_tests::repo_root();
        copy_dir(&root.join("deploy"), &repo.join("deploy"));
        for f in [".gitignore", "README.md"] {
            std::fs::copy(root.join(f), repo.join(f)).unwrap();
        }
        let git = Command::new("git")
            .args(["init", "-q"])
            .current_dir(&repo)
            .status()
            .expect("git runs");
        assert!(git.success());
        let (home, bin, log) = (
            dir.path().join("home"),
            dir.path().join("bin"),
            dir.path().join("applied"),
        );
        for d in [&home, &bin, &log] {
            std::fs::create_dir_all(d).unwrap();
        }
        write_exe(&bin.join("kubectl"), KUBECTL);
        write_exe(&bin.join("cargo"), CARGO);
        Sandbox {
            _dir: dir,
            repo,
            home,
            bin,
            log,
        }
    }

    /// Runs `script` with bash (`-euo pipefail`) in the repository copy; panics with its output
    /// when it fails.
    fn run(&self, script: &str) {
        let real_kubectl = which("kubectl");
        let path = format!(
            "{}:{}:{}",
            self.bin.display(),
            self.home.join(".cargo/bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("bash")
            .args(["-euo", "pipefail", "-c", script])
            .current_dir(&self.repo)
            .env("HOME", &self.home)
            .env("PATH", path)
            .env("SANDBOX_LOG", &self.log)
            .env("REAL_KUBECTL", real_kubectl)
            .env("SPARKGANG_CERTS", workspace_bin("sparkgang-certs"))
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "the README's commands failed:\n{script}\n--- stdout\n{}\n--- stderr\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Every object that would have been applied, in order.
    fn applied(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.log)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort_by_key(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.split('-').next())
                .and_then(|n| n.parse::<u32>().ok())
                .unwrap_or(u32::MAX)
        });
        files
            .iter()
            .flat_map(|f| {
                let text = std::fs::read_to_string(f).unwrap();
                serde_yaml::Deserializer::from_str(&text)
                    .map(|doc| serde_json::to_value(serde_yaml::Value::deserialize(doc).unwrap()))
                    .collect::<Vec<_>>()
            })
            .map(Result::unwrap)
            .filter(|v| !v.is_null())
            .collect()
    }
}

fn which(name: &str) -> PathBuf {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} must be on PATH (scripts/test.sh checks for kubectl)"))
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} would be applied"))
}

fn images(objects: &[Value]) -> BTreeSet<String> {
    objects
        .iter()
        .filter(|o| o["kind"] == "Deployment")
        .flat_map(|d| {
            d["spec"]["template"]["spec"]["containers"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|c| c["image"].as_str().map(str::to_owned))
        .collect()
}

/// The value assigned to `name` on a line of `script` (`NAME=value`, up to a space).
fn assigned(script: &str, name: &str) -> String {
    script
        .lines()
        .flat_map(|l| l.split_whitespace())
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("the README's step 4 no longer sets {name}"))
        .to_owned()
}

/// `script` with the assignment of `name` replaced (a user editing the value).
fn with_value(script: &str, name: &str, value: &str) -> String {
    let old = format!("{name}={}", assigned(script, name));
    assert!(script.contains(&old));
    script.replacen(&old, &format!("{name}={value}"), 1)
}

/// KubeSchedulerConfiguration API versions kube-scheduler of `minor` (1.x) accepts.
fn scheduler_config_valid(api_version: &str, minor: u32) -> bool {
    match api_version {
        "kubescheduler.config.k8s.io/v1" => minor >= 25,
        "kubescheduler.config.k8s.io/v1beta3" => (23..=28).contains(&minor),
        "kubescheduler.config.k8s.io/v1beta2" => (22..=27).contains(&minor),
        _ => false,
    }
}

fn contains_private_key(path: &Path) -> bool {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).contains("PRIVATE KEY"))
        .unwrap_or(false)
}

#[test]
fn every_install_block_says_how_it_is_tested() {
    let blocks = install_blocks();
    assert!(blocks.len() >= 8, "the install section lost its steps");
    for b in &blocks {
        let kind = b.kind.as_deref().unwrap_or("none");
        assert!(
            KINDS.contains(&kind),
            "install block without a known `<!-- readme-test: KIND -->` ({kind}); one of {KINDS:?}:\n{}",
            b.text
        );
    }
}

#[test]
fn the_documented_install_renders_the_image_scheduler_and_tls_it_says() {
    let sandbox = Sandbox::new();
    let before = files_under(&sandbox.repo);
    let script = tested_script();
    sandbox.run(&script);
    // No private key under the repository.
    let after = files_under(&sandbox.repo);
    let keys: Vec<_> = after.iter().filter(|p| contains_private_key(p)).collect();
    assert!(
        keys.is_empty(),
        "the README's commands left private keys under the repository: {keys:?}"
    );
    let objects = sandbox.applied();

    let minor = assigned(&script, "KUBE_MINOR");
    let image = format!(
        "{}:{}",
        assigned(&script, "IMAGE"),
        assigned(&script, "TAG")
    );
    let images = images(&objects);
    assert!(images.contains(&image), "{image} not in {images:?}");
    assert!(
        images
            .iter()
            .any(|i| i.starts_with(&format!("registry.k8s.io/kube-scheduler:v{minor}."))),
        "no kube-scheduler v{minor}.x in {images:?}"
    );
    assert!(
        images.iter().all(|i| !i.starts_with("ghcr.io/")),
        "{images:?}"
    );

    // The Secret went from sparkgang-certs to `kubectl apply -f -`, signed by the CA whose
    // certificate is the webhook's caBundle.
    let secret = find(&objects, "Secret", "sparkgang-webhook-tls");
    assert_eq!(secret["metadata"]["namespace"], "sparkgang-system");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    let hook = find(
        &objects,
        "MutatingWebhookConfiguration",
        "sparkgang-webhook",
    );
    let bundle = hook["webhooks"][0]["clientConfig"]["caBundle"]
        .as_str()
        .expect("a caBundle")
        .replace(['\n', '\r'], "");
    assert_eq!(
        secret["data"]["ca.crt"]
            .as_str()
            .map(|s| s.replace('\n', "")),
        Some(bundle.clone())
    );
    let ca_crt = std::fs::read_to_string(sandbox.home.join(".config/sparkgang/pki/ca/ca.crt"))
        .expect("the CA is under $HOME");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(bundle)
        .unwrap();
    assert_eq!(String::from_utf8(decoded).unwrap(), ca_crt);
    let namespace = find(&objects, "Namespace", "spark");
    assert_eq!(
        namespace["metadata"]["labels"]["sparkgang.io/enabled"],
        "true"
    );
    find(&objects, "ServiceAccount", "spark");

    // The commands did make keys: the CA's is under $HOME.
    assert!(contains_private_key(
        &sandbox.home.join(".config/sparkgang/pki/ca/ca.key")
    ));
    // Every file they wrote under the repository is git-ignored.
    for new in after.difference(&before) {
        let ignored = Command::new("git")
            .args(["check-ignore", "-q"])
            .arg(new)
            .current_dir(&sandbox.repo)
            .status()
            .unwrap();
        assert!(
            ignored.success(),
            "{} is written by the README's commands but not git-ignored",
            new.display()
        );
    }
}

#[test]
fn gitignore_covers_every_path_a_key_was_ever_documented_at() {
    let sandbox = Sandbox::new();
    for path in [
        "deploy/overlays/self-signed/ca/ca.key",
        "deploy/overlays/self-signed/tls/tls.key",
        "deploy/overlays/self-signed/ca.crt",
        "deploy/local/kustomization.yaml",
        "pki/ca/ca.key",
        "pki/webhook/tls.key",
    ] {
        let ignored = Command::new("git")
            .args(["check-ignore", "-q", path])
            .current_dir(&sandbox.repo)
            .status()
            .unwrap();
        assert!(ignored.success(), "{path} is not git-ignored");
    }
}

fn supported_minors() -> Vec<u32> {
    let dir = sparkgang_tests::repo_root().join("deploy/components");
    let mut minors: Vec<u32> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().ok()?;
            name.strip_prefix("kube-scheduler-v1.")?.parse().ok()
        })
        .collect();
    minors.sort();
    minors
}

#[test]
fn a_kube_scheduler_component_for_every_minor_the_readme_supports() {
    let minors = supported_minors();
    let (first, last) = (minors[0], minors[minors.len() - 1]);
    assert_eq!(
        minors,
        (first..=last).collect::<Vec<_>>(),
        "a supported minor has no component"
    );
    let text = readme();
    let range = format!("1.{first} – 1.{last}");
    assert!(
        text.contains(&range),
        "the README does not state the supported range {range} of deploy/components"
    );
    // Without a component, deploy/ runs the newest.
    let base = std::fs::read_to_string(
        sparkgang_tests::repo_root().join("deploy/base/scheduler/deployment.yaml"),
    )
    .unwrap();
    assert!(
        base.contains(&format!("registry.k8s.io/kube-scheduler:v1.{last}.")),
        "deploy/base does not default to kube-scheduler 1.{last}"
    );
}

#[test]
fn step_4_renders_for_every_minor_image_and_tls_choice() {
    let script = tested_script();
    for minor in supported_minors() {
        for tls in ["self-signed", "cert-manager"] {
            let sandbox = Sandbox::new();
            let mut edited = with_value(&script, "KUBE_MINOR", &format!("1.{minor}"));
            edited = with_value(&edited, "TLS", tls);
            edited = with_value(&edited, "IMAGE", "registry.example.com/team/sparkgang");
            edited = with_value(&edited, "TAG", "1.2.3");
            sandbox.run(&edited);
            let objects = sandbox.applied();
            let images = images(&objects);
            let scheduler: Vec<_> = images
                .iter()
                .filter(|i| i.starts_with("registry.k8s.io/kube-scheduler:"))
                .collect();
            assert_eq!(scheduler.len(), 1, "{images:?}");
            assert!(
                scheduler[0].starts_with(&format!("registry.k8s.io/kube-scheduler:v1.{minor}.")),
                "1.{minor} {tls}: {images:?}"
            );
            assert!(images.contains("registry.example.com/team/sparkgang:1.2.3"));
            let cm = find(&objects, "ConfigMap", "spark-scheduler-config");
            let config: Value = serde_yaml::from_str(
                cm["data"]["scheduler-config.yaml"]
                    .as_str()
                    .expect("scheduler-config.yaml"),
            )
            .unwrap();
            let api = config["apiVersion"].as_str().unwrap_or("");
            assert!(
                scheduler_config_valid(api, minor),
                "kube-scheduler 1.{minor} does not read {api}"
            );
            let certificates = objects
                .iter()
                .filter(|o| o["kind"] == "Certificate")
                .count();
            let secrets = objects.iter().filter(|o| o["kind"] == "Secret").count();
            match tls {
                "cert-manager" => assert_eq!((certificates, secrets), (2, 0), "{tls}"),
                _ => assert_eq!((certificates, secrets), (0, 1), "{tls}"),
            }
        }
    }
}
