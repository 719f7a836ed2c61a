//! Foreground exec and console over the WebSocket: stdin streamed in, stdout and stderr kept
//! apart, signals forwarded, the exit code kept; a console in raw mode that follows the
//! terminal's size and reattaches (with the last 64 KiB replayed) when the connection drops.

use std::io::Write;
use std::time::Duration;

use forkr_api_proto::client::{Client, ClientError, ExecFrames, ExecSink};
use forkr_api_proto::frame::{ClientFrame, ServerFrame};
use forkr_api_proto::wire::ExecStart;
use tokio::io::AsyncReadExt;

/// How a stream ended.
enum End {
    Exit(i32),
    /// The connection broke before an exit code arrived.
    Dropped(String),
}

/// Reads frames until the exit code, writing output as it comes. Returns how it ended and the
/// session id the stream announced.
async fn drain(mut frames: ExecFrames, session: &mut Option<String>) -> anyhow::Result<End> {
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    while let Some(frame) = frames.recv().await {
        let frame = match frame {
            Ok(f) => f,
            Err(ClientError::Stream(e)) => return Ok(End::Dropped(e.to_string())),
            Err(e) => return Err(e.into()),
        };
        match frame {
            ServerFrame::Stdout { data, .. } => {
                stdout.write_all(&data)?;
                stdout.flush()?;
            }
            ServerFrame::Stderr { data, .. } => {
                stderr.write_all(&data)?;
                stderr.flush()?;
            }
            ServerFrame::Session(id) => *session = Some(id),
            ServerFrame::Exit(code) => return Ok(End::Exit(code)),
            ServerFrame::Error(e) => anyhow::bail!(e.message),
        }
    }
    Ok(End::Dropped("the connection closed".into()))
}

/// Sends what the channel carries until it ends or the socket breaks; false when it broke.
async fn pump(sink: &mut ExecSink, rx: &mut tokio::sync::mpsc::Receiver<ClientFrame>) -> bool {
    while let Some(f) = rx.recv().await {
        if sink.send(&f).await.is_err() {
            return false;
        }
    }
    true
}

/// Runs a command with its streams attached to this process's; returns its exit code.
pub async fn exec(
    client: &Client,
    project: &str,
    name: &str,
    start: ExecStart,
) -> anyhow::Result<i32> {
    let socket = client.exec_socket(project, name, &start, false).await?;
    let (mut sink, frames) = socket.split();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ClientFrame>(16);
    let stdin_tx = tx.clone();
    tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let _ = stdin_tx.send(ClientFrame::StdinEof).await;
                    break;
                }
                Ok(n) => {
                    let frame = ClientFrame::Stdin(buf[..n].to_vec());
                    if stdin_tx.send(frame).await.is_err() {
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
                    if tx.send(ClientFrame::Signal(sig)).await.is_err() {
                        break;
                    }
                }
            });
        }
    }
    drop(tx);
    let writer = tokio::spawn(async move { pump(&mut sink, &mut rx).await });
    let mut session = None;
    let end = drain(frames, &mut session).await;
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
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ClientFrame>(64);
    let stdin_tx = tx.clone();
    tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = stdin.read(&mut buf).await {
            if n == 0 {
                break;
            }
            if stdin_tx
                .send(ClientFrame::Stdin(buf[..n].to_vec()))
                .await
                .is_err()
            {
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
                    && tx.send(ClientFrame::Resize { rows, cols }).await.is_err()
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
        let (mut sink, frames) = socket.split();
        let pumped = pump(&mut sink, &mut rx);
        let end = {
            let drained = drain(frames, &mut session);
            tokio::pin!(drained);
            // When our stdin ends, keep showing output until the shell exits.
            tokio::select! {
                end = &mut drained => end?,
                _ = pumped => drained.await?,
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
