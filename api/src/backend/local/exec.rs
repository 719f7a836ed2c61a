//! Commands inside a running box, through the node agent's exec engine (nsenter into PID 1's
//! namespaces and root) and its one exec driver (`exec::stream`), as the agent runs them.

use async_trait::async_trait;
use forkr_crds::validation::{parse_env_assignment, validate_user_name};
use forkr_node_agent::exec::grace::Grace;
use forkr_node_agent::exec::stream::{self, Input, Output};
use forkr_node_agent::exec::{self, ExecRequest, Target, User};

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
        // The same driver as a stream: stdin fed from its own task, so a command that writes
        // before it reads cannot deadlock against us.
        let mut driver = stream::pipes(&Target::new(pid1), &req, Grace::current().exec)?;
        let input = driver.input;
        tokio::spawn(async move {
            if !stdin.is_empty() {
                let _ = input.send(Input::Stdin(stdin)).await;
            }
            let _ = input.send(Input::Eof).await;
        });
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let mut exit_code = None;
        while let Some(o) = driver.output.recv().await {
            match o {
                Output::Stdout(b) => stdout.extend_from_slice(&b),
                Output::Stderr(b) => stderr.extend_from_slice(&b),
                Output::Exit(c) => exit_code = Some(c),
                Output::Session(_) => {}
            }
        }
        let exit_code = exit_code
            .ok_or_else(|| ApiError::internal("the command ended without an exit code"))?;
        Ok(ExecOutput {
            exit_code,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
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
