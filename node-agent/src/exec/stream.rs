//! The one exec driver: spawns a foreground command and pumps it, for local mode (forkr-api's
//! exec/ws) and for the agent's gRPC `Exec` alike. Their adapters only translate messages.
//!
//! Plain exec: stdin, stdout and stderr on pipes of [`PIPE_BYTES`], stdout and stderr apart,
//! all output before the exit code, signals forwarded to the command's process group
//! (`exec::signal_exec`). Console: a [`PtySession`], input typed in, resizes and signals to
//! its foreground group. Both follow `exec::grace`: the client is attached while the driver's
//! output receiver lives; once it is dropped, output is buffered up to the bound and then no
//! longer read, and after the grace the command gets SIGHUP.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::error::Result;
use crate::exec::grace::{self, Attachment};
use crate::exec::session::{Event, PtySession};
use crate::exec::{self, ExecRequest, Stdio3, Target};
use crate::sys;

/// The size of an exec's pipes, and the most bytes one output message carries.
pub const PIPE_BYTES: usize = 1024 * 1024;

/// What a client sends into a running exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Stdin(Vec<u8>),
    /// End of stdin (a console ignores it: ^D is the terminal's end of input).
    Eof,
    Resize {
        rows: u16,
        cols: u16,
    },
    Signal(i32),
}

/// What a running exec sends back. `Exit` is last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A console's id, first, for a later reattach.
    Session(String),
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exit(i32),
}

impl Output {
    fn len(&self) -> usize {
        match self {
            Output::Stdout(b) | Output::Stderr(b) => b.len(),
            Output::Session(_) | Output::Exit(_) => 0,
        }
    }
}

/// Both ends of a running exec. Dropping `input` closes stdin; dropping `output` detaches the
/// client (the grace starts).
pub struct Stream {
    pub input: mpsc::Sender<Input>,
    pub output: mpsc::Receiver<Output>,
}

/// Starts `req` in the box on pipes. `grace` is how long it may run on after the client goes
/// away (`Grace::exec` in production). Call inside a tokio runtime.
pub fn pipes(target: &Target, req: &ExecRequest, grace: Duration) -> Result<Stream> {
    let mut child = exec::command(target, req, Stdio3::Pipes)?.spawn_async()?;
    let pid = child.id().unwrap_or(0);
    let stdin = child.stdin.take();
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    if let Some(w) = &stdin {
        sys::set_pipe_size(w, PIPE_BYTES as i32);
    }
    let (chunk_tx, chunk_rx) = mpsc::channel::<Output>(4);
    if let Some(r) = stdout {
        sys::set_pipe_size(&r, PIPE_BYTES as i32);
        tokio::spawn(read_pipe(r, chunk_tx.clone(), Output::Stdout));
    }
    if let Some(r) = stderr {
        sys::set_pipe_size(&r, PIPE_BYTES as i32);
        tokio::spawn(read_pipe(r, chunk_tx.clone(), Output::Stderr));
    }
    drop(chunk_tx);
    let (in_tx, in_rx) = mpsc::channel(16);
    let (out_tx, out_rx) = mpsc::channel(16);
    let (sig_tx, sig_rx) = mpsc::channel(16);
    tokio::spawn(feed_stdin(stdin, in_rx, sig_tx));
    tokio::spawn(run_pipes(child, pid, chunk_rx, sig_rx, out_tx, grace));
    Ok(Stream {
        input: in_tx,
        output: out_rx,
    })
}

/// Reads one pipe into the driver in chunks; stops at the end, or when the driver stops
/// taking chunks (backpressure reaches the command through the full pipe).
pub async fn read_pipe(
    mut r: impl tokio::io::AsyncRead + Unpin,
    tx: mpsc::Sender<Output>,
    wrap: fn(Vec<u8>) -> Output,
) {
    let mut buf = vec![0u8; PIPE_BYTES];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx.send(wrap(buf[..n].to_vec())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Client input: stdin to the pipe, signals to the driver (which owns the child, so a signal
/// never reaches a reused pid after the exit). Resizes mean nothing without a terminal.
async fn feed_stdin(
    mut stdin: Option<tokio::process::ChildStdin>,
    mut input: mpsc::Receiver<Input>,
    signals: mpsc::Sender<i32>,
) {
    while let Some(m) = input.recv().await {
        match m {
            Input::Stdin(data) => {
                if let Some(w) = stdin.as_mut()
                    && w.write_all(&data).await.is_err()
                {
                    stdin = None;
                }
            }
            Input::Eof => stdin = None,
            Input::Signal(sig) => {
                let _ = signals.send(sig).await;
            }
            Input::Resize { .. } => {}
        }
    }
    // The client went away or half-closed: stdin ends here.
}

/// The grace rule for a pipe exec: output to the client while attached; without one, kept up
/// to the bound and then not taken (the pipes fill and the command blocks); after the grace,
/// SIGHUP and the rest discarded so the command can finish. Then the exit code, last.
async fn run_pipes(
    mut child: tokio::process::Child,
    pid: u32,
    mut chunks: mpsc::Receiver<Output>,
    mut signals: mpsc::Receiver<i32>,
    out: mpsc::Sender<Output>,
    grace: Duration,
) {
    let mut attachment = Attachment::attached();
    // Kept for a reattach (a later protocol); never more than the bound.
    let mut kept: VecDeque<Output> = VecDeque::new();
    let mut kept_bytes = 0usize;
    let mut hung_up = false;
    let mut pipes_open = true;
    let code = loop {
        let attached = attachment.is_attached();
        let take = attached || hung_up || grace::may_read(kept_bytes);
        let deadline = if hung_up {
            None
        } else {
            attachment.deadline(grace)
        };
        let expiry = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            chunk = chunks.recv(), if pipes_open && take => match chunk {
                None => pipes_open = false,
                Some(o) if hung_up => drop(o),
                Some(o) if attached => {
                    if let Err(mpsc::error::SendError(o)) = out.send(o).await {
                        attachment.detach();
                        kept_bytes += o.len();
                        kept.push_back(o);
                    }
                }
                Some(o) => {
                    kept_bytes += o.len();
                    kept.push_back(o);
                }
            },
            status = child.wait(), if !pipes_open => {
                break match status {
                    Ok(st) => exec::exit_code(st),
                    Err(_) => 255,
                };
            }
            Some(sig) = signals.recv() => {
                let _ = exec::signal_exec(pid, sig);
            }
            _ = out.closed(), if attached => attachment.detach(),
            _ = expiry => {
                tracing::debug!(pid, "exec client gone past its grace: SIGHUP");
                let _ = exec::signal_exec(pid, libc::SIGHUP);
                hung_up = true;
                kept.clear();
                kept_bytes = 0;
            }
        }
    };
    let _ = out.send(Output::Exit(code)).await;
}

/// Attaches a client to a console session: its id first, then the replay, then live output;
/// input typed in, resizes, signals to the terminal's foreground group. The client detaches
/// when it drops the output receiver; the session then follows its grace.
pub fn console(session: Arc<PtySession>) -> Stream {
    let (replay, mut events) = session.attach();
    let (in_tx, mut in_rx) = mpsc::channel::<Input>(16);
    let (out_tx, out_rx) = mpsc::channel::<Output>(16);
    // A fresh channel with room: these two never wait.
    let _ = out_tx.try_send(Output::Session(session.id.clone()));
    if !replay.is_empty() {
        let _ = out_tx.try_send(Output::Stdout(replay));
    }
    let writer = session.clone();
    tokio::spawn(async move {
        while let Some(m) = in_rx.recv().await {
            match m {
                Input::Stdin(data) => {
                    if writer.write(&data).await.is_err() {
                        break;
                    }
                }
                Input::Resize { rows, cols } => {
                    let _ = writer.resize(rows, cols);
                }
                Input::Signal(sig) => {
                    let _ = writer.signal(sig);
                }
                // A terminal's end of input is ^D, typed by the client.
                Input::Eof => {}
            }
        }
    });
    tokio::spawn(async move {
        loop {
            tokio::select! {
                ev = events.recv() => {
                    let (msg, last) = match ev {
                        Some(Event::Output(b)) => (Output::Stdout(b), false),
                        Some(Event::Exit(c)) => (Output::Exit(c), true),
                        // Another client attached in our place.
                        None => return,
                    };
                    if out_tx.send(msg).await.is_err() || last {
                        break;
                    }
                }
                _ = out_tx.closed() => break,
            }
        }
        // Dropping `events` tells the session its client is gone.
        drop(events);
        session.detach_if_gone();
    });
    Stream {
        input: in_tx,
        output: out_rx,
    }
}

/// Carries a driver's output to a client's channel, mapped, until the exit code or until the
/// client's side closes; then drops the driver's receiver, which detaches the client.
pub async fn forward<T>(
    mut from: mpsc::Receiver<Output>,
    to: mpsc::Sender<T>,
    map: impl Fn(Output) -> T,
) {
    loop {
        tokio::select! {
            o = from.recv() => {
                let Some(o) = o else { return };
                let last = matches!(o, Output::Exit(_));
                if to.send(map(o)).await.is_err() || last {
                    return;
                }
            }
            _ = to.closed() => return,
        }
    }
}
