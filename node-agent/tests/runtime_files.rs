//! put/get of single files: modes and owners, confinement to the box, the documented errors,
//! and where writes land (root and system volumes, never a data-volume mount).
#![allow(clippy::unwrap_used)]

mod rtkit;

use std::io::Read;
use std::os::unix::fs::{MetadataExt, symlink};

use forkr_node_agent::exec::files::{BoxFiles, ONLY_FILES};
use forkr_node_agent::runtime::{BoxSpec, VolumeMount};
use rtkit::{Rt, sh};

fn read_all(files: &BoxFiles, path: &str) -> (Vec<u8>, u32, u32) {
    let mut r = files.get(path).unwrap();
    let mut data = Vec::new();
    r.file.read_to_end(&mut data).unwrap();
    (data, r.mode, r.uid)
}

#[test]
fn put_get_round_trip_with_mode_and_owner() {
    let rt = Rt::new();
    let pid = rt.boot(&BoxSpec::new("p", "cp")).pid.unwrap();
    let files = BoxFiles::for_box(&rt.pool, "p", "cp").unwrap();
    let data: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    let n = files
        .put_all("/srv/app/bin.dat", &data[..], 0o751, Some((20000, 20000)))
        .unwrap();
    assert_eq!(n, data.len() as u64);
    let (back, mode, uid) = read_all(&files, "/srv/app/bin.dat");
    assert!(back == data);
    assert_eq!((mode, uid), (0o751, 20000));
    // The running box sees it with the same mode and owner.
    let out = sh(pid, "stat -c '%a %u %g %s' /srv/app/bin.dat");
    assert_eq!(out.stdout, "751 20000 20000 300000\n");
    // Without an owner (caller not root) the file is root's; setuid bits survive only as given.
    files
        .put_all("/srv/plain", &b"x"[..], 0o4755, None)
        .unwrap();
    let (_, mode, uid) = read_all(&files, "/srv/plain");
    assert_eq!((mode, uid), (0o4755, 0));
    // Overwrite replaces the content atomically and leaves no temporary files.
    files
        .put_all("/srv/plain", &b"yy"[..], 0o600, None)
        .unwrap();
    assert_eq!(read_all(&files, "/srv/plain").0, b"yy");
    let out = sh(pid, "ls -A /srv");
    assert_eq!(out.stdout, "app\nplain\n");
    // A put that is dropped half-way leaves nothing.
    {
        let mut p = files.put("/srv/half", 0o644, None).unwrap();
        p.write(b"partial").unwrap();
    }
    assert_eq!(sh(pid, "ls -A /srv").stdout, "app\nplain\n");
}

#[test]
fn directories_get_the_documented_error() {
    let rt = Rt::new();
    rt.boot(&BoxSpec::new("p", "dirs"));
    let files = BoxFiles::for_box(&rt.pool, "p", "dirs").unwrap();
    assert_eq!(files.get("/etc").err().unwrap().to_string(), ONLY_FILES);
    assert_eq!(
        files.put("/etc", 0o644, None).err().unwrap().to_string(),
        ONLY_FILES
    );
    assert_eq!(
        ONLY_FILES,
        "only files are supported (directories require -r, not yet supported)"
    );
    let err = files.get("/no/such/file").err().unwrap().to_string();
    assert!(err.contains("no such file"), "{err}");
    assert!(files.get("relative/path").is_err());
    assert!(files.get("/dev/null").is_err(), "devices are refused");
}

#[test]
fn no_escape_through_dotdot_or_symlinks() {
    let rt = Rt::new();
    rt.boot(&BoxSpec::new("p", "esc"));
    let root = rt.root("p", "esc");
    let files = BoxFiles::for_box(&rt.pool, "p", "esc").unwrap();
    // `..` clamps at the box's root.
    let (data, _, _) = read_all(&files, "/../../../../etc/hostname");
    assert_eq!(data, b"base\n");
    // Absolute and relative symlinks resolve inside the box, never on the host.
    symlink("/etc/hostname", root.join("abs")).unwrap();
    symlink("../../../../../../etc/hostname", root.join("etc/rel")).unwrap();
    symlink("/", root.join("etc/up")).unwrap();
    assert_eq!(read_all(&files, "/abs").0, b"base\n");
    assert_eq!(read_all(&files, "/etc/rel").0, b"base\n");
    assert_eq!(read_all(&files, "/etc/up/etc/hostname").0, b"base\n");
    // Writes through a symlinked directory stay inside too.
    let marker = format!("forkr-escape-{}", std::process::id());
    files
        .put_all(&format!("/etc/up/tmp/{marker}"), &b"in"[..], 0o644, None)
        .unwrap();
    assert!(root.join("tmp").join(&marker).exists());
    assert!(!std::path::Path::new("/tmp").join(&marker).exists());
    // A symlink to a host file is not followed to the host.
    symlink("/proc/self/root/etc/shadow", root.join("shadow")).unwrap();
    assert!(files.get("/shadow").is_err());
}

#[test]
fn writes_land_in_root_and_system_volumes_not_data_volumes() {
    let rt = Rt::new();
    rt.pool.create_volume("p", "data").unwrap();
    let mut spec = BoxSpec::new("p", "vols");
    spec.volumes = vec![VolumeMount {
        volume: "data".into(),
        target: "/data".into(),
        read_only: false,
    }];
    let pid = rt.boot(&spec).pid.unwrap();
    let files = BoxFiles::for_box(&rt.pool, "p", "vols").unwrap();
    files.put_all("/data/f", &b"x"[..], 0o644, None).unwrap();
    assert!(
        rt.root("p", "vols").join("data/f").exists(),
        "lands in the root"
    );
    assert!(!rt.pool.volume_path("p", "data").unwrap().join("f").exists());
    assert_eq!(
        sh(pid, "ls -A /data").stdout,
        "",
        "shadowed by the live mount"
    );

    files
        .put_all("/home/alice/notes", &b"n"[..], 0o600, None)
        .unwrap();
    let home = rt.lb.path().join("system/projects/p/home/alice/notes");
    assert!(home.exists(), "lands in the home system volume");
    assert_eq!(sh(pid, "cat /home/alice/notes").stdout, "n");
    // /box/bin is shared by every project: only an admin's cp writes it.
    files
        .clone()
        .allow_shared_writes(true)
        .put_all("/box/bin/tool", &b"#!/bin/sh\necho tool\n"[..], 0o755, None)
        .unwrap();
    assert!(rt.lb.path().join("system/box-bin/tool").exists());
    assert_eq!(sh(pid, "tool").stdout, "tool\n", "on the login PATH");
    assert_eq!(
        std::fs::metadata(rt.lb.path().join("system/box-bin/tool"))
            .unwrap()
            .mode()
            & 0o777,
        0o755
    );
}

#[test]
fn data_volume_mounts_read_only_and_read_write() {
    let rt = Rt::new();
    rt.pool.create_volume("p", "rw").unwrap();
    rt.pool.create_volume("p", "ro").unwrap();
    let mut spec = BoxSpec::new("p", "dv");
    spec.volumes = vec![
        VolumeMount {
            volume: "rw".into(),
            target: "/mnt/rw".into(),
            read_only: false,
        },
        VolumeMount {
            volume: "ro".into(),
            target: "/home/shared".into(),
            read_only: true,
        },
    ];
    let pid = rt.boot(&spec).pid.unwrap();
    let out = sh(
        pid,
        "echo hi > /mnt/rw/f && cat /mnt/rw/f; echo x > /home/shared/f; echo $?",
    );
    assert_eq!(out.stdout, "hi\n1\n", "{out:?}");
    assert!(rt.pool.volume_path("p", "rw").unwrap().join("f").exists());
}
