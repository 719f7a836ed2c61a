//! exec, ps, logs. Foreground exec here runs through `POST .../exec`: stdin is read whole when
//! it is not a terminal, and the command's exit code becomes 4kr's.

use std::io::{IsTerminal, Write};

use forkr_api_proto::wire::{Command, CreateBox, ExecCommand, ExecStart};

use super::Context;
use crate::cli::ExecArgs;
use crate::output;

/// What `exec` ends with: text to print and the exit code to leave with.
pub struct Finished {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub code: i32,
}

fn ephemeral_name() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    format!("ephemeral-{}-{millis}", std::process::id())
}

/// Makes an ephemeral box (`ephemeral-<pid>-<millis>`, announced on stderr) and returns its
/// name. Ctrl-C while it is being made lets the create finish, then deletes the box: aborting
/// the request could leave a box that the server finishes after the delete.
pub async fn make_ephemeral(
    client: &forkr_api_proto::client::Client,
    project: &str,
) -> anyhow::Result<String> {
    let name = ephemeral_name();
    eprintln!("ephemeral fork: {name}");
    let req = CreateBox {
        name: name.clone(),
        ephemeral: true,
        ..Default::default()
    };
    let create = client.create_box(project, &req);
    tokio::pin!(create);
    let interrupted = tokio::select! {
        made = &mut create => {
            made?;
            false
        }
        _ = tokio::signal::ctrl_c() => {
            let _ = create.await;
            true
        }
    };
    if interrupted {
        let _ = client.delete_box(project, &name, true).await;
        anyhow::bail!("interrupted");
    }
    Ok(name)
}

/// Runs `work` unless Ctrl-C comes first (for work that does not forward the signal itself),
/// so that the caller's cleanup still runs.
pub async fn until_ctrl_c<T>(
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::select! {
        done = work => done,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
    }
}

pub async fn exec(ctx: &Context, a: ExecArgs) -> anyhow::Result<Finished> {
    if a.json.json && !a.bg {
        anyhow::bail!("--json is not supported in foreground mode");
    }
    let parsed = forkr_crds::validation::parse_ref(&a.target)?;
    let resolved = parsed.resolve(&ctx.project(a.project.project.as_deref())?, |k| ctx.env(k))?;
    let client = ctx.client()?;
    let project = resolved.project;
    let (name, ephemeral) = match resolved.target {
        forkr_crds::validation::ResolvedTarget::Named(n) => (n, false),
        forkr_crds::validation::ResolvedTarget::Ephemeral => {
            if a.json.json {
                anyhow::bail!("--json is not supported for ephemeral exec");
            }
            (make_ephemeral(&client, &project).await?, true)
        }
    };
    let result = run(ctx, &client, &project, &name, a).await;
    if ephemeral {
        // Ephemeral deletes always force.
        let _ = client.delete_box(&project, &name, true).await;
    }
    result
}

async fn run(
    _ctx: &Context,
    client: &forkr_api_proto::client::Client,
    project: &str,
    name: &str,
    a: ExecArgs,
) -> anyhow::Result<Finished> {
    let mut command = a.command;
    if command.is_empty() {
        if a.bg || std::io::stdin().is_terminal() {
            anyhow::bail!("a command is required (after --)");
        }
        // No command and stdin is not a terminal: bash reads the script from stdin.
        command = vec!["bash".into()];
    }
    // One command shape for both ways of running it.
    let run = Command {
        command,
        sh: a.sh,
        env: a.env,
        wd: a.wd,
        user: a.user,
    };
    if a.bg {
        let cmd = ExecCommand {
            run,
            stdin: None,
            bg: true,
        };
        let started = client.exec_background(project, name, &cmd).await?;
        let text = if a.json.json {
            output::json(&started)?
        } else {
            format!("pid={}\n", started.pid)
        };
        return Ok(Finished {
            stdout: text.into_bytes(),
            stderr: Vec::new(),
            code: 0,
        });
    }
    let start = ExecStart {
        run,
        ..Default::default()
    };
    let code = super::stream::exec(client, project, name, start).await?;
    Ok(Finished {
        stdout: Vec::new(),
        stderr: Vec::new(),
        code,
    })
}

/// `4kr console BOX` (or `-`): an interactive shell; 4kr exits with the shell's code.
pub async fn console(
    ctx: &Context,
    target: &str,
    project: Option<&str>,
) -> anyhow::Result<Finished> {
    let parsed = forkr_crds::validation::parse_ref(target)?;
    let resolved = parsed.resolve(&ctx.project(project)?, |k| ctx.env(k))?;
    let client = ctx.client()?;
    let (name, ephemeral) = match resolved.target {
        forkr_crds::validation::ResolvedTarget::Named(n) => (n, false),
        forkr_crds::validation::ResolvedTarget::Ephemeral => {
            (make_ephemeral(&client, &resolved.project).await?, true)
        }
    };
    let result = super::stream::console(&client, &resolved.project, &name).await;
    if ephemeral {
        let _ = client.delete_box(&resolved.project, &name, true).await;
    }
    Ok(Finished {
        stdout: Vec::new(),
        stderr: Vec::new(),
        code: result?,
    })
}

pub async fn ps(
    ctx: &Context,
    target: &str,
    args: Vec<String>,
    project: Option<&str>,
) -> anyhow::Result<Finished> {
    let (p, name) = ctx.box_ref(target, project)?;
    let mut command = vec!["ps".to_owned()];
    command.extend(args);
    let out = ctx
        .client()?
        .exec(
            &p,
            &name,
            &ExecCommand {
                run: Command {
                    command,
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await?;
    Ok(Finished {
        stdout: out.stdout.into_bytes(),
        stderr: out.stderr.into_bytes(),
        code: out.exit_code,
    })
}

pub async fn logs(
    ctx: &Context,
    target: &str,
    pid: Option<u32>,
    follow: bool,
    project: Option<&str>,
    json: bool,
) -> anyhow::Result<String> {
    if json && follow {
        anyhow::bail!("--json is not supported with --follow");
    }
    let Some(pid) = pid else {
        anyhow::bail!(
            "--pid is required: logs reads the log of one background process (start one with exec --bg)"
        );
    };
    let (p, name) = ctx.box_ref(target, project)?;
    let client = ctx.client()?;
    let mut offset = 0u64;
    let first = client.logs(&p, &name, Some(pid), 0).await?;
    if !follow {
        if json {
            return output::json(
                &serde_json::json!({"pid": pid, "log": String::from_utf8_lossy(&first)}),
            );
        }
        return Ok(String::from_utf8_lossy(&first).into_owned());
    }
    let mut stdout = std::io::stdout();
    let mut chunk = first;
    loop {
        stdout.write_all(&chunk)?;
        stdout.flush()?;
        offset += chunk.len() as u64;
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        chunk = client.logs(&p, &name, Some(pid), offset).await?;
    }
}

/// `4kr ssh`: forkr-api serves no SSH entry point, so this explains what to use instead.
pub fn ssh(target: &str) -> anyhow::Result<String> {
    anyhow::bail!(
        "ssh is not available on this server: forkr-api has no SSH entry point; use `4kr console {target}` for an interactive shell, or `4kr exec {target} -- CMD`"
    )
}
