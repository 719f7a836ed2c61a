//! Issue 12, "Shared volumes": `/box/bin` and `/box/all` are seen by every box of every project,
//! so boxes mount them read-only and only an admin's `cp` (the agent writing host-side) changes
//! them. `/box/proj` stays per project and writable. The file resolver decides where a path
//! lands after the box's symlinks, so no link or `..` leads a project's write into them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod rtkit;

use std::os::unix::fs::symlink;

use forkr_node_agent::Error;
use forkr_node_agent::exec::files::BoxFiles;
use forkr_node_agent::runtime::BoxSpec;
use rtkit::{Rt, sh};

#[test]
fn boxes_cannot_write_the_shared_volumes_and_see_only_what_an_admin_put() {
    let rt = Rt::new();
    let a = rt.boot(&BoxSpec::new("proja", "a")).pid.unwrap();
    let b = rt.boot(&BoxSpec::new("projb", "b")).pid.unwrap();

    // Root in project A's box cannot plant or change anything in the shared volumes.
    for script in [
        "echo evil > /box/bin/ls",
        "mkdir /box/bin/d",
        "echo evil > /box/all/f",
        "touch /box/all/.hidden",
    ] {
        let out = sh(a, script);
        assert_ne!(out.code, 0, "{script}: {out:?}");
        assert!(
            out.stderr.contains("Read-only file system"),
            "{script}: {out:?}"
        );
    }
    // The project volume stays writable.
    assert_eq!(
        sh(a, "echo mine > /box/proj/f && cat /box/proj/f").stdout,
        "mine\n"
    );

    // Project B's box sees nothing of what A tried (nor A's project volume).
    assert_eq!(
        sh(b, "ls -A /box/bin /box/all /box/proj").stdout,
        "/box/all:\n\n/box/bin:\n\n/box/proj:\n"
    );
    assert!(
        std::fs::read_dir(rt.lb.path().join("system/box-bin"))
            .unwrap()
            .next()
            .is_none()
    );

    // An admin's cp writes the volume on the host; every box sees and runs it.
    let admin = BoxFiles::for_box(&rt.pool, "proja", "a")
        .unwrap()
        .allow_shared_writes(true);
    admin
        .put_all("/box/bin/tool", &b"#!/bin/sh\necho tool\n"[..], 0o755, None)
        .unwrap();
    admin
        .put_all("/box/all/shared.txt", &b"for all\n"[..], 0o644, None)
        .unwrap();
    for pid in [a, b] {
        assert_eq!(sh(pid, "/box/bin/tool").stdout, "tool\n");
        assert_eq!(sh(pid, "cat /box/all/shared.txt").stdout, "for all\n");
        // Still read-only for the box after the admin's write.
        assert_ne!(sh(pid, "echo x > /box/bin/tool").code, 0);
    }
    assert_eq!(sh(b, "/box/bin/tool").stdout, "tool\n");
}

fn denied(r: forkr_node_agent::Result<u64>, what: &str) {
    match r {
        Err(Error::PermissionDenied(m)) => {
            assert!(m.contains("admin"), "{what}: {m}");
        }
        other => panic!("{what}: expected PermissionDenied, got {other:?}"),
    }
}

#[test]
fn a_project_cp_cannot_reach_the_shared_volumes_by_any_path() {
    let rt = Rt::new();
    rt.boot(&BoxSpec::new("p", "cp"));
    let root = rt.root("p", "cp");
    // Links a box can plant in its own root, absolute and relative, to the volumes and above.
    std::fs::create_dir_all(root.join("work")).unwrap();
    symlink("/box/bin", root.join("work/bin")).unwrap();
    symlink("../box/all", root.join("work/all")).unwrap();
    symlink("/box", root.join("work/box")).unwrap();
    symlink("bin", root.join("work/hop")).unwrap();
    let files = BoxFiles::for_box(&rt.pool, "p", "cp").unwrap();
    for path in [
        "/box/bin/ls",
        "/box/all/f",
        "//box//bin/ls",
        "/etc/../box/bin/ls",
        "/box/./all/f",
        "/work/bin/ls",
        "/work/all/f",
        "/work/box/bin/ls",
        "/work/hop/ls",
        "/work/../work/bin/sub/dir/ls",
    ] {
        denied(files.put_all(path, &b"evil"[..], 0o755, None), path);
    }
    for vol in ["box-bin", "box-all"] {
        let dir = rt.lb.path().join("system").join(vol);
        assert!(
            std::fs::read_dir(&dir).unwrap().next().is_none(),
            "{vol} was written"
        );
    }
    // The same links lead an admin's write into the volume, as the box would see it.
    let admin = files.clone().allow_shared_writes(true);
    admin
        .put_all("/work/hop/viahop", &b"ok"[..], 0o644, None)
        .unwrap();
    assert!(rt.lb.path().join("system/box-bin/viahop").exists());
    // Reading follows the links too.
    let mut f = files.get("/work/bin/viahop").unwrap().file;
    let mut s = String::new();
    std::io::Read::read_to_string(&mut f, &mut s).unwrap();
    assert_eq!(s, "ok");
    // A symlink as the last component is replaced, not written through: the box's own file.
    symlink("/box/bin/viahop", root.join("work/last")).unwrap();
    files
        .put_all("/work/last", &b"mine"[..], 0o644, None)
        .unwrap();
    assert_eq!(std::fs::read(root.join("work/last")).unwrap(), b"mine");
    assert_eq!(
        std::fs::read(rt.lb.path().join("system/box-bin/viahop")).unwrap(),
        b"ok"
    );
    // A link loop is an error, not a hang.
    symlink("/work/loop", root.join("work/loop")).unwrap();
    assert!(matches!(
        files.put_all("/work/loop/x", &b""[..], 0o644, None),
        Err(Error::InvalidArgument(_))
    ));
    // The project's own volume stays open to the project.
    files
        .put_all("/box/proj/ok", &b"p"[..], 0o644, None)
        .unwrap();
}
