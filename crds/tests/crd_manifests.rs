//! The committed CRD YAML is exactly what the types generate, and each CRD is a schema an
//! apiserver will accept: structural, with the names, columns and subresources we promise.

// Helpers outside #[test] functions panic on broken fixtures too; that is a test failure.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use forkr_crds::crdgen;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};

fn chart_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/forkr/crds")
}

#[test]
fn committed_yaml_matches_the_types() {
    let mut stale = Vec::new();
    for crd in crdgen::crds() {
        let path = chart_dir().join(crdgen::file_name(&crd));
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        if on_disk != crdgen::render(&crd).unwrap() {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "CRD YAML out of date; run `cargo run -p forkr-crds --bin forkr-crdgen`: {stale:?}"
    );
    let files = std::fs::read_dir(chart_dir()).unwrap().count();
    assert_eq!(
        files,
        crdgen::crds().len(),
        "charts/forkr/crds holds a file that no type generates"
    );
}

#[test]
fn every_crd_has_the_promised_shape() {
    let want = [
        ("boxes.forkr.dev", "Box", "bx"),
        ("bases.forkr.dev", "Base", "fbase"),
        ("snapshots.forkr.dev", "Snapshot", "snap"),
        ("datavolumes.forkr.dev", "DataVolume", "dvol"),
    ];
    let crds = crdgen::crds();
    // The four resources with a lifecycle, then ForkGrant, which is consent only: no status.
    assert_eq!(crds.len(), want.len() + 1);
    let grant = &crds[want.len()];
    assert_eq!(grant.metadata.name.as_deref(), Some("forkgrants.forkr.dev"));
    assert_eq!(grant.spec.scope, "Namespaced");
    assert_eq!(grant.spec.names.kind, "ForkGrant");
    assert_eq!(
        grant.spec.names.short_names.as_deref(),
        Some(&["fgrant".to_owned()][..])
    );
    for (crd, (name, kind, short)) in crds.iter().zip(want) {
        assert_eq!(crd.metadata.name.as_deref(), Some(name));
        assert_eq!(crd.spec.group, "forkr.dev");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.kind, kind);
        assert_eq!(
            crd.spec.names.short_names.as_deref(),
            Some(&[short.to_owned()][..])
        );
        assert_eq!(
            crd.spec.names.categories.as_deref(),
            Some(&["forkr".to_owned()][..])
        );
        assert_eq!(crd.spec.versions.len(), 1);
        let v = &crd.spec.versions[0];
        assert_eq!(v.name, "v1alpha1");
        assert!(v.served && v.storage);
        assert!(
            v.subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{name}: status subresource"
        );
        let columns = v.additional_printer_columns.as_deref().unwrap_or_default();
        assert!(
            columns.iter().any(|c| c.json_path == ".status.phase"),
            "{name}: a Phase column"
        );
    }
}

/// The rules of a structural schema that schemars output could break.
fn check_structural(path: &str, s: &JSONSchemaProps, errors: &mut Vec<String>) {
    let untyped_ok = s.x_kubernetes_int_or_string == Some(true)
        || s.x_kubernetes_preserve_unknown_fields == Some(true);
    if s.type_.is_none() && !untyped_ok {
        errors.push(format!("{path}: no type"));
    }
    if s.ref_path.is_some() {
        errors.push(format!("{path}: $ref is not allowed"));
    }
    if s.properties.is_some() && s.additional_properties.is_some() {
        errors.push(format!(
            "{path}: properties and additionalProperties together"
        ));
    }
    if s.type_.as_deref() == Some("array") && s.items.is_none() {
        errors.push(format!("{path}: array without items"));
    }
    if s.x_kubernetes_list_type.as_deref() == Some("map") {
        let keys = s.x_kubernetes_list_map_keys.clone().unwrap_or_default();
        if keys.is_empty() {
            errors.push(format!("{path}: list-type map without keys"));
        }
        if let Some(JSONSchemaPropsOrArray::Schema(item)) = &s.items {
            let required = item.required.clone().unwrap_or_default();
            for key in keys {
                let defaulted = item
                    .properties
                    .as_ref()
                    .and_then(|p| p.get(&key))
                    .is_some_and(|p| p.default.is_some());
                if !required.contains(&key) && !defaulted {
                    errors.push(format!(
                        "{path}: list map key {key} must be required or defaulted"
                    ));
                }
            }
        }
    }
    for (name, child) in s.properties.iter().flatten() {
        check_structural(&format!("{path}.{name}"), child, errors);
    }
    if let Some(JSONSchemaPropsOrArray::Schema(item)) = &s.items {
        check_structural(&format!("{path}[]"), item, errors);
    }
    if let Some(JSONSchemaPropsOrBool::Schema(extra)) = &s.additional_properties {
        check_structural(&format!("{path}{{}}"), extra, errors);
    }
    for list in [&s.all_of, &s.any_of, &s.one_of].into_iter().flatten() {
        for sub in list {
            if sub.type_.is_some() || sub.default.is_some() || sub.additional_properties.is_some() {
                errors.push(format!(
                    "{path}: allOf/anyOf/oneOf may not set type, default or additionalProperties"
                ));
            }
        }
    }
}

fn schema(crd: &CustomResourceDefinition) -> &JSONSchemaProps {
    crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("every derived CRD has an openAPIV3Schema")
}

#[test]
fn every_schema_is_structural() {
    let mut errors = Vec::new();
    for crd in crdgen::crds() {
        check_structural(
            crd.metadata.name.as_deref().unwrap(),
            schema(&crd),
            &mut errors,
        );
    }
    assert!(
        errors.is_empty(),
        "non-structural schema:\n{}",
        errors.join("\n")
    );
}

fn count_rules(s: &JSONSchemaProps) -> usize {
    let here = s.x_kubernetes_validations.as_ref().map_or(0, Vec::len);
    let props: usize = s
        .properties
        .iter()
        .flatten()
        .map(|(_, c)| count_rules(c))
        .sum();
    let items = match &s.items {
        Some(JSONSchemaPropsOrArray::Schema(i)) => count_rules(i),
        _ => 0,
    };
    here + props + items
}

#[test]
fn cel_rules_are_present_and_strippable() {
    let crds = crdgen::crds();
    let rules: Vec<usize> = crds.iter().map(|c| count_rules(schema(c))).collect();
    // Box: base xor fork, fork self, reserved env, mount path prefix, unique mount paths.
    // Base: one source, parent with import. Snapshot: box and name immutable.
    // DataVolume: cloneFrom immutable, restore one of. ForkGrant: none.
    assert_eq!(rules, vec![5, 2, 2, 2, 0]);
    for crd in crds {
        let stripped = crdgen::without_cel(crd);
        assert_eq!(count_rules(schema(&stripped)), 0);
        let yaml = crdgen::render(&stripped).unwrap();
        assert!(!yaml.contains("x-kubernetes-validations"));
        // Kubernetes 1.20 refuses optional enums that list null; nullable admits it anyway.
        let doc: serde_json::Value = serde_yaml_ng::from_str(&yaml).unwrap();
        let mut nulls = Vec::new();
        find_enum_nulls(&doc, "", &mut nulls);
        assert!(nulls.is_empty(), "enums listing null: {nulls:?}");
    }
}

fn find_enum_nulls(v: &serde_json::Value, at: &str, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(serde_json::Value::Array(values)) = m.get("enum")
                && values.iter().any(|x| x.is_null())
            {
                out.push(at.to_owned());
            }
            for (k, child) in m {
                find_enum_nulls(child, &format!("{at}/{k}"), out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                find_enum_nulls(child, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}
