//! Console sessions belong to the box they were opened in (issue 12): their ids are 128 random
//! bits, and a reattach from another project or box is not found, exactly like an unknown id,
//! both through `Sessions` (local mode) and through the agent's gRPC `Exec` (Kubernetes mode).
#![allow(clippy::unwrap_used)]

mod rtkit;

use std::time::Duration;

use forkr_node_agent::Error;
use forkr_node_agent::exec::session::{Event, Sessions};
use forkr_node_agent::exec::{ExecRequest, Target};
use forkr_node_agent::rpc::proto::{self, BoxRef, ExecInput, ExecStart, exec_input, exec_output};
use forkr_node_agent::runtime::BoxSpec;
use rtkit::Rt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// The random part of an id, checked to be `pty-` and 32 lowercase hex digits (128 bits).
fn random_part(id: &str) -> u128 {
    let hex = id
        .strip_prefix("pty-")
        .unwrap_or_else(|| panic!("{id:?} does not start with pty-"));
    assert_eq!(hex.len(), 32, "{id:?} has not 128 bits");
    assert!(
        hex.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{id:?} is not lowercase hex"
    );
    u128::from_str_radix(hex, 16).unwrap()
}

fn not_found_message(r: forkr_node_agent::Result<impl Sized>) -> String {
    match r {
        Err(Error::NotFound(m)) => m,
        Err(e) => panic!("expected NotFound, got {e:?}"),
        Ok(_) => panic!("expected NotFound, got a session"),
    }
}

/// Reads events until the output contains `needle`.
async fn read_until(rx: &mut mpsc::Receiver<Event>, needle: &str) -> String {
    let mut seen = Vec::new();
    let fut = async {
        while !String::from_utf8_lossy(&seen).contains(needle) {
            match rx.recv().await {
                Some(Event::Output(b)) => seen.extend(b),
                other => panic!("unexpected {other:?} before {needle:?}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .unwrap_or_else(|_| panic!("no {needle:?} in {:?}", String::from_utf8_lossy(&seen)));
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_reattached_only_in_its_own_project_and_box() {
    let rt = Rt::new();
    let pid = rt.boot(&BoxSpec::new("pa", "x")).pid.unwrap();
    let target = Target::new(pid);
    let sessions = Sessions::default();
    let s = sessions
        .open(("pa", "x"), &target, &ExecRequest::default(), 24, 80)
        .unwrap();
    let other = sessions
        .open(("pa", "x"), &target, &ExecRequest::default(), 24, 80)
        .unwrap();

    // Unguessable: 128 random bits each, not a counter.
    let (a, b) = (random_part(&s.id), random_part(&other.id));
    assert_ne!(a, b);
    assert!(
        a.abs_diff(b) > 1 << 64,
        "{} and {} look sequential",
        s.id,
        other.id
    );

    let (_, mut rx) = s.attach();
    s.write(b"echo sec$((6*7))ret\n").await.unwrap();
    read_until(&mut rx, "sec42ret").await;
    drop(rx);
    s.detach();

    // Another project with the same box name, and another box of the same project: not found,
    // with the very words of an unknown id (no oracle).
    let unknown_id = format!("pty-{}", "0".repeat(32));
    let unknown = not_found_message(sessions.get(&unknown_id, ("pa", "x")));
    for (project, name) in [("pb", "x"), ("pa", "y")] {
        let msg = not_found_message(sessions.get(&s.id, (project, name)));
        assert_eq!(msg.replace(&s.id, "ID"), unknown.replace(&unknown_id, "ID"));
    }
    // The owner still reattaches, and sees the replay.
    let (replay, _rx) = sessions.get(&s.id, ("pa", "x")).unwrap().attach();
    assert!(String::from_utf8_lossy(&replay).contains("sec42ret"));
}

fn input(msg: exec_input::Msg) -> ExecInput {
    ExecInput { msg: Some(msg) }
}

fn bref(project: &str, name: &str) -> Option<BoxRef> {
    Some(BoxRef {
        project: project.into(),
        name: name.into(),
    })
}

/// Starts an Exec stream; its input and output.
async fn exec(
    c: &mut rtkit::Client,
    start: ExecStart,
) -> Result<(mpsc::Sender<ExecInput>, tonic::Streaming<proto::ExecOutput>), tonic::Status> {
    let (tx, rx) = mpsc::channel(16);
    tx.send(input(exec_input::Msg::Start(start))).await.unwrap();
    let out = c.exec(ReceiverStream::new(rx)).await?.into_inner();
    Ok((tx, out))
}

/// The first message of a stream, or the status that ended it.
async fn first(
    out: &mut tonic::Streaming<proto::ExecOutput>,
) -> Result<exec_output::Msg, tonic::Status> {
    let m = tokio::time::timeout(Duration::from_secs(20), out.message())
        .await
        .expect("the stream answered")?;
    Ok(m.and_then(|m| m.msg).expect("a first message"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_refuses_a_reattach_from_another_box_like_an_unknown_id() {
    let rt = Rt::new();
    let (mut c, _) = rt.grpc(Duration::from_secs(15)).await;
    for (p, n) in [("pa", "x"), ("pa", "y"), ("pb", "x")] {
        rt.boot(&BoxSpec::new(p, n));
    }
    let (tx, mut out) = exec(
        &mut c,
        ExecStart {
            r#box: bref("pa", "x"),
            tty: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let Ok(exec_output::Msg::Started(id)) = first(&mut out).await else {
        panic!("the console did not start");
    };
    random_part(&id);
    tx.send(input(exec_input::Msg::Stdin(
        b"echo sec$((6*7))ret\n".to_vec(),
    )))
    .await
    .unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("sec42ret") {
        match first(&mut out).await.unwrap() {
            exec_output::Msg::Stdout(b) => seen.extend(b),
            exec_output::Msg::Heartbeat(_) => {}
            m => panic!("unexpected {m:?}"),
        }
    }
    drop((tx, out));

    let refusal = |r: Result<exec_output::Msg, tonic::Status>| match r {
        Err(s) => (s.code(), s.message().replace(&id, "ID")),
        Ok(m) => panic!("reattached to another box's session: {m:?}"),
    };
    let mut answers = Vec::new();
    for (p, n, session) in [
        ("pb", "x", id.clone()),
        ("pa", "y", id.clone()),
        ("pa", "x", format!("pty-{}", "0".repeat(32))),
    ] {
        let start = ExecStart {
            r#box: bref(p, n),
            reattach: session.clone(),
            ..Default::default()
        };
        let answer = match exec(&mut c, start).await {
            Err(s) => (s.code(), s.message().replace(&session, "ID")),
            Ok((_tx, mut out)) => refusal(first(&mut out).await),
        };
        answers.push(answer);
    }
    assert_eq!(answers[0].0, tonic::Code::NotFound, "{answers:?}");
    assert!(
        answers.iter().all(|a| *a == answers[0]),
        "another box's session must look unknown: {answers:?}"
    );
    // A reattach must name its box.
    let start = ExecStart {
        reattach: id.clone(),
        ..Default::default()
    };
    let code = match exec(&mut c, start).await {
        Err(s) => s.code(),
        Ok((_tx, mut out)) => refusal(first(&mut out).await).0,
    };
    assert_eq!(code, tonic::Code::InvalidArgument);
    // The owner reattaches and reads its replay.
    let (_tx, mut out) = exec(
        &mut c,
        ExecStart {
            r#box: bref("pa", "x"),
            reattach: id.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        first(&mut out).await.unwrap(),
        exec_output::Msg::Started(id)
    );
    let Ok(exec_output::Msg::Stdout(replay)) = first(&mut out).await else {
        panic!("no replay");
    };
    assert!(String::from_utf8_lossy(&replay).contains("sec42ret"));
}
