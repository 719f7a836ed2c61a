//! Pure builders: the children of a Box, as plain functions of the Box and its context. They
//! need no Kubernetes client, so every one is unit-tested with golden YAML.

pub mod boxes;

use std::collections::BTreeMap;

use forkr_crds::labels;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use sha2::{Digest, Sha256};

/// On every child: the hash of what the operator last applied, so an unchanged child is never
/// written again.
pub const ANNOTATION_APPLIED: &str = "forkr.dev/applied-hash";

/// Labels of every child of box `name` in `project`.
pub fn box_labels(project: &str, name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::LABEL_BOX.to_owned(), name.to_owned()),
        (labels::LABEL_PROJECT.to_owned(), project.to_owned()),
        (
            labels::LABEL_MANAGED_BY.to_owned(),
            labels::MANAGER.to_owned(),
        ),
    ])
}

/// Metadata of a child named like its owner, controlled by it.
pub fn child_meta<K: Resource<DynamicType = ()>>(
    owner: &K,
    labels: BTreeMap<String, String>,
) -> ObjectMeta {
    ObjectMeta {
        name: owner.meta().name.clone(),
        namespace: owner.meta().namespace.clone(),
        labels: Some(labels),
        owner_references: owner.controller_owner_ref(&()).map(|r| vec![r]),
        ..ObjectMeta::default()
    }
}

/// Stamps `obj` with the hash of its own serialization; returns the hash.
pub fn stamp<K: Resource + serde::Serialize>(obj: &mut K) -> Result<String, serde_json::Error> {
    if let Some(a) = obj.meta_mut().annotations.as_mut() {
        a.remove(ANNOTATION_APPLIED);
    }
    let hash = hex::encode(&Sha256::digest(serde_json::to_vec(obj)?)[..12]);
    obj.meta_mut()
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(ANNOTATION_APPLIED.to_owned(), hash.clone());
    Ok(hash)
}

/// The applied hash recorded on an existing object.
pub fn applied_hash<K: Resource>(obj: &K) -> Option<&str> {
    obj.meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_APPLIED))
        .map(String::as_str)
}
