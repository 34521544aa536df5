//! Whether the watch caches can be trusted: each watched resource is fresh while its watch
//! delivers, and stale from the moment a list or watch fails (or falls silent) until it has
//! been listed or watched again. Plain data; time is passed in.

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

/// The four watched resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Watched {
    Nodes,
    Pods,
    Reservations,
    Budgets,
    Queues,
}

impl Watched {
    pub const ALL: [Watched; 5] = [
        Watched::Nodes,
        Watched::Pods,
        Watched::Reservations,
        Watched::Budgets,
        Watched::Queues,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Watched::Nodes => "nodes",
            Watched::Pods => "pods",
            Watched::Reservations => "resourcereservations",
            Watched::Budgets => "poddisruptionbudgets",
            Watched::Queues => "queues",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Watched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why one resource's cache is stale, since when.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stale {
    since: Instant,
    why: String,
}

/// Freshness of the caches, one per [`Watched`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Freshness {
    stale: [Option<Stale>; Watched::ALL.len()],
}

impl Freshness {
    /// The watch of `w` is delivering (it started, or an event or bookmark arrived).
    pub fn delivering(&mut self, w: Watched) {
        self.stale[w.index()] = None;
    }

    /// The cache of `w` stopped following the API: a list or watch failed, or the watch fell
    /// silent. The first reason and time are kept until it delivers again.
    pub fn failed(&mut self, w: Watched, why: impl Into<String>, now: Instant) {
        let slot = &mut self.stale[w.index()];
        if slot.is_none() {
            *slot = Some(Stale {
                since: now,
                why: why.into(),
            });
        }
    }

    /// The longest-stale cache, with how long and why; `None` when all are fresh.
    pub fn stale(&self, now: Instant) -> Option<(Watched, Duration, &str)> {
        Watched::ALL
            .iter()
            .filter_map(|w| {
                self.stale[w.index()]
                    .as_ref()
                    .map(|s| (*w, now.saturating_duration_since(s.since), s.why.as_str()))
            })
            .max_by_key(|(_, d, _)| *d)
    }

    /// Why filter calls must not be answered from these caches, if they must not.
    pub fn not_ready_reason(&self, now: Instant) -> Option<String> {
        self.stale(now).map(|(w, d, why)| {
            format!(
                "the {w} cache is stale for {:.1}s ({why}); not deciding until it is relisted",
                d.as_secs_f64()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_until_a_watch_fails_and_again_once_it_delivers() {
        let t0 = Instant::now();
        let mut f = Freshness::default();
        assert_eq!(f.not_ready_reason(t0), None);
        f.failed(Watched::Pods, "watch silent for 70s", t0);
        let later = t0 + Duration::from_secs(3);
        let reason = f.not_ready_reason(later).unwrap_or_default();
        assert!(
            reason.contains("pods") && reason.contains("3.0s"),
            "{reason}"
        );
        assert!(reason.contains("watch silent for 70s"), "{reason}");
        f.delivering(Watched::Pods);
        assert_eq!(f.not_ready_reason(later), None);
    }

    #[test]
    fn the_first_failure_is_kept_and_the_longest_stale_cache_is_named() {
        let t0 = Instant::now();
        let mut f = Freshness::default();
        f.failed(
            Watched::Nodes,
            "list failed: 500",
            t0 + Duration::from_secs(2),
        );
        f.failed(Watched::Reservations, "watch ended", t0);
        f.failed(
            Watched::Reservations,
            "a later reason",
            t0 + Duration::from_secs(5),
        );
        let (w, d, why) =
            f.stale(t0 + Duration::from_secs(10))
                .unwrap_or((Watched::Pods, Duration::ZERO, ""));
        assert_eq!(
            (w, d, why),
            (
                Watched::Reservations,
                Duration::from_secs(10),
                "watch ended"
            )
        );
        f.delivering(Watched::Reservations);
        assert_eq!(
            f.stale(t0 + Duration::from_secs(10)).map(|s| s.0),
            Some(Watched::Nodes)
        );
    }
}
