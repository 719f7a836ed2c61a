//! The pool on real btrfs: layout, roots, checkpoints, nested subvolumes, restart.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::{TestPool, write_file};
use forkr_node_agent::{Error, Pool, Shelf, Subject};

fn root<'a>(name: &'a str) -> Subject<'a> {
    Subject::Root { project: "p", name }
}

#[test]
fn open_refuses_a_directory_not_on_btrfs() {
    let dir = tempfile::tempdir().unwrap();
    let err = Pool::open(dir.path()).err().expect("must fail");
    assert!(matches!(err, Error::FailedPrecondition(_)), "{err}");
    assert!(
        err.to_string().contains("not on a btrfs filesystem"),
        "{err}"
    );
}

#[test]
fn layout_and_system_volumes() {
    let t = TestPool::new();
    let already =
        forkr_node_agent::pool::loopback::Loopback::ensure_btrfs(t.lb.path(), 1 << 30).unwrap();
    assert!(
        already.is_none(),
        "a btrfs directory needs no loopback image"
    );
    let p = t.lb.path();
    for d in [
        "bases",
        "roots",
        "checkpoints",
        "volumes",
        "volume-checkpoints",
        "volume-backups",
        "meta",
        "tmp",
    ] {
        assert!(p.join(d).is_dir(), "{d}");
    }
    for v in t.pool.global_system_volumes() {
        assert!(libbtrfsutil::is_subvolume(&v).unwrap(), "{}", v.display());
    }
    let proj = t.pool.ensure_project("p").unwrap();
    assert_eq!(
        proj,
        vec![
            p.join("system/projects/p/box-proj"),
            p.join("system/projects/p/home")
        ]
    );
    for v in proj {
        assert!(libbtrfsutil::is_subvolume(&v).unwrap());
    }
}

#[test]
fn roots_create_fork_delete() {
    let t = TestPool::new();
    t.base("box-base");
    let info = t.pool.create_root("p", "a", "box-base").unwrap();
    assert_eq!(info.base.as_deref(), Some("box-base"));
    let a = t.pool.root_path("p", "a").unwrap();
    assert_eq!(
        fs::read_to_string(a.join("etc/hostname")).unwrap(),
        "base\n"
    );
    assert!(
        !libbtrfsutil::subvolume_read_only(&a).unwrap(),
        "roots are writable"
    );
    write_file(&a.join("work/notes.txt"), "mine");

    // Same request again: same result. Different base: conflict.
    assert_eq!(t.pool.create_root("p", "a", "box-base").unwrap(), info);
    t.base("other");
    assert!(matches!(
        t.pool.create_root("p", "a", "other"),
        Err(Error::AlreadyExists(_))
    ));
    assert!(matches!(
        t.pool.create_root("p", "x", "nope"),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        t.pool.create_root("p", "..", "box-base"),
        Err(Error::InvalidArgument(_))
    ));

    let fork = t.pool.fork_root("p", "a", "p", "b", &[]).unwrap();
    assert_eq!(fork.origin.as_deref(), Some("fork:p/a"));
    assert_eq!(fork.base.as_deref(), Some("box-base"));
    let b = t.pool.root_path("p", "b").unwrap();
    assert_eq!(
        fs::read_to_string(b.join("work/notes.txt")).unwrap(),
        "mine"
    );
    write_file(&b.join("work/notes.txt"), "theirs");
    assert_eq!(
        fs::read_to_string(a.join("work/notes.txt")).unwrap(),
        "mine"
    );

    let names: Vec<_> = t
        .pool
        .list_roots("p")
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["a", "b"]);

    t.pool
        .create_checkpoint(root("a"), Shelf::Checkpoints, None, None, None)
        .unwrap();
    t.pool.delete_root("p", "a").unwrap();
    t.pool.delete_root("p", "a").unwrap();
    assert!(!a.exists());
    assert!(!t.lb.path().join("checkpoints/p/a").exists());
    assert!(matches!(
        t.pool.list_checkpoints(root("a"), Shelf::Checkpoints),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        t.pool.root_path("p", "a"),
        Err(Error::NotFound(_))
    ));
    assert!(t.debris().is_empty());
}

#[test]
fn checkpoints_names_list_restore_delete() {
    let t = TestPool::new();
    t.base("box-base");
    t.pool.create_root("p", "web", "box-base").unwrap();
    let live = t.pool.root_path("p", "web").unwrap();
    let s = root("web");
    write_file(&live.join("state"), "one");
    assert_eq!(
        t.pool
            .create_checkpoint(s, Shelf::Checkpoints, None, None, None)
            .unwrap(),
        "v0"
    );
    write_file(&live.join("state"), "two");
    assert_eq!(
        t.pool
            .create_checkpoint(
                s,
                Shelf::Checkpoints,
                Some("before-upgrade"),
                Some("Clean state"),
                None
            )
            .unwrap(),
        "before-upgrade"
    );
    assert_eq!(
        t.pool
            .create_checkpoint(s, Shelf::Checkpoints, None, None, None)
            .unwrap(),
        "v1"
    );
    let dup = t
        .pool
        .create_checkpoint(s, Shelf::Checkpoints, Some("v0"), None, None);
    assert!(matches!(dup, Err(Error::AlreadyExists(_))), "{dup:?}");
    assert!(matches!(
        t.pool
            .create_checkpoint(s, Shelf::Checkpoints, Some("bad name"), None, None),
        Err(Error::InvalidArgument(_))
    ));
    // A retry carrying the same request id gets the first answer, not v2.
    let first = t
        .pool
        .create_checkpoint(s, Shelf::Checkpoints, None, None, Some("req-1"))
        .unwrap();
    let again = t
        .pool
        .create_checkpoint(s, Shelf::Checkpoints, None, None, Some("req-1"))
        .unwrap();
    assert_eq!(first, again);

    let cp = t.lb.path().join("checkpoints/p/web/v0");
    assert!(libbtrfsutil::subvolume_read_only(&cp).unwrap());

    let list = t.pool.list_checkpoints(s, Shelf::Checkpoints).unwrap();
    let names: Vec<_> = list.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names.len(), 4);
    for c in &list {
        c.created.parse::<jiff::Timestamp>().expect("RFC3339");
        assert!(c.size > 0);
    }
    let described = list.iter().find(|c| c.name == "before-upgrade").unwrap();
    assert_eq!(described.description.as_deref(), Some("Clean state"));

    t.pool
        .restore_checkpoint(s, Shelf::Checkpoints, "v0")
        .unwrap();
    let live = t.pool.root_path("p", "web").unwrap();
    assert_eq!(fs::read_to_string(live.join("state")).unwrap(), "one");
    assert!(!libbtrfsutil::subvolume_read_only(&live).unwrap());
    assert!(matches!(
        t.pool.restore_checkpoint(s, Shelf::Checkpoints, "nope"),
        Err(Error::NotFound(_))
    ));

    t.pool
        .delete_checkpoint(s, Shelf::Checkpoints, "v0")
        .unwrap();
    t.pool
        .delete_checkpoint(s, Shelf::Checkpoints, "v0")
        .unwrap();
    assert_eq!(
        t.pool
            .list_checkpoints(s, Shelf::Checkpoints)
            .unwrap()
            .len(),
        3
    );
    assert!(t.debris().is_empty());
}

#[test]
fn a_restarted_agent_sees_everything() {
    let mut t = TestPool::new();
    t.base("box-base");
    t.pool.create_root("p", "web", "box-base").unwrap();
    t.pool
        .create_checkpoint(
            root("web"),
            Shelf::Checkpoints,
            Some("c1"),
            Some("described"),
            None,
        )
        .unwrap();
    let before = t
        .pool
        .list_checkpoints(root("web"), Shelf::Checkpoints)
        .unwrap();
    t.restart();
    let after = t
        .pool
        .list_checkpoints(root("web"), Shelf::Checkpoints)
        .unwrap();
    assert_eq!(before, after);
    assert_eq!(
        t.pool.list_roots("p").unwrap()[0].base.as_deref(),
        Some("box-base")
    );
    assert_eq!(t.pool.resolve_base("box-base").unwrap(), "box-base");
}

#[test]
fn nested_subvolumes_follow_snapshots_and_deletes() {
    let t = TestPool::new();
    t.base("box-base");
    t.pool.create_root("p", "dind", "box-base").unwrap();
    let live = t.pool.root_path("p", "dind").unwrap();
    fs::create_dir_all(live.join("var/lib/docker")).unwrap();
    let nested = live.join("var/lib/docker/sv");
    libbtrfsutil::create_subvolume(&nested).unwrap();
    libbtrfsutil::create_subvolume(nested.join("deeper")).unwrap();
    write_file(&nested.join("deeper/layer"), "L");

    t.pool
        .create_checkpoint(root("dind"), Shelf::Checkpoints, Some("c"), None, None)
        .unwrap();
    let cp = t.lb.path().join("checkpoints/p/dind/c");
    assert_eq!(
        fs::read_to_string(cp.join("var/lib/docker/sv/deeper/layer")).unwrap(),
        "L"
    );
    assert!(libbtrfsutil::subvolume_read_only(cp.join("var/lib/docker/sv")).unwrap());

    fs::remove_file(nested.join("deeper/layer")).unwrap();
    t.pool
        .restore_checkpoint(root("dind"), Shelf::Checkpoints, "c")
        .unwrap();
    let live = t.pool.root_path("p", "dind").unwrap();
    let layer = live.join("var/lib/docker/sv/deeper/layer");
    assert_eq!(fs::read_to_string(&layer).unwrap(), "L");
    assert!(libbtrfsutil::is_subvolume(live.join("var/lib/docker/sv/deeper")).unwrap());
    write_file(&layer, "writable again");

    t.pool.fork_root("p", "dind", "p", "copy", &[]).unwrap();
    t.pool.delete_root("p", "dind").unwrap();
    assert!(!live.exists());
    assert!(t.debris().is_empty());
    let copy = t.pool.root_path("p", "copy").unwrap();
    assert_eq!(
        fs::read_to_string(copy.join("var/lib/docker/sv/deeper/layer")).unwrap(),
        "writable again"
    );
    assert!(Path::new(&copy).metadata().unwrap().ino() == 256);
}

#[test]
fn bad_input_changes_nothing() {
    let t = TestPool::new();
    t.base("box-base");
    let before = std::process::Command::new("find")
        .arg(t.lb.path())
        .output()
        .unwrap()
        .stdout;
    assert!(matches!(
        t.pool.create_root("newproj", "a", "missing"),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        t.pool.create_root("newproj", ".forkr-x", "box-base"),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        t.pool.fork_root("newproj", "nope", "newproj", "b", &[]),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        t.pool.create_volume("p", "a/b"),
        Err(Error::InvalidArgument(_))
    ));
    let after = std::process::Command::new("find")
        .arg(t.lb.path())
        .output()
        .unwrap()
        .stdout;
    assert_eq!(
        String::from_utf8_lossy(&before),
        String::from_utf8_lossy(&after)
    );

    t.pool.create_root("p", "web", "box-base").unwrap();
    let long = "x".repeat(5000);
    let err = t
        .pool
        .create_checkpoint(root("web"), Shelf::Checkpoints, None, Some(&long), None)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    assert!(
        t.pool
            .list_checkpoints(root("web"), Shelf::Checkpoints)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn the_latest_snapshot_is_the_newest_even_within_one_second() {
    let t = TestPool::new();
    t.base("box-base");
    t.pool.create_root("p", "web", "box-base").unwrap();
    for _ in 0..12 {
        t.pool
            .create_checkpoint(root("web"), Shelf::Checkpoints, None, None, None)
            .unwrap();
    }
    assert_eq!(
        t.pool.latest_checkpoint(root("web")).unwrap().as_deref(),
        Some("v11")
    );
    let names: Vec<_> = t
        .pool
        .list_checkpoints(root("web"), Shelf::Checkpoints)
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names.last().map(String::as_str), Some("v11"));
    assert_eq!(names.first().map(String::as_str), Some("v0"));
}
