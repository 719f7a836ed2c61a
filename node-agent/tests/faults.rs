//! The crash matrix: every mutating operation is stopped at each of its steps in turn, the agent
//! restarts on the same disk, and then the pool must be consistent, free of debris, must have lost
//! no root or checkpoint, and the same request retried must give the result of an uninterrupted run.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use common::{TestPool, rootfs_tar, write_file};
use forkr_node_agent::pool::import::ImportOptions;
use forkr_node_agent::{Error, Pool, Shelf, Subject};

const WEB: Subject<'static> = Subject::Root {
    project: "p",
    name: "web",
};

/// Roots, checkpoints, bases and volumes visible in the pool, as pool-relative paths.
fn inventory(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (top, depth) in [
        ("bases", 1),
        ("roots", 2),
        ("checkpoints", 3),
        ("volumes", 2),
        ("volume-checkpoints", 3),
        ("volume-backups", 3),
    ] {
        collect(root, Path::new(top), depth, &mut out);
    }
    out
}

fn collect(root: &Path, rel: &Path, depth: usize, out: &mut BTreeSet<String>) {
    let Ok(entries) = fs::read_dir(root.join(rel)) else {
        return;
    };
    for e in entries {
        let child = rel.join(e.unwrap().file_name());
        if depth == 1 {
            out.insert(child.to_string_lossy().into_owned());
        } else {
            collect(root, &child, depth - 1, out);
        }
    }
}

/// The invariants a restarted agent must find.
fn assert_consistent(t: &TestPool) {
    let root = t.lb.path();
    assert!(t.debris().is_empty(), "tmp debris: {:?}", t.debris());
    for rel in inventory(root) {
        assert!(!rel.contains(".forkr-"), "staging debris {rel}");
        let abs = root.join(&rel);
        assert!(
            libbtrfsutil::is_subvolume(&abs).unwrap(),
            "{rel} is not a subvolume"
        );
        let meta = root.join("meta").join(format!("{rel}.meta"));
        assert!(meta.exists(), "{rel} lost its metadata");
        let frozen = libbtrfsutil::subvolume_read_only(&abs).unwrap();
        let should = !(rel.starts_with("roots/") || rel.starts_with("volumes/"));
        assert_eq!(frozen, should, "{rel} read-only flag");
    }
    let mut stack = vec![root.join("meta")];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(!name.contains(".tmp-"), "half-written metadata {name}");
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
    for base in t.pool.list_bases().unwrap() {
        t.pool.resolve_base(&base.name).unwrap();
    }
}

/// Runs `op` with a fault at step 1, 2, ... until it completes. After each fault: restart, check
/// invariants and that nothing outside `may_vanish` disappeared, retry, and `check` the result.
fn matrix(
    setup: impl Fn(&TestPool),
    op: impl Fn(&Pool) -> Result<(), Error>,
    may_vanish: &[&str],
    check: impl Fn(&TestPool),
) {
    for n in 1.. {
        let mut t = TestPool::new();
        setup(&t);
        let before = inventory(t.lb.path());
        t.pool.arm_fault(n);
        let result = op(&t.pool);
        t.pool.arm_fault(0);
        match result {
            Ok(()) => {
                assert!(n > 1, "operation has no fault steps");
                check(&t);
                assert_consistent(&t);
                return;
            }
            Err(Error::Fault { .. }) => {}
            Err(e) => panic!("step {n}: unexpected error {e}"),
        }
        t.restart();
        assert_consistent(&t);
        let after = inventory(t.lb.path());
        for lost in before.difference(&after) {
            assert!(
                may_vanish.iter().any(|v| lost.starts_with(v)),
                "step {n}: lost {lost}"
            );
        }
        op(&t.pool).unwrap_or_else(|e| panic!("step {n}: retry failed: {e}"));
        check(&t);
        assert_consistent(&t);
    }
}

fn with_root(t: &TestPool) {
    t.base("box-base");
    t.pool.create_root("p", "web", "box-base").unwrap();
    write_file(&t.pool.root_path("p", "web").unwrap().join("state"), "one");
}

fn read_state(t: &TestPool, name: &str) -> String {
    fs::read_to_string(t.pool.root_path("p", name).unwrap().join("state")).unwrap()
}

#[test]
fn create_root() {
    matrix(
        |t| {
            t.base("box-base");
        },
        |p| p.create_root("p", "web", "box-base").map(drop),
        &[],
        |t| {
            assert!(
                t.pool
                    .root_path("p", "web")
                    .unwrap()
                    .join("etc/hostname")
                    .exists()
            )
        },
    );
}

#[test]
fn fork() {
    matrix(
        |t| {
            with_root(t);
            t.pool.create_volume("p", "cache").unwrap();
        },
        |p| {
            p.fork_root("p", "web", "p", "copy", &["cache".to_string()])
                .map(drop)
        },
        &[],
        |t| {
            assert_eq!(read_state(t, "copy"), "one");
            t.pool.volume_path("p", "box-copy-cache").unwrap();
        },
    );
}

#[test]
fn checkpoint() {
    matrix(
        with_root,
        |p| {
            let name = p.create_checkpoint(
                WEB,
                Shelf::Checkpoints,
                Some("c1"),
                Some("why"),
                Some("req"),
            )?;
            assert_eq!(name, "c1");
            Ok(())
        },
        &[],
        |t| {
            let list = t.pool.list_checkpoints(WEB, Shelf::Checkpoints).unwrap();
            assert_eq!(list.len(), 1);
            assert_eq!(list[0].description.as_deref(), Some("why"));
        },
    );
}

#[test]
fn restore() {
    matrix(
        |t| {
            with_root(t);
            t.pool
                .create_checkpoint(WEB, Shelf::Checkpoints, Some("c1"), None, None)
                .unwrap();
            write_file(&t.pool.root_path("p", "web").unwrap().join("state"), "two");
        },
        |p| p.restore_checkpoint(WEB, Shelf::Checkpoints, "c1"),
        &[],
        |t| assert_eq!(read_state(t, "web"), "one"),
    );
}

#[test]
fn import() {
    matrix(
        |t| {
            t.base("box-base");
        },
        |p| {
            let opts = ImportOptions {
                parent: Some("box-base".into()),
                request_id: Some("imp-1".into()),
                ..Default::default()
            };
            p.import_base("layered", &rootfs_tar(&[("etc/layer", b"L")])[..], &opts)
                .map(drop)
        },
        &[],
        |t| {
            let base = t.pool.base_path("layered").unwrap();
            assert_eq!(fs::read_to_string(base.join("etc/layer")).unwrap(), "L");
            assert_eq!(t.pool.show_base("layered", None).unwrap().version_count, 1);
        },
    );
}

#[test]
fn save() {
    matrix(
        with_root,
        |p| p.save_base("saved", "p", "web", Some("save-1")).map(drop),
        &[],
        |t| {
            let base = t.pool.base_path("saved").unwrap();
            assert_eq!(fs::read_to_string(base.join("state")).unwrap(), "one");
            assert_eq!(t.pool.show_base("saved", None).unwrap().version_count, 1);
        },
    );
}

#[test]
fn delete_root() {
    matrix(
        |t| {
            with_root(t);
            t.pool
                .create_checkpoint(WEB, Shelf::Checkpoints, Some("c1"), None, None)
                .unwrap();
        },
        |p| p.delete_root("p", "web"),
        &["roots/p/web", "checkpoints/p/web"],
        |t| {
            assert!(t.pool.root_path("p", "web").is_err());
            assert!(!t.lb.path().join("checkpoints/p/web").exists());
        },
    );
}

#[test]
fn delete_checkpoint_and_base() {
    matrix(
        |t| {
            with_root(t);
            t.pool
                .create_checkpoint(WEB, Shelf::Checkpoints, Some("c1"), None, None)
                .unwrap();
            t.base("spare");
        },
        |p| {
            p.delete_checkpoint(WEB, Shelf::Checkpoints, "c1")?;
            p.delete_base("spare")
        },
        &["checkpoints/p/web/c1", "bases/spare"],
        |t| {
            assert!(
                t.pool
                    .list_checkpoints(WEB, Shelf::Checkpoints)
                    .unwrap()
                    .is_empty()
            );
            assert!(t.pool.resolve_base("spare").is_err());
        },
    );
}

#[test]
fn volumes() {
    let vol = Subject::Volume {
        project: "p",
        name: "data",
    };
    matrix(
        |_| {},
        |p| {
            p.create_volume("p", "data")?;
            p.create_checkpoint(vol, Shelf::Backups, Some("b1"), None, Some("b"))?;
            p.delete_volume("p", "data")
        },
        &[],
        |t| {
            assert!(t.pool.volume_path("p", "data").is_err());
            assert_eq!(
                t.pool.list_checkpoints(vol, Shelf::Backups).unwrap().len(),
                1
            );
        },
    );
}

fn with_nested_root(t: &TestPool) {
    with_root(t);
    let live = t.pool.root_path("p", "web").unwrap();
    fs::create_dir_all(live.join("var/lib")).unwrap();
    libbtrfsutil::create_subvolume(live.join("var/lib/docker")).unwrap();
    write_file(&live.join("var/lib/docker/layer"), "L");
}

#[test]
fn checkpoint_fork_and_restore_with_nested_subvolumes() {
    matrix(
        with_nested_root,
        |p| {
            p.create_checkpoint(WEB, Shelf::Checkpoints, Some("c1"), None, Some("r"))?;
            p.fork_root("p", "web", "p", "copy", &[])?;
            p.restore_checkpoint(WEB, Shelf::Checkpoints, "c1")
        },
        &[],
        |t| {
            let cp = t.lb.path().join("checkpoints/p/web/c1/var/lib/docker");
            assert!(libbtrfsutil::subvolume_read_only(&cp).unwrap());
            for b in ["web", "copy"] {
                let layer = t
                    .pool
                    .root_path("p", b)
                    .unwrap()
                    .join("var/lib/docker/layer");
                assert_eq!(fs::read_to_string(layer).unwrap(), "L");
            }
        },
    );
}

#[test]
fn receive() {
    matrix(
        |t| {
            t.base("box-base");
            let mut layer = common::TarGz::new();
            layer.dir("etc/", 0o755).file("etc/layer", b"L");
            let opts = ImportOptions {
                parent: Some("box-base".into()),
                ..Default::default()
            };
            t.pool
                .import_base("dev", &layer.finish()[..], &opts)
                .unwrap();
        },
        |p| {
            // The pool receives its own "dev" again under another name, incrementally.
            let stream = forkr_node_agent::sys::send(
                &p.base_path("dev")?,
                Some(&p.base_path("box-base")?),
                false,
            )?;
            let info = forkr_node_agent::pool::receive::ReceivedVersion {
                version: "replica".into(),
                name: "replica".into(),
                kind: "import".into(),
                ..Default::default()
            };
            p.receive_base(&info, Some("box-base"), stream).map(drop)
        },
        &[],
        |t| {
            let replica = t.pool.base_path("replica").unwrap();
            assert_eq!(fs::read_to_string(replica.join("etc/layer")).unwrap(), "L");
        },
    );
}
