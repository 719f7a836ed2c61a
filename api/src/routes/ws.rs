//! WebSocket exec (`.../exec/ws`) and console (`.../console`). The frames are described on
//! [`crate::wire::ExecStart`]. The server pings every 20 s, so idle sessions survive proxies
//! that drop silent connections.

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures::{SinkExt, StreamExt};

use crate::backend::{BoxKey, ExecIn, ExecOut};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;
use crate::wire::{
    ExecControl, ExecStart, FRAME_STDERR, FRAME_STDIN, FRAME_STDIN_EOF, FRAME_STDOUT,
};

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

fn error_frame(e: &ApiError) -> Message {
    let body = ErrorBody {
        error: e.code.to_owned(),
        message: e.message.clone(),
    };
    Message::Text(serde_json::to_string(&body).unwrap_or_default().into())
}

fn control(c: &ExecControl) -> Message {
    Message::Text(serde_json::to_string(c).unwrap_or_default().into())
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
    let stream = match first_frame(&mut socket).await {
        Ok(mut start) => {
            if console {
                start.tty = true;
            }
            state.backend.exec_stream(key, start).await
        }
        Err(e) => Err(e),
    };
    let stream = match stream {
        Ok(s) => s,
        Err(e) => {
            let _ = socket.send(error_frame(&e)).await;
            let _ = socket.close().await;
            return;
        }
    };
    let (mut sink, mut source) = socket.split();
    let mut output = stream.output;
    let sender = tokio::spawn(async move {
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        loop {
            tokio::select! {
                out = output.recv() => {
                    let Some(out) = out else { break };
                    let (frame, last) = match out {
                        ExecOut::Stdout(d) => (Message::Binary([&[FRAME_STDOUT][..], &d].concat().into()), false),
                        ExecOut::Stderr(d) => (Message::Binary([&[FRAME_STDERR][..], &d].concat().into()), false),
                        ExecOut::Session(id) => (control(&ExecControl::Session(id)), false),
                        ExecOut::Exit(code) => (control(&ExecControl::Exit(code)), true),
                    };
                    if sink.send(frame).await.is_err() {
                        return;
                    }
                    if last {
                        break;
                    }
                }
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
    while let Some(Ok(msg)) = source.next().await {
        let forwarded = match msg {
            Message::Binary(b) => match b.first() {
                Some(&FRAME_STDIN) => Some(ExecIn::Stdin(b[1..].to_vec())),
                Some(&FRAME_STDIN_EOF) => Some(ExecIn::Eof),
                _ => None,
            },
            Message::Text(t) => match serde_json::from_str::<ExecControl>(&t) {
                Ok(ExecControl::Resize { rows, cols }) => Some(ExecIn::Resize { rows, cols }),
                Ok(ExecControl::Signal(sig)) => Some(ExecIn::Signal(sig)),
                _ => None,
            },
            Message::Close(_) => break,
            _ => None,
        };
        if let Some(m) = forwarded
            && input.send(m).await.is_err()
        {
            break;
        }
    }
    // The client is gone or done: closing input ends stdin (a console just detaches).
    drop(input);
    let _ = sender.await;
}
