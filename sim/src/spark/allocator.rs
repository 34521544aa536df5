//! Spark's executor allocator for one driver as a pure program: given the time since the
//! driver started and the executors it sees, what it does next. The real-time shell
//! ([`super::run_driver`]) and the virtual clock run the same program.

use std::time::Duration;

use sparkgang_common::sparkconf::ConfDemand;

use super::DriverScript;

/// An executor pod as the driver sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutorView {
    pub name: String,
    pub phase: ExecutorPhase,
}

/// What matters of an executor's phase to the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutorPhase {
    /// Created, not running yet.
    Waiting,
    Running,
    /// Succeeded or failed: Spark removes it and asks for a replacement.
    Finished,
}

impl ExecutorView {
    /// An executor pod as its driver sees it.
    pub fn of(pod: &k8s_openapi::api::core::v1::Pod) -> ExecutorView {
        ExecutorView {
            name: pod.metadata.name.clone().unwrap_or_default(),
            phase: ExecutorPhase::of(pod.status.as_ref().and_then(|s| s.phase.as_deref())),
        }
    }
}

impl ExecutorPhase {
    /// From a pod's `status.phase`.
    pub fn of(phase: Option<&str>) -> ExecutorPhase {
        match phase {
            Some("Running") => ExecutorPhase::Running,
            Some("Failed" | "Succeeded") => ExecutorPhase::Finished,
            _ => ExecutorPhase::Waiting,
        }
    }
}

/// What one allocation round does, in this order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Round {
    /// Finished executors to delete.
    pub delete: Vec<String>,
    /// Running executors the script kills now (their pods fail with exit code 137).
    pub kill: Vec<String>,
    /// The application ended: delete every executor, then the driver succeeds.
    pub finished: bool,
    /// Executor ids to create (names and pods come from the caller).
    pub create: Vec<u64>,
}

impl Round {
    /// Nothing to do: no executor to delete, kill or create, and the application goes on.
    pub fn is_idle(&self) -> bool {
        self.delete.is_empty() && self.kill.is_empty() && self.create.is_empty() && !self.finished
    }
}

/// One driver's allocation state.
#[derive(Debug, Clone)]
pub struct Allocator {
    min: usize,
    max: usize,
    batch: usize,
    delay: Duration,
    target: usize,
    next_id: u64,
    gang_since: Option<Duration>,
    runtime: Duration,
    kills: Vec<(Duration, u32)>,
    scales: Vec<(Duration, u32)>,
}

impl Allocator {
    pub fn new(demand: &ConfDemand, script: &DriverScript) -> Allocator {
        Allocator {
            min: demand.demand.min_executors as usize,
            max: demand.demand.max_executors as usize,
            batch: demand.allocation_batch_size.max(1) as usize,
            delay: Duration::from_millis(demand.allocation_batch_delay_ms.max(1) as u64),
            target: demand.demand.min_executors as usize,
            next_id: 1,
            gang_since: None,
            runtime: script.runtime,
            kills: script.kill_executors.clone(),
            scales: script.scale_to.clone(),
        }
    }

    /// `spark.kubernetes.allocation.batch.delay`: the time between rounds, and before the
    /// first (the driver's JVM starts its SparkContext first).
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// After an idle round over `executors`: when (since the driver started) the script next
    /// asks for something — a kill, a new target, or the end of the runtime — if until then
    /// rounds have nothing to do: every executor runs, the target is met and the runtime
    /// counts. `None`: keep polling every [`Allocator::delay`].
    pub fn steady_until(&self, executors: &[ExecutorView]) -> Option<Duration> {
        let all_running = executors.iter().all(|e| e.phase == ExecutorPhase::Running);
        let since = self.gang_since?;
        if !all_running || executors.len() < self.target {
            return None;
        }
        let scripted = self.kills.iter().map(|(at, _)| *at);
        let scaled = self.scales.iter().map(|(at, _)| *at);
        scripted
            .chain(scaled)
            .chain(std::iter::once(since + self.runtime))
            .min()
    }

    /// One round at `elapsed` since the driver started, over the executors it sees.
    pub fn round(&mut self, elapsed: Duration, executors: &[ExecutorView]) -> Round {
        let mut out = Round::default();
        let mut alive = 0usize;
        let mut running = Vec::new();
        for e in executors {
            match e.phase {
                ExecutorPhase::Finished => out.delete.push(e.name.clone()),
                ExecutorPhase::Running => {
                    alive += 1;
                    running.push(e.name.clone());
                }
                ExecutorPhase::Waiting => alive += 1,
            }
        }
        self.kills.retain(|(at, count)| {
            if *at > elapsed {
                return true;
            }
            out.kill
                .extend(running.iter().take(*count as usize).cloned());
            false
        });
        let max = self.max;
        let mut target = self.target;
        self.scales.retain(|(at, to)| {
            if *at > elapsed {
                return true;
            }
            target = (*to as usize).min(max);
            false
        });
        self.target = target;
        if running.len() >= self.min && self.gang_since.is_none() {
            self.gang_since = Some(elapsed);
        }
        if self
            .gang_since
            .is_some_and(|t| elapsed.saturating_sub(t) >= self.runtime)
        {
            out.finished = true;
            return out;
        }
        let missing = self.target.saturating_sub(alive);
        for _ in 0..missing.min(self.batch) {
            out.create.push(self.next_id);
            self.next_id += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sparkgang_common::GpuResourceNames;
    use sparkgang_common::sparkconf::SparkConf;

    fn demand(pairs: &[(&str, &str)]) -> ConfDemand {
        let conf: std::collections::BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        SparkConf::from(conf)
            .demand(&GpuResourceNames::default())
            .expect("a valid conf")
    }

    fn view(name: &str, phase: ExecutorPhase) -> ExecutorView {
        ExecutorView {
            name: name.to_owned(),
            phase,
        }
    }

    #[test]
    fn executors_come_in_batches_up_to_the_target_and_the_app_ends_after_its_runtime() {
        let d = demand(&[
            ("spark.executor.instances", "7"),
            ("spark.kubernetes.allocation.batch.size", "5"),
        ]);
        let script = DriverScript {
            runtime: Duration::from_secs(3),
            ..DriverScript::default()
        };
        let mut a = Allocator::new(&d, &script);
        let t = Duration::from_secs;
        assert_eq!(a.round(t(1), &[]).create, [1, 2, 3, 4, 5]);
        let waiting: Vec<_> = (1..=5)
            .map(|i| view(&format!("e{i}"), ExecutorPhase::Waiting))
            .collect();
        assert_eq!(a.round(t(2), &waiting).create, [6, 7]);
        let running: Vec<_> = (1..=7)
            .map(|i| view(&format!("e{i}"), ExecutorPhase::Running))
            .collect();
        let r = a.round(t(3), &running);
        assert!(r.create.is_empty() && !r.finished);
        assert!(!a.round(t(5), &running).finished, "2 s of the 3 s runtime");
        assert!(a.round(t(6), &running).finished);
    }

    #[test]
    fn dead_executors_are_deleted_and_replaced_with_new_ids_and_kills_follow_the_script() {
        let d = demand(&[("spark.executor.instances", "2")]);
        let script = DriverScript {
            runtime: Duration::from_secs(60),
            kill_executors: vec![(Duration::from_secs(4), 1)],
            ..DriverScript::default()
        };
        let mut a = Allocator::new(&d, &script);
        let t = Duration::from_secs;
        assert_eq!(a.round(t(1), &[]).create, [1, 2]);
        let r = a.round(
            t(2),
            &[
                view("e1", ExecutorPhase::Finished),
                view("e2", ExecutorPhase::Running),
            ],
        );
        assert_eq!((r.delete, r.create), (vec!["e1".to_owned()], vec![3]));
        let both = [
            view("e2", ExecutorPhase::Running),
            view("e3", ExecutorPhase::Running),
        ];
        assert!(a.round(t(3), &both).kill.is_empty());
        assert_eq!(a.round(t(4), &both).kill, ["e2"]);
        assert!(a.round(t(5), &both).kill.is_empty(), "a kill happens once");
    }

    #[test]
    fn dynamic_allocation_scales_within_its_bounds() {
        let d = demand(&[
            ("spark.dynamicAllocation.enabled", "true"),
            ("spark.dynamicAllocation.minExecutors", "1"),
            ("spark.dynamicAllocation.maxExecutors", "3"),
        ]);
        let script = DriverScript {
            runtime: Duration::from_secs(60),
            scale_to: vec![(Duration::from_secs(2), 10)],
            ..DriverScript::default()
        };
        let mut a = Allocator::new(&d, &script);
        let t = Duration::from_secs;
        assert_eq!(a.round(t(1), &[]).create, [1]);
        let one = [view("e1", ExecutorPhase::Running)];
        assert_eq!(a.round(t(2), &one).create, [2, 3], "capped at the maximum");
    }

    #[test]
    fn a_steady_driver_rests_until_its_scripts_next_step() {
        let d = demand(&[("spark.executor.instances", "2")]);
        let script = DriverScript {
            runtime: Duration::from_secs(30),
            kill_executors: vec![(Duration::from_secs(10), 1)],
            ..DriverScript::default()
        };
        let mut a = Allocator::new(&d, &script);
        let t = Duration::from_secs;
        let waiting = [
            view("e1", ExecutorPhase::Waiting),
            view("e2", ExecutorPhase::Waiting),
        ];
        assert_eq!(a.round(t(1), &[]).create, [1, 2]);
        assert!(a.round(t(2), &waiting).is_idle());
        assert_eq!(
            a.steady_until(&waiting),
            None,
            "executors not running yet: poll"
        );
        let running = [
            view("e1", ExecutorPhase::Running),
            view("e2", ExecutorPhase::Running),
        ];
        assert!(a.round(t(3), &running).is_idle());
        assert_eq!(
            a.steady_until(&running),
            Some(t(10)),
            "the kill comes first"
        );
        assert_eq!(a.steady_until(&running[..1]), None, "below target: poll");
        assert_eq!(a.round(t(10), &running).kill, ["e1"]);
        assert_eq!(
            a.steady_until(&running),
            Some(t(33)),
            "then the end: 30 s after the gang ran at 3 s"
        );
    }
}
