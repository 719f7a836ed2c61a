//! Validates each generated CRD against Kubernetes' own schema for CustomResourceDefinition,
//! offline, with the `kubernetes-validate` package from PyPI (scripts/test.sh installs it):
//! with CEL against 1.25 (the first version with CEL) and the newest, and without CEL against
//! 1.20, the version of the test cluster in ../shared/k8s.

// Helpers outside #[test] functions panic on broken fixtures too; that is a test failure.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use forkr_crds::crdgen;

/// The validator: `$var`, else the venv that scripts/test.sh makes.
fn validator(var: &str, venv: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(var) {
        return PathBuf::from(path);
    }
    let cache = std::env::var_os("FORKR_CACHE")
        .map_or_else(|| PathBuf::from("/var/cache/forkr"), PathBuf::from);
    let path = cache.join(venv).join("bin/kubernetes-validate");
    assert!(
        path.exists(),
        "{} is missing: run scripts/test.sh (it installs kubernetes-validate), or set {var}",
        path.display()
    );
    path
}

fn validate(bin: &Path, version: &str, dir: &Path) {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    assert_eq!(files.len(), crdgen::crds().len());
    let out = Command::new(bin)
        .args(["--strict", "-k", version])
        .args(&files)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "kubernetes-validate {version} failed:\n{text}"
    );
    assert_eq!(
        text.matches("passed for resource customresourcedefinition/")
            .count(),
        crdgen::crds().len(),
        "{text}"
    );
}

fn write_all(dir: &Path, without_cel: bool) {
    for crd in crdgen::crds() {
        let crd = if without_cel {
            crdgen::without_cel(crd)
        } else {
            crd
        };
        std::fs::write(
            dir.join(crdgen::file_name(&crd)),
            crdgen::render(&crd).unwrap(),
        )
        .unwrap();
    }
}

#[test]
fn crds_validate_against_kubernetes_1_25_and_latest() {
    let bin = validator("FORKR_KUBERNETES_VALIDATE", "venv");
    let dir = tempfile::tempdir().unwrap();
    write_all(dir.path(), false);
    validate(&bin, "1.25.0", dir.path());
    validate(&bin, "1.37.0", dir.path());
}

#[test]
fn crds_without_cel_validate_against_kubernetes_1_20() {
    let bin = validator("FORKR_KUBERNETES_VALIDATE_LEGACY", "venv-legacy");
    let dir = tempfile::tempdir().unwrap();
    write_all(dir.path(), true);
    validate(&bin, "1.20.0", dir.path());
}

#[test]
fn the_validator_really_rejects_cel_on_1_20() {
    // Proves the 1.20 check above is strict, not a rubber stamp.
    let bin = validator("FORKR_KUBERNETES_VALIDATE_LEGACY", "venv-legacy");
    let dir = tempfile::tempdir().unwrap();
    write_all(dir.path(), false);
    let out = Command::new(&bin)
        .args(["--strict", "-k", "1.20.0"])
        .arg(dir.path().join("boxes.forkr.dev.yaml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("x-kubernetes-validations"));
}
