//! The rules every component applies to user input, with the product documents' error texts.
//!
//! forkr-api, 4kr and the operator call these same functions, so a bad name or mount is refused
//! with the same words wherever it enters. The CRDs carry the same rules as OpenAPI patterns and
//! CEL, but clusters older than 1.25 ignore CEL, so the operator re-checks with this module.

mod env;
mod error;
mod hosts;
mod limits;
mod mounts;
mod names;
mod paths;
mod quantity;
mod refs;
mod settings;
mod tenancy;

pub use env::{
    RESERVED_ENV, is_reserved_env, parse_env_assignment, validate_env, validate_env_key,
};
pub use error::{ValidationError, ValidationErrors};
pub use hosts::{publish_host, validate_host};
pub use limits::{
    check_count, check_len, validate_request_id, validate_sha256, validate_upload_id,
};
pub use mounts::{DataMountArg, parse_data_mount, validate_mount_path, validate_mounts};
pub use names::{
    NameKind, RESERVED_USERS, normalize_project_name, validate_base_alias, validate_base_ref,
    validate_base_version, validate_box_name, validate_name, validate_project_name,
    validate_service_name, validate_snapshot_name, validate_user_name, validate_volume_name,
};
pub use paths::{BoxPath, CopyDirection, Location, normalize_box_path, parse_copy, parse_location};
pub use quantity::{cpu_millis, memory_bytes};
pub use refs::{BoxRef, BoxTarget, ResolvedBox, ResolvedTarget, parse_ref};
pub use settings::{BoxUpdate, MAX_GRACE_SECONDS, parse_box_update, validate_grace, validate_port};
pub use tenancy::host_namespace;
