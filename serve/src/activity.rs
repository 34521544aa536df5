//! What a connection is doing: bytes moving and requests in flight, recorded by a wrapper around
//! its I/O, and the watchdog that closes it when it has done nothing for too long.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::stats::CloseReason;

/// One connection's activity, shared by its I/O wrapper, its service and its watchdog.
#[derive(Debug)]
pub(crate) struct Activity {
    started: Instant,
    /// Milliseconds after `started` of the last byte read or written.
    last_io_ms: AtomicU64,
    requests: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Activity {
            started: Instant::now(),
            last_io_ms: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        })
    }

    fn touch(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_io_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// A request arrived; the guard marks it finished when dropped.
    pub fn request(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// When the connection must close if nothing happens before, and why; `None` while a
    /// request is in flight.
    fn deadline(&self, first_request: Duration, idle: Duration) -> Option<(Instant, CloseReason)> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        if self.requests.load(Ordering::Relaxed) == 0 {
            return Some((self.started + first_request, CloseReason::NoFirstRequest));
        }
        let last = self.started + Duration::from_millis(self.last_io_ms.load(Ordering::Relaxed));
        Some((last + idle, CloseReason::Idle))
    }

    /// Resolves when the connection has had no first request within `first_request`, or has
    /// been idle (no request in flight, no bytes moving) for `idle`.
    pub async fn expired(&self, first_request: Duration, idle: Duration) -> CloseReason {
        // While a request is in flight, look again after a while.
        let recheck = first_request.min(idle);
        loop {
            match self.deadline(first_request, idle) {
                Some((at, reason)) if at <= Instant::now() => return reason,
                Some((at, _)) => tokio::time::sleep_until(at).await,
                None => tokio::time::sleep(recheck).await,
            }
        }
    }
}

/// A request in flight on a connection, until dropped.
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A connection's I/O that records when bytes move.
pub(crate) struct Watched<IO> {
    pub io: IO,
    pub activity: Arc<Activity>,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn no_first_request_expires_after_its_timeout() {
        let a = Activity::new();
        let started = Instant::now();
        let reason = a
            .expired(Duration::from_secs(10), Duration::from_secs(45))
            .await;
        assert_eq!(reason, CloseReason::NoFirstRequest);
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_is_never_cut_and_idleness_counts_from_its_end() {
        let a = Activity::new();
        let guard = a.request();
        let waiting = tokio::spawn({
            let a = a.clone();
            async move {
                a.expired(Duration::from_secs(10), Duration::from_secs(45))
                    .await
            }
        });
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert!(!waiting.is_finished(), "cut while a request was in flight");
        drop(guard);
        let ended = Instant::now();
        assert_eq!(waiting.await.unwrap(), CloseReason::Idle);
        let idle_for = Instant::now() - ended;
        assert!(
            idle_for >= Duration::from_secs(45) && idle_for <= Duration::from_secs(56),
            "{idle_for:?}"
        );
    }
}
