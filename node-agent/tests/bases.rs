//! Bases on real btrfs: import (streamed tar.gz), safety checks, versions, save, delete.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::{TarGz, TestPool, elf, rootfs_tar};
use forkr_node_agent::Error;
use forkr_node_agent::pool::import::ImportOptions;
use tar::EntryType;

fn import(t: &TestPool, name: &str, tar: &[u8], parent: Option<&str>) -> Result<String, Error> {
    let opts = ImportOptions {
        parent: parent.map(str::to_string),
        ..Default::default()
    };
    t.pool.import_base(name, tar, &opts)
}

#[test]
fn import_preserves_modes_owners_xattrs_and_hard_links() {
    let t = TestPool::new();
    let mut tar = TarGz::new();
    tar.dir("./", 0o755)
        .dir("usr/", 0o755)
        .dir("usr/bin/", 0o755)
        .dir("srv/", 0o1777);
    tar.file_owned("usr/bin/dash", &elf(62), 0o755, 0, 0);
    tar.link(EntryType::Symlink, "bin", "usr/bin");
    tar.link(EntryType::Symlink, "usr/bin/sh", "dash");
    tar.file_owned("srv/secret", b"s", 0o600, 1234, 5678);
    tar.file_owned("srv/setuid", b"x", 0o4755, 0, 0);
    tar.link(EntryType::Link, "srv/hard", "srv/secret");
    tar.xattr_file("srv/tagged", b"t", "user.forkr", "yes");
    tar.link(
        EntryType::Symlink,
        "etc-localtime",
        "/usr/share/zoneinfo/UTC",
    );
    let v = import(&t, "box-base", &tar.finish(), None).unwrap();
    assert_eq!(v, "box-base");

    let base = t.pool.base_path("box-base").unwrap();
    assert!(
        libbtrfsutil::subvolume_read_only(&base).unwrap(),
        "bases are read-only"
    );
    let secret = fs::metadata(base.join("srv/secret")).unwrap();
    assert_eq!(
        (secret.uid(), secret.gid(), secret.mode() & 0o7777),
        (1234, 5678, 0o600)
    );
    assert_eq!(
        fs::metadata(base.join("srv/setuid"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o4755
    );
    assert_eq!(
        fs::metadata(base.join("srv")).unwrap().permissions().mode() & 0o7777,
        0o1777
    );
    let hard = fs::metadata(base.join("srv/hard")).unwrap();
    assert_eq!(hard.ino(), secret.ino(), "hard link kept");
    assert_eq!(secret.nlink(), 2);
    let x = xattr_get(&base.join("srv/tagged"), "user.forkr");
    assert_eq!(x.as_deref(), Some(&b"yes"[..]));
    assert_eq!(
        fs::read_link(base.join("etc-localtime")).unwrap().to_str(),
        Some("/usr/share/zoneinfo/UTC")
    );
}

fn xattr_get(path: &std::path::Path, key: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let k = std::ffi::CString::new(key).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: valid C strings and a buffer of the stated size.
    let n = unsafe { libc::lgetxattr(p.as_ptr(), k.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}

#[test]
fn hostile_entries_are_refused_and_leave_nothing() {
    let t = TestPool::new();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("absolute", {
            let mut x = TarGz::new();
            x.file("/etc/passwd", b"pwned");
            x.finish()
        }),
        ("dotdot", {
            let mut x = TarGz::new();
            x.file("etc/../../outside", b"pwned");
            x.finish()
        }),
        ("symlink climbing out", {
            let mut x = TarGz::new();
            x.dir("etc/", 0o755)
                .link(EntryType::Symlink, "etc/up", "../../../tmp");
            x.finish()
        }),
        ("write through absolute symlink", {
            let mut x = TarGz::new();
            x.link(EntryType::Symlink, "host", "/tmp")
                .file("host/forkr-pwned", b"pwned");
            x.finish()
        }),
        ("hard link out", {
            let mut x = TarGz::new();
            x.link(EntryType::Link, "shadow", "../etc/shadow");
            x.finish()
        }),
    ];
    for (what, tar) in cases {
        let err = import(&t, "evil", &tar, None).expect_err(what);
        assert!(matches!(err, Error::InvalidArgument(_)), "{what}: {err}");
        assert!(
            err.to_string().contains("refusing tar entry"),
            "{what}: {err}"
        );
    }
    assert!(!std::path::Path::new("/tmp/forkr-pwned").exists());
    assert!(t.pool.list_bases().unwrap().is_empty());
    assert!(t.debris().is_empty());
    let leftovers: Vec<_> = fs::read_dir(t.lb.path().join("bases")).unwrap().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn architecture_is_verified() {
    let t = TestPool::new();
    let mut arm = TarGz::new();
    arm.dir("bin/", 0o755)
        .file_owned("bin/sh", &elf(183), 0o755, 0, 0);
    let err = import(&t, "arm", &arm.finish(), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "base architecture mismatch: expected amd64, found arm64 (/bin/sh)"
    );
    let mut empty = TarGz::new();
    empty.file("README", b"hi");
    let err = import(&t, "empty", &empty.finish(), None).unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot verify the base architecture"),
        "{err}"
    );
    assert!(matches!(
        import(&t, "junk", b"not gzip", None),
        Err(Error::InvalidArgument(_))
    ));
    assert!(t.pool.list_bases().unwrap().is_empty());
}

#[test]
fn versions_aliases_show_and_layering() {
    let t = TestPool::new();
    let v1 = import(&t, "dev", &rootfs_tar(&[("etc/version", b"1")]), None).unwrap();
    assert_eq!(v1, "dev");
    let tagged = ImportOptions {
        parent: Some("dev".into()),
        tag: Some("3b1f".into()),
        builder: Some("docker".into()),
        owner: Some("shop".into()),
        ..Default::default()
    };
    let mut layer = TarGz::new();
    layer
        .dir("etc/", 0o755)
        .file("etc/version", b"2")
        .file("etc/extra", b"e");
    let v2 = t
        .pool
        .import_base("dev", &layer.finish()[..], &tagged)
        .unwrap();
    assert!(
        v2.starts_with("dev-v") && v2.len() == "dev-v".len() + 14,
        "{v2}"
    );
    assert_eq!(
        t.pool.resolve_base("dev").unwrap(),
        v2,
        "alias resolves to the newest"
    );
    let v3 = import(&t, "dev", &rootfs_tar(&[("etc/version", b"3")]), None).unwrap();
    assert!(v3 > v2, "{v3} after {v2}");
    assert_eq!(t.pool.resolve_base("dev").unwrap(), v3);
    assert_eq!(
        t.pool.resolve_base(&v2).unwrap(),
        v2,
        "exact versions resolve"
    );

    let layered = t.pool.base_path(&v2).unwrap();
    assert_eq!(
        fs::read_to_string(layered.join("etc/version")).unwrap(),
        "2"
    );
    assert_eq!(fs::read_to_string(layered.join("etc/extra")).unwrap(), "e");
    assert!(layered.join("usr/bin/dash").exists(), "parent content kept");
    // The first version carries the bare name, which the alias shadows once newer ones exist.
    let first = t.lb.path().join("bases").join(&v1);
    assert_eq!(fs::read_to_string(first.join("etc/version")).unwrap(), "1");

    let list = t.pool.list_bases().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].name.as_str(), list[0].version.as_str()),
        ("dev", v3.as_str())
    );
    assert!(list[0].size > 0);

    let show = t.pool.show_base("dev", None).unwrap();
    assert_eq!((show.latest.as_str(), show.version_count), (v3.as_str(), 3));
    assert_eq!(show.versions[1].version, v2);
    assert_eq!(show.versions[1].parent.as_deref(), Some("dev"));
    assert_eq!(show.versions[1].tag.as_deref(), Some("3b1f"));
    assert_eq!(show.versions[1].builder.as_deref(), Some("docker"));
    assert_eq!(show.versions[1].kind, "import");
    // The project forkr-api imported it for; an import without one (an admin's) has none.
    assert_eq!(show.versions[1].owner.as_deref(), Some("shop"));
    assert_eq!(show.versions[0].owner, None);
    let only = t.pool.show_base("dev", Some("3b1f")).unwrap();
    assert_eq!(only.versions.len(), 1);

    // A box pins v2: deleting the base or v2 is refused, the unused newest version goes.
    t.pool.create_root("p", "pinned", &v2).unwrap();
    let err = t.pool.delete_base("dev").unwrap_err();
    assert!(matches!(err, Error::FailedPrecondition(_)), "{err}");
    assert!(err.to_string().contains("p/pinned"), "{err}");
    assert!(t.pool.delete_base(&v2).is_err());
    t.pool.delete_base(&v3).unwrap();
    assert_eq!(
        t.pool.resolve_base("dev").unwrap(),
        v2,
        "alias falls back to the newest left"
    );
    t.pool.delete_root("p", "pinned").unwrap();
    t.pool.delete_base("dev").unwrap();
    assert!(matches!(
        t.pool.resolve_base("dev"),
        Err(Error::NotFound(_))
    ));
    t.pool.delete_base("dev").unwrap();
}

#[test]
fn save_from_a_box_root_and_retry_with_request_id() {
    let mut t = TestPool::new();
    t.base("box-base");
    t.pool.create_root("p", "web", "box-base").unwrap();
    let live = t.pool.root_path("p", "web").unwrap();
    common::write_file(&live.join("etc/app.conf"), "tuned");
    let v = t
        .pool
        .save_base("web-base", "p", "web", Some("r1"))
        .unwrap();
    assert_eq!(v, "web-base");
    assert_eq!(
        t.pool
            .save_base("web-base", "p", "web", Some("r1"))
            .unwrap(),
        v
    );
    let base = t.pool.base_path("web-base").unwrap();
    assert!(libbtrfsutil::subvolume_read_only(&base).unwrap());
    assert_eq!(
        fs::read_to_string(base.join("etc/app.conf")).unwrap(),
        "tuned"
    );
    let show = t.pool.show_base("web-base", None).unwrap();
    assert_eq!(show.versions[0].kind, "save");
    assert_eq!(show.versions[0].builder.as_deref(), Some("box p/web"));
    assert_eq!(show.versions[0].owner.as_deref(), Some("p"));
    assert_eq!(show.versions[0].parent.as_deref(), Some("box-base"));
    t.restart();
    assert_eq!(t.pool.show_base("web-base", None).unwrap(), show);
    assert!(matches!(
        t.pool.save_base("x", "p", "nope", None),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn a_layer_cannot_reach_the_host_through_a_parent_symlink() {
    let t = TestPool::new();
    let victim_dir = tempfile::tempdir().unwrap();
    let victim = victim_dir.path().join("victim");
    fs::write(&victim, "keep me").unwrap();
    let mut base = TarGz::new();
    base.dir("usr/", 0o755)
        .dir("usr/bin/", 0o755)
        .file_owned("usr/bin/sh", &elf(62), 0o755, 0, 0);
    base.link(EntryType::Symlink, "bin", "usr/bin");
    base.link(
        EntryType::Symlink,
        "escape",
        victim_dir.path().to_str().unwrap(),
    );
    base.file("etc-hostname", b"h");
    import(&t, "parent", &base.finish(), None).unwrap();
    for kind in [EntryType::Link, EntryType::Regular] {
        let mut layer = TarGz::new();
        if kind == EntryType::Link {
            layer.link(EntryType::Link, "escape/victim", "etc-hostname");
        } else {
            layer.file("escape/victim", b"overwritten");
        }
        let err = import(&t, "child", &layer.finish(), Some("parent")).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep me");
    }
    assert!(t.debris().is_empty());
}
