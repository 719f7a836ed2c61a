//! Streamed exec and console in local mode: the node agent's exec driver itself (its `Input`
//! and `Output` are the backend's `ExecIn` and `ExecOut`), so local mode and the agent behave
//! the same (pipe sizes, signals, the reconnect grace).

use forkr_node_agent::exec::Target;
use forkr_node_agent::exec::grace::Grace;
use forkr_node_agent::exec::stream;

use super::LocalBackend;
use crate::backend::{BoxKey, ExecStream};
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
        Ok(driver)
    }
}
