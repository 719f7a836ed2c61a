//! Foreground exec and console over the WebSocket: stdin streamed in, stdout and stderr kept
//! apart, signals forwarded, the exit code kept; a console in raw mode that follows the
//! terminal's size and reattaches (with the last 64 KiB replayed) when the connection drops.

use std::io::Write;
use std::time::Duration;

use forkr_api::client::{Client, Socket};
use forkr_api::wire::{
    ErrorBody, ExecControl, ExecStart, FRAME_STDERR, FRAME_STDIN, FRAME_STDIN_EOF, FRAME_STDOUT,
};
use futures::{SinkExt, StreamExt};
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::Message;

/// How a stream ended.
enum End {
    Exit(i32),
    /// The connection broke before an exit code arrived.
    Dropped(String),
}

fn text_frame(c: &ExecControl) -> Message {
    Message::Text(serde_json::to_string(c).unwrap_or_default().into())
}

/// Reads frames until the exit code, writing output as it comes. Returns how it ended and the
/// console session id, if one was announced.
async fn drain(
    mut source: futures::stream::SplitStream<Socket>,
    session: &mut Option<String>,
) -> anyhow::Result<End> {
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    while let Some(msg) = source.next().await {
        let msg = match msg {
            Ok(m) => m,
            Err(e) => return Ok(End::Dropped(e.to_string())),
        };
        match msg {
            Message::Binary(b) => match b.first() {
                Some(&FRAME_STDOUT) => {
                    stdout.write_all(&b[1..])?;
                    stdout.flush()?;
                }
                Some(&FRAME_STDERR) => {
                    stderr.write_all(&b[1..])?;
                    stderr.flush()?;
                }
                _ => {}
            },
            Message::Text(t) => {
                if let Ok(c) = serde_json::from_str::<ExecControl>(&t) {
                    match c {
                        ExecControl::Exit(code) => return Ok(End::Exit(code)),
                        ExecControl::Session(id) => *session = Some(id),
                        _ => {}
                    }
                } else if let Ok(e) = serde_json::from_str::<ErrorBody>(&t) {
                    anyhow::bail!(e.message);
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    Ok(End::Dropped("the connection closed".into()))
}

/// Runs a command with its streams attached to this process's; returns its exit code.
pub async fn exec(
    client: &Client,
    project: &str,
    name: &str,
    start: ExecStart,
) -> anyhow::Result<i32> {
    let socket = client.exec_socket(project, name, &start, false).await?;
    let (mut sink, source) = socket.split();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(16);
    let stdin_tx = tx.clone();
    tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let _ = stdin_tx
                        .send(Message::Binary(vec![FRAME_STDIN_EOF].into()))
                        .await;
                    break;
                }
                Ok(n) => {
                    let frame = [&[FRAME_STDIN][..], &buf[..n]].concat();
                    if stdin_tx.send(Message::Binary(frame.into())).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    // Ctrl-C and SIGTERM go to the command, not to 4kr, as a terminal would send them.
    for (kind, sig) in [
        (tokio::signal::unix::SignalKind::interrupt(), 2),
        (tokio::signal::unix::SignalKind::terminate(), 15),
    ] {
        let tx = tx.clone();
        if let Ok(mut s) = tokio::signal::unix::signal(kind) {
            tokio::spawn(async move {
                while s.recv().await.is_some() {
                    if tx
                        .send(text_frame(&ExecControl::Signal(sig)))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            });
        }
    }
    drop(tx);
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.send(m).await.is_err() {
                break;
            }
        }
    });
    let mut session = None;
    let end = drain(source, &mut session).await;
    writer.abort();
    match end? {
        End::Exit(code) => Ok(code),
        End::Dropped(why) => anyhow::bail!("the exec stream broke before the command ended: {why}"),
    }
}

/// Puts the terminal in raw mode until dropped, on every exit path (errors and panics too).
struct RawMode(bool);

impl RawMode {
    fn enter() -> RawMode {
        RawMode(crossterm::terminal::enable_raw_mode().is_ok())
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if self.0 {
            let _ = crossterm::terminal::disable_raw_mode();
        }
    }
}

/// An interactive login shell in the box, in raw mode; returns the shell's exit code.
pub async fn console(client: &Client, project: &str, name: &str) -> anyhow::Result<i32> {
    let (cols, rows) = crossterm::terminal::size().unwrap_or((80, 24));
    let _raw = RawMode::enter();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(64);
    let stdin_tx = tx.clone();
    tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = stdin.read(&mut buf).await {
            if n == 0 {
                break;
            }
            let frame = [&[FRAME_STDIN][..], &buf[..n]].concat();
            if stdin_tx.send(Message::Binary(frame.into())).await.is_err() {
                break;
            }
        }
    });
    if let Ok(mut winch) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
    {
        let tx = tx.clone();
        tokio::spawn(async move {
            while winch.recv().await.is_some() {
                if let Ok((cols, rows)) = crossterm::terminal::size()
                    && tx
                        .send(text_frame(&ExecControl::Resize { rows, cols }))
                        .await
                        .is_err()
                {
                    break;
                }
            }
        });
    }
    let mut session: Option<String> = None;
    let mut attempts = 0;
    loop {
        let start = ExecStart {
            tty: true,
            rows: Some(rows),
            cols: Some(cols),
            session: session.clone(),
            ..Default::default()
        };
        let socket = match client.exec_socket(project, name, &start, true).await {
            Ok(s) => s,
            Err(e) if session.is_some() && attempts < 10 => {
                attempts += 1;
                eprint!("\r\n[forkr: reconnecting ({e})]\r\n");
                tokio::time::sleep(Duration::from_millis(500 * attempts)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        attempts = 0;
        let (mut sink, source) = socket.split();
        let pump = async {
            while let Some(m) = rx.recv().await {
                if sink.send(m).await.is_err() {
                    return false;
                }
            }
            true
        };
        let end = {
            let drained = drain(source, &mut session);
            tokio::pin!(drained);
            // When our stdin ends, keep showing output until the shell exits.
            tokio::select! {
                end = &mut drained => end?,
                _ = pump => drained.await?,
            }
        };
        match end {
            End::Exit(code) => return Ok(code),
            End::Dropped(why) if session.is_some() => {
                eprint!("\r\n[forkr: connection lost ({why}); reattaching]\r\n");
            }
            End::Dropped(why) => anyhow::bail!("the console broke: {why}"),
        }
    }
}
