//! The gRPC layer, in-process (over an in-memory duplex pipe) and over real sockets.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

mod common;

use std::sync::Arc;

use common::{TestPool, rootfs_tar, write_file};
use forkr_node_agent::Pool;
use forkr_node_agent::rpc::storage::proto::storage_client::StorageClient;
use forkr_node_agent::rpc::storage::proto::{self, import_base_chunk::Part, target::Kind};
use forkr_node_agent::rpc::storage::{self, BearerToken};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint, Server};

const TOKEN: &str = "s3cret-token";

type Client = StorageClient<InterceptedService<Channel, BearerToken>>;

/// Serves the pool over an in-memory pipe and returns a client presenting `token`.
async fn in_process(pool: Arc<Pool>, token: &str) -> Client {
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        Server::builder()
            .add_service(storage::service(pool, TOKEN).unwrap())
            .serve_with_incoming(tokio_stream::once(Ok::<_, std::io::Error>(server_io)))
            .await
    });
    let mut client_io = Some(client_io);
    let channel = Endpoint::try_from("http://in-process")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_| {
            let io = client_io.take();
            async move {
                io.map(TokioIo::new)
                    .ok_or_else(|| std::io::Error::other("pipe already used"))
            }
        }))
        .await
        .unwrap();
    StorageClient::with_interceptor(channel, BearerToken::new(token).unwrap())
}

fn shared_pool(t: &TestPool) -> Arc<Pool> {
    Arc::new(Pool::open(t.lb.path()).unwrap())
}

fn root_target(b: &str) -> Option<proto::Target> {
    Some(proto::Target {
        kind: Some(Kind::Root(proto::RootRef {
            project: "p".into(),
            r#box: b.into(),
        })),
    })
}

async fn import(
    c: &mut Client,
    name: &str,
    tar: Vec<u8>,
) -> Result<proto::BaseVersionRef, tonic::Status> {
    let mut msgs = vec![proto::ImportBaseChunk {
        part: Some(Part::Header(proto::ImportBaseHeader {
            name: name.into(),
            ..Default::default()
        })),
    }];
    // Small chunks, so the extractor really consumes a stream.
    for chunk in tar.chunks(1000) {
        msgs.push(proto::ImportBaseChunk {
            part: Some(Part::Data(chunk.to_vec())),
        });
    }
    c.import_base(tokio_stream::iter(msgs))
        .await
        .map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_without_the_token_are_rejected() {
    let t = TestPool::new();
    let pool = shared_pool(&t);
    let mut wrong = in_process(pool.clone(), "guess").await;
    let err = wrong.list_bases(proto::Empty {}).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    let (client_io, server_io) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        Server::builder()
            .add_service(storage::service(pool, TOKEN).unwrap())
            .serve_with_incoming(tokio_stream::once(Ok::<_, std::io::Error>(server_io)))
            .await
    });
    let mut io = Some(client_io);
    let channel = Endpoint::try_from("http://in-process")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_| {
            let io = io.take();
            async move {
                io.map(TokioIo::new)
                    .ok_or_else(|| std::io::Error::other("used"))
            }
        }))
        .await
        .unwrap();
    let mut anonymous = StorageClient::new(channel);
    let err = anonymous.list_bases(proto::Empty {}).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(t.pool.list_bases().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn storage_lifecycle_and_error_codes_in_process() {
    let t = TestPool::new();
    let mut c = in_process(shared_pool(&t), TOKEN).await;

    let v = import(
        &mut c,
        "box-base",
        rootfs_tar(&[("etc/hostname", b"base\n")]),
    )
    .await
    .unwrap();
    assert_eq!(v.version, "box-base");
    let bad = import(&mut c, "evil", {
        let mut x = common::TarGz::new();
        x.file("/etc/passwd", b"x");
        x.finish()
    })
    .await
    .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(
        bad.message().starts_with("refusing tar entry /etc/passwd"),
        "{}",
        bad.message()
    );
    let mut cut = rootfs_tar(&[("etc/big", &vec![1u8; 200_000])]);
    cut.truncate(cut.len() / 2);
    let truncated = import(&mut c, "cut", cut).await.unwrap_err();
    assert_eq!(
        truncated.code(),
        Code::InvalidArgument,
        "{}",
        truncated.message()
    );
    let first = c.list_bases(proto::Empty {}).await.unwrap().into_inner();
    assert_eq!(first.bases.len(), 1, "failed imports leave nothing");

    let root = c
        .create_root(proto::CreateRootRequest {
            project: "p".into(),
            r#box: "web".into(),
            base: "box-base".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(root.base, "box-base");

    let none = c
        .diff_status(proto::DiffStatusRequest {
            project: "p".into(),
            r#box: "web".into(),
            against: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(none.code(), Code::FailedPrecondition);
    assert!(
        none.message().contains("has no snapshots"),
        "{}",
        none.message()
    );

    let cp = c
        .create_checkpoint(proto::CreateCheckpointRequest {
            target: root_target("web"),
            description: "first".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((cp.name.as_str(), cp.description.as_str()), ("v0", "first"));
    let dup = c
        .create_checkpoint(proto::CreateCheckpointRequest {
            target: root_target("web"),
            name: "v0".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(dup.code(), Code::AlreadyExists);

    write_file(
        &std::path::Path::new(&root.path).join("etc/hostname"),
        "changed\n",
    );
    let status = c
        .diff_status(proto::DiffStatusRequest {
            project: "p".into(),
            r#box: "web".into(),
            against: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.text, "~ /etc/hostname\n");
    let file = c
        .diff_file(proto::DiffFileRequest {
            project: "p".into(),
            r#box: "web".into(),
            path: "/etc/hostname".into(),
            against: "v0".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(file.status, "modified");
    assert!(file.diff.contains("+changed"));
    let rel = c
        .diff_file(proto::DiffFileRequest {
            project: "p".into(),
            r#box: "web".into(),
            path: "etc".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(rel.code(), Code::InvalidArgument);

    c.restore_checkpoint(proto::CheckpointRef {
        target: root_target("web"),
        name: "v0".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let status = c
        .diff_status(proto::DiffStatusRequest {
            project: "p".into(),
            r#box: "web".into(),
            against: "v0".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.text, "No changes\n");

    let missing = c
        .restore_checkpoint(proto::CheckpointRef {
            target: root_target("web"),
            name: "zz".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let listed = c
        .list_checkpoints(proto::ListCheckpointsRequest {
            target: root_target("web"),
            shelf: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.checkpoints.len(), 1);

    let saved = c
        .save_base(proto::SaveBaseRequest {
            name: "web-base".into(),
            project: "p".into(),
            r#box: "web".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(saved.version, "web-base");
    let show = c
        .show_base(proto::ShowBaseRequest {
            name: "web-base".into(),
            tag: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (show.version_count, show.versions[0].kind.as_str()),
        (1, "save")
    );
    let in_use = c
        .delete_base(proto::DeleteBaseRequest {
            name: "box-base".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(in_use.code(), Code::FailedPrecondition);

    c.create_volume(proto::VolumeRef {
        project: "p".into(),
        volume: "data".into(),
    })
    .await
    .unwrap();
    let vols = c
        .list_volumes(proto::ListVolumesRequest {
            project: "p".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(vols.volumes[0].volume, "data");
    let fork = c
        .fork_root(proto::ForkRootRequest {
            from_project: "p".into(),
            from_box: "web".into(),
            project: "p".into(),
            r#box: "web2".into(),
            volumes: vec!["data".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fork.origin, "fork:p/web");
    c.delete_root(proto::RootRef {
        project: "p".into(),
        r#box: "web2".into(),
    })
    .await
    .unwrap();
    let roots = c
        .list_roots(proto::ListRootsRequest {
            project: "p".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(roots.roots.len(), 1);

    let mut export = c
        .export_base(proto::ExportBaseRequest {
            version: "box-base".into(),
            parent: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = export.message().await.unwrap() {
        bytes.extend(chunk.data);
    }
    assert!(bytes.starts_with(b"btrfs-stream\0"), "not a send stream");
    assert!(bytes.len() > 128);
}

#[tokio::test(flavor = "multi_thread")]
async fn serves_over_a_unix_socket_and_tcp() {
    let t = TestPool::new();
    let pool = shared_pool(&t);
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = {
        let (pool, sock) = (pool.clone(), sock.clone());
        tokio::spawn(async move {
            forkr_node_agent::rpc::serve::serve_unix(
                pool,
                Arc::default(),
                None,
                TOKEN,
                &sock,
                async {
                    let _ = stop_rx.await;
                },
            )
            .await
        })
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let metrics = Arc::new(forkr_node_agent::metrics::Metrics::default());
    tokio::spawn(forkr_node_agent::rpc::serve::serve_tcp_listener(
        pool,
        metrics.clone(),
        None,
        TOKEN,
        listener,
        std::future::pending(),
    ));

    let mut unix_channel = None;
    // Up to 10 s for the server task to bind, generous for a loaded CI machine.
    for _ in 0..500 {
        if let Ok(ch) = Endpoint::try_from(format!("unix://{}", sock.display()))
            .unwrap()
            .connect()
            .await
        {
            unix_channel = Some(ch);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let unix_channel = unix_channel.expect("unix socket up");
    let mut c =
        StorageClient::with_interceptor(unix_channel.clone(), BearerToken::new(TOKEN).unwrap());
    import(&mut c, "box-base", rootfs_tar(&[])).await.unwrap();
    let listed = c.list_bases(proto::Empty {}).await.unwrap().into_inner();
    assert_eq!(listed.bases[0].name, "box-base");
    let mut anonymous = StorageClient::new(unix_channel);
    assert_eq!(
        anonymous
            .list_bases(proto::Empty {})
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );

    let tcp = Endpoint::try_from(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut c = StorageClient::with_interceptor(tcp.clone(), BearerToken::new(TOKEN).unwrap());
    assert_eq!(
        c.list_bases(proto::Empty {})
            .await
            .unwrap()
            .into_inner()
            .bases
            .len(),
        1
    );
    let mut anonymous = StorageClient::new(tcp);
    assert_eq!(
        anonymous
            .list_bases(proto::Empty {})
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    let missing = proto::CreateRootRequest {
        project: "p".into(),
        r#box: "x".into(),
        base: "nope".into(),
    };
    c.create_root(missing).await.unwrap_err();

    // The TCP server's operations show up on the metrics endpoint.
    let ml = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let maddr = ml.local_addr().unwrap();
    tokio::spawn(forkr_node_agent::metrics::serve(
        metrics,
        ml,
        std::future::pending(),
    ));
    let mut conn = tokio::net::TcpStream::connect(maddr).await.unwrap();
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    conn.read_to_string(&mut body).await.unwrap();
    assert!(
        body.contains("forkr_agent_operations_total{op=\"list_bases\",outcome=\"ok\"} 1\n"),
        "{body}"
    );
    assert!(
        body.contains("forkr_agent_operations_total{op=\"create_root\",outcome=\"not_found\"} 1\n"),
        "{body}"
    );

    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}
