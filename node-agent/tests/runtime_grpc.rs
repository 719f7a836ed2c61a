//! The Runtime gRPC service over a real Unix socket: box lifecycle, exec streams (stdio,
//! signals, heartbeats), console reattach with replay, files, background exec, logs, ps.
#![allow(clippy::unwrap_used)]

mod rtkit;

use std::time::Duration;

use forkr_node_agent::rpc::proto::{
    self, BoxRef, ExecInput, ExecStart, exec_input, exec_output, get_file_chunk, put_file_chunk,
};
use rtkit::{Client, Rt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

fn r(project: &str, name: &str) -> Option<BoxRef> {
    Some(BoxRef {
        project: project.into(),
        name: name.into(),
    })
}

fn input(msg: exec_input::Msg) -> ExecInput {
    ExecInput { msg: Some(msg) }
}

/// Collected output of an exec stream.
#[derive(Debug, Default)]
struct Collected {
    started: Option<String>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    exit: Option<i32>,
    heartbeats: usize,
}

async fn collect(
    stream: &mut tonic::Streaming<proto::ExecOutput>,
    until: impl Fn(&Collected) -> bool,
) -> Collected {
    let mut c = Collected::default();
    let fut = async {
        while let Some(m) = stream.message().await.unwrap() {
            match m.msg.unwrap() {
                exec_output::Msg::Started(id) => c.started = Some(id),
                exec_output::Msg::Stdout(b) => c.stdout.extend(b),
                exec_output::Msg::Stderr(b) => c.stderr.extend(b),
                exec_output::Msg::ExitCode(code) => c.exit = Some(code),
                exec_output::Msg::Heartbeat(_) => c.heartbeats += 1,
            }
            if until(&c) {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("exec stream timed out");
    c
}

/// Starts an exec; returns the input sender and the output stream.
async fn exec(
    client: &mut Client,
    start: ExecStart,
) -> (mpsc::Sender<ExecInput>, tonic::Streaming<proto::ExecOutput>) {
    let (tx, rx) = mpsc::channel(16);
    tx.send(input(exec_input::Msg::Start(start))).await.unwrap();
    let stream = client
        .exec(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    (tx, stream)
}

fn sh(project: &str, name: &str, script: &str) -> ExecStart {
    ExecStart {
        r#box: r(project, name),
        args: vec![script.into()],
        sh: true,
        ..Default::default()
    }
}

async fn start_box(rt: &Rt, c: &mut Client, name: &str) {
    rt.pool.create_root("p", name, &rt.base).unwrap();
    let st = c
        .start_box(proto::StartBoxRequest {
            r#box: r("p", name),
            grace_seconds: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.phase, proto::Phase::Running as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_and_auth() {
    let rt = Rt::new();
    let (mut c, sock) = rt.grpc(Duration::from_secs(15)).await;
    start_box(&rt, &mut c, "life").await;
    let st = c
        .get_box_status(r("p", "life").unwrap())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.phase, proto::Phase::Running as i32);
    assert!(st.pid > 0);
    let st = c
        .stop_box(r("p", "life").unwrap())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.phase, proto::Phase::Stopped as i32);
    let st = c
        .resume_box(r("p", "life").unwrap())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.phase, proto::Phase::Running as i32);
    let all = c
        .list_boxes(proto::ListBoxesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.boxes.len(), 1);
    let err = c
        .get_box_status(r("p", "Bad_Name").unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = c.resume_box(r("p", "never").unwrap()).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let ch = tonic::transport::Endpoint::try_from(format!("unix://{}", sock.display()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut anonymous = proto::runtime_client::RuntimeClient::new(ch);
    let err = anonymous
        .list_boxes(proto::ListBoxesRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_stream_stdio_exit_code_signals_and_heartbeats() {
    let rt = Rt::new();
    let (mut c, _) = rt.grpc(Duration::from_millis(100)).await;
    start_box(&rt, &mut c, "ex").await;

    // stdin in, stdout and stderr apart, exit code out; binary data intact.
    let data: Vec<u8> = (0..=255u8).cycle().take(3 << 20).collect();
    let (tx, mut out) = exec(&mut c, sh("p", "ex", "cat; echo err >&2; exit 3")).await;
    for chunk in data.chunks(100_000) {
        tx.send(input(exec_input::Msg::Stdin(chunk.to_vec())))
            .await
            .unwrap();
    }
    tx.send(input(exec_input::Msg::StdinEof(true)))
        .await
        .unwrap();
    let got = collect(&mut out, |_| false).await;
    assert!(
        got.stdout == data,
        "stdout differs ({} bytes)",
        got.stdout.len()
    );
    assert_eq!(got.stderr, b"err\n");
    assert_eq!(got.exit, Some(3));
    assert_eq!(got.started, None);

    // A signal reaches the command.
    let (tx, mut out) = exec(
        &mut c,
        sh(
            "p",
            "ex",
            "trap 'echo got-int; kill $!; exit 9' INT; sleep 30 & echo ready; wait",
        ),
    )
    .await;
    collect(&mut out, |c| c.stdout.ends_with(b"ready\n")).await;
    tx.send(input(exec_input::Msg::Signal(libc::SIGINT)))
        .await
        .unwrap();
    let got = collect(&mut out, |_| false).await;
    assert_eq!(got.stdout, b"got-int\n");
    assert_eq!(got.exit, Some(9));

    // An idle stream gets heartbeats, and ends after the exit code.
    let (_tx, mut out) = exec(&mut c, sh("p", "ex", "sleep 1")).await;
    let got = collect(&mut out, |_| false).await;
    assert!(got.heartbeats >= 3, "{got:?}");
    assert_eq!(got.exit, Some(0));

    // A hang-up ends the command.
    let (tx, mut out) = exec(
        &mut c,
        sh(
            "p",
            "ex",
            "echo $$ > /tmp/hup.pid; echo ready; exec sleep 300",
        ),
    )
    .await;
    collect(&mut out, |c| c.stdout.ends_with(b"ready\n")).await;
    drop(out);
    drop(tx);
    let pid1 = rt.rt.pid1("p", "ex").unwrap();
    assert!(rtkit::wait_until(10, || {
        rtkit::sh(
            pid1,
            "kill -0 $(cat /tmp/hup.pid) 2>/dev/null && echo alive",
        )
        .stdout
        .is_empty()
    }));

    // Errors: unknown box, missing start.
    let (tx, rx) = mpsc::channel(1);
    tx.send(input(exec_input::Msg::Start(sh("p", "absent", "true"))))
        .await
        .unwrap();
    let err = c.exec(ReceiverStream::new(rx)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let (tx, rx) = mpsc::channel(1);
    tx.send(input(exec_input::Msg::Stdin(b"x".to_vec())))
        .await
        .unwrap();
    let err = c.exec(ReceiverStream::new(rx)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_reattaches_with_replay() {
    let rt = Rt::new();
    let (mut c, _) = rt.grpc(Duration::from_secs(15)).await;
    start_box(&rt, &mut c, "con").await;
    let (tx, mut out) = exec(
        &mut c,
        ExecStart {
            r#box: r("p", "con"),
            tty: true,
            rows: 30,
            cols: 100,
            ..Default::default()
        },
    )
    .await;
    tx.send(input(exec_input::Msg::Stdin(
        b"stty size; echo hi-$((1+1))\n".to_vec(),
    )))
    .await
    .unwrap();
    let got = collect(&mut out, |c| {
        String::from_utf8_lossy(&c.stdout).contains("hi-2\r\n")
    })
    .await;
    let id = got.started.clone().unwrap();
    assert!(String::from_utf8_lossy(&got.stdout).contains("30 100"));
    // The connection drops.
    drop(out);
    drop(tx);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (tx, mut out) = exec(
        &mut c,
        ExecStart {
            r#box: r("p", "con"),
            reattach: id.clone(),
            ..Default::default()
        },
    )
    .await;
    let got = collect(&mut out, |c| {
        String::from_utf8_lossy(&c.stdout).contains("hi-2")
    })
    .await;
    assert_eq!(got.started.as_deref(), Some(id.as_str()));
    tx.send(input(exec_input::Msg::Resize(proto::Resize {
        rows: 50,
        cols: 132,
    })))
    .await
    .unwrap();
    tx.send(input(exec_input::Msg::Stdin(
        b"stty size; exit 4\n".to_vec(),
    )))
    .await
    .unwrap();
    let got = collect(&mut out, |_| false).await;
    assert!(
        String::from_utf8_lossy(&got.stdout).contains("50 132"),
        "{got:?}"
    );
    assert_eq!(got.exit, Some(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_background_logs_and_ps() {
    let rt = Rt::new();
    let (mut c, _) = rt.grpc(Duration::from_secs(15)).await;
    start_box(&rt, &mut c, "fs").await;

    let data: Vec<u8> = (0..=255u8).cycle().take(1_000_000).collect();
    let mut msgs = vec![proto::PutFileChunk {
        msg: Some(put_file_chunk::Msg::Header(proto::PutFileHeader {
            r#box: r("p", "fs"),
            path: "/srv/blob".into(),
            mode: 0o640,
            uid: Some(20000),
            gid: Some(20000),
            shared_writes: false,
        })),
    }];
    for chunk in data.chunks(300_000) {
        msgs.push(proto::PutFileChunk {
            msg: Some(put_file_chunk::Msg::Data(chunk.to_vec())),
        });
    }
    let put = c
        .put_file(tokio_stream::iter(msgs))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(put.bytes, data.len() as u64);
    let mut s = c
        .get_file(proto::GetFileRequest {
            r#box: r("p", "fs"),
            path: "/srv/blob".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut back = Vec::new();
    let mut info = None;
    while let Some(m) = s.message().await.unwrap() {
        match m.msg.unwrap() {
            get_file_chunk::Msg::Info(i) => info = Some(i),
            get_file_chunk::Msg::Data(d) => back.extend(d),
        }
    }
    let info = info.unwrap();
    assert_eq!(
        (info.mode, info.uid, info.gid, info.size),
        (0o640, 20000, 20000, 1_000_000)
    );
    assert!(back == data);
    let err = c
        .get_file(proto::GetFileRequest {
            r#box: r("p", "fs"),
            path: "/etc".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        err.message(),
        "only files are supported (directories require -r, not yet supported)"
    );

    let bg = c
        .exec_background(sh("p", "fs", "echo from-bg; sleep 0.3; echo end"))
        .await
        .unwrap()
        .into_inner()
        .pid;
    let mut logs = c
        .logs(proto::LogsRequest {
            r#box: r("p", "fs"),
            pid: Some(bg),
            offset: 0,
            follow: true,
        })
        .await
        .unwrap()
        .into_inner();
    let mut text = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while !text.ends_with(b"end\n") {
            text.extend(logs.message().await.unwrap().unwrap().data);
        }
    })
    .await
    .unwrap();
    assert_eq!(text, b"from-bg\nend\n");
    let err = c
        .logs(proto::LogsRequest {
            r#box: r("p", "fs"),
            pid: None,
            offset: 0,
            follow: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("--pid is required"));
    let err = c
        .logs(proto::LogsRequest {
            r#box: r("p", "fs"),
            pid: Some(4_000_000),
            offset: 0,
            follow: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let ps = c
        .ps(proto::PsRequest {
            r#box: r("p", "fs"),
            args: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ps.exit_code, 0);
    assert!(String::from_utf8_lossy(&ps.stdout).contains("tini"));
}
