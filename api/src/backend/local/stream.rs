//! Streamed exec and console in local mode: a thin adapter from the backend's `ExecIn` and
//! `ExecOut` to the node agent's exec driver (`forkr_node_agent::exec::stream`), so local
//! mode and the agent behave the same (pipe sizes, signals, the reconnect grace).

use forkr_node_agent::exec::Target;
use forkr_node_agent::exec::grace::Grace;
use forkr_node_agent::exec::stream::{self, Input, Output};
use tokio::sync::mpsc;

use super::LocalBackend;
use crate::backend::{BoxKey, ExecIn, ExecOut, ExecStream};
use crate::error::ApiResult;
use crate::wire::{ExecCommand, ExecStart};

const DEFAULT_ROWS: u16 = 24;
const DEFAULT_COLS: u16 = 80;

impl LocalBackend {
    /// The body of [`Exec::exec_stream`](crate::backend::Exec::exec_stream).
    pub(super) async fn stream(&self, key: BoxKey, start: ExecStart) -> ApiResult<ExecStream> {
        let (project, name) = key.into_parts();
        let tty = start.tty || start.session.is_some();
        let driver = match &start.session {
            // Bound to the box it was opened in: another box's session is not found.
            Some(id) => stream::console(self.sessions.get(id, (&project, &name))?),
            None => {
                let cmd = ExecCommand {
                    run: start.run,
                    stdin: None,
                    bg: false,
                };
                // With a terminal, an empty command is an interactive login shell.
                let req = self.exec_request(&project, &cmd, tty).await?;
                let target = Target::new(self.pid1(&project, &name).await?);
                if tty {
                    let rows = start.rows.unwrap_or(DEFAULT_ROWS);
                    let cols = start.cols.unwrap_or(DEFAULT_COLS);
                    let session =
                        self.sessions
                            .open((&project, &name), &target, &req, rows, cols)?;
                    stream::console(session)
                } else {
                    stream::pipes(&target, &req, Grace::current().exec)?
                }
            }
        };
        Ok(adapt(driver))
    }
}

/// The backend's channels over the driver's.
fn adapt(driver: stream::Stream) -> ExecStream {
    let (in_tx, mut in_rx) = mpsc::channel::<ExecIn>(16);
    let (out_tx, out_rx) = mpsc::channel::<ExecOut>(16);
    let to_driver = driver.input;
    tokio::spawn(async move {
        while let Some(m) = in_rx.recv().await {
            let m = match m {
                ExecIn::Stdin(d) => Input::Stdin(d),
                ExecIn::Eof => Input::Eof,
                ExecIn::Resize { rows, cols } => Input::Resize { rows, cols },
                ExecIn::Signal(s) => Input::Signal(s),
            };
            if to_driver.send(m).await.is_err() {
                return;
            }
        }
    });
    tokio::spawn(stream::forward(driver.output, out_tx, |o| match o {
        Output::Session(id) => ExecOut::Session(id),
        Output::Stdout(b) => ExecOut::Stdout(b),
        Output::Stderr(b) => ExecOut::Stderr(b),
        Output::Exit(c) => ExecOut::Exit(c),
    }));
    ExecStream {
        input: in_tx,
        output: out_rx,
    }
}
