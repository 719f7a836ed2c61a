//! Forkr's API model: the `Box`, `Base`, `Snapshot`, `DataVolume` and `ForkGrant` custom
//! resources (group `forkr.dev`, version `v1alpha1`, namespaced: a project is a namespace), and
//! the validation that forkr-api, 4kr and the operator share.
//!
//! The kind is `Box`, but the Rust type is [`BoxResource`], so nothing shadows `std::boxed::Box`.

// kube-derive takes one `printcolumn(name, type_, ...)` per column; clippy reads the repeated
// `type_` keys as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

pub mod base;
pub mod box_resource;
pub mod conditions;
pub mod crdgen;
pub mod data_volume;
pub mod fork_grant;
pub mod labels;
pub mod snapshot;
pub mod validation;

pub use base::{
    Base, BaseSpec, BaseStatus, BaseVersion, BaseVersionKind, next_version_name, script_tag,
};
pub use box_resource::{
    BoxPhase, BoxResource, BoxSpec, BoxStatus, DataMount, ForkSource, PublishedHost, RestoreRequest,
};
pub use data_volume::{DataVolume, DataVolumeSpec, DataVolumeStatus, fork_volume_name};
pub use fork_grant::{ForkGrant, ForkGrantSpec, GrantFrom, GrantKind, GrantTo};
pub use snapshot::{
    Snapshot, SnapshotSpec, SnapshotStatus, next_snapshot_name, parse_snapshot_object_name,
    snapshot_object_name,
};
pub use validation::{ValidationError, ValidationErrors};
