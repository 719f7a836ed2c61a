//! The `Base` custom resource: a versioned alias of read-only template roots.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::validation::{self as v, ValidationError, ValidationErrors};

/// Length of `-vYYYYMMDDhhmmss`, the suffix of every version after the first.
pub const VERSION_SUFFIX_LEN: usize = 16;

/// The family a base reference belongs to: `alias`, `alias:tag` and `alias-vYYYYMMDDhhmmss`
/// all name `alias`. Who may write a base is decided per family (forkr-api for tokens, the
/// operator for Base objects), so a version cannot be written or deleted by naming it instead
/// of its alias, and a Base named like a version of `box-base` cannot shadow it.
pub fn family(reference: &str) -> &str {
    let name = reference.split_once(':').map_or(reference, |(a, _)| a);
    match name.len().checked_sub(VERSION_SUFFIX_LEN) {
        Some(cut) if cut > 0 => {
            let suffix = &name.as_bytes()[cut..];
            let versioned = suffix.starts_with(b"-v") && suffix[2..].iter().all(u8::is_ascii_digit);
            if versioned { &name[..cut] } else { name }
        }
        _ => name,
    }
}

/// A base alias (`metadata.name`, e.g. `box-base`). Writing `spec.source` with a new
/// `requestId` makes a new version; the alias resolves to the newest one unless `spec.version`
/// pins it. Versions are listed in `status.versions`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "forkr.dev",
    version = "v1alpha1",
    kind = "Base",
    namespaced,
    status = "BaseStatus",
    derive = "PartialEq",
    shortname = "fbase",
    category = "forkr",
    doc = "A Forkr base: a versioned alias of read-only template filesystems that boxes clone.",
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".status.currentVersion"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BaseSpec {
    /// Pin the alias to this exact version instead of the newest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub version: Option<String>,
    /// Where the next version comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<BaseSource>,
}

/// A request for a new version: an imported root tarball, or a box's root saved as it is.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.__import__) != has(self.save)").message("give exactly one of import and save"))]
#[x_kube(validation = Rule::new("!has(self.parent) || has(self.__import__)").message("parent applies to import only"))]
pub struct BaseSource {
    /// Handled once per id; a new id makes a new version.
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[A-Za-z0-9._:-]+$"))]
    pub request_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import: Option<ImportSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save: Option<SaveSource>,
    /// A base (alias or exact version) to snapshot first and extract the tarball over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub parent: Option<String>,
}

/// A root filesystem `.tar.gz` that forkr-api has staged on a node.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ImportSource {
    /// The staged upload's id, as forkr-api returned it.
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[A-Za-z0-9._-]+$"))]
    pub upload: String,
    /// sha256 of the tarball, checked before extracting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub sha256: Option<String>,
    /// The build script (e.g. the Dockerfile) of a `4kr base build`. Its sha256 is the TAG.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 262144))]
    pub script: Option<String>,
    /// What built it: `docker`, `podman`, `nerdctl`, or a user's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub builder: Option<String>,
}

/// A box whose on-disk root becomes the new version; it need not be running.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SaveSource {
    #[serde(rename = "box")]
    #[schemars(length(min = 1, max = 63))]
    pub box_name: String,
    /// The box's project; the Base's own namespace when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub project: Option<String>,
}

/// How a version was made; the KIND column of `4kr base show`.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BaseVersionKind {
    /// A tarball import.
    Import,
    /// A `4kr base build`: an import that carries its build script.
    Build,
    /// A box's root saved with `4kr base save`.
    Save,
}

/// One read-only version of the alias.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BaseVersion {
    /// The exact version name: the alias, or `<alias>-vYYYYMMDDhhmmss`.
    pub name: String,
    pub kind: BaseVersionKind,
    /// sha256 of the build script, for builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builder: Option<String>,
    /// The version it was layered on, or the box it was saved from (`project:box`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Bytes on disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// RFC3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Nodes whose pool holds this version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
}

#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BasePhase {
    Pending,
    Building,
    Ready,
    Failed,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BaseStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BasePhase>,
    /// The version the alias resolves to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<String>,
    /// Oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<BaseVersion>,
    /// The `spec.source.requestId` handled last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The name of the next version of `alias`, as 003 says: the exact alias for the first write,
/// then `<alias>-vYYYYMMDDhhmmss` (UTC). Two writes in one second would collide, so the
/// timestamp moves forward to the next free second.
pub fn next_version_name<'a>(
    alias: &str,
    existing: impl IntoIterator<Item = &'a str> + Clone,
    now: jiff::Timestamp,
) -> String {
    let taken = |name: &str| existing.clone().into_iter().any(|e| e == name);
    if existing.clone().into_iter().next().is_none() {
        return alias.to_owned();
    }
    let mut at = now;
    loop {
        let name = format!("{alias}-v{}", at.strftime("%Y%m%d%H%M%S"));
        if !taken(&name) {
            return name;
        }
        at = at
            .checked_add(jiff::SignedDuration::from_secs(1))
            .unwrap_or(at);
        if at == now {
            // Unreachable in practice (the clock would have to be at its maximum); fall back to
            // a name the caller will report as a conflict rather than looping forever.
            return name;
        }
    }
}

impl BaseStatus {
    /// Resolves what `--base` names against this alias's versions: the alias itself (the pinned
    /// or newest version), an exact version, or `alias:tag` (the newest version whose tag starts
    /// with `tag`). `None` when nothing matches.
    pub fn resolve(&self, alias: &str, reference: &str, pin: Option<&str>) -> Option<&BaseVersion> {
        if let Some((a, tag)) = reference.split_once(':') {
            if a != alias {
                return None;
            }
            return self
                .versions
                .iter()
                .rev()
                .find(|ver| ver.tag.as_deref().is_some_and(|t| t.starts_with(tag)));
        }
        if reference == alias {
            let want = pin.or(self.current_version.as_deref());
            return match want {
                Some(w) => self.versions.iter().find(|ver| ver.name == w),
                None => self.versions.last(),
            };
        }
        self.versions.iter().find(|ver| ver.name == reference)
    }
}

impl Base {
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let alias = self.metadata.name.as_deref().unwrap_or_default();
        errs.check("metadata.name", v::validate_base_alias(alias));
        if let Some(version) = &self.spec.version {
            errs.check("spec.version", v::validate_base_version(version));
        }
        if let Some(source) = &self.spec.source {
            if source.import.is_some() == source.save.is_some() {
                errs.push(
                    "spec.source",
                    ValidationError::Invalid {
                        what: "base source",
                        value: String::new(),
                        rule: "give exactly one of import and save",
                    },
                );
            }
            if source.parent.is_some() && source.import.is_none() {
                errs.push(
                    "spec.source.parent",
                    ValidationError::Invalid {
                        what: "base source",
                        value: String::new(),
                        rule: "parent applies to import only",
                    },
                );
            }
            errs.check(
                "spec.source.requestId",
                v::validate_request_id(&source.request_id),
            );
            if let Some(import) = &source.import {
                errs.check(
                    "spec.source.import.upload",
                    v::validate_upload_id(&import.upload),
                );
                if let Some(sha) = &import.sha256 {
                    errs.check("spec.source.import.sha256", v::validate_sha256(sha));
                }
                if let Some(script) = &import.script {
                    errs.check(
                        "spec.source.import.script",
                        v::check_len("build script", script, 262_144),
                    );
                }
                if let Some(builder) = &import.builder {
                    errs.check(
                        "spec.source.import.builder",
                        v::check_len("builder", builder, 128),
                    );
                }
            }
            if let Some(parent) = &source.parent {
                errs.check("spec.source.parent", v::validate_base_ref(parent));
            }
            if let Some(save) = &source.save {
                errs.check("spec.source.save.box", v::validate_box_name(&save.box_name));
                if let Some(p) = &save.project {
                    errs.check("spec.source.save.project", v::validate_project_name(p));
                }
            }
        }
        errs.into_result()
    }
}

/// sha256 of a build script, lowercase hex: the TAG of a build.
pub fn script_tag(script: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(script.as_bytes()))
}
