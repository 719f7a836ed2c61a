//! `4kr`: the Forkr command line.

mod cli;
mod commands;
mod config;
#[cfg(test)]
mod golden;
mod output;
mod project;
mod target;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::commands::Context;
use crate::target::TargetFlags;

/// A command that printed its per-item report and still must exit non-zero (`delete a b`
/// where one failed).
#[derive(Debug)]
pub struct PartialFailure(pub String);

impl std::fmt::Display for PartialFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PartialFailure {}

/// What a command ends with: output and an exit code (exec passes its command's through).
enum Outcome {
    Text(String),
    Exec(commands::exec::Finished),
}

async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    if let Some(name) = cli.command.json_refused() {
        anyhow::bail!("--json is not supported for {name}");
    }
    let cwd = std::env::current_dir()?;
    let ctx = Context::new(
        TargetFlags {
            url: cli.url,
            profile: cli.profile,
        },
        cwd,
        Box::new(|k| std::env::var(k).ok()),
    );
    use commands::boxes;
    let text = match cli.command {
        Command::Create {
            name,
            base,
            fork,
            data,
            env,
            cpu,
            memory,
            project,
            json,
        } => {
            let args = boxes::CreateArgs {
                name,
                base,
                fork,
                data,
                env,
                cpu,
                memory,
                project: project.project,
                json: json.json,
            };
            boxes::create(&ctx, args).await?
        }
        Command::List { project, json } => {
            boxes::list(&ctx, project.project.as_deref(), json.json).await?
        }
        Command::Show {
            target,
            project,
            json,
        } => boxes::show(&ctx, &target, project.project.as_deref(), json.json).await?,
        Command::Update {
            target,
            settings,
            env,
            tag,
            project,
            json,
        } => {
            boxes::update(
                &ctx,
                &target,
                &settings,
                &env,
                &tag,
                project.project.as_deref(),
                json.json,
            )
            .await?
        }
        Command::Delete {
            targets,
            force,
            project,
            json,
        } => boxes::delete(&ctx, &targets, force, project.project.as_deref(), json.json).await?,
        Command::Stop {
            target,
            project,
            json,
        } => boxes::stop(&ctx, &target, project.project.as_deref(), json.json).await?,
        Command::Resume {
            target,
            project,
            json,
        } => boxes::resume(&ctx, &target, project.project.as_deref(), json.json).await?,
        Command::Publish {
            target,
            subdomain,
            host,
            domain,
            force,
            project,
            json,
        } => {
            let req = forkr_api_proto::wire::PublishBox {
                subdomain,
                host,
                domain,
                force,
            };
            boxes::publish(&ctx, &target, req, project.project.as_deref(), json.json).await?
        }
        Command::Unpublish {
            target,
            subdomain,
            host,
            domain,
            project,
            json,
        } => {
            let req = forkr_api_proto::wire::UnpublishBox {
                subdomain,
                host,
                domain,
            };
            boxes::unpublish(&ctx, &target, req, project.project.as_deref(), json.json).await?
        }
        Command::Exec(args) => return Ok(Outcome::Exec(commands::exec::exec(&ctx, args).await?)),
        Command::Console {
            target, project, ..
        } => {
            let done = commands::exec::console(&ctx, &target, project.project.as_deref()).await?;
            return Ok(Outcome::Exec(done));
        }
        Command::Ssh { target, .. } => commands::exec::ssh(&target)?,
        Command::Ps {
            target,
            args,
            project,
            ..
        } => {
            return Ok(Outcome::Exec(
                commands::exec::ps(&ctx, &target, args, project.project.as_deref()).await?,
            ));
        }
        Command::Logs {
            target,
            pid,
            follow,
            project,
            json,
        } => {
            commands::exec::logs(
                &ctx,
                &target,
                pid,
                follow,
                project.project.as_deref(),
                json.json,
            )
            .await?
        }
        Command::Cp {
            src, dest, project, ..
        } => commands::cp::cp(&ctx, &src, &dest, project.project.as_deref()).await?,
        Command::Inject {
            target,
            codex_auth,
            codex_toml,
            ssh_key,
            project,
            ..
        } => {
            let args = commands::inject::InjectArgs {
                codex_auth,
                codex_toml,
                ssh_key,
            };
            commands::inject::inject(&ctx, &target, args, project.project.as_deref()).await?
        }
        Command::Port(cmd) => commands::snapshots::port(&ctx, cmd).await?,
        Command::Snapshot(cmd) => commands::snapshots::snapshot(&ctx, cmd).await?,
        Command::Diff(cmd) => commands::snapshots::diff(&ctx, cmd).await?,
        Command::User(cmd) => commands::users::run(&ctx, cmd).await?,
        Command::Token(cmd) => commands::tokens::run(&ctx, cmd).await?,
        Command::Volume(cmd) => commands::volumes::run(&ctx, cmd).await?,
        Command::Base(cmd) => commands::bases::run(&ctx, cmd).await?,
        Command::Config(cmd) => commands::config::run(&ctx, cmd)?,
        Command::Docs { .. } => commands::docs::run(),
        Command::Completion { shell, .. } => commands::docs::completion(shell),
        Command::Local(cmd) => match cmd {
            cli::LocalCommand::Up {
                data,
                listen,
                domain,
                base_tarball,
                no_network,
                proxy_listen,
                ..
            } => {
                let args = commands::local::LocalArgs {
                    data_dir: data.data_dir,
                    listen,
                    domain,
                    base_tarball,
                    no_network,
                    proxy_listen,
                };
                commands::local::up(&ctx, args).await?
            }
            cli::LocalCommand::Down { data, .. } => commands::local::down(&data.data_dir).await?,
            cli::LocalCommand::Status { data, .. } => {
                commands::local::status(&ctx, &data.data_dir).await?
            }
        },
    };
    Ok(Outcome::Text(text))
}

/// Parses the command line. Usage errors keep clap's text and exit code 2, with the `Error: `
/// prefix every other error has.
fn parse() -> Result<Cli, i32> {
    match Cli::try_parse() {
        Ok(cli) => Ok(cli),
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            Err(0)
        }
        Err(e) => {
            let text = e.render().to_string();
            let text = text.strip_prefix("error: ").unwrap_or(&text);
            eprint!("Error: {text}");
            Err(e.exit_code())
        }
    }
}

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return ExitCode::from(u8::try_from(code).unwrap_or(2)),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async {
        match run(cli).await {
            Ok(Outcome::Text(text)) => {
                // A closed pipe (`4kr docs | head`) is not an error worth a message.
                let _ = std::io::stdout().write_all(text.as_bytes());
                0
            }
            Ok(Outcome::Exec(f)) => {
                let _ = std::io::stdout().write_all(&f.stdout);
                let _ = std::io::stderr().write_all(&f.stderr);
                f.code
            }
            Err(e) => {
                if let Some(PartialFailure(text)) = e.downcast_ref::<PartialFailure>() {
                    let _ = std::io::stdout().write_all(text.as_bytes());
                } else {
                    eprintln!("Error: {e}");
                }
                1
            }
        }
    });
    let _ = std::io::stdout().flush();
    // Not a normal return: a stdin reader may still be blocked on a terminal, and dropping the
    // runtime would wait for it forever.
    std::process::exit(code)
}
