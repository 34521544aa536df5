//! sparkgang-admission: the mutating admission webhook that makes plain `spark-submit` pods
//! gang-schedulable by sparkgang.
//!
//! The decision is pure ([`mutation::mutate_pod`], [`review::review`]); the shell is an axum
//! HTTPS server with a hot-reloaded rustls certificate and a plain-HTTP metrics port.
//!
//! Run it in-process (the simulator, tests):
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use sparkgang_admission::{AdmissionConfig, start};
//! let mut config = AdmissionConfig::with_tls_files("/tmp/pki/tls.crt", "/tmp/pki/tls.key");
//! config.tls_listen_address = "127.0.0.1:0".parse()?;
//! config.metrics_listen_address = "127.0.0.1:0".parse()?;
//! let server = start(config).await?;
//! println!("https://{}/mutate, http://{}/metrics", server.tls_addr(), server.metrics_addr());
//! server.shutdown().await?;
//! # Ok(())
//! # }
//! ```

pub mod config;
pub mod drivers;
pub mod metrics;
pub mod mutation;
pub mod queues;
pub mod review;
pub mod review_client;
pub mod server;
pub mod tls;

pub use config::{AdmissionConfig, ConfigError};
pub use mutation::{Mutation, MutationConfig, Verdict, mutate_pod};
pub use review::{Answer, BadReview, review};
pub use server::{RunError, RunningServer, StartError, router, run, start, start_with_api};
