//! Diffs on real btrfs: the send-stream status agrees with a full walk; file diffs.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::{TestPool, write_file};
use forkr_node_agent::pool::diff::{Change, FileStatus, Method, Strategy};
use forkr_node_agent::{Error, Shelf, Subject};

const WEB: Subject<'static> = Subject::Root {
    project: "p",
    name: "web",
};

fn setup() -> (TestPool, std::path::PathBuf) {
    let t = TestPool::new();
    t.base("box-base");
    t.pool.create_root("p", "web", "box-base").unwrap();
    let live = t.pool.root_path("p", "web").unwrap();
    write_file(&live.join("srv/keep/a"), "a");
    write_file(&live.join("srv/gone/x"), "x");
    write_file(&live.join("srv/gone/deep/y"), "y");
    write_file(&live.join("srv/moved/z"), "z");
    write_file(&live.join("srv/mode"), "m");
    write_file(&live.join("srv/rename-me"), "r");
    (t, live)
}

#[test]
fn status_follows_changes_and_matches_a_full_walk() {
    let (t, live) = setup();
    let err = t
        .pool
        .diff_status("p", "web", None, Strategy::Auto)
        .unwrap_err();
    assert!(matches!(err, Error::FailedPrecondition(_)));
    assert!(err.to_string().contains("specify one"), "{err}");

    t.pool
        .create_checkpoint(WEB, Shelf::Checkpoints, Some("c1"), None, None)
        .unwrap();
    let clean = t
        .pool
        .diff_status("p", "web", None, Strategy::Auto)
        .unwrap();
    assert_eq!(clean.render(), "No changes\n");
    assert_eq!(clean.method, Method::SendStream);

    write_file(&live.join("etc/hostname"), "changed\n");
    write_file(&live.join("work/new/file.txt"), "new");
    fs::remove_dir_all(live.join("srv/gone")).unwrap();
    fs::rename(live.join("srv/moved"), live.join("srv/arrived")).unwrap();
    fs::rename(live.join("srv/rename-me"), live.join("srv/renamed")).unwrap();
    fs::set_permissions(live.join("srv/mode"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::remove_file(live.join("usr/bin/sh")).unwrap();

    let report = t
        .pool
        .diff_status("p", "web", None, Strategy::Auto)
        .unwrap();
    assert_eq!(report.method, Method::SendStream);
    assert_eq!(report.against, "c1");
    let walked = t
        .pool
        .diff_status("p", "web", Some("c1"), Strategy::WalkOnly)
        .unwrap();
    assert_eq!(walked.method, Method::Walk);
    assert_eq!(
        report.changes, walked.changes,
        "send stream and walk disagree"
    );

    let expected = [
        (Change::Modified, "/etc/hostname"),
        (Change::Added, "/srv/arrived"),
        (Change::Added, "/srv/arrived/z"),
        (Change::Deleted, "/srv/gone"),
        (Change::Deleted, "/srv/gone/deep"),
        (Change::Deleted, "/srv/gone/deep/y"),
        (Change::Deleted, "/srv/gone/x"),
        (Change::Modified, "/srv/mode"),
        (Change::Deleted, "/srv/moved"),
        (Change::Deleted, "/srv/moved/z"),
        (Change::Deleted, "/srv/rename-me"),
        (Change::Added, "/srv/renamed"),
        (Change::Deleted, "/usr/bin/sh"),
        (Change::Added, "/work"),
        (Change::Added, "/work/new"),
        (Change::Added, "/work/new/file.txt"),
    ];
    let got: Vec<(Change, &str)> = report
        .changes
        .iter()
        .map(|(c, p)| (*c, p.as_str()))
        .collect();
    assert_eq!(got, expected);
    assert!(
        report
            .render()
            .contains("~ /etc/hostname\n+ /srv/arrived\n")
    );
    assert!(t.debris().is_empty());
}

#[test]
fn file_diffs() {
    let (t, live) = setup();
    t.pool
        .create_checkpoint(WEB, Shelf::Checkpoints, None, None, None)
        .unwrap();
    write_file(&live.join("etc/hostname"), "changed\n");
    write_file(&live.join("srv/added"), "hi");
    fs::remove_file(live.join("srv/keep/a")).unwrap();
    write_file(&live.join("srv/big"), &"b".repeat(1024 * 1024 + 1));

    let m = t.pool.diff_file("p", "web", "/etc/hostname", None).unwrap();
    assert_eq!((m.status, m.against.as_str()), (FileStatus::Modified, "v0"));
    let d = m.diff.unwrap();
    assert!(
        d.contains("--- a/etc/hostname") && d.contains("+++ b/etc/hostname"),
        "{d}"
    );
    assert!(d.contains("-base\n") && d.contains("+changed\n"), "{d}");
    assert_eq!(
        t.pool
            .diff_file("p", "web", "/srv/added", None)
            .unwrap()
            .status,
        FileStatus::Added
    );
    assert_eq!(
        t.pool
            .diff_file("p", "web", "/srv/keep/a", None)
            .unwrap()
            .status,
        FileStatus::Deleted
    );
    let same = t
        .pool
        .diff_file("p", "web", "/srv/mode", Some("v0"))
        .unwrap();
    assert_eq!((same.status, same.diff), (FileStatus::Unchanged, None));
    // Through the usr-merged /bin symlink, as the box sees it.
    assert_eq!(
        t.pool
            .diff_file("p", "web", "/bin/dash", None)
            .unwrap()
            .status,
        FileStatus::Unchanged
    );

    let rel = t
        .pool
        .diff_file("p", "web", "etc/hostname", None)
        .unwrap_err();
    assert!(
        matches!(rel, Error::InvalidArgument(_)) && rel.to_string().contains("absolute"),
        "{rel}"
    );
    let big = t.pool.diff_file("p", "web", "/srv/big", None).unwrap_err();
    assert!(big.to_string().contains("limited to 1 MB"), "{big}");
    assert!(matches!(
        t.pool.diff_file("p", "web", "/nope", None),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        t.pool.diff_file("p", "web", "/etc/hostname", Some("zz")),
        Err(Error::NotFound(_))
    ));
}
