//! The object store: JSON objects per resource, one global resourceVersion, bounded watch history, owner GC.
//!
//! Every write runs under one mutex (like etcd, writes are serialised) and appends exactly one
//! event per changed object to its resource's history; watchers read that history with their
//! own cursor (see `watch.rs`), so fan-out costs one `Arc` clone per event and watcher. Objects
//! are kept as `Arc<Stored>`, which caches its JSON encoding: a list of 10,000 pods or an event
//! sent to five watchers is serialised once.
//!
//! [`Store`] is the handle (`handle`); what its lock guards is in `state`. Reads are in `handle`
//! and `list`; writes in `create`, `update`, `binding` and `delete`, with `crd` for
//! CustomResourceDefinitions; watches read `feed`.

mod binding;
mod crd;
mod create;
mod delete;
mod feed;
mod handle;
mod list;
mod object;
mod options;
mod state;
mod update;

pub use binding::set_condition;
pub use handle::{Store, StoreConfig};
pub use list::ListResult;
pub use object::{Stored, metadata_mut, needs_view, view_of};
pub use options::{DeleteOptions, Propagation, WriteOptions};
pub use state::{ChangeEvent, EventType, ObjKey};
pub use update::{PreparedUpdate, UpdateOutcome};
