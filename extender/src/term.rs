//! One leadership term: from winning the lease (or starting, without leader election) to
//! stepping down. The cluster state, the writer, the gate controller and the watches live
//! exactly that long; the next term rebuilds them from the API.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kube::Client;
use kube::runtime::events::Recorder;
use sparkgang_common::cluster::{ClusterState, SchedulerConfig};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::Extender;
use crate::freshness::Freshness;
use crate::gate::{self, GateSettings};
use crate::leader::{self, LeaseLost, LeaseSettings};
use crate::queue_status;
use crate::watch::{self as watches, WatchSettings};
use crate::writer::{self, WriterSettings};

/// The two clients of a term: requests have a timeout on every read; watches are long reads
/// whose silence the watch loop judges itself.
#[derive(Clone)]
pub struct Clients {
    pub requests: Client,
    pub watches: Client,
}

/// What a term needs besides the clients.
#[derive(Clone)]
pub struct TermSettings {
    pub scheduler: SchedulerConfig,
    pub writer: WriterSettings,
    pub gate: GateSettings,
    pub watch: WatchSettings,
    /// A leader whose caches stay stale this long steps down.
    pub stale_step_down_after: Duration,
    /// How long queued writes get to finish at shutdown.
    pub grace: Duration,
    /// How often the leader writes the Queues' status.
    pub queue_status_interval: Duration,
}

/// Why a term ended.
#[derive(Debug)]
pub enum StepDown {
    LeaseLost(LeaseLost),
    /// The caches stayed stale too long: let a replica with a working connection lead.
    Stale(String),
    Shutdown,
}

/// Leads until the lease is lost, the caches stay stale for `stale_step_down_after`, or
/// `stop` turns true; then stops deciding at once and tears the term down.
pub async fn serve(
    clients: &Clients,
    ext: &Arc<Extender>,
    settings: &TermSettings,
    recorder: &Recorder,
    lease: Option<&LeaseSettings>,
    stop: &mut watch::Receiver<bool>,
) -> StepDown {
    if let Ok(mut s) = ext.state.lock() {
        *s = Some(ClusterState::new(settings.scheduler.clone()));
    }
    if let Ok(mut f) = ext.freshness.lock() {
        *f = Freshness::default();
    }
    ext.synced.store(false, Ordering::Release);
    let (effects_tx, effects_rx) = mpsc::unbounded_channel();
    if let Ok(mut e) = ext.effects.lock() {
        *e = Some(effects_tx);
    }
    ext.leading.store(true, Ordering::Release);
    ext.metrics.leader.set(1);
    let mut tasks = JoinSet::new();
    let writer = tasks.spawn(writer::run(
        clients.requests.clone(),
        ext.clone(),
        effects_rx,
        settings.writer.clone(),
        recorder.clone(),
    ));
    let (gated_tx, gated_rx) = mpsc::unbounded_channel();
    tasks.spawn(gate::run(
        clients.requests.clone(),
        ext.clone(),
        gated_rx,
        settings.gate.clone(),
        recorder.clone(),
    ));
    tasks.spawn(queue_status::run(
        clients.requests.clone(),
        ext.clone(),
        settings.queue_status_interval,
    ));
    tasks.spawn(watches::run(
        clients.watches.clone(),
        ext.clone(),
        gated_tx,
        settings.watch,
    ));
    let why = tokio::select! {
        lost = hold(clients, ext, lease) => StepDown::LeaseLost(lost),
        why = stale_too_long(ext, settings.stale_step_down_after) => StepDown::Stale(why),
        _ = stop.wait_for(|s| *s) => StepDown::Shutdown,
    };
    // Stop deciding first; then let queued writes finish (only at shutdown, while the lease
    // is still ours) and tear down.
    ext.leading.store(false, Ordering::Release);
    ext.metrics.leader.set(0);
    if let Ok(mut e) = ext.effects.lock() {
        *e = None;
    }
    if matches!(why, StepDown::Shutdown) {
        let writer_id = writer.id();
        let drained = tokio::time::timeout(settings.grace, async {
            while let Some(done) = tasks.join_next_with_id().await {
                if done.is_ok_and(|(id, ())| id == writer_id) {
                    return;
                }
            }
        })
        .await;
        if drained.is_err() {
            warn!(grace = ?settings.grace, "writes still queued at shutdown are left to the next leader");
        }
    }
    tasks.shutdown().await;
    if let Ok(mut s) = ext.state.lock() {
        *s = None;
    }
    ext.synced.store(false, Ordering::Release);
    info!(why = ?why, "term ended");
    why
}

async fn hold(clients: &Clients, ext: &Extender, lease: Option<&LeaseSettings>) -> LeaseLost {
    match lease {
        Some(lease) => leader::hold(clients.requests.clone(), lease, ext).await,
        None => std::future::pending().await,
    }
}

/// Resolves when the caches have been stale for `limit`, with why.
async fn stale_too_long(ext: &Extender, limit: Duration) -> String {
    let tick = (limit / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    loop {
        tokio::time::sleep(tick).await;
        if ext.stale_for() >= limit {
            let why = ext.not_ready_reason().unwrap_or_default();
            warn!(why, limit = ?limit, "caches stale too long: stepping down");
            return why;
        }
    }
}
