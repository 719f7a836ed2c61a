//! Names that every component must spell the same way: API group, labels, annotations,
//! finalizers, defaults.

pub const GROUP: &str = "forkr.dev";
pub const VERSION: &str = "v1alpha1";

/// The base a box starts from when it names none.
pub const DEFAULT_BASE: &str = "box-base";
/// The project used when nothing else names one.
pub const DEFAULT_PROJECT: &str = "default";
/// Where shared bases live in Kubernetes mode; a project's own Base of the same name wins.
pub const SYSTEM_NAMESPACE: &str = "forkr-system";

/// On every child of a box: the box's name.
pub const LABEL_BOX: &str = "forkr.dev/box";
/// On every child of a box: the box's project.
pub const LABEL_PROJECT: &str = "forkr.dev/project";
/// On Snapshot objects, so `4kr snapshot list` is one label-selected list.
pub const LABEL_SNAPSHOT_BOX: &str = "forkr.dev/snapshot-of";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The field manager and managed-by value of the operator.
pub const MANAGER: &str = "forkr-operator";

/// Set by 4kr on boxes it made for `-` refs, so that a crashed CLI's leftovers can be found.
pub const ANNOTATION_EPHEMERAL: &str = "forkr.dev/ephemeral";

/// On a Namespace, set by an admin: boxes there may use fields that widen what a box can do
/// (`spec.runnerImage`). RBAC that confines a user to a namespace cannot label the Namespace.
pub const LABEL_TRUSTED: &str = "forkr.dev/trusted";

pub const FINALIZER_BOX: &str = "forkr.dev/box-root";
pub const FINALIZER_SNAPSHOT: &str = "forkr.dev/snapshot";
pub const FINALIZER_BASE: &str = "forkr.dev/base";
pub const FINALIZER_VOLUME: &str = "forkr.dev/volume";

/// The runner container's name, as the documents give it.
pub const RUNNER_CONTAINER: &str = "fork";
