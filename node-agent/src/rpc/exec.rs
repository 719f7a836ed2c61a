//! Exec, console, ps and logs over gRPC streams. Exec and console are the driver of
//! `exec::stream`; this module only translates gRPC messages to and from it.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Response, Status, Streaming};

use super::proto::{self, exec_input, exec_output};
use super::{RuntimeService, Stream, blocking, box_ref, st};
use crate::exec::grace::Grace;
use crate::exec::stream::{self, Input, Output};
use crate::exec::{self, ExecRequest, Stdio3, User};

/// Bytes per log message.
const CHUNK: usize = stream::PIPE_BYTES;

fn out(msg: exec_output::Msg) -> Result<proto::ExecOutput, Status> {
    Ok(proto::ExecOutput { msg: Some(msg) })
}

pub(crate) fn request(start: &proto::ExecStart) -> ExecRequest {
    ExecRequest {
        args: start.args.clone(),
        sh: start.sh,
        env: start
            .env
            .iter()
            .map(|e| (e.key.clone(), e.value.clone()))
            .collect(),
        wd: (!start.wd.is_empty()).then(|| start.wd.clone()),
        user: start.user.as_ref().map(|u| User {
            name: u.name.clone(),
            uid: u.uid,
        }),
    }
}

pub(super) async fn exec(
    svc: &RuntimeService,
    mut input: Streaming<proto::ExecInput>,
) -> Result<Response<Stream<proto::ExecOutput>>, Status> {
    let first = input
        .message()
        .await?
        .and_then(|m| m.msg)
        .ok_or_else(|| Status::invalid_argument("the first message must be start"))?;
    let exec_input::Msg::Start(start) = first else {
        return Err(Status::invalid_argument("the first message must be start"));
    };
    let (tx, rx) = mpsc::channel(16);
    let (p, n) = box_ref(start.r#box.clone())?;
    let driver = if start.tty || !start.reattach.is_empty() {
        // A reattach names its box too: a session answers only in the box it was opened in.
        let session = if start.reattach.is_empty() {
            let target = svc.target(p.clone(), n.clone()).await?;
            let rows = if start.rows == 0 {
                24
            } else {
                start.rows as u16
            };
            let cols = if start.cols == 0 {
                80
            } else {
                start.cols as u16
            };
            svc.sessions
                .open((&p, &n), &target, &request(&start), rows, cols)
                .map_err(st)?
        } else {
            svc.sessions.get(&start.reattach, (&p, &n)).map_err(st)?
        };
        stream::console(session)
    } else {
        let target = svc.target(p, n).await?;
        stream::pipes(&target, &request(&start), Grace::current().exec).map_err(st)?
    };
    let heartbeat = spawn_heartbeat(tx.clone(), svc.heartbeat);
    tokio::spawn(feed(input, driver.input));
    tokio::spawn(async move {
        stream::forward(driver.output, tx, |o| out(output(o))).await;
        heartbeat.abort();
    });
    Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
}

fn output(o: Output) -> exec_output::Msg {
    match o {
        Output::Session(id) => exec_output::Msg::Started(id),
        Output::Stdout(b) => exec_output::Msg::Stdout(b),
        Output::Stderr(b) => exec_output::Msg::Stderr(b),
        Output::Exit(c) => exec_output::Msg::ExitCode(c),
    }
}

/// The client's messages into the driver, until its stream ends.
async fn feed(mut input: Streaming<proto::ExecInput>, to: mpsc::Sender<Input>) {
    while let Ok(Some(m)) = input.message().await {
        let m = match m.msg {
            Some(exec_input::Msg::Stdin(data)) => Input::Stdin(data),
            Some(exec_input::Msg::StdinEof(_)) => Input::Eof,
            Some(exec_input::Msg::Resize(r)) => Input::Resize {
                rows: r.rows as u16,
                cols: r.cols as u16,
            },
            Some(exec_input::Msg::Signal(sig)) => Input::Signal(sig),
            _ => continue,
        };
        if to.send(m).await.is_err() {
            return;
        }
    }
}

/// Sends a heartbeat every `every` until aborted or the stream closes.
fn spawn_heartbeat(
    tx: mpsc::Sender<Result<proto::ExecOutput, Status>>,
    every: Duration,
) -> tokio::task::AbortHandle {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            if tx
                .send(out(exec_output::Msg::Heartbeat(true)))
                .await
                .is_err()
            {
                return;
            }
        }
    })
    .abort_handle()
}

pub(super) async fn background(
    svc: &RuntimeService,
    start: proto::ExecStart,
) -> Result<Response<proto::ExecBackgroundResponse>, Status> {
    let (p, n) = box_ref(start.r#box.clone())?;
    let target = svc.target(p, n).await?;
    let req = request(&start);
    let pid = blocking(move || exec::spawn_background(&target, &req)).await?;
    Ok(Response::new(proto::ExecBackgroundResponse { pid }))
}

pub(super) async fn ps(
    svc: &RuntimeService,
    req: proto::PsRequest,
) -> Result<Response<proto::PsResponse>, Status> {
    let (p, n) = box_ref(req.r#box)?;
    let target = svc.target(p, n).await?;
    let out = blocking(move || {
        let mut prepared = exec::command(&target, &exec::ps_request(&req.args), Stdio3::Pipes)?;
        prepared.cmd.stdin(std::process::Stdio::null());
        prepared.cmd.output().map_err(|source| crate::Error::Io {
            context: "run ps".into(),
            source,
        })
    })
    .await?;
    Ok(Response::new(proto::PsResponse {
        stdout: out.stdout,
        stderr: out.stderr,
        exit_code: exec::exit_code(out.status),
    }))
}

pub(super) async fn logs(
    svc: &RuntimeService,
    req: proto::LogsRequest,
) -> Result<Response<Stream<proto::LogsChunk>>, Status> {
    let (p, n) = box_ref(req.r#box)?;
    let target = svc.target(p, n).await?;
    let pid = req.pid;
    let mut offset = req.offset;
    // The first read reports a missing pid or log as an error of the call itself.
    let first = blocking(move || exec::logs::read_log(&target, pid, offset)).await?;
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut data = first;
        loop {
            if !data.is_empty() {
                offset += data.len() as u64;
                for chunk in data.chunks(CHUNK) {
                    if tx
                        .send(Ok(proto::LogsChunk {
                            data: chunk.to_vec(),
                        }))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
            if !req.follow || tx.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let next = blocking(move || exec::logs::read_log(&target, pid, offset)).await;
            match next {
                Ok(d) => data = d,
                Err(_) => return, // the box stopped: /tmp is gone
            }
        }
    });
    Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
}
