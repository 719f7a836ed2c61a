//! The CRDs' CEL rules, evaluated client-side by kube's CEL validator against the generated
//! schema, so they are proven without a 1.25+ apiserver. Each case also runs the Rust validation,
//! which must agree: it is what enforces the rules on older clusters.

// Helpers outside #[test] functions panic on broken fixtures too; that is a test failure.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use forkr_crds::base::{BaseSource, ImportSource, SaveSource};
use forkr_crds::data_volume::{VolumeCloneSource, VolumeRestoreRequest};
use forkr_crds::{
    Base, BaseSpec, BoxResource, BoxSpec, DataMount, DataVolume, DataVolumeSpec, ForkSource,
    Snapshot,
};
use kube::core::cel::{validate_cel, validate_cel_update};

fn boxed(name: &str, spec: BoxSpec) -> BoxResource {
    let mut b = BoxResource::new(name, spec);
    b.metadata.namespace = Some("default".into());
    b
}

fn cel_message<T: kube::CustomResourceExt + serde::Serialize>(obj: &T) -> Option<String> {
    validate_cel(obj).err().map(|e| format!("{e:?}"))
}

#[test]
fn a_plain_box_passes_both() {
    let b = boxed(
        "web",
        BoxSpec {
            base: Some("box-base".into()),
            ..Default::default()
        },
    );
    assert_eq!(cel_message(&b), None);
    b.validate().unwrap();
}

#[test]
fn base_and_fork_are_exclusive() {
    let b = boxed(
        "web",
        BoxSpec {
            base: Some("box-base".into()),
            fork: Some(ForkSource {
                box_name: "api".into(),
                project: None,
            }),
            ..Default::default()
        },
    );
    let cel = cel_message(&b).expect("CEL must refuse base with fork");
    assert!(cel.contains("--base cannot be used with --fork"), "{cel}");
    let rust = b.validate().unwrap_err();
    assert_eq!(
        rust.first().unwrap().to_string(),
        "--base cannot be used with --fork"
    );
}

#[test]
fn a_box_cannot_fork_itself() {
    let b = boxed(
        "web",
        BoxSpec {
            fork: Some(ForkSource {
                box_name: "web".into(),
                project: None,
            }),
            ..Default::default()
        },
    );
    assert!(
        cel_message(&b)
            .unwrap()
            .contains("cannot fork a box from itself")
    );
    assert_eq!(
        b.validate().unwrap_err().first().unwrap().to_string(),
        "cannot fork a box from itself"
    );

    let other_project = boxed(
        "web",
        BoxSpec {
            fork: Some(ForkSource {
                box_name: "web".into(),
                project: Some("team".into()),
            }),
            ..Default::default()
        },
    );
    assert_eq!(cel_message(&other_project), None);
    other_project.validate().unwrap();
}

#[test]
fn reserved_env_is_refused() {
    for key in [
        "FORKR_PROJECT",
        "BOX_NAME",
        "FORKR_API_URL",
        "FORKR_API_HOST",
        "TERM",
    ] {
        let env = BTreeMap::from([(key.to_owned(), "x".to_owned())]);
        let b = boxed(
            "web",
            BoxSpec {
                env,
                ..Default::default()
            },
        );
        assert!(
            cel_message(&b)
                .unwrap()
                .contains("environment variable is reserved"),
            "{key}"
        );
        assert_eq!(
            b.validate().unwrap_err().first().unwrap().to_string(),
            "environment variable is reserved"
        );
    }
    let env = BTreeMap::from([("FORKR_NODE_IP_X".to_owned(), "x".to_owned())]);
    assert_eq!(
        cel_message(&boxed(
            "web",
            BoxSpec {
                env,
                ..Default::default()
            }
        )),
        None
    );
}

fn mount(volume: &str, path: &str) -> DataMount {
    DataMount {
        volume: volume.into(),
        mount_path: path.into(),
        read_only: false,
    }
}

#[test]
fn mount_paths_are_checked() {
    for path in [
        "/proc", "/proc/x", "/sys/fs", "/dev", "/run/x", "/etc", "/etc/app", "/volumes",
    ] {
        let b = boxed(
            "web",
            BoxSpec {
                data: vec![mount("data", path)],
                ..Default::default()
            },
        );
        assert!(
            cel_message(&b)
                .unwrap()
                .contains("mount path cannot be under"),
            "{path}"
        );
        assert!(b.validate().is_err(), "{path}");
    }
    for path in ["/data", "/procfs", "/etcetera", "/srv/run"] {
        let b = boxed(
            "web",
            BoxSpec {
                data: vec![mount("data", path)],
                ..Default::default()
            },
        );
        assert_eq!(cel_message(&b), None, "{path}");
        b.validate().unwrap();
    }
    let twice = boxed(
        "web",
        BoxSpec {
            data: vec![mount("a", "/data"), mount("b", "/data")],
            ..Default::default()
        },
    );
    assert!(
        cel_message(&twice)
            .unwrap()
            .contains("mount paths must be unique")
    );
    assert!(
        twice
            .validate()
            .unwrap_err()
            .to_string()
            .contains("is used twice")
    );
}

#[test]
fn openapi_bounds_are_enforced() {
    let b = boxed(
        "web",
        BoxSpec {
            port: Some(70000),
            ..Default::default()
        },
    );
    assert!(
        b.validate()
            .unwrap_err()
            .to_string()
            .contains("must be an integer from 1 to 65535")
    );
    let b = boxed(
        "web",
        BoxSpec {
            termination_grace_period_seconds: Some(86_401),
            ..Default::default()
        },
    );
    assert!(b.validate().unwrap_err().to_string().contains("0 to 86400"));
}

#[test]
fn snapshot_identity_is_immutable() {
    let old = Snapshot::for_box("web", "v1", None);
    assert_eq!(cel_message(&old), None);
    old.validate().unwrap();
    let mut renamed = old.clone();
    renamed.spec.name = "v2".into();
    let err = validate_cel_update(&renamed, &old).unwrap_err();
    assert!(format!("{err:?}").contains("name is immutable"));
    let mut moved = old.clone();
    moved.spec.box_name = "api".into();
    assert!(
        format!("{:?}", validate_cel_update(&moved, &old).unwrap_err())
            .contains("box is immutable")
    );
    let mut described = old.clone();
    described.spec.description = Some("now with words".into());
    validate_cel_update(&described, &old).unwrap();
    // The Rust side catches what CEL cannot: an object name that is not the mapping.
    assert!(
        renamed
            .validate()
            .unwrap_err()
            .to_string()
            .contains("snapshot object name")
    );
}

#[test]
fn a_base_source_is_exactly_one_thing() {
    let import = || ImportSource {
        upload: "u1".into(),
        sha256: None,
        script: None,
        builder: None,
    };
    let save = || SaveSource {
        box_name: "web".into(),
        project: None,
    };
    let source =
        |import: Option<ImportSource>, save: Option<SaveSource>, parent: Option<&str>| BaseSpec {
            version: None,
            source: Some(BaseSource {
                request_id: "r1".into(),
                import,
                save,
                parent: parent.map(Into::into),
            }),
        };
    let good = [
        source(Some(import()), None, None),
        source(Some(import()), None, Some("box-base")),
        source(None, Some(save()), None),
    ];
    for spec in good {
        let b = Base::new("my-base", spec);
        assert_eq!(cel_message(&b), None);
        b.validate().unwrap();
    }
    let both = Base::new("my-base", source(Some(import()), Some(save()), None));
    assert!(
        cel_message(&both)
            .unwrap()
            .contains("give exactly one of import and save")
    );
    assert!(both.validate().is_err());
    let neither = Base::new("my-base", source(None, None, None));
    assert!(
        cel_message(&neither)
            .unwrap()
            .contains("give exactly one of import and save")
    );
    let parent_on_save = Base::new("my-base", source(None, Some(save()), Some("box-base")));
    assert!(
        cel_message(&parent_on_save)
            .unwrap()
            .contains("parent applies to import only")
    );
    assert!(parent_on_save.validate().is_err());
}

#[test]
fn volume_rules() {
    let restore = |checkpoint: Option<&str>, backup: Option<&str>| DataVolumeSpec {
        restore: Some(VolumeRestoreRequest {
            checkpoint: checkpoint.map(Into::into),
            backup: backup.map(Into::into),
            request_id: "r1".into(),
        }),
        ..Default::default()
    };
    let ok = DataVolume::new("pgdata", restore(Some("c1"), None));
    assert_eq!(cel_message(&ok), None);
    ok.validate().unwrap();
    let both = DataVolume::new("pgdata", restore(Some("c1"), Some("b1")));
    assert!(
        cel_message(&both)
            .unwrap()
            .contains("exactly one of checkpoint and backup")
    );
    assert!(both.validate().is_err());

    let old = DataVolume::new(
        "box-web-pgdata",
        DataVolumeSpec {
            clone_from: Some(VolumeCloneSource {
                volume: "pgdata".into(),
                project: None,
                checkpoint: None,
            }),
            ..Default::default()
        },
    );
    let mut changed = old.clone();
    changed.spec.clone_from = Some(VolumeCloneSource {
        volume: "other".into(),
        project: None,
        checkpoint: None,
    });
    assert!(
        format!("{:?}", validate_cel_update(&changed, &old).unwrap_err())
            .contains("cloneFrom is immutable")
    );
}
