//! Commands and files in a box on a cluster: the node agent first (the container-runtime path of
//! 000: `--user`, consoles that survive a reconnect, signals, files of a stopped box), then
//! Kubernetes exec when no agent answers.

use std::io::{Seek, Write};

use async_trait::async_trait;
use forkr_agent_proto::runtime as rt;
use forkr_crds::validation as v;

use super::KubeBackend;
use super::agent::{AgentErr, status_error, stream_upload};
use crate::backend::procnet::{listening_both, wait_for_port};
use crate::backend::{BoxKey, Exec, ExecStream, FileDownload, Files, Ports, Upload, parse_mode};
use crate::error::{ApiError, ApiResult};
use crate::wire::{
    self, BackgroundExec, ExecCommand, ExecOutput, ExecStart, FileQuery, FileWritten, PortView,
};

/// What every agent exec carries, checked as local mode checks it.
struct Command<'a> {
    args: &'a [String],
    sh: bool,
    env: &'a [String],
    wd: Option<&'a String>,
    user: Option<&'a String>,
}

impl<'a> From<&'a ExecCommand> for Command<'a> {
    fn from(c: &'a ExecCommand) -> Self {
        Command {
            args: &c.run.command,
            sh: c.run.sh,
            env: &c.run.env,
            wd: c.run.wd.as_ref(),
            user: c.run.user.as_ref(),
        }
    }
}

impl<'a> From<&'a ExecStart> for Command<'a> {
    fn from(c: &'a ExecStart) -> Self {
        Command {
            args: &c.run.command,
            sh: c.run.sh,
            env: &c.run.env,
            wd: c.run.wd.as_ref(),
            user: c.run.user.as_ref(),
        }
    }
}

/// The data-volume mount `path` is under, if any. `4kr cp` works on the root and the system
/// volumes only (001): under a mount, a file belongs to the root the mount shadows.
fn data_mount_of<'a>(mounts: &'a [forkr_crds::DataMount], path: &str) -> Option<&'a str> {
    mounts
        .iter()
        .map(|m| m.mount_path.trim_end_matches('/'))
        .find(|m| {
            path == *m
                || path
                    .strip_prefix(m)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
}

fn command_required() -> ApiError {
    ApiError::bad_request("command_required", "command is required")
}

impl KubeBackend {
    /// The node that holds the box's root, once it has one.
    async fn node_of(&self, project: &str, name: &str) -> ApiResult<Option<String>> {
        let b = self.get(project, name).await?;
        Ok(b.status.and_then(|s| s.node))
    }

    /// The box and the node that holds its root; 409 `box_not_ready` before it has one.
    pub(super) async fn rooted(
        &self,
        project: &str,
        name: &str,
    ) -> ApiResult<(forkr_crds::BoxResource, String)> {
        let b = self.get(project, name).await?;
        let node = b
            .status
            .as_ref()
            .and_then(|s| s.node.clone())
            .ok_or_else(|| {
                ApiError::conflict("box_not_ready", format!("box {name:?} has no root yet"))
            })?;
        Ok((b, node))
    }

    /// The agent's start message: env pairs checked, `--user` looked up in the project's users.
    async fn agent_start(
        &self,
        project: &str,
        name: &str,
        c: Command<'_>,
    ) -> ApiResult<rt::ExecStart> {
        let mut env = Vec::with_capacity(c.env.len());
        for pair in c.env {
            let (key, value) = v::parse_env_assignment(pair)?;
            env.push(rt::EnvVar { key, value });
        }
        if let Some(wd) = c.wd {
            v::normalize_box_path(wd)?;
        }
        let user = match c.user {
            None => None,
            Some(u) => {
                v::validate_user_name(u)?;
                let (p, n) = (project.to_owned(), u.clone());
                let found = self.store(move |s| s.get_user(&p, &n)).await?;
                let found = found.ok_or_else(|| {
                    ApiError::not_found("user", u).with_hint("create it with `4kr user create`")
                })?;
                Some(rt::User {
                    name: found.name,
                    uid: found.uid,
                })
            }
        };
        Ok(rt::ExecStart {
            r#box: Some(rt::BoxRef {
                project: project.to_owned(),
                name: name.to_owned(),
            }),
            args: c.args.to_vec(),
            sh: c.sh,
            env,
            wd: c.wd.cloned().unwrap_or_default(),
            user,
            ..Default::default()
        })
    }

    /// Kubernetes exec sees the box with its data volumes mounted, so it cannot reach the root
    /// under a mount: such a copy needs the agent rather than landing in the volume.
    /// Kubernetes exec writes through the box's own mounts, where `/box/bin` and `/box/all`
    /// are read-only: a project token is refused as the agent would refuse it, and an admin is
    /// told that only the node agent writes them. (A symlink into them fails on the read-only
    /// mount inside the box.)
    fn refuse_shared_volume(path: &str, shared_writes: bool) -> ApiResult<()> {
        let path = v::normalize_box_path(path)?;
        let Some(at) = forkr_agent_proto::runner::SHARED_MOUNTS
            .into_iter()
            .find(|at| path == *at || path.starts_with(&format!("{at}/")))
        else {
            return Ok(());
        };
        if !shared_writes {
            return Err(ApiError::forbidden(format!(
                "{path}: {at} is shared by every project and read-only in boxes; only an admin token may write it (4kr cp with an admin token)"
            )));
        }
        Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "agent_unavailable",
            format!("{path}: {at} is written by the node agent only, and it does not answer"),
        ))
    }

    fn refuse_data_mount(b: &forkr_crds::BoxResource, path: &str) -> ApiResult<()> {
        let path = v::normalize_box_path(path)?;
        match data_mount_of(&b.spec.data, &path) {
            Some(m) => Err(ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "agent_unavailable",
                format!(
                    "{path} is under the data-volume mount {m}: cp works on the box's root there, which only the node agent reaches, and it does not answer"
                ),
            )),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl Exec for KubeBackend {
    async fn exec(&self, key: BoxKey, cmd: ExecCommand) -> ApiResult<ExecOutput> {
        let (project, name) = key.into_parts();
        if cmd.run.command.is_empty() {
            return Err(command_required());
        }
        if let Some(node) = self.node_of(&project, &name).await? {
            let start = self.agent_start(&project, &name, (&cmd).into()).await?;
            let stdin = cmd.stdin.clone().unwrap_or_default().into_bytes();
            match self.agent_exec(&node, start, stdin).await {
                Ok(out) => return Ok(out),
                // `--user` needs the agent: Kubernetes exec runs as the container's root.
                Err(e) => e.or_fall_back(cmd.run.user.is_some())?,
            }
        }
        self.kube_exec(project, name, cmd).await
    }

    async fn exec_stream(&self, key: BoxKey, start: ExecStart) -> ApiResult<ExecStream> {
        let (project, name) = key.into_parts();
        let console = start.tty || start.session.is_some();
        if start.run.command.is_empty() && !console {
            return Err(command_required());
        }
        if let Some(node) = self.node_of(&project, &name).await? {
            let mut msg = self.agent_start(&project, &name, (&start).into()).await?;
            msg.tty = start.tty;
            msg.rows = start.rows.map(u32::from).unwrap_or(0);
            msg.cols = start.cols.map(u32::from).unwrap_or(0);
            msg.reattach = start.session.clone().unwrap_or_default();
            match self
                .agent_stream(&node, msg)
                .await
                .map_err(AgentErr::Before)
            {
                Ok(s) => return Ok(s),
                // A console session lives in the agent; nothing else can reattach to it.
                Err(e) => e.or_fall_back(start.run.user.is_some() || start.session.is_some())?,
            }
        }
        if start.session.is_some() {
            return Err(ApiError::not_found("console session", "").with_hint(
                "console sessions live in the node agent, which does not answer; start a new console",
            ));
        }
        self.kube_stream(project, name, start).await
    }

    async fn exec_background(&self, key: BoxKey, cmd: ExecCommand) -> ApiResult<BackgroundExec> {
        let (project, name) = key.into_parts();
        if cmd.run.command.is_empty() {
            return Err(command_required());
        }
        if let Some(node) = self.node_of(&project, &name).await? {
            let start = self.agent_start(&project, &name, (&cmd).into()).await?;
            let r = match self.runtime(&node).await {
                Ok(mut rt) => rt.exec_background(start).await,
                Err(s) => Err(s),
            };
            match r.map_err(AgentErr::Before) {
                Ok(r) => {
                    return Ok(BackgroundExec {
                        pid: r.into_inner().pid,
                    });
                }
                // `--user` needs the agent: Kubernetes exec runs as the container's root.
                Err(e) => e.or_fall_back(cmd.run.user.is_some())?,
            }
        }
        self.kube_background(project, name, cmd).await
    }

    async fn logs(&self, key: BoxKey, pid: Option<u32>, offset: u64) -> ApiResult<Vec<u8>> {
        let (project, name) = key.into_parts();
        let Some(pid) = pid else {
            return Err(ApiError::bad_request(
                "invalid_argument",
                "--pid is required: logs reads the log of one background process (start one with exec --bg)",
            ));
        };
        if let Some(node) = self.node_of(&project, &name).await? {
            let req = rt::LogsRequest {
                r#box: Some(rt::BoxRef {
                    project: project.clone(),
                    name: name.clone(),
                }),
                pid: Some(pid),
                offset,
                follow: false,
            };
            let r = match self.runtime(&node).await {
                Ok(mut rt) => rt.logs(req).await,
                Err(s) => Err(s),
            };
            match r.map_err(AgentErr::Before) {
                Ok(stream) => {
                    let mut stream = stream.into_inner();
                    let mut out = Vec::new();
                    while let Some(chunk) = stream.message().await.map_err(status_error)? {
                        out.extend(chunk.data);
                    }
                    return Ok(out);
                }
                Err(e) => e.or_fall_back(false)?,
            }
        }
        let out = self
            .kube_exec(
                project,
                name,
                ExecCommand {
                    run: wire::Command {
                        command: vec![format!(
                            "tail -c +{} /tmp/boxes/exec/{pid}.log",
                            offset.saturating_add(1)
                        )],
                        sh: true,
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await?;
        if out.exit_code != 0 {
            return Err(ApiError::not_found("log of pid", &pid.to_string()).with_hint(
                "only processes started with exec --bg have one, and /tmp is wiped when the box stops",
            ));
        }
        Ok(out.stdout.into_bytes())
    }
}

#[async_trait]
impl Ports for KubeBackend {
    /// The box's listening TCP sockets, from its own /proc/net tables.
    async fn list_ports(&self, key: BoxKey) -> ApiResult<Vec<PortView>> {
        const SPLIT: &str = "--forkr-tcp6--";
        let out = self
            .exec(
                key,
                ExecCommand {
                    run: wire::Command {
                        command: vec![format!(
                            "cat /proc/net/tcp; echo {SPLIT}; cat /proc/net/tcp6 2>/dev/null; true"
                        )],
                        sh: true,
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await?;
        let (v4, v6) = out.stdout.split_once(SPLIT).unwrap_or((&out.stdout, ""));
        Ok(listening_both(v4, v6.trim_start_matches('\n')))
    }

    async fn wait_port(
        &self,
        key: BoxKey,
        port: u16,
        timeout: std::time::Duration,
    ) -> ApiResult<PortView> {
        wait_for_port(key.name(), port, timeout, || self.list_ports(key.clone())).await
    }
}

#[async_trait]
impl Files for KubeBackend {
    /// `4kr cp` in: streamed to the agent, which writes inside the root (the box may be stopped).
    /// The agent decides whether the path lands in a shared volume; `shared_writes` says the
    /// caller is an admin.
    async fn put_file(
        &self,
        key: BoxKey,
        q: FileQuery,
        body: Upload,
        shared_writes: bool,
    ) -> ApiResult<FileWritten> {
        let (project, name) = key.into_parts();
        let mode = parse_mode(q.mode.as_deref())?;
        v::normalize_box_path(&q.path)?;
        let (b, node) = self.rooted(&project, &name).await?;
        let owner = q.uid.zip(q.gid);
        let mut client = match self.runtime(&node).await {
            Ok(c) => c,
            // No agent serves the node: the running box takes the file through Kubernetes exec.
            Err(s) => {
                tracing::debug!(error = %s, "no node agent for cp; trying Kubernetes exec");
                Self::refuse_data_mount(&b, &q.path)?;
                Self::refuse_shared_volume(&q.path, shared_writes)?;
                let size = self
                    .kube_put_file(project, name, q.path.clone(), mode, owner, body)
                    .await?;
                return Ok(FileWritten { path: q.path, size });
            }
        };
        let header = rt::PutFileHeader {
            r#box: Some(rt::BoxRef {
                project: project.clone(),
                name: name.clone(),
            }),
            path: q.path.clone(),
            mode,
            uid: owner.map(|o| o.0),
            gid: owner.map(|o| o.1),
            shared_writes,
        };
        let first = rt::PutFileChunk {
            msg: Some(rt::put_file_chunk::Msg::Header(header)),
        };
        let data = |d| rt::PutFileChunk {
            msg: Some(rt::put_file_chunk::Msg::Data(d)),
        };
        let written =
            stream_upload(first, body, self.max_upload, data, |s| client.put_file(s)).await?;
        Ok(FileWritten {
            path: q.path,
            size: written.bytes,
        })
    }

    /// `4kr cp` out: streamed from the agent into an unnamed temporary file.
    async fn get_file(&self, key: BoxKey, path: String) -> ApiResult<FileDownload> {
        let (project, name) = key.into_parts();
        v::normalize_box_path(&path)?;
        let (b, node) = self.rooted(&project, &name).await?;
        let mut client = match self.runtime(&node).await {
            Ok(c) => c,
            Err(s) => {
                tracing::debug!(error = %s, "no node agent for cp; trying Kubernetes exec");
                Self::refuse_data_mount(&b, &path)?;
                let (mode, uid, gid, bytes) = self.kube_get_file(project, name, path).await?;
                let mut file = tempfile_in_tmp()?;
                file.write_all(&bytes)
                    .and_then(|()| file.rewind())
                    .map_err(|e| ApiError::internal(format!("buffering the download: {e}")))?;
                return Ok(FileDownload {
                    file,
                    mode,
                    uid,
                    gid,
                    size: bytes.len() as u64,
                });
            }
        };
        let req = rt::GetFileRequest {
            r#box: Some(rt::BoxRef { project, name }),
            path,
        };
        let mut stream = client
            .get_file(req)
            .await
            .map_err(status_error)?
            .into_inner();
        let mut file = tempfile_in_tmp()?;
        let mut info = None;
        while let Some(chunk) = stream.message().await.map_err(status_error)? {
            match chunk.msg {
                Some(rt::get_file_chunk::Msg::Info(i)) => info = Some(i),
                Some(rt::get_file_chunk::Msg::Data(d)) => file
                    .write_all(&d)
                    .map_err(|e| ApiError::internal(format!("buffering the download: {e}")))?,
                None => {}
            }
        }
        let info = info.ok_or_else(|| ApiError::internal("the agent sent no file header"))?;
        file.rewind()
            .map_err(|e| ApiError::internal(format!("buffering the download: {e}")))?;
        Ok(FileDownload {
            file,
            mode: info.mode,
            uid: info.uid,
            gid: info.gid,
            size: info.size,
        })
    }
}

/// A file with no name, gone when closed.
fn tempfile_in_tmp() -> ApiResult<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o600)
        .open(std::env::temp_dir())
        .map_err(|e| ApiError::internal(format!("a temporary file for the download: {e}")))
}

#[cfg(test)]
mod tests {
    use super::data_mount_of;
    use forkr_crds::DataMount;

    #[test]
    fn paths_under_a_data_mount_are_found() {
        let mounts: Vec<DataMount> = ["/data", "/srv/db/"]
            .iter()
            .map(|p| DataMount {
                volume: "v".into(),
                mount_path: (*p).into(),
                read_only: false,
            })
            .collect();
        assert_eq!(data_mount_of(&mounts, "/data"), Some("/data"));
        assert_eq!(data_mount_of(&mounts, "/data/x/y"), Some("/data"));
        assert_eq!(data_mount_of(&mounts, "/srv/db/f"), Some("/srv/db"));
        assert_eq!(data_mount_of(&mounts, "/database"), None);
        assert_eq!(data_mount_of(&mounts, "/srv/dbx"), None);
        assert_eq!(data_mount_of(&mounts, "/work/f"), None);
    }
}
