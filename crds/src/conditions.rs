//! Condition types that the controllers set in `status.conditions`.

/// The box is running and its runner has started PID 1.
pub const READY: &str = "Ready";
/// The box's root subvolume exists on its node.
pub const ROOT_READY: &str = "RootReady";
/// Every host in `spec.publish` is served by the ingress.
pub const PUBLISHED: &str = "Published";
/// The workload is pinned to a node.
pub const SCHEDULED: &str = "Scheduled";
/// The last restore request succeeded.
pub const RESTORED: &str = "Restored";
/// The operator refuses to act on (part of) the object until something changes: a fork
/// without a grant, a host another box owns, a field the namespace is not trusted with.
pub const STALLED: &str = "Stalled";
