//! Every Kubernetes API call the extender makes, by resource and verb: the source of truth for
//! its RBAC rules in `deploy/` (a test checks the rules grant exactly these).

/// One resource and the verbs used on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiCall {
    /// API group (`""` for core).
    pub group: &'static str,
    /// Resource, with `/subresource` when one is used.
    pub resource: &'static str,
    pub verbs: &'static [&'static str],
    /// Only in the extender's own namespace (a Role), not cluster-wide.
    pub own_namespace_only: bool,
}

/// What the extender calls.
pub const API_CALLS: &[ApiCall] = &[
    // Watches (list + watch); the gate controller reads and patches gated drivers.
    ApiCall {
        group: "",
        resource: "pods",
        verbs: &["get", "list", "watch", "patch"],
        own_namespace_only: false,
    },
    // The PodExceedsClusterCapacity condition; DisruptionTarget on victims of preemption.
    ApiCall {
        group: "",
        resource: "pods/status",
        verbs: &["patch"],
        own_namespace_only: false,
    },
    // Preemption evicts its victims through the Eviction API.
    ApiCall {
        group: "",
        resource: "pods/eviction",
        verbs: &["create"],
        own_namespace_only: false,
    },
    // Preemption leaves out victims whose PodDisruptionBudget allows no disruption.
    ApiCall {
        group: "policy",
        resource: "poddisruptionbudgets",
        verbs: &["list", "watch"],
        own_namespace_only: false,
    },
    ApiCall {
        group: "",
        resource: "nodes",
        verbs: &["list", "watch"],
        own_namespace_only: false,
    },
    // The driver's spark.properties, read by name.
    ApiCall {
        group: "",
        resource: "configmaps",
        verbs: &["get"],
        own_namespace_only: false,
    },
    // kube-runtime's event Recorder creates events and patches their series.
    ApiCall {
        group: "events.k8s.io",
        resource: "events",
        verbs: &["create", "patch"],
        own_namespace_only: false,
    },
    ApiCall {
        group: "sparkgang.io",
        resource: "resourcereservations",
        verbs: &["get", "list", "watch", "create", "update", "delete"],
        own_namespace_only: false,
    },
    // Queues: watched for the decisions; the leader writes their status.
    ApiCall {
        group: "sparkgang.io",
        resource: "queues",
        verbs: &["list", "watch"],
        own_namespace_only: false,
    },
    ApiCall {
        group: "sparkgang.io",
        resource: "queues/status",
        verbs: &["patch"],
        own_namespace_only: false,
    },
    ApiCall {
        group: "sparkgang.io",
        resource: "demands",
        verbs: &["create", "delete"],
        own_namespace_only: false,
    },
    // The explain listener checks its callers' tokens and permissions (delegated to the API
    // server, as the ClusterRole system:auth-delegator grants).
    ApiCall {
        group: "authentication.k8s.io",
        resource: "tokenreviews",
        verbs: &["create"],
        own_namespace_only: false,
    },
    ApiCall {
        group: "authorization.k8s.io",
        resource: "subjectaccessreviews",
        verbs: &["create"],
        own_namespace_only: false,
    },
    ApiCall {
        group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["get", "create", "update"],
        own_namespace_only: true,
    },
];
