//! sparkgang-testing: what the tests, benches, examples and the simulator share, so each is
//! written once: where the repository's fixtures are ([`fixtures`]) and one JSON POST over a
//! connection, as kube-apiserver calls webhooks and kube-scheduler calls extenders ([`http`]);
//! waiting on a condition ([`wait`]).

pub mod fixtures;
pub mod http;
pub mod kubectl;
pub mod wait;
