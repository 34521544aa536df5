//! Watches feeding the state: a relist deletes what it no longer sees, keeps what arrived
//! meanwhile, and the state turns ready once, after every kind has listed and been reconciled.

use sparkgang_common::binpack::BinpackAlgorithm;
use sparkgang_common::cluster::{Feed, PodKey, WatchEvent};

use super::harness::*;

#[test]
fn a_relist_deletes_the_nodes_and_pods_that_went_while_the_watch_was_down() {
    let nodes = [node("n1", "z1"), node("n2", "z1")];
    let mut c = Cluster::new(BinpackAlgorithm::TightlyPack, &[]);
    let mut feed = Feed::default();
    for n in &nodes {
        feed.node(&mut c.state, WatchEvent::Apply(n.clone()));
    }
    let app = static_app("app-1", 1);
    feed.pod(&mut c.state, WatchEvent::Apply(app.driver.clone()));
    assert_eq!(c.state.node_names().len(), 2);
    assert_eq!(c.state.pod_count(), 1);

    // The watches restart; n2 and the driver were deleted meanwhile.
    feed.node(&mut c.state, WatchEvent::RelistBegin);
    feed.node(&mut c.state, WatchEvent::RelistApply(nodes[0].clone()));
    feed.node(&mut c.state, WatchEvent::RelistDone);
    feed.pod(&mut c.state, WatchEvent::RelistBegin);
    feed.pod(&mut c.state, WatchEvent::RelistDone);

    let present: Vec<String> = c
        .state
        .node_names()
        .into_iter()
        .filter(|n| c.state.node(n).is_some_and(|e| e.present))
        .collect();
    assert_eq!(present, ["n1"]);
    assert_eq!(c.state.pod_count(), 0);
}

#[test]
fn a_pod_added_during_a_relist_is_not_deleted_by_it() {
    let mut c = Cluster::new(BinpackAlgorithm::TightlyPack, &[node("n1", "z1")]);
    let mut feed = Feed::default();
    feed.pod(&mut c.state, WatchEvent::RelistBegin);
    // A filter call brings the driver in before the relist sends it.
    let app = static_app("app-1", 1);
    c.state.apply_pod(&app.driver);
    feed.pod(&mut c.state, WatchEvent::RelistDone);
    let key = PodKey::new(NS, name(&app.driver));
    assert!(c.state.pod_keys().contains(&key));
}

#[test]
fn ready_once_after_every_kind_listed() {
    let mut c = Cluster::new(BinpackAlgorithm::TightlyPack, &[]);
    let mut feed = Feed::default();
    for kind in 0..5 {
        assert!(!feed.is_synced());
        let fed = match kind {
            0 => {
                feed.node(&mut c.state, WatchEvent::RelistBegin);
                feed.node(&mut c.state, WatchEvent::RelistDone)
            }
            1 => {
                feed.pod(&mut c.state, WatchEvent::RelistBegin);
                feed.pod(&mut c.state, WatchEvent::RelistDone)
            }
            2 => {
                feed.reservation(&mut c.state, WatchEvent::RelistBegin);
                feed.reservation(&mut c.state, WatchEvent::RelistDone)
            }
            3 => {
                feed.budget(&mut c.state, WatchEvent::RelistBegin);
                feed.budget(&mut c.state, WatchEvent::RelistDone)
            }
            _ => {
                feed.queue(&mut c.state, WatchEvent::RelistBegin);
                feed.queue(&mut c.state, WatchEvent::RelistDone)
            }
        };
        assert_eq!(fed.synced_now, kind == 4, "kind {kind}");
    }
    assert!(feed.is_synced());
    // A later relist of one kind does not announce readiness again.
    feed.pod(&mut c.state, WatchEvent::RelistBegin);
    assert!(!feed.pod(&mut c.state, WatchEvent::RelistDone).synced_now);
}
