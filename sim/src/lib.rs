//! `sparkgang-sim`: an in-memory Kubernetes cluster that runs the real sparkgang servers.
//!
//! [`apiserver`] is the foundation: a Kubernetes API server stand-in that speaks the wire
//! protocol of kube-apiserver (the subset kube-rs and Spark's fabric8 client use) over plain
//! HTTP on loopback.

pub mod apiserver;
