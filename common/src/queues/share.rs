//! Decisions over queues: a queue's weighted dominant resource share, the fair order of queues
//! (lowest share first), and whether a gang may be placed for its queue: within the queue's
//! `max`, and within its guarantee or what its cohort can lend now.

use std::collections::BTreeMap;

use super::{QueueIndex, QueueLimits, UNLIMITED};
use crate::Resources;
use crate::quantities::{format_cpu_millis, format_memory_bytes};

/// The largest of allocated ÷ guaranteed over the resources the guarantee names, divided by
/// the weight. Holding some of a named resource guaranteed at 0 is an infinite share (it is
/// all borrowed), as is holding anything with a guarantee that names nothing; holding nothing
/// is 0.
pub fn dominant_share(allocated: &Resources, limits: &QueueLimits) -> f64 {
    let g = &limits.guaranteed;
    let holds = *allocated != Resources::ZERO;
    if !limits.guaranteed_named.iter().any(|n| *n) {
        return if holds { f64::INFINITY } else { 0.0 };
    }
    let share = [
        (allocated.cpu_milli, g.cpu_milli),
        (allocated.memory_bytes, g.memory_bytes),
        (allocated.gpus, g.gpus),
    ]
    .into_iter()
    .zip(limits.guaranteed_named)
    .filter(|((a, _), named)| *named && *a > 0)
    .map(|(d, _)| d)
    .map(|(a, g)| {
        if g > 0 {
            a as f64 / g as f64
        } else {
            f64::INFINITY
        }
    })
    .fold(0.0, f64::max);
    share / f64::from(limits.weight.max(1))
}

/// The queues in the order their next gang is tried: lowest weighted dominant share first;
/// among equal shares, the one whose next gang has waited longest (`waiting`: its place, the
/// smaller the longer), then by name. Without the waiting order, equal shares would always
/// favour the same name whenever gangs cannot split the group evenly.
pub fn fair_order<'a, W: Ord>(queues: impl IntoIterator<Item = (&'a str, f64, W)>) -> Vec<&'a str> {
    let mut v: Vec<(&str, f64, W)> = queues.into_iter().collect();
    v.sort_by(|a, b| {
        a.1.total_cmp(&b.1)
            .then_with(|| a.2.cmp(&b.2))
            .then_with(|| a.0.cmp(b.0))
    });
    v.into_iter().map(|(n, _, _)| n).collect()
}

/// One resource's figures in a verdict: what is held, what the gang asks, and the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub resource: &'static str,
    pub used: i64,
    pub asked: i64,
    pub limit: i64,
}

impl Limit {
    /// `cpu 480/480 (asks 8)`: what is held of the limit, and what the gang asks.
    pub fn text(&self) -> String {
        format!(
            "{} {}/{} (asks {})",
            self.resource,
            quantity(self.resource, self.used),
            quantity(self.resource, self.limit),
            quantity(self.resource, self.asked)
        )
    }
}

/// A canonical quantity of `resource`.
pub fn quantity(resource: &str, value: i64) -> String {
    match resource {
        "cpu" => format_cpu_millis(value),
        "memory" => format_memory_bytes(value),
        _ => value.to_string(),
    }
}

/// Whether a gang may be placed for its queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Yes; `borrowed` is what the queue then holds above its guarantee (lent by its cohort).
    Admit { borrowed: Resources },
    /// The gang alone is over the queue's `max`: it can never be placed for this queue.
    NeverFits(Limit),
    /// The queue would go over its `max`.
    AtMax(Limit),
    /// Over the queue's guarantee, and its cohort has not that much unused guarantee to lend
    /// (`limit` is the cohort's guarantee, `used` what the cohort holds).
    CohortFull(Limit),
    /// The queue's spec is not valid (its status says why).
    Invalid(String),
    /// No such queue.
    Unknown,
}

fn dims(r: &Resources) -> [(&'static str, i64); 3] {
    [
        ("cpu", r.cpu_milli),
        ("memory", r.memory_bytes),
        ("gpus", r.gpus),
    ]
}

/// The first resource where `used + asked` is over `limit`.
fn over(used: &Resources, asked: &Resources, limit: &Resources) -> Option<Limit> {
    dims(used)
        .into_iter()
        .zip(dims(asked))
        .zip(dims(limit))
        .find(|(((_, u), (_, a)), (_, l))| *l != UNLIMITED && u.saturating_add(*a) > *l)
        .map(|(((resource, used), (_, asked)), (_, limit))| Limit {
            resource,
            used,
            asked,
            limit,
        })
}

/// Whether a gang asking `gang` may be placed for `queue`, given what every queue holds now.
pub fn admit(
    index: &QueueIndex,
    queue: &str,
    allocated: &BTreeMap<String, Resources>,
    gang: &Resources,
) -> Admission {
    let limits = match index.get(queue) {
        None => return Admission::Unknown,
        Some(Err(e)) => return Admission::Invalid(e.to_string()),
        Some(Ok(l)) => l,
    };
    let held = allocated.get(queue).copied().unwrap_or_default();
    if let Some(l) = over(&Resources::ZERO, gang, &limits.max) {
        return Admission::NeverFits(l);
    }
    if let Some(l) = over(&held, gang, &limits.max) {
        return Admission::AtMax(l);
    }
    let after = held.saturating_add(gang);
    let cap = limits.guarantee_cap();
    if after.fits_in(&cap) {
        return Admission::Admit {
            borrowed: Resources::ZERO,
        };
    }
    // The cohort lends in the resources this queue's guarantee names.
    let cohort = index.cohort(queue);
    let mut guaranteed = Resources::ZERO;
    let mut used = Resources::ZERO;
    for member in &cohort {
        if let Some(Ok(l)) = index.get(member) {
            guaranteed = guaranteed.saturating_add(&l.guaranteed);
        }
        used = used.saturating_add(&allocated.get(*member).copied().unwrap_or_default());
    }
    let unnamed = |named: bool, v: i64| if named { v } else { UNLIMITED };
    let lendable = Resources::new(
        unnamed(limits.guaranteed_named[0], guaranteed.cpu_milli),
        unnamed(limits.guaranteed_named[1], guaranteed.memory_bytes),
        unnamed(limits.guaranteed_named[2], guaranteed.gpus),
    );
    match over(&used, gang, &lendable) {
        Some(l) => Admission::CohortFull(l),
        None => Admission::Admit {
            borrowed: after.excess_over(&cap),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GpuResourceNames;
    use crate::api::queue::QueueSpec;

    const GI: i64 = 1 << 30;

    fn spec(
        group: &str,
        g: &[(&str, &str)],
        m: &[(&str, &str)],
        w: u32,
        p: Option<&str>,
    ) -> QueueSpec {
        let map = |l: &[(&str, &str)]| {
            l.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        QueueSpec {
            instance_group: group.into(),
            guaranteed: map(g),
            max: map(m),
            weight: w,
            parent: p.map(Into::into),
            namespaces: Vec::new(),
        }
    }

    fn cpu(cores: i64) -> Resources {
        Resources::new(cores * 1000, 0, 0)
    }

    /// etl and ml under org, 32 cores guaranteed each, etl's max 48; solo alone with 16.
    fn index() -> QueueIndex {
        let mut i = QueueIndex::new(None, GpuResourceNames::default());
        i.apply(
            "etl",
            &spec(
                "batch",
                &[("cpu", "32"), ("memory", "128Gi")],
                &[("cpu", "48")],
                1,
                Some("org"),
            ),
        );
        i.apply(
            "ml",
            &spec(
                "batch",
                &[("cpu", "32"), ("memory", "128Gi")],
                &[],
                2,
                Some("org"),
            ),
        );
        i.apply("solo", &spec("batch", &[("cpu", "16")], &[], 1, None));
        i
    }

    #[test]
    fn the_dominant_share_is_the_largest_ratio_divided_by_the_weight() {
        let i = index();
        let etl = i.get("etl").unwrap().as_ref().unwrap();
        // 16 of 32 cores (0.5) and 96 of 128 GiB (0.75): memory dominates.
        let held = Resources::new(16_000, 96 * GI, 0);
        assert_eq!(dominant_share(&held, etl), 0.75);
        let ml = i.get("ml").unwrap().as_ref().unwrap();
        assert_eq!(dominant_share(&held, ml), 0.375, "weight 2 halves it");
        assert_eq!(dominant_share(&Resources::ZERO, ml), 0.0);
        let gpu = Resources::new(0, 0, 1);
        assert_eq!(dominant_share(&gpu, etl), 0.0, "GPUs are not named");
        let solo = i.get("solo").unwrap().as_ref().unwrap();
        assert_eq!(
            dominant_share(&Resources::new(0, GI, 0), solo),
            0.0,
            "memory is not named in solo's guarantee"
        );
        let mut none = solo.clone();
        none.guaranteed_named = [false; 3];
        assert_eq!(dominant_share(&held, &none), f64::INFINITY);
        assert_eq!(dominant_share(&Resources::ZERO, &none), 0.0);
    }

    #[test]
    fn the_lowest_share_goes_first_then_the_longest_waiting_then_by_name() {
        let order = fair_order([
            ("b", 0.5, 1),
            ("a", 0.5, 1),
            ("c", 0.25, 9),
            ("d", f64::INFINITY, 0),
            ("e", 0.5, 0),
        ]);
        assert_eq!(order, ["c", "e", "a", "b", "d"]);
    }

    #[test]
    fn within_the_guarantee_a_gang_is_admitted_without_borrowing() {
        let i = index();
        let held = BTreeMap::from([("etl".to_owned(), cpu(20))]);
        assert_eq!(
            admit(&i, "etl", &held, &cpu(12)),
            Admission::Admit {
                borrowed: Resources::ZERO
            }
        );
    }

    #[test]
    fn above_the_guarantee_the_cohort_lends_what_it_does_not_use() {
        let i = index();
        // ml uses 8 of its 32: the cohort (64) holds 28 + 8 = 36, and 16 more fit.
        let held = BTreeMap::from([("etl".to_owned(), cpu(28)), ("ml".to_owned(), cpu(8))]);
        assert_eq!(
            admit(&i, "etl", &held, &cpu(16)),
            Admission::Admit { borrowed: cpu(12) }
        );
        // ml uses 30: the cohort holds 58, 16 more would be 74 > 64.
        let busy = BTreeMap::from([("etl".to_owned(), cpu(28)), ("ml".to_owned(), cpu(30))]);
        assert_eq!(
            admit(&i, "etl", &busy, &cpu(16)),
            Admission::CohortFull(Limit {
                resource: "cpu",
                used: 58_000,
                asked: 16_000,
                limit: 64_000
            })
        );
    }

    #[test]
    fn max_caps_borrowing_and_a_gang_over_it_never_fits() {
        let i = index();
        let held = BTreeMap::from([("etl".to_owned(), cpu(40))]);
        assert_eq!(
            admit(&i, "etl", &held, &cpu(10)),
            Admission::AtMax(Limit {
                resource: "cpu",
                used: 40_000,
                asked: 10_000,
                limit: 48_000
            })
        );
        assert_eq!(
            admit(&i, "etl", &BTreeMap::new(), &cpu(50)),
            Admission::NeverFits(Limit {
                resource: "cpu",
                used: 0,
                asked: 50_000,
                limit: 48_000
            })
        );
    }

    #[test]
    fn a_queue_without_a_parent_cannot_borrow() {
        let i = index();
        let held = BTreeMap::from([("solo".to_owned(), cpu(10))]);
        assert!(matches!(
            admit(&i, "solo", &held, &cpu(6)),
            Admission::Admit { .. }
        ));
        assert!(matches!(
            admit(&i, "solo", &held, &cpu(7)),
            Admission::CohortFull(_)
        ));
    }

    #[test]
    fn unknown_and_invalid_queues_admit_nothing() {
        let mut i = index();
        assert_eq!(
            admit(&i, "nope", &BTreeMap::new(), &cpu(1)),
            Admission::Unknown
        );
        i.apply(
            "bad",
            &spec("batch", &[("cpu", "8")], &[("cpu", "4")], 1, None),
        );
        assert_eq!(
            admit(&i, "bad", &BTreeMap::new(), &cpu(1)),
            Admission::Invalid("queue bad: spec.max.cpu is below spec.guaranteed.cpu".into())
        );
    }
}
