//! Base replication between two agents: a full pull, then an incremental one against the parent
//! the second node already has, each on its own loopback btrfs.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use common::{TarGz, TestPool, elf};
use forkr_node_agent::Pool;
use forkr_node_agent::pool::import::ImportOptions;
use forkr_node_agent::rpc::storage::proto::storage_client::StorageClient;
use forkr_node_agent::rpc::storage::{BearerToken, proto};
use tar::EntryType;

const TOKEN: &str = "cluster-token";

async fn serve(t: &TestPool) -> String {
    let pool = Arc::new(Pool::open(t.lb.path()).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(forkr_node_agent::rpc::serve::serve_tcp_listener(
        pool,
        Arc::default(),
        None,
        TOKEN,
        listener,
        std::future::pending(),
    ));
    format!("http://{addr}")
}

/// Same content, modes, owners, xattrs and hard links in both trees.
fn assert_same_tree(a: &Path, b: &Path) {
    let mut stack = vec![std::path::PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let (ma, mb) = (
            fs::symlink_metadata(a.join(&rel)).unwrap(),
            fs::symlink_metadata(b.join(&rel)).unwrap(),
        );
        let what = rel.display().to_string();
        assert_eq!(
            (ma.mode(), ma.uid(), ma.gid(), ma.nlink()),
            (mb.mode(), mb.uid(), mb.gid(), mb.nlink()),
            "{what}"
        );
        if ma.is_file() {
            assert_eq!(
                fs::read(a.join(&rel)).unwrap(),
                fs::read(b.join(&rel)).unwrap(),
                "{what}"
            );
            assert_eq!(ma.mtime(), mb.mtime(), "{what}");
        } else if ma.file_type().is_symlink() {
            assert_eq!(
                fs::read_link(a.join(&rel)).unwrap(),
                fs::read_link(b.join(&rel)).unwrap()
            );
        } else if ma.is_dir() {
            let mut names: Vec<_> = fs::read_dir(a.join(&rel))
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            let mut other: Vec<_> = fs::read_dir(b.join(&rel))
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            other.sort();
            assert_eq!(names, other, "{what}");
            stack.extend(names.into_iter().map(|n| rel.join(n)));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_full_then_incremental() {
    let (a, b) = (TestPool::new(), TestPool::new());
    let mut base = TarGz::new();
    base.dir("./", 0o755)
        .dir("usr/", 0o755)
        .dir("usr/bin/", 0o755)
        .dir("etc/", 0o755);
    base.file_owned("usr/bin/dash", &elf(62), 0o755, 0, 0);
    base.link(EntryType::Symlink, "bin", "usr/bin")
        .link(EntryType::Symlink, "usr/bin/sh", "dash");
    base.file_owned("etc/shadow", b"root:*:", 0o640, 0, 42);
    base.link(EntryType::Link, "etc/shadow-", "etc/shadow");
    base.xattr_file("etc/tagged", b"t", "user.origin", "a");
    base.file("etc/big", &vec![7u8; 300_000]);
    a.pool
        .import_base("box-base", &base.finish()[..], &ImportOptions::default())
        .unwrap();
    let mut layer = TarGz::new();
    layer
        .dir("etc/", 0o755)
        .file("etc/layer", b"dev tools")
        .file("etc/big", &vec![8u8; 300_000]);
    let opts = ImportOptions {
        parent: Some("box-base".into()),
        tag: Some("abc".into()),
        ..Default::default()
    };
    a.pool
        .import_base("dev", &layer.finish()[..], &opts)
        .unwrap();

    let peer = serve(&a).await;
    let b_url = serve(&b).await;
    let channel = tonic::transport::Endpoint::from_shared(b_url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut to_b = StorageClient::with_interceptor(channel, BearerToken::new(TOKEN).unwrap());

    let full = to_b
        .pull_base(proto::PullBaseRequest {
            peer: peer.clone(),
            version: "box-base".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (full.version.as_str(), full.incremental_from.as_str()),
        ("box-base", "")
    );
    let inc = to_b
        .pull_base(proto::PullBaseRequest {
            peer: peer.clone(),
            version: "dev".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (inc.version.as_str(), inc.incremental_from.as_str()),
        ("dev", "box-base")
    );
    let again = to_b
        .pull_base(proto::PullBaseRequest {
            peer: peer.clone(),
            version: "dev".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        again.incremental_from, "",
        "already present: nothing transferred"
    );

    for v in ["box-base", "dev"] {
        let (pa, pb) = (a.pool.base_path(v).unwrap(), b.pool.base_path(v).unwrap());
        assert!(libbtrfsutil::subvolume_read_only(&pb).unwrap());
        assert_same_tree(&pa, &pb);
    }
    let (sa, sb) = (
        a.pool.show_base("dev", None).unwrap(),
        b.pool.show_base("dev", None).unwrap(),
    );
    assert_eq!(sa, sb, "versions, provenance and creation times replicate");

    // A box can be created from the replica.
    b.pool.create_root("p", "web", "dev").unwrap();
    assert_eq!(
        fs::read_to_string(b.pool.root_path("p", "web").unwrap().join("etc/layer")).unwrap(),
        "dev tools"
    );

    let missing = to_b
        .pull_base(proto::PullBaseRequest {
            peer,
            version: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    assert!(b.debris().is_empty());
}

#[test]
fn an_incremental_stream_needs_the_same_parent() {
    let (a, b) = (TestPool::new(), TestPool::new());
    a.base("box-base");
    b.base("box-base");
    let mut layer = TarGz::new();
    layer.dir("etc/", 0o755).file("etc/layer", b"x");
    let opts = ImportOptions {
        parent: Some("box-base".into()),
        ..Default::default()
    };
    a.pool
        .import_base("dev", &layer.finish()[..], &opts)
        .unwrap();
    let stream = forkr_node_agent::sys::send(
        &a.pool.base_path("dev").unwrap(),
        Some(&a.pool.base_path("box-base").unwrap()),
        false,
    )
    .unwrap();
    let info = forkr_node_agent::pool::receive::ReceivedVersion {
        version: "dev".into(),
        name: "dev".into(),
        kind: "import".into(),
        ..Default::default()
    };
    // b imported its own box-base: same name, different tree. The receive must refuse it.
    let err = b
        .pool
        .receive_base(&info, Some("box-base"), stream)
        .unwrap_err();
    assert!(
        matches!(err, forkr_node_agent::Error::FailedPrecondition(_)),
        "{err}"
    );
    assert!(b.pool.resolve_base("dev").is_err());
    assert!(b.debris().is_empty());
}
