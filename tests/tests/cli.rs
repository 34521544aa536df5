//! The command lines of every sparkgang binary: `--version`, help text with an example for
//! every argument that takes a value, both servers started by the same `serve --config PATH`
//! (and today's forms still working), and config errors that name the key and what is accepted.

use std::process::{Command, Output};

use sparkgang_tests::bins::workspace_bin;

const BINARIES: [&str; 4] = [
    "sparkgang-admission",
    "sparkgang-extender",
    "sparkgang-certs",
    "sparkgang-sim",
];

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(workspace_bin(bin))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("the binary runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The subcommands a `--help` lists (none for a binary without).
fn subcommands(help: &str) -> Vec<String> {
    help.split("Commands:")
        .nth(1)
        .map(|rest| {
            rest.lines()
                .skip(1)
                .take_while(|l| l.starts_with("  "))
                .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
                .filter(|c| c != "help")
                .collect()
        })
        .unwrap_or_default()
}

/// Lines of a `--help` that describe an argument taking a value (`--x <V>` or `<V>`), each with
/// its description (clap puts it on the same line).
fn value_arguments(help: &str) -> Vec<String> {
    help.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with("--") || l.starts_with('<') || l.starts_with('-'))
        .filter(|l| l.split("  ").next().is_some_and(|a| a.contains('<')))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_binary_has_version_and_examples_for_every_value_argument() {
    for bin in BINARIES {
        let v = run(bin, &["--version"]);
        assert!(v.status.success(), "{bin} --version: {}", text(&v));
        assert_eq!(
            text(&v).trim(),
            format!("{bin} {}", env!("CARGO_PKG_VERSION")),
            "{bin} --version"
        );
        let top = text(&run(bin, &["--help"]));
        let mut helps = vec![(bin.to_owned(), top.clone())];
        for sub in subcommands(&top) {
            helps.push((format!("{bin} {sub}"), text(&run(bin, &[&sub, "--help"]))));
        }
        for (what, help) in helps {
            for arg in value_arguments(&help) {
                assert!(
                    arg.contains("e.g.") || arg.contains("[default:"),
                    "{what}: argument without an example: {arg}"
                );
            }
        }
    }
}

#[test]
fn both_servers_take_serve_config_and_plain_config() {
    let missing = std::env::temp_dir().join("sparkgang-cli-test-no-such-config.yaml");
    let missing = missing.to_str().expect("a UTF-8 temp path");
    for bin in ["sparkgang-admission", "sparkgang-extender"] {
        for args in [
            vec!["serve", "--config", missing],
            vec!["--config", missing],
        ] {
            let o = run(bin, &args);
            // Parsed (clap exits 2 on a usage error), then failed on the file it was given.
            assert_eq!(o.status.code(), Some(1), "{bin} {args:?}: {}", text(&o));
            assert!(text(&o).contains(missing), "{bin} {args:?}: {}", text(&o));
        }
        let o = run(bin, &[]);
        assert_eq!(o.status.code(), Some(2), "{bin} without arguments");
        assert!(text(&o).contains("--config"), "{}", text(&o));
    }
}

/// The webhook reads executors' drivers by default; without any way to reach the API it stops
/// at start-up, naming the key that turns the reads off.
#[test]
fn the_webhook_without_api_access_says_which_key_to_turn_off() {
    let dir = tempfile::tempdir().unwrap();
    let pki = sparkgang_certs::TestPki::for_service("sparkgang-webhook", "sparkgang-system")
        .expect("a test PKI");
    pki.write_to_dir(dir.path()).expect("the PKI is written");
    let config = dir.path().join("admission.yaml");
    std::fs::write(
        &config,
        format!(
            "tlsListenAddress: 127.0.0.1:0\nmetricsListenAddress: 127.0.0.1:0\n\
             tlsCertFile: {}\ntlsKeyFile: {}\n",
            dir.path().join("tls.crt").display(),
            dir.path().join("tls.key").display()
        ),
    )
    .unwrap();
    let o = Command::new(workspace_bin("sparkgang-admission"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("RUST_BACKTRACE", "0")
        .env("KUBECONFIG", dir.path().join("no-such-kubeconfig"))
        .env("HOME", dir.path())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .output()
        .expect("the binary runs");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("executorPriorityFromDriver") && t.contains("false"),
        "{t}"
    );
}

#[test]
fn config_errors_name_the_key_and_what_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let admission = dir.path().join("admission.yaml");
    std::fs::write(
        &admission,
        "tlsCertFile: a\ntlsKeyFile: b\nschedulerNam: x\n",
    )
    .unwrap();
    let o = run(
        "sparkgang-admission",
        &["serve", "--config", admission.to_str().unwrap()],
    );
    let t = text(&o);
    assert!(
        t.contains("schedulerNam") && t.contains("schedulerName"),
        "{t}"
    );
    let extender = dir.path().join("extender.yaml");
    std::fs::write(&extender, "binpack: tighty-pack\n").unwrap();
    let o = run(
        "sparkgang-extender",
        &["serve", "--config", extender.to_str().unwrap()],
    );
    let t = text(&o);
    assert!(
        t.contains("tighty-pack") && t.contains("tightly-pack"),
        "{t}"
    );
    assert_eq!(
        t.matches("accepted").count(),
        1,
        "the message is said once: {t}"
    );
}
