//! A hostile replication stream cannot write outside the tree it is received into.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

mod common;

use std::fs;

use common::TestPool;
use forkr_node_agent::Error;
use forkr_node_agent::pool::receive::ReceivedVersion;
use forkr_node_agent::pool::sendstream::{attr, cmd};

fn command(kind: u16, attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (ty, v) in attrs {
        body.extend_from_slice(&ty.to_le_bytes());
        body.extend_from_slice(&(v.len() as u16).to_le_bytes());
        body.extend_from_slice(v);
    }
    let mut out = (body.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend(body);
    out
}

fn stream(cmds: &[Vec<u8>]) -> Vec<u8> {
    let mut s = b"btrfs-stream\0".to_vec();
    s.extend_from_slice(&1u32.to_le_bytes());
    s.extend(command(
        cmd::SUBVOL,
        &[(attr::PATH, b"x"), (attr::UUID, &[7u8; 16])],
    ));
    for c in cmds {
        s.extend_from_slice(c);
    }
    s.extend(command(cmd::END, &[]));
    s
}

#[test]
fn hostile_streams_are_refused() {
    let t = TestPool::new();
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    fs::write(&victim, "keep me").unwrap();
    let target = victim.to_str().unwrap().as_bytes();
    let dir_target = dir.path().to_str().unwrap().as_bytes();
    let offset = 0u64.to_le_bytes();
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        (
            "write through a symlink",
            vec![
                command(
                    cmd::SYMLINK,
                    &[(attr::PATH, b"a"), (attr::PATH_LINK, target)],
                ),
                command(
                    cmd::WRITE,
                    &[
                        (attr::PATH, b"a"),
                        (attr::FILE_OFFSET, &offset),
                        (attr::DATA, b"pwned"),
                    ],
                ),
            ],
        ),
        (
            "create under a symlinked directory",
            vec![
                command(
                    cmd::SYMLINK,
                    &[(attr::PATH, b"d"), (attr::PATH_LINK, dir_target)],
                ),
                command(cmd::MKFILE, &[(attr::PATH, b"d/new")]),
            ],
        ),
        (
            "climb with ..",
            vec![command(cmd::MKFILE, &[(attr::PATH, b"../escape")])],
        ),
        (
            "absolute path",
            vec![command(
                cmd::UNLINK,
                &[(attr::PATH, victim.to_str().unwrap().as_bytes())],
            )],
        ),
        (
            "chmod through a symlink",
            vec![
                command(
                    cmd::SYMLINK,
                    &[(attr::PATH, b"m"), (attr::PATH_LINK, target)],
                ),
                command(
                    cmd::CHMOD,
                    &[(attr::PATH, b"m"), (attr::MODE, &0o777u64.to_le_bytes())],
                ),
            ],
        ),
        (
            "metadata-only stream",
            vec![command(cmd::UPDATE_EXTENT, &[(attr::PATH, b"f")])],
        ),
    ];
    let info = ReceivedVersion {
        version: "evil".into(),
        name: "evil".into(),
        kind: "import".into(),
        ..Default::default()
    };
    for (what, cmds) in cases {
        let err = t
            .pool
            .receive_base(&info, None, &stream(&cmds)[..])
            .expect_err(what);
        assert!(matches!(err, Error::InvalidArgument(_)), "{what}: {err}");
    }
    assert_eq!(fs::read_to_string(&victim).unwrap(), "keep me");
    assert!(!dir.path().join("new").exists());
    assert!(t.pool.resolve_base("evil").is_err());
    assert!(t.debris().is_empty());

    // An incremental stream is refused without a local parent; garbage is refused too.
    let mut inc = b"btrfs-stream\0".to_vec();
    inc.extend_from_slice(&1u32.to_le_bytes());
    inc.extend(command(
        cmd::SNAPSHOT,
        &[(attr::PATH, b"x"), (attr::CLONE_UUID, &[1u8; 16])],
    ));
    assert!(matches!(
        t.pool.receive_base(&info, None, &inc[..]),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        t.pool.receive_base(&info, None, &b"garbage"[..]),
        Err(Error::InvalidArgument(_))
    ));
}
