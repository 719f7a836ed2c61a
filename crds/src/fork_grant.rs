//! The `ForkGrant` custom resource: consent, written in the SOURCE namespace, for objects of
//! other namespaces to copy this namespace's boxes or data volumes (the pattern of Gateway
//! API's `ReferenceGrant`).
//!
//! A Box that forks another namespace's box, a Base that saves another namespace's box and a
//! DataVolume that clones another namespace's volume all read data that belongs to someone
//! else. RBAC lets a user write objects in their own namespace only, so the owner of the source
//! says yes here, where only they (or an admin) can write.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::validation::{self as v, ValidationError, ValidationErrors};

/// Lets the namespaces in `from` copy the objects in `to`, which live in this grant's namespace.
/// A grant is read when the copy is made; deleting it later does not undo copies already made.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "forkr.dev",
    version = "v1alpha1",
    kind = "ForkGrant",
    namespaced,
    derive = "PartialEq",
    shortname = "fgrant",
    category = "forkr",
    doc = "Lets other namespaces fork this namespace's boxes or clone its data volumes.",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ForkGrantSpec {
    /// The namespaces whose Boxes, Bases and DataVolumes may copy the objects in `to`.
    #[schemars(length(min = 1, max = 64))]
    pub from: Vec<GrantFrom>,
    /// What may be copied: every object of a kind, or the named ones.
    #[schemars(length(min = 1, max = 64))]
    pub to: Vec<GrantTo>,
}

/// A namespace that is granted access.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GrantFrom {
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
}

/// Objects of this grant's namespace that may be copied.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GrantTo {
    pub kind: GrantKind,
    /// One object; every object of `kind` in the namespace when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub name: Option<String>,
}

/// What a grant can cover. A `Box` covers forking it (its root and the data volumes it mounts,
/// which a fork copies) and saving it as a base.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantKind {
    Box,
    DataVolume,
}

impl std::fmt::Display for GrantKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GrantKind::Box => "Box",
            GrantKind::DataVolume => "DataVolume",
        })
    }
}

impl ForkGrant {
    /// The CRD's rules in Rust (clusters before 1.25 do not check every schema rule the same
    /// way, and the operator ignores an invalid grant rather than guess what it meant).
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errs = ValidationErrors::default();
        errs.check(
            "spec.from",
            v::check_count("grant sources", self.spec.from.len(), 64),
        );
        errs.check(
            "spec.to",
            v::check_count("grant targets", self.spec.to.len(), 64),
        );
        if self.spec.from.is_empty() || self.spec.to.is_empty() {
            errs.push(
                "spec",
                ValidationError::Invalid {
                    what: "fork grant",
                    value: self.metadata.name.clone().unwrap_or_default(),
                    rule: "a grant needs at least one entry in from and in to",
                },
            );
        }
        for (i, f) in self.spec.from.iter().enumerate() {
            errs.check(
                format!("spec.from[{i}].namespace"),
                v::validate_project_name(&f.namespace),
            );
        }
        for (i, t) in self.spec.to.iter().enumerate() {
            if let Some(name) = &t.name {
                errs.check(
                    format!("spec.to[{i}].name"),
                    if t.kind == GrantKind::Box {
                        v::validate_box_name(name)
                    } else {
                        v::validate_volume_name(name)
                    },
                );
            }
        }
        errs.into_result()
    }

    /// Whether this grant (valid, in the source namespace) lets namespace `from` copy the
    /// object `kind`/`name` of the grant's namespace. An invalid grant permits nothing.
    pub fn permits(&self, from: &str, kind: GrantKind, name: &str) -> bool {
        self.validate().is_ok()
            && self.spec.from.iter().any(|f| f.namespace == from)
            && self
                .spec
                .to
                .iter()
                .any(|t| t.kind == kind && t.name.as_deref().is_none_or(|n| n == name))
    }
}

/// Whether any of `grants` in `source_ns` lets `from` copy `kind`/`name` of `source_ns`.
/// Grants of other namespaces are ignored: only the source's owner can consent.
pub fn granted<'a>(
    grants: impl IntoIterator<Item = &'a ForkGrant>,
    source_ns: &str,
    from: &str,
    kind: GrantKind,
    name: &str,
) -> bool {
    grants
        .into_iter()
        .any(|g| g.metadata.namespace.as_deref() == Some(source_ns) && g.permits(from, kind, name))
}

/// The grant forkr-api writes before a cross-project fork of `source_box` (in `source_ns`) into
/// box `to_box` of `to_ns`: namespace `to_ns` may copy that one box, and nothing else. One grant
/// per fork, named after both ends, so applying it again is a no-op and removing it once its
/// fork is made never pulls the rug from under another fork of the same pair.
pub fn fork_grant_for(source_ns: &str, source_box: &str, to_ns: &str, to_box: &str) -> ForkGrant {
    let mut g = ForkGrant::new(
        &grant_name(source_box, to_ns, to_box),
        ForkGrantSpec {
            from: vec![GrantFrom {
                namespace: to_ns.to_owned(),
            }],
            to: vec![GrantTo {
                kind: GrantKind::Box,
                name: Some(source_box.to_owned()),
            }],
        },
    );
    g.metadata.namespace = Some(source_ns.to_owned());
    g
}

/// `fork-<box>.to-<ns>.<box>`: at most 199 characters for valid names, within a DNS subdomain;
/// box and namespace names hold no dots, so distinct forks never share a grant.
pub fn grant_name(source_box: &str, to_ns: &str, to_box: &str) -> String {
    format!("fork-{source_box}.to-{to_ns}.{to_box}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(ns: &str, from: &[&str], to: Vec<GrantTo>) -> ForkGrant {
        let mut g = ForkGrant::new(
            "g",
            ForkGrantSpec {
                from: from
                    .iter()
                    .map(|n| GrantFrom {
                        namespace: (*n).to_owned(),
                    })
                    .collect(),
                to,
            },
        );
        g.metadata.namespace = Some(ns.to_owned());
        g
    }

    #[test]
    fn grants_cover_exactly_what_they_name() {
        let all = grant(
            "src",
            &["dev"],
            vec![GrantTo {
                kind: GrantKind::Box,
                name: None,
            }],
        );
        assert!(all.permits("dev", GrantKind::Box, "web"));
        assert!(!all.permits("prod", GrantKind::Box, "web"));
        assert!(!all.permits("dev", GrantKind::DataVolume, "web"));
        let one = grant(
            "src",
            &["dev"],
            vec![GrantTo {
                kind: GrantKind::Box,
                name: Some("api".into()),
            }],
        );
        assert!(one.permits("dev", GrantKind::Box, "api"));
        assert!(!one.permits("dev", GrantKind::Box, "web"));
        // Only a grant in the source namespace counts.
        assert!(granted([&one], "src", "dev", GrantKind::Box, "api"));
        assert!(!granted([&one], "other", "dev", GrantKind::Box, "api"));
    }

    #[test]
    fn invalid_grants_permit_nothing() {
        let bad = grant(
            "src",
            &["Not_A_Namespace"],
            vec![GrantTo {
                kind: GrantKind::Box,
                name: None,
            }],
        );
        assert!(bad.validate().is_err());
        assert!(!bad.permits("Not_A_Namespace", GrantKind::Box, "x"));
        let empty = grant("src", &[], vec![]);
        assert!(empty.validate().is_err());
    }

    #[test]
    fn the_api_grant_names_one_box_for_one_namespace() {
        let g = fork_grant_for("shop", "api", "shop-dev", "api2");
        assert!(g.validate().is_ok());
        assert_eq!(
            g.metadata.name.as_deref(),
            Some("fork-api.to-shop-dev.api2")
        );
        assert!(g.permits("shop-dev", GrantKind::Box, "api"));
        assert!(!g.permits("shop-dev", GrantKind::Box, "web"));
        assert!(!g.permits("other", GrantKind::Box, "api"));
    }
}
