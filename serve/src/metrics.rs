//! The listener's connections as Prometheus metrics, read from [`ServeStats`] at each scrape.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::stats::{CloseReason, ServeStats};

/// Register with `Registry::register_collector`; the names take the registry's prefix:
/// `connections_open`, `connections_accepted_total`, `connections_closed_total{reason}` and
/// `tls_accept_errors_total` (the same as `reason="tls-handshake"`, kept for dashboards).
#[derive(Debug)]
pub struct ConnectionMetrics(pub Arc<ServeStats>);

impl Collector for ConnectionMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = &self.0;
        let open = ConstGauge::new(i64::try_from(stats.open()).unwrap_or(i64::MAX));
        open.encode(encoder.encode_descriptor(
            "connections_open",
            "Connections open now, TLS handshakes included",
            None,
            open.metric_type(),
        )?)?;
        let accepted = ConstCounter::new(stats.accepted());
        accepted.encode(encoder.encode_descriptor(
            "connections_accepted",
            "Connections accepted",
            None,
            accepted.metric_type(),
        )?)?;
        let mut family = encoder.encode_descriptor(
            "connections_closed",
            "Connections the server closed by itself, by reason",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (reason, count) in stats.closed_by_reason() {
            let labels = [("reason", reason.as_str())];
            ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
        }
        let tls = ConstCounter::new(stats.closed(CloseReason::TlsHandshake));
        tls.encode(encoder.encode_descriptor(
            "tls_accept_errors",
            "Connections that failed before a request could be read (TLS handshake errors and timeouts, TCP probes that close at once)",
            None,
            tls.metric_type(),
        )?)?;
        Ok(())
    }
}
