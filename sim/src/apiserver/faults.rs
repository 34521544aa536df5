//! Faults the API server injects on request: hanging, answering 5xx or 409, dropping watches —
//! for one client (by User-Agent) or all, for a while.
//!
//! A hang holds requests and watch events until it ends and then serves them: a write that the
//! client gave up on is applied late, as on a real API server that was slow, so clients must
//! reconcile rather than assume a timed-out write failed.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// Requests and watch events are held until the fault ends, then served.
    ApiHang,
    /// Every request is answered `500 InternalError`.
    Api5xx,
    /// Every write (POST, PUT, PATCH, DELETE) is answered `409 Conflict`; reads work.
    Api409,
    /// Open watches end at once, and watches started during the fault end after their
    /// response headers (the client sees the stream close and must re-watch).
    DropWatches,
}

impl FaultKind {
    /// Every kind, by its scenario name.
    pub const ALL: [(&'static str, FaultKind); 4] = [
        ("api-hang", FaultKind::ApiHang),
        ("api-5xx", FaultKind::Api5xx),
        ("api-409", FaultKind::Api409),
        ("drop-watches", FaultKind::DropWatches),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("?", |(n, _)| n)
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A fault kind that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown fault kind {0:?}; accepted: api-hang, api-5xx, api-409, drop-watches")]
pub struct UnknownFault(pub String);

impl FromStr for FaultKind {
    type Err = UnknownFault;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, k)| *k)
            .ok_or_else(|| UnknownFault(s.to_owned()))
    }
}

/// Whose requests a fault affects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clients {
    All,
    /// Requests whose User-Agent starts with this.
    UserAgent(String),
}

impl Clients {
    fn matches(&self, user_agent: Option<&str>) -> bool {
        match self {
            Clients::All => true,
            Clients::UserAgent(prefix) => user_agent.is_some_and(|ua| ua.starts_with(prefix)),
        }
    }
}

#[derive(Debug, Clone)]
struct Active {
    kind: FaultKind,
    clients: Clients,
    until: Instant,
}

/// Requests held by a hang are served after it in the order they came, like a server working
/// off its backlog; requests of the same clients that come while the backlog lasts queue
/// behind it (so a read sent after a held write sees that write).
#[derive(Debug, Default)]
struct Backlog {
    /// The clients of the last hang.
    clients: Option<Clients>,
    /// Tickets handed out / served.
    issued: u64,
    served: u64,
}

/// The faults in force. Cheap to clone; all clones share them.
#[derive(Clone)]
pub struct Faults {
    active: Arc<Mutex<Vec<Active>>>,
    /// Bumped on every start and end of a fault, so held requests and watches look again.
    changed: watch::Sender<u64>,
    backlog: Arc<Mutex<Backlog>>,
    /// Bumped when a held request has been served.
    turns: watch::Sender<u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            active: Arc::default(),
            changed: watch::channel(0).0,
            backlog: Arc::default(),
            turns: watch::channel(0).0,
        }
    }
}

/// A held request's place in the backlog; serving it (or dropping it) lets the next go.
pub struct Ticket {
    faults: Faults,
    number: u64,
    user_agent: Option<String>,
}

impl Ticket {
    /// Waits until the hang is over and every request held before this one was served.
    pub async fn turn(&self) {
        self.faults.hang_over(self.user_agent.as_deref()).await;
        let mut turns = self.faults.turns.subscribe();
        loop {
            let served = self.faults.backlog.lock().map_or(self.number, |b| b.served);
            if served >= self.number {
                return;
            }
            if turns.changed().await.is_err() {
                return;
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Ok(mut b) = self.faults.backlog.lock() {
            b.served = b.served.max(self.number + 1);
        }
        self.faults.turns.send_modify(|t| *t += 1);
    }
}

impl fmt::Debug for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Faults")
            .field("active", &self.active.lock().map(|a| a.len()).unwrap_or(0))
            .finish()
    }
}

impl Faults {
    /// A ticket when a request of this client must wait: a hang for it is in force, or
    /// requests a hang held are still being served.
    pub fn hold(&self, user_agent: Option<&str>) -> Option<Ticket> {
        let hung = self.is_active(FaultKind::ApiHang, user_agent);
        let mut b = self.backlog.lock().ok()?;
        let behind =
            b.served < b.issued && b.clients.as_ref().is_some_and(|c| c.matches(user_agent));
        if !(hung || behind) {
            return None;
        }
        let number = b.issued;
        b.issued += 1;
        Some(Ticket {
            faults: self.clone(),
            number,
            user_agent: user_agent.map(str::to_owned),
        })
    }

    /// Starts `kind` for `clients` now, for `duration`.
    pub fn inject(&self, kind: FaultKind, clients: Clients, duration: Duration) {
        if kind == FaultKind::ApiHang
            && let Ok(mut b) = self.backlog.lock()
        {
            b.clients = Some(clients.clone());
        }
        let until = Instant::now() + duration;
        if let Ok(mut a) = self.active.lock() {
            a.push(Active {
                kind,
                clients,
                until,
            });
        }
        tracing::warn!(fault = %kind, seconds = duration.as_secs_f64(), "API server fault injected");
        self.changed.send_modify(|g| *g += 1);
        // Wake whoever waits on this fault when it ends.
        let changed = self.changed.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(until).await;
            tracing::warn!(fault = %kind, "API server fault ended");
            changed.send_modify(|g| *g += 1);
        });
    }

    /// Ends every fault now.
    pub fn clear(&self) {
        if let Ok(mut a) = self.active.lock() {
            a.clear();
        }
        self.changed.send_modify(|g| *g += 1);
    }

    /// Whether `kind` is in force for a client now.
    pub fn is_active(&self, kind: FaultKind, user_agent: Option<&str>) -> bool {
        let now = Instant::now();
        self.active.lock().is_ok_and(|mut a| {
            a.retain(|f| f.until > now);
            a.iter()
                .any(|f| f.kind == kind && f.clients.matches(user_agent))
        })
    }

    /// Resolves when no hang is in force for this client (at once when none is).
    pub async fn hang_over(&self, user_agent: Option<&str>) {
        let mut changed = self.changed.subscribe();
        while self.is_active(FaultKind::ApiHang, user_agent) {
            if changed.changed().await.is_err() {
                return;
            }
        }
    }

    /// Resolves when watches of this client must be dropped: a `drop-watches` fault for it is
    /// (or comes) in force.
    pub async fn watch_dropped(&self, user_agent: Option<&str>) {
        let mut changed = self.changed.subscribe();
        while !self.is_active(FaultKind::DropWatches, user_agent) {
            if changed.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_by_their_scenario_names_and_unknown_ones_say_what_is_accepted() {
        for (name, kind) in FaultKind::ALL {
            assert_eq!(name.parse::<FaultKind>(), Ok(kind));
            assert_eq!(kind.to_string(), name);
        }
        let e = "api-slow".parse::<FaultKind>().unwrap_err();
        assert!(e.to_string().contains("api-slow") && e.to_string().contains("api-hang"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_fault_affects_its_clients_for_its_duration_only() {
        let faults = Faults::default();
        faults.inject(
            FaultKind::Api5xx,
            Clients::UserAgent("sparkgang-extender".into()),
            Duration::from_secs(10),
        );
        assert!(faults.is_active(FaultKind::Api5xx, Some("sparkgang-extender/0.1")));
        assert!(!faults.is_active(FaultKind::Api5xx, Some("kubectl")));
        assert!(!faults.is_active(FaultKind::Api5xx, None));
        assert!(!faults.is_active(FaultKind::ApiHang, Some("sparkgang-extender")));
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(!faults.is_active(FaultKind::Api5xx, Some("sparkgang-extender")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_request_goes_on_when_the_hang_ends() {
        let faults = Faults::default();
        faults.inject(FaultKind::ApiHang, Clients::All, Duration::from_secs(5));
        let started = Instant::now();
        faults.hang_over(Some("x")).await;
        assert!(started.elapsed() >= Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn held_requests_are_served_in_the_order_they_came_and_later_ones_queue_behind() {
        let faults = Faults::default();
        faults.inject(FaultKind::ApiHang, Clients::All, Duration::from_secs(2));
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5 {
            let ticket = faults.hold(Some("c"));
            assert!(ticket.is_some(), "request {i} is held");
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                if let Some(t) = ticket {
                    // Later tickets are quicker to wake: order must still hold.
                    tokio::time::sleep(Duration::from_millis(10 * (5 - i))).await;
                    t.turn().await;
                    order.lock().map(|mut o| o.push(i)).ok();
                }
            }));
        }
        tokio::time::advance(Duration::from_secs(3)).await;
        // The hang is over, but the backlog is not yet: a new request queues behind it.
        let late = faults.hold(Some("c"));
        assert!(late.is_some());
        for t in tasks {
            assert!(t.await.is_ok());
        }
        if let Some(t) = late {
            t.turn().await;
        }
        assert_eq!(
            order.lock().map(|o| o.clone()).unwrap_or_default(),
            [0, 1, 2, 3, 4]
        );
        assert!(faults.hold(Some("c")).is_none(), "backlog worked off");
    }

    #[tokio::test(start_paused = true)]
    async fn watches_are_dropped_when_the_fault_comes() {
        let faults = Faults::default();
        let f = faults.clone();
        let dropped = tokio::spawn(async move { f.watch_dropped(Some("a")).await });
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(!dropped.is_finished());
        faults.inject(FaultKind::DropWatches, Clients::All, Duration::from_secs(1));
        assert!(dropped.await.is_ok());
    }
}
