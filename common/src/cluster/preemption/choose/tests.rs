//! The chooser on scripted candidate sets, and its guarantees over random ones.

use proptest::prelude::*;

use super::*;

fn t(second: i64) -> Timestamp {
    Timestamp::from_second(1_767_225_600 + second).unwrap()
}

fn cpu(milli: i64) -> Resources {
    Resources::new(milli, 0, 0)
}

fn gang(app: &str, priority: i32, started: i64, frees: &[(NodeIdx, i64)]) -> Candidate {
    Candidate {
        app: AppKey::new("spark", app),
        priority,
        started: t(started),
        kind: VictimKind::Gang,
        frees: frees.iter().map(|&(n, c)| (n, cpu(c))).collect(),
        disruptions: Vec::new(),
    }
}

fn soft(app: &str, pod: &str, priority: i32, started: i64, node: NodeIdx, c: i64) -> Candidate {
    Candidate {
        kind: VictimKind::Soft { pod: pod.into() },
        ..gang(app, priority, started, &[(node, c)])
    }
}

/// The gang fits when one node has `need` milli-cpu free (nodes start with `free`).
fn one_node_fits(free: &[i64], need: i64) -> impl Fn(&[(NodeIdx, Resources)]) -> bool + '_ {
    move |freed| {
        free.iter().enumerate().any(|(n, &f)| {
            let more: i64 = freed
                .iter()
                .filter(|(m, _)| *m == n)
                .map(|(_, r)| r.cpu_milli)
                .sum();
            f + more >= need
        })
    }
}

fn names(candidates: &[Candidate], chosen: &[usize]) -> Vec<String> {
    chosen
        .iter()
        .map(|&i| match &candidates[i].kind {
            VictimKind::Gang => candidates[i].app.app_id.clone(),
            VictimKind::Soft { pod } => pod.clone(),
        })
        .collect()
}

#[test]
fn the_most_recently_started_of_equal_priority_is_the_victim() {
    let c = [
        gang("old", 10, 0, &[(0, 4000)]),
        gang("young", 10, 50, &[(1, 4000)]),
    ];
    let chosen = choose_victims(&c, one_node_fits(&[0, 0], 4000), 9, &[]).unwrap();
    assert_eq!(names(&c, &chosen), ["young"]);
}

#[test]
fn the_lowest_priority_goes_before_a_more_recent_one() {
    let c = [
        gang("recent-mid", 10, 50, &[(0, 4000)]),
        gang("old-low", 5, 0, &[(1, 4000)]),
    ];
    let chosen = choose_victims(&c, one_node_fits(&[0, 0], 4000), 9, &[]).unwrap();
    assert_eq!(names(&c, &chosen), ["old-low"]);
}

#[test]
fn soft_reservations_go_before_any_gang() {
    let c = [
        gang("g", 1, 90, &[(0, 8000)]),
        soft("other", "other-exec-3", 5, 0, 0, 2000),
    ];
    let chosen = choose_victims(&c, one_node_fits(&[2000], 4000), 9, &[]).unwrap();
    assert_eq!(names(&c, &chosen), ["other-exec-3"]);
}

/// `a` goes in first (lower priority) but is not enough; `b` alone is: `a` is spared.
#[test]
fn a_victim_that_is_not_needed_is_spared() {
    let c = [gang("a", 1, 0, &[(0, 2000)]), gang("b", 2, 0, &[(0, 4000)])];
    let chosen = choose_victims(&c, one_node_fits(&[0], 4000), 9, &[]).unwrap();
    assert_eq!(names(&c, &chosen), ["b"]);
}

/// A gang replaces its own soft reservations chosen before it.
#[test]
fn a_gang_replaces_its_own_soft_reservations() {
    let c = [
        soft("g", "g-exec-5", 1, 0, 0, 1000),
        gang("g", 1, 0, &[(0, 6000)]),
    ];
    let chosen = choose_victims(&c, one_node_fits(&[0], 5000), 9, &[]).unwrap();
    assert_eq!(names(&c, &chosen), ["g"]);
}

#[test]
fn nothing_is_chosen_when_everything_together_is_not_enough() {
    let c = [gang("a", 1, 0, &[(0, 2000)]), gang("b", 1, 0, &[(1, 2000)])];
    assert_eq!(
        choose_victims(&c, one_node_fits(&[0, 0], 4000), 9, &[]),
        Err(NoVictims::NotEnough)
    );
}

#[test]
fn the_gang_budget_refuses_a_plan_that_needs_more() {
    let c = [gang("a", 1, 0, &[(0, 2000)]), gang("b", 1, 9, &[(0, 2000)])];
    assert_eq!(
        choose_victims(&c, one_node_fits(&[0], 4000), 1, &[]),
        Err(NoVictims::OverBudget {
            needed: 2,
            allowed: 1
        })
    );
    assert_eq!(
        choose_victims(&c, one_node_fits(&[0], 4000), 2, &[]).map(|v| v.len()),
        Ok(2)
    );
}

/// Random candidate sets on three nodes, with a need on one node.
fn arbitrary_candidates() -> impl Strategy<Value = (Vec<Candidate>, [i64; 3], i64)> {
    let candidate = (
        0usize..4,
        0i32..3,
        0i64..100,
        any::<bool>(),
        0usize..3,
        1i64..5,
    )
        .prop_map(|(app, priority, started, is_soft, node, c)| {
            let name = format!("app-{app}");
            if is_soft {
                soft(
                    &name,
                    &format!("{name}-exec-{node}{c}"),
                    priority,
                    started,
                    node,
                    c * 1000,
                )
            } else {
                gang(&name, priority, started, &[(node, c * 1000)])
            }
        });
    (
        prop::collection::vec(candidate, 0..8),
        [0i64..4000, 0i64..4000, 0i64..4000],
        1000i64..8000,
    )
        .prop_map(|(mut c, free, need)| {
            // As the state offers them: one gang candidate per application, whose frees
            // include its application's soft reservations; soft pods named uniquely.
            let mut seen = std::collections::BTreeSet::new();
            c.retain(|x| !x.is_gang() || seen.insert(x.app.clone()));
            for (i, x) in c.iter_mut().enumerate() {
                if let VictimKind::Soft { pod } = &mut x.kind {
                    *pod = format!("{}-exec-{i}", x.app.app_id);
                }
            }
            let softs: Vec<Candidate> = c.iter().filter(|x| !x.is_gang()).cloned().collect();
            for g in c.iter_mut().filter(|x| x.is_gang()) {
                for s in softs.iter().filter(|s| s.app == g.app) {
                    g.frees.extend(s.frees.iter().copied());
                }
            }
            (c, free.map(|f| f / 1000 * 1000), need / 1000 * 1000)
        })
}

proptest! {
    /// A plan fits, and sparing any one of its victims would not; no plan means that even
    /// every candidate together does not fit; the input order does not matter.
    #[test]
    fn plans_fit_are_minimal_and_independent_of_input_order(
        (candidates, free, need) in arbitrary_candidates(),
    ) {
        let fits = one_node_fits(&free, need);
        match choose_victims(&candidates, &fits, usize::MAX, &[]) {
            Ok(chosen) => {
                prop_assert!(fits(&freed(&candidates, &chosen)));
                for k in 0..chosen.len() {
                    let mut fewer = chosen.clone();
                    fewer.remove(k);
                    prop_assert!(!fits(&freed(&candidates, &fewer)), "{k} could be spared");
                }
                let mut reversed = candidates.clone();
                reversed.reverse();
                let again = choose_victims(&reversed, &fits, usize::MAX, &[]).unwrap();
                let as_set = |c: &[Candidate], v: &[usize]| {
                    let mut s: Vec<(AppKey, VictimKind)> =
                        v.iter().map(|&i| (c[i].app.clone(), c[i].kind.clone())).collect();
                    s.sort();
                    s
                };
                prop_assert_eq!(as_set(&candidates, &chosen), as_set(&reversed, &again));
            }
            Err(NoVictims::NotEnough) => {
                // Every gang, and the soft reservations of applications without one.
                let all: Vec<usize> = (0..candidates.len())
                    .filter(|&i| {
                        candidates[i].is_gang()
                            || !candidates
                                .iter()
                                .any(|g| g.is_gang() && g.app == candidates[i].app)
                    })
                    .collect();
                prop_assert!(!fits(&freed(&candidates, &all)));
            }
            Err(e) => prop_assert!(false, "unexpected {e:?}"),
        }
    }
}

fn under(mut c: Candidate, budget: usize, pods: u32) -> Candidate {
    c.disruptions.push((budget, pods));
    c
}

#[test]
fn a_gang_its_disruption_budget_protects_is_passed_over_for_an_older_one() {
    // young has 3 pods under budget 0, which allows 2 disruptions: evicting it would be refused.
    let c = [
        gang("old", 10, 0, &[(0, 4000)]),
        under(gang("young", 10, 50, &[(0, 4000)]), 0, 3),
    ];
    let chosen = choose_victims(&c, one_node_fits(&[0], 4000), 9, &[2]).unwrap();
    assert_eq!(names(&c, &chosen), ["old"]);
    // With 3 allowed, the youngest goes, as without a budget.
    let chosen = choose_victims(&c, one_node_fits(&[0], 4000), 9, &[3]).unwrap();
    assert_eq!(names(&c, &chosen), ["young"]);
}

#[test]
fn candidates_share_a_budget_and_a_missing_one_allows_nothing() {
    // Two soft executors under one budget that allows one disruption: one goes, then a gang.
    let c = [
        under(soft("a", "a-exec-3", 1, 10, 0, 2000), 0, 1),
        under(soft("b", "b-exec-3", 1, 20, 0, 2000), 0, 1),
        gang("g", 1, 0, &[(0, 2000)]),
    ];
    let chosen = choose_victims(&c, one_node_fits(&[0], 4000), 9, &[1]).unwrap();
    assert_eq!(names(&c, &chosen), ["b-exec-3", "g"]);
    // A budget index with no allowance given (an unknown budget) protects its pods.
    assert_eq!(
        choose_victims(&c, one_node_fits(&[0], 6000), 9, &[]),
        Err(NoVictims::NotEnough)
    );
}

proptest! {
    /// Whatever the budgets, a plan fits and the pods it evicts under each budget number at
    /// most what that budget allows.
    #[test]
    fn plans_respect_every_disruption_budget(
        (candidates, free, need) in arbitrary_candidates(),
        budgets in prop::collection::vec((0usize..2, 1u32..4), 8),
        allowed in [0u32..4, 0u32..4],
    ) {
        let candidates: Vec<Candidate> = candidates
            .into_iter()
            .zip(budgets)
            .map(|(c, (b, n))| under(c, b, n))
            .collect();
        let fits = one_node_fits(&free, need);
        if let Ok(chosen) = choose_victims(&candidates, &fits, usize::MAX, &allowed) {
            prop_assert!(fits(&freed(&candidates, &chosen)));
            let mut used = [0u32; 2];
            for &i in &chosen {
                for &(b, n) in &candidates[i].disruptions {
                    used[b] += n;
                }
            }
            prop_assert!(used[0] <= allowed[0] && used[1] <= allowed[1], "{used:?} > {allowed:?}");
        }
    }
}
