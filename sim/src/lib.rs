//! `sparkgang-sim`: an in-memory Kubernetes cluster that runs the real sparkgang servers.
//!
//! [`apiserver`] is a Kubernetes API server stand-in that speaks the wire protocol of
//! kube-apiserver (the subset kube-rs and Spark's fabric8 client use) over plain HTTP on
//! loopback. Around it, as `deploy/` wires them on a real cluster: [`admission`] sends pod
//! creations to the real webhook, [`scheduler`] is kube-scheduler's loop calling the real
//! extender, [`kubelet`] starts bound pods, [`spark`] behaves like spark-submit and a Spark
//! driver. [`harness`] starts them all. [`scenario`] runs a workload through them and records
//! a [`history`] that the [`oracle`]s judge. [`playground`] keeps a cluster up to `spark-submit`
//! against. [`eventlog`] reads real Spark event logs (a History Server directory) and
//! `kubectl get nodes -o json` for replays.

pub mod admission;
pub mod apiserver;
pub mod deploy_config;
pub mod eventlog;
pub mod harness;
pub mod history;
pub mod kubelet;
pub mod oracle;
pub mod playground;
pub mod replay;
pub mod scenario;
pub mod scheduler;
pub mod spark;
pub mod virtual_clock;
