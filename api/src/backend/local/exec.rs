//! Commands inside a running box, through the node agent's exec engine (nsenter into PID 1's
//! namespaces and root).

use std::io::Write;

use async_trait::async_trait;
use forkr_crds::validation::{parse_env_assignment, validate_user_name};
use forkr_node_agent::exec::{self, ExecRequest, Stdio3, Target, User};

use super::LocalBackend;
use crate::backend::{BoxKey, Exec, ExecStream};
use crate::error::{ApiError, ApiResult};
use crate::wire::{BackgroundExec, ExecCommand, ExecOutput, ExecStart};

impl LocalBackend {
    /// The engine's request: env pairs checked, `--user` looked up in the project's users. An
    /// empty command is refused unless `interactive` (a console's login shell).
    pub(super) async fn exec_request(
        &self,
        project: &str,
        cmd: &ExecCommand,
        interactive: bool,
    ) -> ApiResult<ExecRequest> {
        if cmd.run.command.is_empty() && !interactive {
            return Err(ApiError::bad_request(
                "command_required",
                "command is required",
            ));
        }
        let mut env = Vec::with_capacity(cmd.run.env.len());
        for pair in &cmd.run.env {
            env.push(parse_env_assignment(pair)?);
        }
        let user = match &cmd.run.user {
            None => None,
            Some(name) => {
                validate_user_name(name)?;
                let (p, n) = (project.to_owned(), name.clone());
                let found = self.store(move |s| s.get_user(&p, &n)).await?;
                let u = found.ok_or_else(|| {
                    ApiError::not_found("user", name).with_hint("create it with `4kr user create`")
                })?;
                Some(User {
                    name: u.name,
                    uid: u.uid,
                })
            }
        };
        if let Some(wd) = &cmd.run.wd {
            forkr_crds::validation::normalize_box_path(wd)?;
        }
        Ok(ExecRequest {
            args: cmd.run.command.clone(),
            sh: cmd.run.sh,
            env,
            wd: cmd.run.wd.clone(),
            user,
        })
    }
}

#[async_trait]
impl Exec for LocalBackend {
    async fn exec(&self, key: BoxKey, cmd: ExecCommand) -> ApiResult<ExecOutput> {
        let (project, name) = key.into_parts();
        let req = self.exec_request(&project, &cmd, false).await?;
        let pid1 = self.pid1(&project, &name).await?;
        let stdin = cmd.stdin.unwrap_or_default().into_bytes();
        tokio::task::spawn_blocking(move || -> forkr_node_agent::Result<ExecOutput> {
            let mut prepared = exec::command(&Target::new(pid1), &req, Stdio3::Pipes)?;
            let mut child = prepared
                .cmd
                .spawn()
                .map_err(|source| forkr_node_agent::Error::Io {
                    context: "start nsenter".into(),
                    source,
                })?;
            drop(prepared);
            // Feed stdin from its own thread, so a command that writes before it reads cannot
            // deadlock against us.
            let feeder = child.stdin.take().map(|mut w| {
                std::thread::spawn(move || {
                    let _ = w.write_all(&stdin);
                })
            });
            let out = child
                .wait_with_output()
                .map_err(|source| forkr_node_agent::Error::Io {
                    context: "wait for the command".into(),
                    source,
                })?;
            if let Some(f) = feeder {
                let _ = f.join();
            }
            Ok(ExecOutput {
                exit_code: exec::exit_code(out.status),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        })
        .await
        .map_err(|e| ApiError::internal(format!("exec task failed: {e}")))?
        .map_err(ApiError::from)
    }

    async fn exec_background(&self, key: BoxKey, cmd: ExecCommand) -> ApiResult<BackgroundExec> {
        let (project, name) = key.into_parts();
        let req = self.exec_request(&project, &cmd, false).await?;
        let pid1 = self.pid1(&project, &name).await?;
        let pid =
            tokio::task::spawn_blocking(move || exec::spawn_background(&Target::new(pid1), &req))
                .await
                .map_err(|e| ApiError::internal(format!("exec task failed: {e}")))??;
        Ok(BackgroundExec { pid })
    }

    async fn logs(&self, key: BoxKey, pid: Option<u32>, offset: u64) -> ApiResult<Vec<u8>> {
        let (project, name) = key.into_parts();
        let pid1 = self.pid1(&project, &name).await?;
        tokio::task::spawn_blocking(move || exec::logs::read_log(&Target::new(pid1), pid, offset))
            .await
            .map_err(|e| ApiError::internal(format!("logs task failed: {e}")))?
            .map_err(ApiError::from)
    }

    async fn exec_stream(&self, key: BoxKey, start: ExecStart) -> ApiResult<ExecStream> {
        self.stream(key, start).await
    }
}
