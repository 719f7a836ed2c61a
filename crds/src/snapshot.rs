//! The `Snapshot` custom resource: a read-only copy of one box's root, and the deterministic
//! mapping from (box, snapshot name) to a Kubernetes object name.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::validation::{self as v, ValidationError, ValidationErrors};

/// A snapshot of box `spec.box`, named `spec.name` for users. `metadata.name` must be
/// [`snapshot_object_name`]`(box, name)`, so that one (box, name) pair has exactly one object.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "forkr.dev",
    version = "v1alpha1",
    kind = "Snapshot",
    namespaced,
    status = "SnapshotStatus",
    derive = "PartialEq",
    shortname = "snap",
    category = "forkr",
    doc = "A read-only snapshot of one box's root filesystem.",
    printcolumn(name = "Box", type_ = "string", json_path = ".spec.box"),
    printcolumn(name = "Name", type_ = "string", json_path = ".spec.name"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Size", type_ = "integer", json_path = ".status.size"),
    printcolumn(name = "Created", type_ = "string", json_path = ".status.created"),
    printcolumn(
        name = "Description",
        type_ = "string",
        json_path = ".spec.description",
        priority = "1"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotSpec {
    /// The box whose root this snapshots, in the same project. Immutable.
    #[serde(rename = "box")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    )]
    #[x_kube(validation = Rule::new("self == oldSelf").message("box is immutable"))]
    pub box_name: String,
    /// The name users see (`v0`, `before-upgrade`, `Pre_Release.1`). Immutable.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-zA-Z0-9_.-]+$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("name is immutable"))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
}

#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotPhase {
    Pending,
    Ready,
    Failed,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<SnapshotPhase>,
    /// Bytes exclusive to the snapshot, as the pool reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// When the snapshot was taken, RFC3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A snapshot name that is already a DNS label is used as it is (`web-1.before-upgrade`).
fn is_plain(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// The object name of snapshot `snapshot` of box `box_name`: a DNS-1123 subdomain.
///
/// - A name that is a DNS label gives `<box>.<name>`: exactly two labels.
/// - Any other name (uppercase, `_`, `.`) gives `<box>.x.<hex of the name, in labels of 63>`:
///   three labels or more.
///
/// Box names hold no dots, so the first label is always the box; the label count tells the two
/// forms apart; and each form is injective. No two (box, name) pairs map to one object name.
/// Both arguments must be valid ([`v::validate_box_name`], [`v::validate_snapshot_name`]).
pub fn snapshot_object_name(box_name: &str, snapshot: &str) -> String {
    if is_plain(snapshot) {
        return format!("{box_name}.{snapshot}");
    }
    let hex = hex::encode(snapshot.as_bytes());
    let mut out = format!("{box_name}.x");
    for chunk in hex.as_bytes().chunks(63) {
        out.push('.');
        // Hex digits are ASCII, so each chunk is valid UTF-8.
        out.push_str(&String::from_utf8_lossy(chunk));
    }
    out
}

/// The inverse of [`snapshot_object_name`]: `None` for names it cannot have produced.
pub fn parse_snapshot_object_name(object: &str) -> Option<(String, String)> {
    let mut labels = object.split('.');
    let box_name = labels.next()?;
    let rest: Vec<&str> = labels.collect();
    match rest.as_slice() {
        [plain] if is_plain(plain) => Some((box_name.to_owned(), (*plain).to_owned())),
        ["x", chunks @ ..] if !chunks.is_empty() => {
            let bytes = hex::decode(chunks.concat()).ok()?;
            let name = String::from_utf8(bytes).ok()?;
            // Only the canonical encoding round-trips: a plain name is never hex-encoded.
            (!is_plain(&name) && snapshot_object_name(box_name, &name) == object)
                .then(|| (box_name.to_owned(), name))
        }
        _ => None,
    }
}

impl Snapshot {
    /// A snapshot object with the name the mapping gives.
    pub fn for_box(box_name: &str, name: &str, description: Option<String>) -> Self {
        Snapshot::new(
            &snapshot_object_name(box_name, name),
            SnapshotSpec {
                box_name: box_name.to_owned(),
                name: name.to_owned(),
                description,
            },
        )
    }

    /// The CRD's rules, in Rust, plus the one CEL cannot state: the object name must be the
    /// mapping of (box, name).
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errs = ValidationErrors::default();
        errs.check("spec.box", v::validate_box_name(&self.spec.box_name));
        errs.check("spec.name", v::validate_snapshot_name(&self.spec.name));
        if self
            .spec
            .description
            .as_ref()
            .is_some_and(|d| d.len() > 1024)
        {
            errs.push(
                "spec.description",
                ValidationError::Invalid {
                    what: "description",
                    value: String::new(),
                    rule: "at most 1024 bytes",
                },
            );
        }
        if errs.is_empty() {
            let want = snapshot_object_name(&self.spec.box_name, &self.spec.name);
            if self.metadata.name.as_deref() != Some(want.as_str()) {
                errs.push(
                    "metadata.name",
                    ValidationError::Invalid {
                        what: "snapshot object name",
                        value: self.metadata.name.clone().unwrap_or_default(),
                        rule: "must be the mapping of (box, name); see forkr_crds::snapshot_object_name",
                    },
                );
            }
        }
        errs.into_result()
    }
}

/// The next automatic snapshot name: `v<N+1>` above the highest `vN` among `existing`, or `v0`.
pub fn next_snapshot_name<'a>(existing: impl IntoIterator<Item = &'a str>) -> String {
    let highest = existing
        .into_iter()
        .filter_map(|n| n.strip_prefix('v'))
        .filter(|d| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit()))
        .filter_map(|d| d.parse::<u64>().ok())
        .max();
    match highest {
        Some(n) => format!("v{}", n.saturating_add(1)),
        None => "v0".to_owned(),
    }
}
