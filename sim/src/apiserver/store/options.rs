//! Options of writes and deletes (`dryRun`, preconditions, `propagationPolicy`).

/// How dependents of a deleted object are treated (`propagationPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    /// Dependents are deleted (synchronously, right after the owner). `Foreground` is
    /// treated the same way.
    #[default]
    Background,
    /// Dependents lose their ownerReference to the deleted object and stay.
    Orphan,
}

/// Options of a write.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `dryRun=All`: validate and return the result, store nothing.
    pub dry_run: bool,
}

/// Options of a delete.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub propagation: Propagation,
    /// `gracePeriodSeconds`: `Some(0)` removes a running pod at once (the kubelet's final
    /// delete, or `--force`); otherwise the pod's own `terminationGracePeriodSeconds`.
    pub grace_period_seconds: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
    pub dry_run: bool,
}
