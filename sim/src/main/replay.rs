//! `sparkgang-sim replay`: reads the inputs, builds the configurations to compare, runs them
//! with a progress bar, prints the summary and writes the JSON and HTML reports.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sparkgang_common::durations::parse_duration;
use sparkgang_sim::eventlog;
use sparkgang_sim::replay::{self, Configuration, ReplayEvent, ReplayReport};

/// The arguments of `sparkgang-sim replay`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The event-log directory (`spark.eventLog.dir`), e.g. fixtures/spark-eventlogs/history.
    #[arg(long, value_name = "DIR")]
    pub eventlogs: PathBuf,
    /// The cluster's nodes: `kubectl get nodes -o json` output, e.g. nodes.json.
    #[arg(long, value_name = "NODES.json")]
    pub nodes: PathBuf,
    /// Compare values of one extender config key, e.g.
    /// --compare binpack=tightly-pack,minimal-fragmentation (dotted keys reach nested ones:
    /// fifo.enforceAfter=0s,5m).
    #[arg(long, value_name = "KEY=V1,V2")]
    pub compare: Option<String>,
    /// Extender config keys (docs/extender.md) on top of deploy/'s, e.g. --config extender.yaml.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Longest virtual time each configuration runs, e.g. --horizon 6h (default: the span of
    /// the submissions, twice the longest application, and ten minutes).
    #[arg(long, value_name = "DURATION")]
    pub horizon: Option<String>,
    /// Write the JSON report here, e.g. --report replay.json.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Write the self-contained HTML report here, e.g. --html replay.html.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Configurations replayed at once, each on its own core, e.g. --jobs 1 (default: the
    /// machine's cores). The report does not depend on it.
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
}

/// `base` with `key` (dotted for nested keys) set to `value`.
fn with_key(base: &serde_yaml::Value, key: &str, value: serde_yaml::Value) -> serde_yaml::Value {
    let mut out = base.clone();
    let mut at = &mut out;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if !at.is_mapping() {
            *at = serde_yaml::Value::Mapping(serde_yaml::Mapping::new());
        }
        let serde_yaml::Value::Mapping(m) = at else {
            break;
        };
        let k = serde_yaml::Value::String((*part).to_owned());
        if i + 1 == parts.len() {
            m.insert(k, value);
            break;
        }
        at = m
            .entry(k)
            .or_insert_with(|| serde_yaml::Value::Mapping(serde_yaml::Mapping::new()));
    }
    out
}

/// The configurations to run: each compared value (or the config as it is), then
/// kube-scheduler alone.
pub fn configurations(
    base: &serde_yaml::Value,
    compare: Option<&str>,
) -> anyhow::Result<Vec<Configuration>> {
    let mut out = Vec::new();
    match compare {
        None => out.push(Configuration {
            name: "sparkgang".to_owned(),
            overrides: Some(base.clone()),
        }),
        Some(spec) => {
            let Some((key, values)) = spec.split_once('=') else {
                bail!(
                    "--compare {spec:?}: expected KEY=V1,V2 (e.g. binpack=tightly-pack,minimal-fragmentation)"
                );
            };
            let key = key.trim();
            let values: Vec<&str> = values
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .collect();
            if key.is_empty() || values.is_empty() {
                bail!(
                    "--compare {spec:?}: expected a key and at least one value, as in binpack=tightly-pack,minimal-fragmentation"
                );
            }
            for v in values {
                let value: serde_yaml::Value = serde_yaml::from_str(v)
                    .unwrap_or_else(|_| serde_yaml::Value::String(v.to_owned()));
                out.push(Configuration {
                    name: format!("{key}={v}"),
                    overrides: Some(with_key(base, key, value)),
                });
            }
        }
    }
    out.push(Configuration::kube_scheduler_alone());
    Ok(out)
}

pub fn run(args: Args) -> anyhow::Result<bool> {
    let base = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let v: serde_yaml::Value = serde_yaml::from_str(&text)
                .with_context(|| format!("{}: not YAML", path.display()))?;
            if !v.is_mapping() {
                bail!(
                    "{}: expected a mapping of extender config keys (docs/extender.md), such as `binpack: tightly-pack`",
                    path.display()
                );
            }
            v
        }
        None => serde_yaml::Value::Mapping(serde_yaml::Mapping::new()),
    };
    let configurations = configurations(&base, args.compare.as_deref())?;
    let horizon = args
        .horizon
        .as_deref()
        .map(|h| parse_duration(h).map_err(|e| anyhow::anyhow!("--horizon {h:?}: {e}")))
        .transpose()?;
    let nodes = eventlog::nodes::read_nodes(&args.nodes)?;
    let read = Instant::now();
    let logs = eventlog::read_dir(&args.eventlogs)?;
    println!(
        "read {} applications ({} logs skipped) from {} in {:.1} s; {} nodes",
        logs.apps.len(),
        logs.skipped.len(),
        args.eventlogs.display(),
        read.elapsed().as_secs_f64(),
        nodes.len()
    );
    let style =
        ProgressStyle::with_template("{prefix:>28} [{bar:40}] {pos}/{len} submitted, {elapsed}")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    let bars = MultiProgress::new();
    let by_name: Vec<(String, ProgressBar)> = configurations
        .iter()
        .map(|c| {
            let b = bars.add(ProgressBar::hidden().with_style(style.clone()));
            b.set_prefix(c.name.clone());
            (c.name.clone(), b)
        })
        .collect();
    let bar_of = |name: &str| by_name.iter().find(|(n, _)| n == name).map(|(_, b)| b);
    let jobs = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    if jobs == 0 {
        anyhow::bail!("--jobs 0: at least one configuration must run at a time");
    }
    let source = args.eventlogs.display().to_string();
    let report = replay::replay(
        &source,
        &logs,
        &nodes,
        &configurations,
        horizon,
        jobs,
        &|event| match event {
            ReplayEvent::Submitted {
                configuration,
                done,
                total,
            } => {
                if let Some(b) = bar_of(configuration) {
                    if b.length() != Some(total as u64) {
                        b.set_length(total as u64);
                        b.set_draw_target(ProgressDrawTarget::stderr());
                        b.reset_elapsed();
                    }
                    b.set_position(done as u64);
                }
            }
            ReplayEvent::Finished {
                configuration,
                wall,
            } => {
                if let Some(b) = bar_of(configuration) {
                    b.finish_and_clear();
                }
                let line = format!(
                    "{configuration}: replayed in {:.1} s of wall time",
                    wall.as_secs_f64()
                );
                if bars.is_hidden() {
                    println!("{line}");
                } else {
                    let _ = bars.println(line);
                }
            }
        },
    )?;
    print_summary(&report);
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("report: {}", path.display());
    }
    if let Some(path) = &args.html {
        let page = replay::render_html(&report).map_err(|e| anyhow::anyhow!("HTML report: {e}"))?;
        std::fs::write(path, page).with_context(|| format!("cannot write {}", path.display()))?;
        println!("html: {}", path.display());
    }
    Ok(true)
}

fn print_summary(r: &ReplayReport) {
    let opt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
    println!(
        "\n{:<32} {:>8} {:>9} {:>6} {:>9} {:>9} {:>10} {:>8}",
        "configuration", "started", "completed", "never", "wait p50", "wait p99", "makespan", "cpu"
    );
    for c in &r.configurations {
        let s = &c.summary;
        println!(
            "{:<32} {:>8} {:>9} {:>6} {:>9} {:>9} {:>10.1} {:>7.1}%",
            c.name,
            s.started,
            s.completed,
            s.never_started,
            opt(s.wait_seconds.p50),
            opt(s.wait_seconds.p99),
            s.makespan_seconds,
            s.mean_cpu_utilisation * 100.0
        );
    }
    println!(
        "\n{} applications replayed on {} nodes; {} logs skipped (named in the reports). Times \
         are seconds on the virtual clock from the first submission; wait is until the driver \
         and its minimum executors run.",
        r.applications,
        r.nodes,
        r.skipped.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_makes_one_configuration_a_value_and_the_baseline() {
        let base: serde_yaml::Value = serde_yaml::from_str("fifo: {enabled: true}").expect("yaml");
        let c = configurations(&base, Some("binpack=tightly-pack, minimal-fragmentation"))
            .expect("configurations");
        let names: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "binpack=tightly-pack",
                "binpack=minimal-fragmentation",
                "kube-scheduler alone"
            ]
        );
        let first = c[0].overrides.as_ref().expect("sparkgang");
        assert_eq!(first["binpack"], "tightly-pack");
        assert_eq!(first["fifo"]["enabled"], true, "the base is kept");
        assert!(c[2].overrides.is_none());
        let nested = configurations(&base, Some("fifo.enforceAfter=5m")).expect("nested");
        let o = nested[0].overrides.as_ref().expect("sparkgang");
        assert_eq!(
            (&o["fifo"]["enabled"], &o["fifo"]["enforceAfter"]),
            (&true.into(), &"5m".into())
        );
        for bad in ["binpack", "=a", "binpack="] {
            assert!(configurations(&base, Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(configurations(&base, None).expect("plain").len(), 2);
    }
}
