//! The `Box` custom resource: one sandbox, the object every `4kr` box command writes or reads.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::validation::{self as v, ValidationError, ValidationErrors};

/// A box. `running: false` is a stopped box; `restore` asks for a snapshot to be rolled back in.
///
/// The spec belongs to the user and their GitOps tool; controllers write `status` only.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "forkr.dev",
    version = "v1alpha1",
    kind = "Box",
    root = "BoxResource",
    plural = "boxes",
    namespaced,
    status = "BoxStatus",
    derive = "PartialEq",
    shortname = "bx",
    category = "forkr",
    doc = "A Forkr box: a persistent Linux sandbox on a copy-on-write btrfs root.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Base", type_ = "string", json_path = ".status.baseVersion"),
    printcolumn(name = "Node", type_ = "string", json_path = ".status.node"),
    printcolumn(name = "IP", type_ = "string", json_path = ".status.podIP", priority = "1"),
    printcolumn(name = "URL", type_ = "string", json_path = ".status.url"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("!has(self.spec.base) || !has(self.spec.fork)").message("--base cannot be used with --fork"),
    validation = Rule::new("!has(self.spec.fork) || has(self.spec.fork.project) || self.spec.fork.box != self.metadata.name").message("cannot fork a box from itself"),
)]
#[serde(rename_all = "camelCase")]
pub struct BoxSpec {
    /// Base to clone: an alias (resolves to its newest version), an exact version, or
    /// `alias:tag` (tag = sha256 prefix of the build script). With neither base nor fork, the
    /// box starts from `box-base`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub base: Option<String>,

    /// Clone another box's root and its non-system data volumes instead of a base.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fork: Option<ForkSource>,

    /// Environment for every process in the box (also written to /etc/boxes-env). Only read at
    /// create: later changes are not applied, as the documents say.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 256))]
    #[x_kube(validation = Rule::new("!has(self.FORKR_PROJECT) && !has(self.BOX_NAME) && !has(self.FORKR_API_URL) && !has(self.FORKR_API_HOST) && !has(self.TERM)").message("environment variable is reserved"))]
    pub env: BTreeMap<String, String>,

    /// CPU request (no limit is ever set), e.g. `500m` or `2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Quantity>,

    /// Memory request and limit, e.g. `2Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,

    /// The port the box's URL and published hosts forward to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,

    /// Seconds between SIGTERM and SIGKILL when the box stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 86400))]
    pub termination_grace_period_seconds: Option<i64>,

    /// Free-form labels for people and tools (`4kr update --tag k=v`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub tags: BTreeMap<String, String>,

    /// Data volumes mounted into the box (`--data NAME=/path[:ro|:rw]`). One mount per volume.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["volume"]))]
    #[x_kube(validation = Rule::new("self.all(m, self.exists_one(n, n.mountPath == m.mountPath))").message("mount paths must be unique"))]
    pub data: Vec<DataMount>,

    /// Public hostnames routed to the box (`4kr publish`), or to one service's port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["host"]))]
    pub publish: Vec<PublishedHost>,

    /// False stops the box (the workload scales to zero; the root is kept).
    #[serde(default = "default_running")]
    pub running: bool,

    /// Overrides the runner image for this box.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub runner_image: Option<String>,

    /// Roll the root back to a snapshot. Applied once per `requestId`, so re-applying the same
    /// manifest does not restore twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreRequest>,
}

fn default_running() -> bool {
    true
}

impl Default for BoxSpec {
    fn default() -> Self {
        BoxSpec {
            base: None,
            fork: None,
            env: BTreeMap::new(),
            cpu: None,
            memory: None,
            port: None,
            termination_grace_period_seconds: None,
            tags: BTreeMap::new(),
            data: Vec::new(),
            publish: Vec::new(),
            running: true,
            runner_image: None,
            restore: None,
        }
    }
}

/// The box a fork clones. Another project's box may be named; the data volumes are copied into
/// this box's project.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ForkSource {
    #[serde(rename = "box")]
    #[schemars(length(min = 1, max = 63))]
    pub box_name: String,
    /// The source's project; this box's own when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub project: Option<String>,
}

/// A data volume mounted into the box.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DataMount {
    /// The DataVolume's name, in the box's project.
    #[schemars(length(min = 1, max = 63))]
    pub volume: String,
    /// Absolute, and not under /proc, /sys, /dev, /run, /etc or /volumes.
    #[schemars(length(min = 2, max = 1024), regex(pattern = r"^/"))]
    #[x_kube(validation = Rule::new("!['/proc', '/sys', '/dev', '/run', '/etc', '/volumes'].exists(p, self == p || self.startsWith(p + '/'))").message("mount path cannot be under /proc, /sys, /dev, /run, /etc or /volumes"))]
    pub mount_path: String,
    #[serde(default)]
    pub read_only: bool,
}

/// A public hostname with TLS, routed to the box port or to `port`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PublishedHost {
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub host: String,
    /// The port inside the box; the box's `port` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// The service this host belongs to (`4kr service publish`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub service: Option<String>,
}

/// A declarative restore: `requestId` makes it happen once.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RestoreRequest {
    /// The snapshot's user-facing name (`spec.name` of a Snapshot of this box).
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-zA-Z0-9_.-]+$"))]
    pub snapshot: String,
    /// Any string that changes for each new restore (a UUID, a timestamp).
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[A-Za-z0-9._:-]+$"))]
    pub request_id: String,
}

/// Where a box is in its life.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoxPhase {
    Pending,
    Creating,
    Running,
    Stopping,
    Stopped,
    Restoring,
    Failed,
    Deleting,
}

/// What the controllers observed. Written by the operator (or the local backend) only.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BoxStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BoxPhase>,
    /// Standard conditions: Ready, RootReady, Published, Scheduled, Restored and Stalled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The node that holds the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "podIP")]
    pub pod_ip: Option<String>,
    /// `https://{box}.{domain}` in the default project; project-qualified elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The exact base version the root was cloned from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_version: Option<String>,
    /// Hosts the ingress serves right now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub published_hosts: Vec<String>,
    /// Hosts this box claims (its URL, `spec.publish`) that another box owns or that belong to
    /// another namespace; the ingress does not serve them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taken_hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<Time>,
    /// The last restore request handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreStatus>,
    /// A human-readable note about the phase (the reason for `Failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The outcome of a [`RestoreRequest`].
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestoreStatus {
    pub request_id: String,
    pub snapshot: String,
    /// `Restoring`, `Succeeded` or `Failed`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Tag keys: what a label key allows, roughly, so tags can be mirrored onto labels.
pub fn validate_tag_key(key: &str) -> Result<(), ValidationError> {
    let ok = !key.is_empty()
        && key.len() <= 63
        && key
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'/'));
    if ok {
        Ok(())
    } else {
        Err(ValidationError::Invalid {
            what: "tag key",
            value: key.to_owned(),
            rule: "use 1-63 letters, digits, '.', '_', '-' or '/'",
        })
    }
}

fn validate_tag_value(key: &str, value: &str) -> Result<(), ValidationError> {
    if value.len() <= 256 && !value.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(ValidationError::Invalid {
            what: "tag value",
            value: key.to_owned(),
            rule: "a tag value is at most 256 characters, with no control characters",
        })
    }
}

impl BoxResource {
    /// Every invariant of the CRD's OpenAPI and CEL rules, checked in Rust. Clusters before 1.25
    /// ignore CEL, so the operator and forkr-api run this on everything they accept.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let name = self.metadata.name.as_deref().unwrap_or_default();
        errs.check("metadata.name", v::validate_box_name(name));
        if let Some(ns) = self.metadata.namespace.as_deref() {
            errs.check("metadata.namespace", v::validate_project_name(ns));
        }
        self.spec
            .validate_into(name, self.metadata.namespace.as_deref(), &mut errs);
        errs.into_result()
    }
}

impl BoxSpec {
    /// Checks the spec of box `name` in `project` (the namespace; `None` when not yet known).
    pub fn validate(&self, name: &str, project: Option<&str>) -> Result<(), ValidationErrors> {
        let mut errs = ValidationErrors::default();
        self.validate_into(name, project, &mut errs);
        errs.into_result()
    }

    fn validate_into(&self, name: &str, project: Option<&str>, errs: &mut ValidationErrors) {
        if self.base.is_some() && self.fork.is_some() {
            errs.push("spec", ValidationError::BaseWithFork);
        }
        if let Some(base) = &self.base {
            errs.check("spec.base", v::validate_base_ref(base));
        }
        if let Some(fork) = &self.fork {
            errs.check("spec.fork.box", v::validate_box_name(&fork.box_name));
            if let Some(p) = &fork.project {
                errs.check("spec.fork.project", v::validate_project_name(p));
            }
            let same_project = match (&fork.project, project) {
                (None, _) => true,
                (Some(p), Some(own)) => p == own,
                (Some(_), None) => false,
            };
            if same_project && fork.box_name == name {
                errs.push("spec.fork", ValidationError::ForkSelf);
            }
        }
        errs.check(
            "spec.env",
            v::check_count("environment variables", self.env.len(), 256),
        );
        errs.check("spec.tags", v::check_count("tags", self.tags.len(), 64));
        errs.check(
            "spec.publish",
            v::check_count("published hosts", self.publish.len(), 64),
        );
        if let Err(e) = v::validate_env(&self.env) {
            errs.0
                .extend(e.0.into_iter().map(|(f, e)| (format!("spec.{f}"), e)));
        }
        if let Some(cpu) = &self.cpu {
            errs.check("spec.cpu", v::cpu_millis(&cpu.0).map(drop));
        }
        if let Some(memory) = &self.memory {
            errs.check("spec.memory", v::memory_bytes(&memory.0).map(drop));
        }
        if let Some(port) = self.port
            && !(1..=65535).contains(&port)
        {
            errs.push(
                "spec.port",
                ValidationError::InvalidPort {
                    value: port.to_string(),
                },
            );
        }
        if let Some(grace) = self.termination_grace_period_seconds
            && !(0..=v::MAX_GRACE_SECONDS).contains(&grace)
        {
            errs.push(
                "spec.terminationGracePeriodSeconds",
                ValidationError::InvalidGrace {
                    value: grace.to_string(),
                },
            );
        }
        for (key, value) in &self.tags {
            errs.check(format!("spec.tags.{key}"), validate_tag_key(key));
            errs.check(format!("spec.tags.{key}"), validate_tag_value(key, value));
        }
        if let Err(e) = v::validate_mounts(&self.data) {
            errs.0
                .extend(e.0.into_iter().map(|(f, e)| (format!("spec.{f}"), e)));
        }
        let mut hosts = std::collections::HashSet::new();
        for (i, p) in self.publish.iter().enumerate() {
            errs.check(format!("spec.publish[{i}].host"), v::validate_host(&p.host));
            if !hosts.insert(p.host.as_str()) {
                errs.push(
                    format!("spec.publish[{i}].host"),
                    ValidationError::InvalidHost {
                        host: p.host.clone(),
                        rule: "listed twice",
                    },
                );
            }
            if let Some(port) = p.port
                && !(1..=65535).contains(&port)
            {
                errs.push(
                    format!("spec.publish[{i}].port"),
                    ValidationError::InvalidPort {
                        value: port.to_string(),
                    },
                );
            }
            if let Some(service) = &p.service {
                errs.check(
                    format!("spec.publish[{i}].service"),
                    v::validate_service_name(service),
                );
            }
        }
        if let Some(image) = &self.runner_image
            && (image.trim().is_empty()
                || image.len() > 512
                || image.chars().any(char::is_whitespace))
        {
            errs.push(
                "spec.runnerImage",
                ValidationError::Invalid {
                    what: "runner image",
                    value: image.clone(),
                    rule: "an image reference is 1-512 characters with no whitespace",
                },
            );
        }
        if let Some(restore) = &self.restore {
            errs.check(
                "spec.restore.snapshot",
                v::validate_snapshot_name(&restore.snapshot),
            );
            errs.check(
                "spec.restore.requestId",
                v::validate_request_id(&restore.request_id),
            );
        }
    }

    /// The base this box starts from when it names none and forks nothing.
    pub fn effective_base(&self) -> Option<&str> {
        match (&self.base, &self.fork) {
            (Some(b), _) => Some(b),
            (None, None) => Some(crate::labels::DEFAULT_BASE),
            (None, Some(_)) => None,
        }
    }
}
