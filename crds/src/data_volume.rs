//! The `DataVolume` custom resource: a persistent disk that outlives boxes.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::validation::{self as v, ValidationError, ValidationErrors};

/// A data volume in a project. Checkpoints and backups are declared by name: adding one to the
/// spec takes it once, removing it deletes it. A restore happens once per `requestId`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "forkr.dev",
    version = "v1alpha1",
    kind = "DataVolume",
    namespaced,
    status = "DataVolumeStatus",
    derive = "PartialEq",
    shortname = "dvol",
    category = "forkr",
    doc = "A Forkr data volume: a persistent btrfs subvolume mounted into boxes.",
    printcolumn(name = "Limit", type_ = "string", json_path = ".spec.size"),
    printcolumn(name = "Used", type_ = "integer", json_path = ".status.size"),
    printcolumn(name = "Node", type_ = "string", json_path = ".status.node"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct DataVolumeSpec {
    /// An optional size limit, e.g. `10Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Quantity>,
    /// Start as a copy of another volume (what a box fork does for `box-<name>-<vol>`).
    /// Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("cloneFrom is immutable"))]
    pub clone_from: Option<VolumeCloneSource>,
    /// Checkpoints that should exist (read-only snapshots in the node's pool).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub checkpoints: Vec<VolumeCheckpointSpec>,
    /// Backups that should exist: full copies that survive the volume's deletion.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub backups: Vec<VolumeBackupSpec>,
    /// Roll the volume back to a checkpoint or a backup, once per `requestId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<VolumeRestoreRequest>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VolumeCloneSource {
    #[schemars(length(min = 1, max = 63))]
    pub volume: String,
    /// The source's project; this volume's own when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub project: Option<String>,
    /// Clone this checkpoint of the source rather than its live state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub checkpoint: Option<String>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VolumeCheckpointSpec {
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-zA-Z0-9_.-]+$"))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VolumeBackupSpec {
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-zA-Z0-9_.-]+$"))]
    pub name: String,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.checkpoint) != has(self.backup)").message("give exactly one of checkpoint and backup"))]
pub struct VolumeRestoreRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub checkpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub backup: Option<String>,
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[A-Za-z0-9._:-]+$"))]
    pub request_id: String,
}

#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataVolumePhase {
    Pending,
    Ready,
    Restoring,
    Failed,
}

/// A checkpoint or backup that exists.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VolumeCopyStatus {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// RFC3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DataVolumeStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<DataVolumePhase>,
    /// The node whose pool holds the volume; boxes that mount it run there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Bytes used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checkpoints: Vec<VolumeCopyStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backups: Vec<VolumeCopyStatus>,
    /// The `spec.restore.requestId` handled last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_restore_request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The name a fork gives its copy of volume `vol`: `box-<name>-<vol>`, as 001 says.
pub fn fork_volume_name(new_box: &str, vol: &str) -> Result<String, ValidationError> {
    let name = format!("box-{new_box}-{vol}");
    v::validate_volume_name(&name)?;
    Ok(name)
}

impl DataVolume {
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let name = self.metadata.name.as_deref().unwrap_or_default();
        errs.check("metadata.name", v::validate_volume_name(name));
        if let Some(size) = &self.spec.size {
            let ok = v::memory_bytes(&size.0).is_ok();
            if !ok {
                errs.push(
                    "spec.size",
                    ValidationError::Invalid {
                        what: "size",
                        value: size.0.clone(),
                        rule: "a quantity of at least 16Mi, e.g. 10Gi",
                    },
                );
            }
        }
        if let Some(src) = &self.spec.clone_from {
            errs.check(
                "spec.cloneFrom.volume",
                v::validate_volume_name(&src.volume),
            );
            if let Some(p) = &src.project {
                errs.check("spec.cloneFrom.project", v::validate_project_name(p));
            }
            if let Some(c) = &src.checkpoint {
                errs.check("spec.cloneFrom.checkpoint", v::validate_snapshot_name(c));
            }
        }
        errs.check(
            "spec.checkpoints",
            v::check_count("checkpoints", self.spec.checkpoints.len(), 256),
        );
        errs.check(
            "spec.backups",
            v::check_count("backups", self.spec.backups.len(), 256),
        );
        let mut seen = std::collections::HashSet::new();
        for (i, c) in self.spec.checkpoints.iter().enumerate() {
            if let Some(d) = &c.description {
                errs.check(
                    format!("spec.checkpoints[{i}].description"),
                    v::check_len("description", d, 1024),
                );
            }
            errs.check(
                format!("spec.checkpoints[{i}].name"),
                v::validate_snapshot_name(&c.name),
            );
            if !seen.insert(c.name.as_str()) {
                errs.push(
                    format!("spec.checkpoints[{i}].name"),
                    ValidationError::Invalid {
                        what: "checkpoint",
                        value: c.name.clone(),
                        rule: "listed twice",
                    },
                );
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, b) in self.spec.backups.iter().enumerate() {
            errs.check(
                format!("spec.backups[{i}].name"),
                v::validate_snapshot_name(&b.name),
            );
            if !seen.insert(b.name.as_str()) {
                errs.push(
                    format!("spec.backups[{i}].name"),
                    ValidationError::Invalid {
                        what: "backup",
                        value: b.name.clone(),
                        rule: "listed twice",
                    },
                );
            }
        }
        if let Some(r) = &self.spec.restore {
            if r.checkpoint.is_some() == r.backup.is_some() {
                errs.push(
                    "spec.restore",
                    ValidationError::Invalid {
                        what: "volume restore",
                        value: String::new(),
                        rule: "give exactly one of checkpoint and backup",
                    },
                );
            }
            for name in r.checkpoint.iter().chain(&r.backup) {
                errs.check("spec.restore", v::validate_snapshot_name(name));
            }
            errs.check(
                "spec.restore.requestId",
                v::validate_request_id(&r.request_id),
            );
        }
        errs.into_result()
    }
}
