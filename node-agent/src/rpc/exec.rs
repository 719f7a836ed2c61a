//! Exec, console, ps and logs over gRPC streams.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Response, Status, Streaming};

use super::proto::{self, exec_input, exec_output};
use super::{RuntimeService, Stream, blocking, box_ref, st};
use crate::exec::session::{Event, PtySession};
use crate::exec::{self, ExecRequest, Stdio3, User};

/// Bytes per stdout/stderr message, and the size of the output pipes.
const CHUNK: usize = 1024 * 1024;

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
    let heartbeat = spawn_heartbeat(tx.clone(), svc.heartbeat);
    if start.tty || !start.reattach.is_empty() {
        let sessions = svc.sessions.clone();
        // A reattach names its box too: a session answers only in the box it was opened in.
        let (p, n) = box_ref(start.r#box.clone())?;
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
        tokio::spawn(async move {
            console(session, sessions, input, tx).await;
            heartbeat.abort();
        });
    } else {
        let (p, n) = box_ref(start.r#box.clone())?;
        let target = svc.target(p, n).await?;
        let mut prepared = exec::command(&target, &request(&start), Stdio3::Pipes).map_err(st)?;
        let cmd = std::mem::replace(&mut prepared.cmd, std::process::Command::new("true"));
        let child = tokio::process::Command::from(cmd)
            .spawn()
            .map_err(|e| Status::internal(format!("start exec: {e}")))?;
        drop(prepared);
        tokio::spawn(async move {
            pipes(child, input, tx).await;
            heartbeat.abort();
        });
    }
    Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
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

async fn pump_output(
    mut r: impl tokio::io::AsyncRead + Unpin,
    tx: mpsc::Sender<Result<proto::ExecOutput, Status>>,
    wrap: fn(Vec<u8>) -> exec_output::Msg,
) -> bool {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return true,
            Ok(n) => {
                if tx.send(out(wrap(buf[..n].to_vec()))).await.is_err() {
                    return false;
                }
            }
        }
    }
}

/// Foreground exec over pipes: stdout and stderr apart, all output before the exit code, and
/// a hang-up (client gone) forwarded as SIGHUP.
async fn pipes(
    mut child: tokio::process::Child,
    mut input: Streaming<proto::ExecInput>,
    tx: mpsc::Sender<Result<proto::ExecOutput, Status>>,
) {
    let pid = child.id().unwrap_or(0);
    let mut stdin = child.stdin.take();
    let (Some(so), Some(se)) = (child.stdout.take(), child.stderr.take()) else {
        return;
    };
    crate::sys::set_pipe_size(&so, CHUNK as i32);
    crate::sys::set_pipe_size(&se, CHUNK as i32);
    let o = tokio::spawn(pump_output(so, tx.clone(), exec_output::Msg::Stdout));
    let e = tokio::spawn(pump_output(se, tx.clone(), exec_output::Msg::Stderr));
    let feeder = tokio::spawn(async move {
        while let Ok(Some(m)) = input.message().await {
            match m.msg {
                Some(exec_input::Msg::Stdin(data)) => {
                    if let Some(w) = stdin.as_mut()
                        && w.write_all(&data).await.is_err()
                    {
                        stdin = None;
                    }
                }
                Some(exec_input::Msg::StdinEof(_)) => stdin = None,
                Some(exec_input::Msg::Signal(sig)) => {
                    let _ = exec::signal_exec(pid, sig);
                }
                _ => {}
            }
        }
        // The client went away (or half-closed): stdin ends here.
    });
    let pumps = async { matches!((o.await, e.await), (Ok(true), Ok(true))) };
    let delivered = tokio::select! {
        d = pumps => d,
        _ = tx.closed() => false,
    };
    if !delivered {
        let _ = exec::signal_exec(pid, libc::SIGHUP);
    }
    let code = match child.wait().await {
        Ok(s) => exec::exit_code(s),
        Err(_) => 255,
    };
    feeder.abort();
    let _ = tx.send(out(exec_output::Msg::ExitCode(code))).await;
}

/// A console client: replay first, then live output; input, resizes. Dropping the client
/// detaches it, and the shell keeps running for a reattach.
async fn console(
    session: Arc<PtySession>,
    sessions: Arc<crate::exec::session::Sessions>,
    mut input: Streaming<proto::ExecInput>,
    tx: mpsc::Sender<Result<proto::ExecOutput, Status>>,
) {
    let (replay, mut events) = session.attach();
    if tx
        .send(out(exec_output::Msg::Started(session.id.clone())))
        .await
        .is_err()
    {
        return;
    }
    if !replay.is_empty()
        && tx
            .send(out(exec_output::Msg::Stdout(replay)))
            .await
            .is_err()
    {
        return;
    }
    let writer = {
        let session = session.clone();
        tokio::spawn(async move {
            while let Ok(Some(m)) = input.message().await {
                match m.msg {
                    Some(exec_input::Msg::Stdin(data)) if session.write(&data).await.is_err() => {
                        break;
                    }
                    Some(exec_input::Msg::Resize(r)) => {
                        let _ = session.resize(r.rows as u16, r.cols as u16);
                    }
                    Some(exec_input::Msg::Signal(sig)) => {
                        let _ = session.signal(sig);
                    }
                    _ => {}
                }
            }
        })
    };
    while let Some(ev) = events.recv().await {
        let msg = match ev {
            Event::Output(b) => exec_output::Msg::Stdout(b),
            Event::Exit(c) => {
                let _ = tx.send(out(exec_output::Msg::ExitCode(c))).await;
                // The last look: forgets the exited session.
                let _ = sessions.get(&session.id, session.owner());
                break;
            }
        };
        if tx.send(out(msg)).await.is_err() {
            break;
        }
    }
    writer.abort();
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
