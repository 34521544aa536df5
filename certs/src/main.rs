//! `sparkgang-certs`: creates the CA and serving certificates of sparkgang's webhook, as files or
//! as a Kubernetes Secret manifest.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use sparkgang_certs::{
    CertError, CertificateAuthority, DEFAULT_CA_COMMON_NAME, DEFAULT_CA_DAYS, DEFAULT_SERVING_DAYS,
    ExistingCa, MAX_DAYS, ServingCertificate, ServingIdentity, Validity, ca_bundle, format_instant,
    load_ca, tls_secret_manifest, write_ca, write_serving,
};
use time::OffsetDateTime;

/// Creates the CA and serving certificates of sparkgang's TLS servers.
#[derive(Debug, Parser)]
#[command(name = "sparkgang-certs", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a CA: writes ca.crt and ca.key (mode 0600) into --out-dir.
    Ca(CaArgs),
    /// Issue or renew a serving certificate from an existing CA: writes tls.crt, tls.key (mode
    /// 0600) and ca.crt into --out-dir.
    Serving(ServingArgs),
    /// Print a kubernetes.io/tls Secret manifest holding a new serving certificate, or with
    /// --ca-bundle only the base64 caBundle for a webhook configuration.
    Secret(SecretArgs),
}

#[derive(Debug, Args)]
struct CaArgs {
    /// Directory to write ca.crt and ca.key into (created if missing), outside any git
    /// repository, e.g. --out-dir ~/.config/sparkgang/pki/ca.
    #[arg(long)]
    out_dir: PathBuf,
    /// Subject common name of the CA, e.g. --common-name my-org-sparkgang-ca.
    #[arg(long, default_value = DEFAULT_CA_COMMON_NAME)]
    common_name: String,
    /// Days the CA is valid, e.g. --days 3650.
    #[arg(long, default_value_t = DEFAULT_CA_DAYS, value_parser = days_parser())]
    days: u32,
    /// Replace an existing CA in --out-dir (every certificate it signed stops verifying), e.g.
    /// --force.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
struct ServingArgs {
    /// Directory holding the CA (ca.crt, ca.key), e.g. --ca-dir ~/.config/sparkgang/pki/ca.
    #[arg(long)]
    ca_dir: PathBuf,
    /// Name of the Kubernetes Service the certificate is for, e.g. --service sparkgang-webhook.
    #[arg(long)]
    service: String,
    /// Namespace of the Service, e.g. --namespace sparkgang-system.
    #[arg(long)]
    namespace: String,
    /// Extra DNS name to include (repeatable), e.g. --dns localhost.
    #[arg(long = "dns", value_name = "NAME")]
    dns_names: Vec<String>,
    /// Extra IP address to include (repeatable), e.g. --ip 127.0.0.1.
    #[arg(long = "ip", value_name = "IP")]
    ip_addresses: Vec<IpAddr>,
    /// Days the certificate is valid, e.g. --days 90.
    #[arg(long, default_value_t = DEFAULT_SERVING_DAYS, value_parser = days_parser())]
    days: u32,
    /// Directory to write tls.crt, tls.key and ca.crt into (created if missing; files replaced),
    /// e.g. --out-dir ~/.config/sparkgang/pki/webhook.
    #[arg(long)]
    out_dir: PathBuf,
}

#[derive(Debug, Args)]
struct SecretArgs {
    /// Directory holding the CA (ca.crt, ca.key), e.g. --ca-dir ~/.config/sparkgang/pki/ca.
    #[arg(long)]
    ca_dir: PathBuf,
    /// Print only the base64 caBundle (the CA certificate) for a webhook configuration, e.g.
    /// --ca-bundle.
    #[arg(long, conflicts_with_all = ["service", "namespace", "secret_name", "dns_names", "ip_addresses", "days"])]
    ca_bundle: bool,
    /// Name of the Kubernetes Service the certificate is for, e.g. --service sparkgang-webhook.
    #[arg(long, required_unless_present = "ca_bundle")]
    service: Option<String>,
    /// Namespace of the Service and of the Secret, e.g. --namespace sparkgang-system.
    #[arg(long, required_unless_present = "ca_bundle")]
    namespace: Option<String>,
    /// Name of the Secret, e.g. --secret-name sparkgang-webhook-tls.
    #[arg(long, required_unless_present = "ca_bundle")]
    secret_name: Option<String>,
    /// Extra DNS name to include (repeatable), e.g. --dns localhost.
    #[arg(long = "dns", value_name = "NAME")]
    dns_names: Vec<String>,
    /// Extra IP address to include (repeatable), e.g. --ip 127.0.0.1.
    #[arg(long = "ip", value_name = "IP")]
    ip_addresses: Vec<IpAddr>,
    /// Days the certificate is valid, e.g. --days 90.
    #[arg(long, default_value_t = DEFAULT_SERVING_DAYS, value_parser = days_parser())]
    days: u32,
}

fn days_parser() -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(1..=i64::from(MAX_DAYS))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command, OffsetDateTime::now_utc()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sparkgang-certs: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command, now: OffsetDateTime) -> anyhow::Result<()> {
    match command {
        Command::Ca(args) => create_ca(&args, now),
        Command::Serving(args) => issue_serving_files(&args, now),
        Command::Secret(args) => print_secret(&args, now),
    }
}

fn create_ca(args: &CaArgs, now: OffsetDateTime) -> anyhow::Result<()> {
    let ca =
        CertificateAuthority::generate(&args.common_name, Validity::for_days(now, args.days)?)?;
    let existing = if args.force {
        ExistingCa::Overwrite
    } else {
        ExistingCa::Refuse
    };
    let written = write_ca(&args.out_dir, &ca, existing).map_err(|error| match error {
        CertError::CaAlreadyExists { .. } => {
            anyhow::anyhow!("{error} (pass --force to replace it)")
        }
        other => other.into(),
    })?;
    report_written(&written, ca.not_after())
}

fn issue_serving_files(args: &ServingArgs, now: OffsetDateTime) -> anyhow::Result<()> {
    let ca = load_ca_from(&args.ca_dir)?;
    let serving = issue(
        &ca,
        &args.service,
        &args.namespace,
        &args.dns_names,
        &args.ip_addresses,
        Validity::for_days(now, args.days)?,
    )?;
    let written = write_serving(&args.out_dir, &serving, ca.cert_pem())?;
    report_written(&written, serving.validity().not_after())
}

fn print_secret(args: &SecretArgs, now: OffsetDateTime) -> anyhow::Result<()> {
    let ca = load_ca_from(&args.ca_dir)?;
    let output = if args.ca_bundle {
        format!("{}\n", ca_bundle(ca.cert_pem()))
    } else {
        let (Some(service), Some(namespace), Some(secret_name)) =
            (&args.service, &args.namespace, &args.secret_name)
        else {
            anyhow::bail!(
                "--service, --namespace and --secret-name are required without --ca-bundle"
            );
        };
        let serving = issue(
            &ca,
            service,
            namespace,
            &args.dns_names,
            &args.ip_addresses,
            Validity::for_days(now, args.days)?,
        )?;
        tls_secret_manifest(secret_name, namespace, &serving, ca.cert_pem())?
    };
    std::io::stdout()
        .lock()
        .write_all(output.as_bytes())
        .context("cannot write to standard output")
}

fn load_ca_from(dir: &Path) -> anyhow::Result<CertificateAuthority> {
    load_ca(dir).with_context(|| format!("cannot load the CA from {}", dir.display()))
}

fn issue(
    ca: &CertificateAuthority,
    service: &str,
    namespace: &str,
    dns_names: &[String],
    ip_addresses: &[IpAddr],
    validity: Validity,
) -> anyhow::Result<ServingCertificate> {
    let identity = ServingIdentity::for_service(service, namespace)?
        .with_dns_names(dns_names)?
        .with_ip_addresses(ip_addresses);
    Ok(ca.issue_serving(&identity, validity)?)
}

fn report_written(paths: &[PathBuf], not_after: OffsetDateTime) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    for path in paths {
        writeln!(stdout, "wrote {}", path.display())?;
    }
    writeln!(stdout, "valid until {}", format_instant(not_after))?;
    Ok(())
}
