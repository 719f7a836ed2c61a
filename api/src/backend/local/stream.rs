//! Streamed exec and console in local mode: pipes for plain commands, a reattachable PTY
//! session (with its 64 KiB replay) for terminals.

use forkr_node_agent::exec::session::Event;
use forkr_node_agent::exec::{self, Stdio3, Target};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::LocalBackend;
use crate::backend::{BoxKey, ExecIn, ExecOut, ExecStream, pump_output};
use crate::error::{ApiError, ApiResult};
use crate::wire::{ExecCommand, ExecStart};

const DEFAULT_ROWS: u16 = 24;
const DEFAULT_COLS: u16 = 80;

impl LocalBackend {
    /// The body of [`Exec::exec_stream`](crate::backend::Exec::exec_stream).
    pub(super) async fn stream(&self, key: BoxKey, start: ExecStart) -> ApiResult<ExecStream> {
        let (project, name) = key.into_parts();
        if start.tty || start.session.is_some() {
            return self.console(project, name, start).await;
        }
        let cmd = ExecCommand {
            run: start.run,
            stdin: None,
            bg: false,
        };
        let req = self.exec_request(&project, &cmd, false).await?;
        let pid1 = self.pid1(&project, &name).await?;
        let mut prepared = exec::command(&Target::new(pid1), &req, Stdio3::Pipes)?;
        let std_cmd = std::mem::replace(&mut prepared.cmd, std::process::Command::new("true"));
        let mut child = tokio::process::Command::from(std_cmd)
            .spawn()
            .map_err(|e| ApiError::internal(format!("start exec: {e}")))?;
        drop(prepared);
        let (in_tx, mut in_rx) = mpsc::channel::<ExecIn>(16);
        let (out_tx, out_rx) = mpsc::channel::<ExecOut>(16);
        let mut stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let nsenter_pid = child.id();
        tokio::spawn(async move {
            while let Some(msg) = in_rx.recv().await {
                match msg {
                    ExecIn::Stdin(data) => {
                        if let Some(w) = stdin.as_mut()
                            && w.write_all(&data).await.is_err()
                        {
                            stdin = None;
                        }
                    }
                    ExecIn::Eof => stdin = None,
                    ExecIn::Signal(sig) => {
                        if let Some(pid) = nsenter_pid {
                            let _ = exec::signal_exec(pid, sig);
                        }
                    }
                    ExecIn::Resize { .. } => {}
                }
            }
        });
        let out_task = stdout.map(|o| tokio::spawn(pump_output(o, out_tx.clone(), false)));
        let err_task = stderr.map(|e| tokio::spawn(pump_output(e, out_tx.clone(), true)));
        tokio::spawn(async move {
            let code = match child.wait().await {
                Ok(st) => exec::exit_code(st),
                Err(_) => 255,
            };
            // All output first, then the exit code.
            for t in [out_task, err_task].into_iter().flatten() {
                let _ = t.await;
            }
            let _ = out_tx.send(ExecOut::Exit(code)).await;
        });
        Ok(ExecStream {
            input: in_tx,
            output: out_rx,
        })
    }

    async fn console(
        &self,
        project: String,
        name: String,
        start: ExecStart,
    ) -> ApiResult<ExecStream> {
        let session = match &start.session {
            // Bound to the box it was opened in: another box's session is not found.
            Some(id) => self.sessions.get(id, (&project, &name))?,
            None => {
                let cmd = ExecCommand {
                    run: start.run.clone(),
                    stdin: None,
                    bg: false,
                };
                // An empty command is an interactive login shell.
                let req = self.exec_request(&project, &cmd, true).await?;
                let pid1 = self.pid1(&project, &name).await?;
                let rows = start.rows.unwrap_or(DEFAULT_ROWS);
                let cols = start.cols.unwrap_or(DEFAULT_COLS);
                self.sessions
                    .open((&project, &name), &Target::new(pid1), &req, rows, cols)?
            }
        };
        let (replay, mut events) = session.attach();
        let (in_tx, mut in_rx) = mpsc::channel::<ExecIn>(16);
        let (out_tx, out_rx) = mpsc::channel::<ExecOut>(16);
        let _ = out_tx.send(ExecOut::Session(session.id.clone())).await;
        if !replay.is_empty() {
            let _ = out_tx.send(ExecOut::Stdout(replay)).await;
        }
        let writer = session.clone();
        tokio::spawn(async move {
            while let Some(msg) = in_rx.recv().await {
                match msg {
                    ExecIn::Stdin(data) => {
                        if writer.write(&data).await.is_err() {
                            break;
                        }
                    }
                    ExecIn::Resize { rows, cols } => {
                        let _ = writer.resize(rows, cols);
                    }
                    // A terminal's own keys carry signals (Ctrl-C); end of input is Ctrl-D.
                    ExecIn::Eof | ExecIn::Signal(_) => {}
                }
            }
            // The client went away: the shell keeps running for a reattach.
            writer.detach();
        });
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                let msg = match ev {
                    Event::Output(data) => ExecOut::Stdout(data),
                    Event::Exit(code) => ExecOut::Exit(code),
                };
                if out_tx.send(msg).await.is_err() {
                    break;
                }
            }
        });
        Ok(ExecStream {
            input: in_tx,
            output: out_rx,
        })
    }
}
