//! WebSocket exec (`.../exec/ws`) and console (`.../console`): the JSON start frame, then the
//! binary frames of [`crate::frame`] both ways. Every stream opens with its session id, and each
//! output frame carries its offset in its stream, counted here. The server pings every 20 s, so
//! idle sessions survive proxies that drop silent connections.

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures::{SinkExt, StreamExt};

use crate::backend::{BoxKey, ExecIn, ExecOut};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::frame::{ClientFrame, FrameError, Offsets, ServerFrame};
use crate::state::AppState;
use crate::wire::ExecStart;

const PING_EVERY: Duration = Duration::from_secs(20);

/// Runs a command with its stdin, stdout and stderr streamed as WebSocket frames, and its exit
/// code last. With `tty`, on a PTY.
#[utoipa::path(get, path = "/v1/projects/{project}/boxes/{name}/exec/ws", tag = "exec",
    params(("project" = String, Path), ("name" = String, Path)),
    responses((status = 101, description = "WebSocket; first frame: ExecStart"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn exec_ws(
    State(state): State<AppState>,
    key: BoxKey,
    ws: WebSocketUpgrade,
) -> ApiResult<Response> {
    Ok(ws.on_upgrade(move |socket| serve(state, key, socket, false)))
}

/// An interactive login shell on a PTY. The first server frame is `{"session": id}`; starting a
/// console with that `session` reattaches and replays the last 64 KiB of output.
#[utoipa::path(get, path = "/v1/projects/{project}/boxes/{name}/console", tag = "exec",
    params(("project" = String, Path), ("name" = String, Path)),
    responses((status = 101, description = "WebSocket; first frame: ExecStart"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn console(
    State(state): State<AppState>,
    key: BoxKey,
    ws: WebSocketUpgrade,
) -> ApiResult<Response> {
    Ok(ws.on_upgrade(move |socket| serve(state, key, socket, true)))
}

fn frame(f: &ServerFrame) -> Message {
    Message::Binary(f.encode().into())
}

fn error_frame(e: &ApiError) -> Message {
    frame(&ServerFrame::error(e.code, e.message.clone()))
}

/// The id of a plain exec stream: 128 random bits, like a console's, so that a later reattach
/// can take it as it is.
fn exec_session_id() -> ApiResult<String> {
    Ok(forkr_node_agent::exec::session::new_id("exec")?)
}

/// A client frame as the backend takes it; a bad one is answered with `invalid_frame`.
fn client_input(msg: Message) -> Result<Option<ExecIn>, FrameError> {
    let frame = match msg {
        Message::Binary(b) => ClientFrame::decode(&b)?,
        Message::Text(_) => return Err(FrameError::Text),
        Message::Ping(_) | Message::Pong(_) | Message::Close(_) => return Ok(None),
    };
    Ok(Some(match frame {
        ClientFrame::Stdin(data) => ExecIn::Stdin(data),
        ClientFrame::StdinEof => ExecIn::Eof,
        ClientFrame::Resize { rows, cols } => ExecIn::Resize { rows, cols },
        ClientFrame::Signal(sig) => ExecIn::Signal(sig),
    }))
}

async fn first_frame(socket: &mut WebSocket) -> ApiResult<ExecStart> {
    match socket.recv().await {
        Some(Ok(Message::Text(t))) => serde_json::from_str(&t).map_err(|e| {
            ApiError::bad_request(
                "invalid_json",
                format!("the first frame must be an ExecStart: {e}"),
            )
        }),
        _ => Err(ApiError::bad_request(
            "invalid_json",
            "the first frame must be an ExecStart, as JSON text",
        )),
    }
}

async fn serve(state: AppState, key: BoxKey, mut socket: WebSocket, console: bool) {
    let started = async {
        let mut start = first_frame(&mut socket).await?;
        if console {
            start.tty = true;
        }
        // A terminal session is named by the backend (the id a console reattaches with), in
        // its first output; any other stream is named here, before anything else.
        let named_by_backend = start.tty || start.session.is_some();
        let id = exec_session_id()?;
        let stream = state.backend.exec_stream(key, start).await?;
        Ok::<_, ApiError>((id, named_by_backend, stream))
    };
    let (exec_id, named_by_backend, stream) = match started.await {
        Ok(s) => s,
        Err(e) => {
            let _ = socket.send(error_frame(&e)).await;
            let _ = socket.close().await;
            return;
        }
    };
    let (mut sink, mut source) = socket.split();
    let mut output = stream.output;
    // A bad client frame ends the stream: the reader hands its error frame to the writer.
    let (refuse, mut refused) = tokio::sync::oneshot::channel::<ServerFrame>();
    let sender = tokio::spawn(async move {
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        let mut offsets = Offsets::default();
        let mut opened = !named_by_backend;
        if opened
            && sink
                .send(frame(&ServerFrame::Session(exec_id.clone())))
                .await
                .is_err()
        {
            return;
        }
        let mut refusable = true;
        loop {
            tokio::select! {
                out = output.recv() => {
                    let Some(out) = out else { break };
                    if !opened {
                        opened = true;
                        // A backend that cannot reattach names no session: `exec_id` stands in.
                        if !matches!(out, ExecOut::Session(_))
                            && sink.send(frame(&ServerFrame::Session(exec_id.clone()))).await.is_err()
                        {
                            return;
                        }
                    }
                    let (next, last) = match out {
                        ExecOut::Stdout(d) => (offsets.stdout(d), false),
                        ExecOut::Stderr(d) => (offsets.stderr(d), false),
                        ExecOut::Session(id) => (ServerFrame::Session(id), false),
                        ExecOut::Exit(code) => (ServerFrame::Exit(code), true),
                    };
                    if sink.send(frame(&next)).await.is_err() {
                        return;
                    }
                    if last {
                        break;
                    }
                }
                refusal = &mut refused, if refusable => match refusal {
                    Ok(error) => {
                        if !opened {
                            let _ = sink.send(frame(&ServerFrame::Session(exec_id.clone()))).await;
                        }
                        let _ = sink.send(frame(&error)).await;
                        break;
                    }
                    // The reader ended without a refusal.
                    Err(_) => refusable = false,
                },
                _ = ping.tick() => {
                    if sink.send(Message::Ping(Vec::new().into())).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = sink.close().await;
    });
    let input = stream.input;
    let mut refused_frame = false;
    while let Some(Ok(msg)) = source.next().await {
        if matches!(msg, Message::Close(_)) {
            break;
        }
        match client_input(msg) {
            Ok(Some(m)) => {
                if input.send(m).await.is_err() {
                    break;
                }
            }
            Ok(None) => {}
            Err(e) => {
                let _ = refuse.send(ServerFrame::error("invalid_frame", e.to_string()));
                refused_frame = true;
                break;
            }
        }
    }
    // Closing input ends stdin (a console just detaches).
    drop(input);
    if refused_frame {
        // The writer still owes the client its error frame.
        let _ = sender.await;
    } else {
        // The client is gone (closed, or the connection died): nobody reads the output any
        // more, so let go of it now rather than at the next failed ping. The exec driver then
        // sees no client and its reconnect grace starts (exec::grace).
        sender.abort();
    }
}
