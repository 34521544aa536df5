//! Reading the queue a driver names, so that a queue that does not exist is refused at
//! admission: `GET` of the queue, and on a 404 a `LIST` of the queues for the message.

use std::time::Duration;

use kube::api::ListParams;
use kube::{Api, Client};
use sparkgang_common::api::queue::Queue;

use crate::drivers::READ_TIMEOUT;
use crate::metrics::Metrics;
use crate::mutation::QueueLookup;

/// Reads queues through the API server.
#[derive(Clone)]
pub struct QueueReader {
    client: Client,
    timeout: Duration,
}

impl std::fmt::Debug for QueueReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueReader")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl QueueReader {
    pub fn new(client: Client) -> Self {
        QueueReader {
            client,
            timeout: READ_TIMEOUT,
        }
    }

    /// Whether queue `name` exists, counted in `metrics`. A read that fails or times out is
    /// reported as such: the driver is then admitted with a warning.
    pub async fn lookup(&self, name: &str, metrics: &Metrics) -> QueueLookup {
        let api: Api<Queue> = Api::all(self.client.clone());
        let read = async {
            match api.get_opt(name).await? {
                Some(_) => Ok(QueueLookup::Exists),
                None => {
                    let mut known: Vec<String> = api
                        .list_metadata(&ListParams::default())
                        .await?
                        .items
                        .into_iter()
                        .filter_map(|q| q.metadata.name)
                        .collect();
                    known.sort();
                    Ok(QueueLookup::Missing { known })
                }
            }
        };
        let lookup = match tokio::time::timeout(self.timeout, read).await {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => QueueLookup::Failed(short_error(&e)),
            Err(_) => QueueLookup::Failed(format!("no answer within {}s", self.timeout.as_secs())),
        };
        let result = match &lookup {
            QueueLookup::Exists => "found",
            QueueLookup::Missing { .. } => "not-found",
            _ => "failed",
        };
        metrics.queue_read(result);
        if let QueueLookup::Failed(why) = &lookup {
            tracing::warn!(queue = name, why, "cannot read a driver's queue");
        }
        lookup
    }
}

/// A kube error in few words (warnings are short).
fn short_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} {}", s.code, s.reason),
        other => other.to_string().chars().take(60).collect(),
    }
}
