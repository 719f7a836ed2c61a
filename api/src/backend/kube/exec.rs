//! Commands in a box through Kubernetes exec: into the runner container `fork`, then into the
//! box's root with the runner image's static busybox (`chroot /volumes`), then `bash -lc`. The
//! container's environment is the box's, so the injected variables are there.
//!
//! The v4 exec protocol cannot close stdin alone, so stdin travels inside the command (base64)
//! rather than on the stream.

use axum::http::StatusCode;
use forkr_crds::labels;
use forkr_crds::validation as v;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, ListParams};
use tokio::io::AsyncReadExt;

use super::{KubeBackend, kube_error};
use crate::error::{ApiError, ApiResult};
use crate::wire::{ExecCommand, ExecOutput};

/// How long an exec waits for the box's pod to be ready.
const POD_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Quotes one word for a POSIX shell.
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// The shell script that runs `cmd` as `4kr exec` means it: args as words, or with `sh` one
/// shell string; `--env` applied last; `--wd` first; stdin fed from the script itself.
pub(super) fn script(cmd: &ExecCommand) -> ApiResult<String> {
    if cmd.command.is_empty() {
        return Err(ApiError::bad_request(
            "command_required",
            "command is required",
        ));
    }
    // The exec starts with the container's environment; the box's own (BOX_NAME and the rest,
    // as PID 1 has it) is in /etc/boxes-env.
    let mut out = String::from("set -a; [ -r /etc/boxes-env ] && . /etc/boxes-env; set +a; ");
    if let Some(wd) = &cmd.wd {
        out.push_str(&format!("cd {} && ", quote(wd)));
    }
    for kv in &cmd.env {
        v::parse_env_assignment(kv)?;
        out.push_str(&format!("export {}; ", quote(kv)));
    }
    let body = if cmd.sh {
        cmd.command.join(" ")
    } else {
        cmd.command
            .iter()
            .map(|w| quote(w))
            .collect::<Vec<_>>()
            .join(" ")
    };
    match &cmd.stdin {
        Some(input) => {
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::STANDARD.encode(input.as_bytes());
            out.push_str(&format!(
                "printf %s {} | base64 -d | ( {body} )",
                quote(&b64)
            ));
        }
        None => out.push_str(&body),
    }
    Ok(out)
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

    pub(super) async fn exec(
        &self,
        project: String,
        name: String,
        cmd: ExecCommand,
    ) -> ApiResult<ExecOutput> {
        v::validate_box_name(&name)?;
        if cmd.user.is_some() {
            return Err(ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                "not_supported",
                "exec --user is not available with the Kubernetes backend yet",
            ));
        }
        let script = script(&cmd)?;
        self.get(&project, &name).await?;
        let pod = self.box_pod(&project, &name).await?;
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &project);
        let argv = [
            "/bin/busybox",
            "chroot",
            "/volumes",
            "/bin/bash",
            "-lc",
            script.as_str(),
        ];
        let params = AttachParams::default()
            .container(labels::RUNNER_CONTAINER)
            .stdin(false)
            .stdout(true)
            .stderr(true);
        let mut att = pods.exec(&pod, argv, &params).await.map_err(kube_error)?;
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
    fn scripts_quote_words_and_carry_stdin() {
        let cmd = ExecCommand {
            command: vec!["echo".into(), "it's".into(), "$HOME".into()],
            env: vec!["A=b c".into()],
            wd: Some("/work".into()),
            ..Default::default()
        };
        assert_eq!(
            script(&cmd).unwrap(),
            r#"set -a; [ -r /etc/boxes-env ] && . /etc/boxes-env; set +a; cd '/work' && export 'A=b c'; 'echo' 'it'\''s' '$HOME'"#
        );
        let sh = ExecCommand {
            command: vec!["echo $HOME | wc -c".into()],
            sh: true,
            stdin: Some("hi".into()),
            ..Default::default()
        };
        assert_eq!(
            script(&sh).unwrap(),
            "set -a; [ -r /etc/boxes-env ] && . /etc/boxes-env; set +a; printf %s 'aGk=' | base64 -d | ( echo $HOME | wc -c )"
        );
        assert!(script(&ExecCommand::default()).is_err());
    }
}
