//! Prometheus metrics of the webhook (prometheus-client), served on the plain-HTTP port.

use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use sparkgang_serve::{ConnectionMetrics, ServeStats};

use crate::mutation::{PatchKind, Role};

/// The `role` label: what kind of pod a review was about.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum RoleLabel {
    driver,
    executor,
    /// Not a Spark driver/executor pod CREATE (or no review could be read).
    other,
}

impl From<Option<Role>> for RoleLabel {
    fn from(role: Option<Role>) -> Self {
        match role {
            Some(Role::Driver) => RoleLabel::driver,
            Some(Role::Executor) => RoleLabel::executor,
            None => RoleLabel::other,
        }
    }
}

/// The `outcome` label of a review.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum ReviewOutcome {
    /// Allowed with a patch.
    patched,
    /// Allowed, nothing to change (already mutated, or nothing applies).
    unchanged,
    /// Allowed untouched: not a Spark pod CREATE, a client-mode executor, or another scheduler.
    ignored,
    /// Denied (malformed annotations or object).
    denied,
    /// The HTTP request was rejected (4xx): not an AdmissionReview, too large, wrong type.
    bad_request,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    role: RoleLabel,
    outcome: ReviewOutcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabels {
    role: RoleLabel,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum ReloadResult {
    success,
    failure,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    result: ReloadResult,
}

fn latency_histogram() -> Histogram {
    // 50 µs … ~0.8 s.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.00005, 2.0, 15,
    ))
}

/// All metrics of one webhook process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RoleLabels, Histogram, fn() -> Histogram>,
    denials: Family<ReasonLabels, Counter>,
    patches: Family<KindLabels, Counter>,
    cert_expiry: Gauge<i64, AtomicI64>,
    cert_reloads: Family<ReloadLabels, Counter>,
    driver_reads: Family<ResultLabels, Counter>,
    queue_reads: Family<ResultLabels, Counter>,
    connections: Arc<ServeStats>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sparkgang_admission");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Admission reviews answered, by pod role and outcome",
            requests.clone(),
        );
        let latency = Family::<RoleLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register_with_unit(
            "request_duration",
            "Time to answer one POST /mutate, from the request head to the response body",
            prometheus_client::registry::Unit::Seconds,
            latency.clone(),
        );
        let denials = Family::<ReasonLabels, Counter>::default();
        registry.register("denials", "Pods denied, by reason", denials.clone());
        let patches = Family::<KindLabels, Counter>::default();
        registry.register(
            "patches",
            "Changes made to admitted pods, by kind of change",
            patches.clone(),
        );
        let cert_expiry = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "notAfter of the serving certificate in use, in Unix seconds",
            cert_expiry.clone(),
        );
        let cert_reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "certificate_reloads",
            "Attempts to load a changed certificate/key pair, by result (a failure keeps the old pair)",
            cert_reloads.clone(),
        );
        let driver_reads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "driver_reads",
            "Drivers read for their executors' priority class, by result (found, no-class, \
             not-found, failed)",
            driver_reads.clone(),
        );
        let queue_reads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "queue_reads",
            "Queues named by drivers, read to refuse those that do not exist, by result (found, \
             not-found, failed)",
            queue_reads.clone(),
        );
        let connections = Arc::new(ServeStats::default());
        registry.register_collector(Box::new(ConnectionMetrics(connections.clone())));
        Metrics {
            queue_reads,
            registry,
            requests,
            latency,
            denials,
            patches,
            cert_expiry,
            cert_reloads,
            driver_reads,
            connections,
        }
    }

    /// The HTTPS listener's connections (exported as `connections_*` and `tls_accept_errors`).
    pub fn connections(&self) -> &Arc<ServeStats> {
        &self.connections
    }

    /// Records one answered review.
    pub fn review(&self, role: Option<Role>, outcome: ReviewOutcome, elapsed: Duration) {
        let role = RoleLabel::from(role);
        self.requests
            .get_or_create(&RequestLabels { role, outcome })
            .inc();
        self.latency
            .get_or_create(&RoleLabels { role })
            .observe(elapsed.as_secs_f64());
    }

    /// Records one read of an executor's driver (`found`, `no-class`, `not-found`, `failed`).
    pub fn driver_read(&self, result: &'static str) {
        self.driver_reads
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// Records one read of a driver's queue (`found`, `not-found`, `failed`).
    pub fn queue_read(&self, result: &'static str) {
        self.queue_reads
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// Records one denial.
    pub fn denial(&self, reason: &str) {
        // Reasons come from a closed set of error classes; cap the length anyway.
        let reason: String = reason.chars().take(64).collect();
        self.denials.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Records the changes of one patch.
    pub fn patches(&self, kinds: impl IntoIterator<Item = PatchKind>) {
        for kind in kinds {
            self.patches
                .get_or_create(&KindLabels {
                    kind: kind.as_str(),
                })
                .inc();
        }
    }

    /// Sets the expiry of the certificate being served.
    pub fn set_certificate_expiry(&self, not_after_unix: i64) {
        self.cert_expiry.set(not_after_unix);
    }

    /// Counts a certificate reload attempt.
    pub fn certificate_reload(&self, ok: bool) {
        let result = if ok {
            ReloadResult::success
        } else {
            ReloadResult::failure
        };
        self.cert_reloads
            .get_or_create(&ReloadLabels { result })
            .inc();
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sparkgang_serve::CloseReason;

    #[test]
    fn encodes_all_families() {
        let m = Metrics::new();
        m.review(
            Some(Role::Driver),
            ReviewOutcome::patched,
            Duration::from_micros(120),
        );
        m.denial("invalid-quantity");
        m.patches([PatchKind::SchedulerName]);
        m.set_certificate_expiry(4_102_444_799);
        m.certificate_reload(false);
        m.connections().record_closed(CloseReason::TlsHandshake);
        let text = m.encode();
        for want in [
            "sparkgang_admission_requests_total{role=\"driver\",outcome=\"patched\"} 1",
            "sparkgang_admission_request_duration_seconds_bucket{le=\"0.0002\",role=\"driver\"} 1",
            "sparkgang_admission_denials_total{reason=\"invalid-quantity\"} 1",
            "sparkgang_admission_patches_total{kind=\"scheduler_name\"} 1",
            "sparkgang_admission_certificate_expiry_timestamp_seconds 4102444799",
            "sparkgang_admission_certificate_reloads_total{result=\"failure\"} 1",
            "sparkgang_admission_tls_accept_errors_total 1",
            "# EOF",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
    }
}
