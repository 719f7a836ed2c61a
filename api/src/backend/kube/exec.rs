//! The fallback when no node agent answers: commands in a box through Kubernetes exec, into the
//! runner container `fork`, then into the box's root with the runner image's static busybox
//! (`chroot /volumes`), then `bash -lc`. The box's own environment is in /etc/boxes-env.
//!
//! The v4 exec protocol cannot close stdin alone, so a one-shot exec's stdin travels inside the
//! command (base64) rather than on the stream. Streams keep stdin open until the client leaves.

use axum::http::StatusCode;
use forkr_crds::labels;
use forkr_crds::validation as v;
use futures::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, AttachedProcess, ListParams, TerminalSize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::{KubeBackend, kube_error};
use crate::backend::{ExecIn, ExecOut, ExecStream};
use crate::error::{ApiError, ApiResult};
use crate::wire::{BackgroundExec, Command, ExecCommand, ExecOutput, ExecStart};
use forkr_node_agent::exec::stream::read_pipe;

/// How long an exec waits for the box's pod to be ready.
const POD_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

use forkr_node_agent::exec::ExecRequest;
use forkr_node_agent::exec::script::{self as builder, quote};

/// The shell script that runs `cmd` as `4kr exec` means it, built by the engine's own builder
/// (`exec::script::fallback`: the box's variables, `--env`, `--wd`, the words quoted the same
/// way), with stdin fed from the script itself when the command carries one.
pub(super) fn script(cmd: &ExecCommand) -> ApiResult<String> {
    if cmd.run.command.is_empty() {
        return Err(ApiError::bad_request(
            "command_required",
            "command is required",
        ));
    }
    let mut env = Vec::with_capacity(cmd.run.env.len());
    for kv in &cmd.run.env {
        env.push(v::parse_env_assignment(kv)?);
    }
    let req = ExecRequest {
        args: cmd.run.command.clone(),
        sh: cmd.run.sh,
        env,
        wd: cmd.run.wd.clone(),
        user: None,
    };
    let text = builder::fallback(&req)?;
    Ok(match &cmd.stdin {
        Some(input) => {
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::STANDARD.encode(input.as_bytes());
            // The builder's lines stay one group whose stdin is the decoded input.
            format!("printf %s {} | base64 -d | {{\n{text}\n}}", quote(&b64))
        }
        None => text,
    })
}

impl KubeBackend {
    /// The box's running pod whose runner container is ready. Right after a create, resume or
    /// restore the Box can say Running a moment before its pod does, so this waits a little.
    async fn box_pod(&self, project: &str, name: &str) -> ApiResult<String> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), project);
        let lp = ListParams::default().labels(&format!("{}={name}", labels::LABEL_BOX));
        let until = std::time::Instant::now() + POD_WAIT;
        loop {
            let list = pods.list(&lp).await.map_err(kube_error)?;
            let ready = list
                .items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .find(|p| {
                    p.status
                        .as_ref()
                        .and_then(|s| s.container_statuses.as_ref())
                        .is_some_and(|cs| {
                            cs.iter()
                                .any(|c| c.name == labels::RUNNER_CONTAINER && c.ready)
                        })
                })
                .and_then(|p| p.metadata.name.clone());
            if let Some(pod) = ready {
                return Ok(pod);
            }
            if std::time::Instant::now() >= until {
                return Err(ApiError::conflict(
                    "box_not_running",
                    format!("box {name:?} is not running; resume it first"),
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    }

    /// Starts `bash -lc script` (or a login shell) in the box's root through Kubernetes exec.
    async fn attach(
        &self,
        project: &str,
        name: &str,
        script: Option<&str>,
        params: AttachParams,
    ) -> ApiResult<AttachedProcess> {
        v::validate_box_name(name)?;
        self.get(project, name).await?;
        let pod = self.box_pod(project, name).await?;
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), project);
        let mut argv = vec!["/bin/busybox", "chroot", "/volumes", "/bin/bash", "-l"];
        if let Some(s) = script {
            argv.extend(["-c", s]);
        }
        let params = params.container(labels::RUNNER_CONTAINER);
        pods.exec(&pod, argv, &params).await.map_err(kube_error)
    }

    pub(super) async fn kube_exec(
        &self,
        project: String,
        name: String,
        cmd: ExecCommand,
    ) -> ApiResult<ExecOutput> {
        if cmd.run.user.is_some() {
            return Err(user_needs_agent());
        }
        // The command travels in the exec request's URL; a large stdin goes ahead as a file.
        let staged = match &cmd.stdin {
            Some(input) if input.len() > STDIN_INLINE => {
                let path = format!(
                    "/tmp/.forkr-stdin-{}",
                    jiff::Timestamp::now().as_nanosecond().unsigned_abs()
                );
                let bytes = axum::body::Bytes::from(input.clone().into_bytes());
                let body = futures::stream::once(async move { Ok(bytes) }).boxed();
                self.kube_put_file(
                    project.clone(),
                    name.clone(),
                    path.clone(),
                    0o600,
                    None,
                    body,
                )
                .await?;
                Some(path)
            }
            _ => None,
        };
        let script = match &staged {
            Some(path) => {
                let body = script(&ExecCommand {
                    stdin: None,
                    ..cmd.clone()
                })?;
                let q = quote(path);
                format!("( {body} ) < {q}; rc=$?; rm -f {q}; exit $rc")
            }
            None => script(&cmd)?,
        };
        self.run_script(&project, &name, &script).await
    }

    /// One `bash -lc` to completion; its stdin is whatever the script gives it.
    async fn run_script(&self, project: &str, name: &str, script: &str) -> ApiResult<ExecOutput> {
        let params = AttachParams::default()
            .stdin(false)
            .stdout(true)
            .stderr(true);
        let mut att = self.attach(project, name, Some(script), params).await?;
        let status = att.take_status();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let (stdout, stderr) = (att.stdout(), att.stderr());
        let read_out = async {
            if let Some(mut s) = stdout {
                let _ = s.read_to_end(&mut out).await;
            }
        };
        let read_err = async {
            if let Some(mut s) = stderr {
                let _ = s.read_to_end(&mut err).await;
            }
        };
        tokio::join!(read_out, read_err);
        let exit_code = match status {
            Some(st) => exit_code(st.await),
            None => 0,
        };
        att.join()
            .await
            .map_err(|e| ApiError::internal(format!("exec stream: {e}")))?;
        Ok(ExecOutput {
            exit_code,
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr: String::from_utf8_lossy(&err).into_owned(),
        })
    }

    /// A streamed exec or a console (a fresh one: sessions live in the agent).
    pub(super) async fn kube_stream(
        &self,
        project: String,
        name: String,
        start: ExecStart,
    ) -> ApiResult<ExecStream> {
        if start.run.user.is_some() {
            return Err(user_needs_agent());
        }
        let script = if start.run.command.is_empty() {
            None
        } else {
            Some(script(&ExecCommand {
                run: Command {
                    user: None,
                    ..start.run.clone()
                },
                ..Default::default()
            })?)
        };
        // A terminal merges stderr into its output, as the protocol requires.
        let params = AttachParams::default()
            .stdin(true)
            .stdout(true)
            .stderr(!start.tty)
            .tty(start.tty);
        let mut att = self
            .attach(&project, &name, script.as_deref(), params)
            .await?;
        let (in_tx, mut in_rx) = mpsc::channel::<ExecIn>(16);
        let (out_tx, out_rx) = mpsc::channel::<ExecOut>(16);
        let mut stdin = att.stdin();
        // Dropping stdin closes the whole exec websocket under the v4 protocol, losing the
        // output still to come; only v5 (Kubernetes 1.30 and later) can close stdin alone.
        let can_close_stdin = self.stdin_close_supported().await;
        let mut resize = if start.tty { att.terminal_size() } else { None };
        if let (Some(r), Some(rows), Some(cols)) = (resize.as_mut(), start.rows, start.cols) {
            let _ = r
                .send(TerminalSize {
                    width: cols,
                    height: rows,
                })
                .await;
        }
        tokio::spawn(async move {
            while let Some(m) = in_rx.recv().await {
                match m {
                    ExecIn::Stdin(b) => {
                        if let Some(w) = stdin.as_mut()
                            && w.write_all(&b).await.is_err()
                        {
                            stdin = None;
                        }
                    }
                    ExecIn::Eof if can_close_stdin => stdin = None,
                    ExecIn::Eof => {}
                    ExecIn::Resize { rows, cols } => {
                        if let Some(r) = resize.as_mut() {
                            let _ = r
                                .send(TerminalSize {
                                    width: cols,
                                    height: rows,
                                })
                                .await;
                        }
                    }
                    // Kubernetes exec has no signal channel.
                    ExecIn::Signal(_) => {}
                }
            }
        });
        let (out, err) = (att.stdout(), att.stderr());
        let status = att.take_status();
        let out_task = out.map(|o| tokio::spawn(read_pipe(o, out_tx.clone(), ExecOut::Stdout)));
        let err_task = err.map(|e| tokio::spawn(read_pipe(e, out_tx.clone(), ExecOut::Stderr)));
        tokio::spawn(async move {
            for t in [out_task, err_task].into_iter().flatten() {
                let _ = t.await;
            }
            let code = match status {
                Some(st) => exit_code(st.await),
                None => 0,
            };
            let _ = out_tx.send(ExecOut::Exit(code)).await;
            let _ = att.join().await;
        });
        Ok(ExecStream {
            input: in_tx,
            output: out_rx,
        })
    }

    /// A detached command whose output goes to /tmp/boxes/exec/<pid>.log, as the agent does
    /// it: the inner shell's `$$` is the pid the box sees, and `exec` keeps it.
    pub(super) async fn kube_background(
        &self,
        project: String,
        name: String,
        cmd: ExecCommand,
    ) -> ApiResult<BackgroundExec> {
        let inner = script(&ExecCommand {
            stdin: None,
            ..cmd.clone()
        })?;
        // The engine's own wrapper (exec::script::background): detached, logged to
        // /tmp/boxes/exec/<pid>.log, its pid printed.
        let wrapper = builder::background(&inner);
        let out = self
            .kube_exec(
                project,
                name,
                ExecCommand {
                    run: Command {
                        command: vec![wrapper],
                        sh: true,
                        user: cmd.run.user,
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await?;
        let pid = out.stdout.trim().parse().map_err(|_| {
            ApiError::internal(format!(
                "starting the background command: {}{}",
                out.stdout, out.stderr
            ))
        })?;
        Ok(BackgroundExec { pid })
    }
}

/// Raw bytes per exec when a file goes in through Kubernetes exec. The command travels in the
/// request's URL: base64 twice (ours, then the stdin carried in the command) and URL-encoded,
/// 12 KiB stays well under the client's 64 KiB limit on a URI.
const CP_CHUNK: usize = 12 * 1024;

/// Stdin up to this size rides inside a one-shot exec's command; more is staged as a file.
const STDIN_INLINE: usize = 20 * 1024;

impl KubeBackend {
    /// `4kr cp` in without an agent: appended to a temporary name in chunks of execs, then
    /// moved into place, so a failed copy never leaves half a file at the path.
    pub(super) async fn kube_put_file(
        &self,
        project: String,
        name: String,
        path: String,
        mode: u32,
        owner: Option<(u32, u32)>,
        mut body: crate::backend::Upload,
    ) -> ApiResult<u64> {
        use base64::Engine as _;
        use futures::StreamExt as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let tmp = format!(
            "{path}.forkr-cp-{}",
            jiff::Timestamp::now().as_nanosecond().unsigned_abs()
        );
        // Straight to run_script: kube_exec stages large stdin through this very function.
        let run = |body: String, stdin: Option<String>| {
            let (project, name) = (project.clone(), name.clone());
            async move {
                let s = script(&ExecCommand {
                    run: Command {
                        command: vec![body],
                        sh: true,
                        ..Default::default()
                    },
                    stdin,
                    ..Default::default()
                })?;
                self.run_script(&project, &name, &s).await
            }
        };
        let check = |out: ExecOutput, what: &str| -> ApiResult<()> {
            if out.exit_code == 0 {
                return Ok(());
            }
            if out.exit_code == 3 {
                return Err(ApiError::bad_request(
                    "invalid_argument",
                    forkr_agent_proto::files::ONLY_FILES,
                ));
            }
            Err(ApiError::internal(format!("{what}: {}", out.stderr.trim())))
        };
        let (qp, qt) = (quote(&path), quote(&tmp));
        check(
            run(
                format!("[ -d {qp} ] && exit 3; mkdir -p \"$(dirname {qp})\" && : > {qt}"),
                None,
            )
            .await?,
            "starting the copy",
        )?;
        let mut size = 0u64;
        let mut pending: Vec<u8> = Vec::with_capacity(CP_CHUNK);
        let mut done = false;
        while !done {
            match body.next().await {
                Some(chunk) => {
                    let chunk = chunk.map_err(|e| {
                        ApiError::bad_request("upload_failed", format!("receiving the upload: {e}"))
                    })?;
                    size += chunk.len() as u64;
                    if size > self.max_upload {
                        let _ = run(format!("rm -f {qt}"), None).await;
                        return Err(crate::upload::too_large(self.max_upload));
                    }
                    pending.extend_from_slice(&chunk);
                }
                None => done = true,
            }
            while pending.len() >= CP_CHUNK || (done && !pending.is_empty()) {
                let n = pending.len().min(CP_CHUNK);
                let part: Vec<u8> = pending.drain(..n).collect();
                let out = run(format!("base64 -d >> {qt}"), Some(b64.encode(&part))).await?;
                if out.exit_code != 0 {
                    let _ = run(format!("rm -f {qt}"), None).await;
                }
                check(out, "writing the file")?;
            }
        }
        let chown = owner
            .map(|(u, g)| format!("chown {u}:{g} {qt} && "))
            .unwrap_or_default();
        let out = run(
            format!("chmod {mode:o} {qt} && {chown}mv -f {qt} {qp}"),
            None,
        )
        .await?;
        if out.exit_code != 0 {
            let _ = run(format!("rm -f {qt}"), None).await;
        }
        check(out, "finishing the file")?;
        Ok(size)
    }

    /// `4kr cp` out without an agent: the file's metadata and its bytes in base64 from one exec.
    pub(super) async fn kube_get_file(
        &self,
        project: String,
        name: String,
        path: String,
    ) -> ApiResult<(u32, u32, u32, Vec<u8>)> {
        use base64::Engine as _;
        let qp = quote(&path);
        let out = self
            .kube_exec(
                project,
                name,
                ExecCommand {
                    run: Command {
                        command: vec![format!(
                            "[ -e {qp} ] || exit 2; [ -f {qp} ] || exit 3; stat -L -c '%a %u %g' {qp} && base64 {qp}"
                        )],
                        sh: true,
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await?;
        match out.exit_code {
            0 => {}
            2 => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("{path}: no such file in the box"),
                ));
            }
            3 => {
                return Err(ApiError::bad_request(
                    "invalid_argument",
                    forkr_agent_proto::files::ONLY_FILES,
                ));
            }
            _ => {
                return Err(ApiError::internal(format!(
                    "reading {path}: {}",
                    out.stderr.trim()
                )));
            }
        }
        let (head, data) = out.stdout.split_once('\n').unwrap_or((&out.stdout, ""));
        let mut f = head.split_whitespace();
        let mut num = |radix: u32| f.next().and_then(|x| u32::from_str_radix(x, radix).ok());
        let (mode, uid, gid) = match (num(8), num(10), num(10)) {
            (Some(m), Some(u), Some(g)) => (m, u, g),
            _ => {
                return Err(ApiError::internal(format!(
                    "reading {path}: stat said {head:?}"
                )));
            }
        };
        let compact: String = data.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|e| ApiError::internal(format!("reading {path}: {e}")))?;
        Ok((mode, uid, gid, bytes))
    }

    /// Whether the API server speaks exec protocol v5, which closes stdin on its own.
    async fn stdin_close_supported(&self) -> bool {
        *self
            .stdin_close
            .get_or_init(|| async {
                match self.client.apiserver_version().await {
                    Ok(v) => {
                        let minor: u32 = v
                            .minor
                            .trim_end_matches(|c: char| !c.is_ascii_digit())
                            .parse()
                            .unwrap_or(0);
                        v.major == "1" && minor >= 30
                    }
                    Err(_) => false,
                }
            })
            .await
    }
}

fn user_needs_agent() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "agent_unavailable",
        "exec --user needs the node agent, which does not answer; Kubernetes exec runs as root",
    )
}

/// The exit code in the exec protocol's final status: success, or a `NonZeroExitCode` whose
/// cause `ExitCode` carries the number.
fn exit_code(st: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>) -> i32 {
    let Some(st) = st else { return 0 };
    if st.status.as_deref() == Some("Success") {
        return 0;
    }
    st.details
        .and_then(|d| d.causes)
        .and_then(|causes| {
            causes
                .into_iter()
                .find(|c| c.reason.as_deref() == Some("ExitCode"))
        })
        .and_then(|c| c.message)
        .and_then(|m| m.parse().ok())
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_are_the_engines_and_carry_stdin() {
        let cmd = ExecCommand {
            run: Command {
                command: vec!["echo".into(), "it's".into(), "$HOME".into()],
                env: vec!["A=b c".into()],
                wd: Some("/work".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            script(&cmd).unwrap(),
            "set -a; [ -r /etc/boxes-env ] && . /etc/boxes-env; set +a\nexport -- 'A=b c'\n\
             cd -- '/work' || exit 1\n'echo' 'it'\\''s' '$HOME'"
        );
        let sh = ExecCommand {
            run: Command {
                command: vec!["echo $HOME | wc -c".into()],
                sh: true,
                ..Default::default()
            },
            stdin: Some("hi".into()),
            ..Default::default()
        };
        assert_eq!(
            script(&sh).unwrap(),
            "printf %s 'aGk=' | base64 -d | {\nset -a; [ -r /etc/boxes-env ] && . /etc/boxes-env; set +a\necho $HOME | wc -c\n}"
        );
        assert!(script(&ExecCommand::default()).is_err());
        let nul = ExecCommand {
            run: Command {
                command: vec!["a\0b".into()],
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(script(&nul).is_err());
    }
}
