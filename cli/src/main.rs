//! `4kr`: the Forkr command line.

mod cli;
mod commands;
mod config;
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
        Command::Exec(args) => return Ok(Outcome::Exec(commands::exec::exec(&ctx, args).await?)),
        Command::Console { target, project } => {
            let done = commands::exec::console(&ctx, &target, project.project.as_deref()).await?;
            return Ok(Outcome::Exec(done));
        }
        Command::Ps {
            target,
            args,
            project,
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
        Command::Cp { src, dest, project } => {
            commands::cp::cp(&ctx, &src, &dest, project.project.as_deref()).await?
        }
        Command::Port(cmd) => commands::snapshots::port(&ctx, cmd).await?,
        Command::Snapshot(cmd) => commands::snapshots::snapshot(&ctx, cmd).await?,
        Command::Diff(cmd) => commands::snapshots::diff(&ctx, cmd).await?,
        Command::User(cmd) => commands::users::run(&ctx, cmd).await?,
        Command::Data(cmd) => commands::data::run(&ctx, cmd).await?,
        Command::Base(cmd) => commands::bases::run(&ctx, cmd).await?,
        Command::Config(cmd) => commands::config::run(&ctx, cmd)?,
        Command::Docs => commands::docs::run(),
        Command::Local(cmd) => match cmd {
            cli::LocalCommand::Up {
                data,
                listen,
                domain,
                base_tarball,
                no_network,
            } => {
                let args = commands::local::LocalArgs {
                    data_dir: data.data_dir,
                    listen,
                    domain,
                    base_tarball,
                    no_network,
                };
                commands::local::up(&ctx, args).await?
            }
            cli::LocalCommand::Down { data } => commands::local::down(&data.data_dir).await?,
            cli::LocalCommand::Status { data } => {
                commands::local::status(&ctx, &data.data_dir).await?
            }
        },
    };
    Ok(Outcome::Text(text))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
