//! Data volumes on real btrfs: lifecycle, checkpoints, backups, fork clones.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

mod common;

use std::fs;

use common::{TestPool, write_file};
use forkr_node_agent::{Error, Shelf, Subject};

#[test]
fn volume_lifecycle_checkpoints_and_backups() {
    let t = TestPool::new();
    let vol = Subject::Volume {
        project: "p",
        name: "pgdata",
    };
    t.pool.create_volume("p", "pgdata").unwrap();
    t.pool.create_volume("p", "pgdata").unwrap();
    assert!(matches!(
        t.pool.create_volume("p", "home"),
        Err(Error::InvalidArgument(_))
    ));
    let path = t.pool.volume_path("p", "pgdata").unwrap();
    write_file(&path.join("table"), &"x".repeat(100_000));
    let list = t.pool.list_volumes("p").unwrap();
    assert_eq!(list.len(), 1);
    assert!(list[0].size >= 100_000, "{:?}", list[0]);

    assert_eq!(
        t.pool
            .create_checkpoint(vol, Shelf::Checkpoints, None, None, None)
            .unwrap(),
        "v0"
    );
    let backup = t
        .pool
        .create_checkpoint(vol, Shelf::Backups, Some("nightly"), Some("n"), None)
        .unwrap();
    write_file(&path.join("table"), "changed");
    t.pool
        .restore_checkpoint(vol, Shelf::Checkpoints, "v0")
        .unwrap();
    assert_eq!(
        fs::read_to_string(path.join("table")).unwrap().len(),
        100_000
    );

    t.pool.delete_volume("p", "pgdata").unwrap();
    t.pool.delete_volume("p", "pgdata").unwrap();
    assert!(t.pool.list_volumes("p").unwrap().is_empty());
    let gone = t
        .pool
        .list_checkpoints(vol, Shelf::Checkpoints)
        .unwrap_err();
    assert!(matches!(gone, Error::NotFound(_)), "{gone}");
    let backups = t.pool.list_checkpoints(vol, Shelf::Backups).unwrap();
    assert_eq!(backups.len(), 1, "backups outlive the volume");
    assert_eq!(backups[0].name, backup);
    t.pool
        .restore_checkpoint(vol, Shelf::Backups, &backup)
        .unwrap();
    let path = t.pool.volume_path("p", "pgdata").unwrap();
    assert_eq!(
        fs::read_to_string(path.join("table")).unwrap().len(),
        100_000
    );
    assert!(t.debris().is_empty());
}

#[test]
fn fork_clones_data_volumes_but_not_system_volumes() {
    let t = TestPool::new();
    t.base("box-base");
    t.pool.create_root("p", "web", "box-base").unwrap();
    t.pool.create_volume("p", "cache").unwrap();
    write_file(&t.pool.volume_path("p", "cache").unwrap().join("k"), "v");
    let vols = vec![
        "cache".to_string(),
        "home".to_string(),
        "box-bin".to_string(),
    ];
    t.pool.fork_root("p", "web", "p", "web2", &vols).unwrap();
    let clone = t.pool.volume_path("p", "box-web2-cache").unwrap();
    assert_eq!(fs::read_to_string(clone.join("k")).unwrap(), "v");
    write_file(&clone.join("k"), "forked");
    assert_eq!(
        fs::read_to_string(t.pool.volume_path("p", "cache").unwrap().join("k")).unwrap(),
        "v"
    );
    let names: Vec<_> = t
        .pool
        .list_volumes("p")
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(names, ["box-web2-cache", "cache"]);
    let missing = t
        .pool
        .fork_root("p", "web", "p", "web3", &["nope".to_string()]);
    assert!(matches!(missing, Err(Error::NotFound(_))), "{missing:?}");
    assert!(t.pool.root_path("p", "web3").is_err());
}
