//! `ServeStats`: what a listener did with its connections, for metrics and load tests.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why the server closed a connection by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Over `maxConnections`: closed as soon as accepted.
    OverCapacity,
    /// The TLS handshake failed or did not complete in time.
    TlsHandshake,
    /// No first request within `headerReadTimeout`.
    NoFirstRequest,
    /// Idle for `idleTimeout`.
    Idle,
}

impl CloseReason {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::OverCapacity => "over-capacity",
            CloseReason::TlsHandshake => "tls-handshake",
            CloseReason::NoFirstRequest => "no-first-request",
            CloseReason::Idle => "idle",
        }
    }

    const ALL: [CloseReason; 4] = [
        CloseReason::OverCapacity,
        CloseReason::TlsHandshake,
        CloseReason::NoFirstRequest,
        CloseReason::Idle,
    ];
}

/// Counters of one listener (shared; read them at any time).
#[derive(Debug, Default)]
pub struct ServeStats {
    accepted: AtomicU64,
    open: AtomicU64,
    closed_by_server: [AtomicU64; 4],
}

impl ServeStats {
    /// Connections accepted since start.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Connections open now (being served, TLS handshakes included).
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections the server closed by itself for `reason`.
    pub fn closed(&self, reason: CloseReason) -> u64 {
        self.closed_by_server[reason as usize].load(Ordering::Relaxed)
    }

    /// Every reason with its count, for metrics.
    pub fn closed_by_reason(&self) -> impl Iterator<Item = (CloseReason, u64)> + '_ {
        CloseReason::ALL.into_iter().map(|r| (r, self.closed(r)))
    }

    pub(crate) fn on_accept(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn on_open(&self) {
        self.open.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn on_close(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    /// Counts a connection the server closed by itself (the listener does; tests may).
    pub fn record_closed(&self, reason: CloseReason) {
        self.closed_by_server[reason as usize].fetch_add(1, Ordering::Relaxed);
    }
}
