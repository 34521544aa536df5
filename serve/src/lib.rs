//! sparkgang-serve: how the webhook, the extender and the simulator's API server serve HTTP(S)
//! to clients that may be slow, idle or hostile.
//!
//! Every connection is bounded in count ([`Limits::max_connections`]: excess connections are
//! closed at once, never queued), in time (a TLS handshake timeout; a first request within
//! [`Limits::header_read_timeout`], which also bounds the HTTP/1-or-2 detection; an idle timeout
//! between requests, which also bounds later HTTP/1 header reads) and in size (header bytes,
//! HTTP/2 streams and header lists). Request bodies are bounded by the routers
//! ([`body_read_timeout`]). Shutdown stops accepting, lets in-flight requests finish within a
//! grace period, then closes the rest.

mod activity;
mod limits;
mod metrics;
mod server;
mod stats;

pub use limits::{Limits, LimitsError};
pub use metrics::ConnectionMetrics;
pub use server::{Listener, Tls, bind, serve};
pub use stats::{CloseReason, ServeStats};

/// A layer that answers 408 when a request body does not arrive within the limit (tower-http's
/// request body timeout), for the routers of the servers.
pub fn body_read_timeout(limits: &Limits) -> tower_http::timeout::RequestBodyTimeoutLayer {
    tower_http::timeout::RequestBodyTimeoutLayer::new(limits.body_read_timeout)
}
