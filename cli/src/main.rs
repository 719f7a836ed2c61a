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

async fn run(cli: Cli) -> anyhow::Result<String> {
    let cwd = std::env::current_dir()?;
    let ctx = Context::new(
        TargetFlags {
            url: cli.url,
            profile: cli.profile,
        },
        cwd,
        Box::new(|k| std::env::var(k).ok()),
    );
    match cli.command {
        Command::User(cmd) => commands::users::run(&ctx, cmd).await,
        Command::Data(cmd) => commands::data::run(&ctx, cmd).await,
        Command::Base(cmd) => commands::bases::run(&ctx, cmd).await,
        Command::Config(cmd) => commands::config::run(&ctx, cmd),
        Command::Docs => Ok(commands::docs::run()),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(text) => {
            // A closed pipe (`4kr docs | head`) is not an error worth a message.
            let _ = std::io::stdout().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            if let Some(PartialFailure(text)) = e.downcast_ref::<PartialFailure>() {
                let _ = std::io::stdout().write_all(text.as_bytes());
            } else {
                eprintln!("Error: {e}");
            }
            ExitCode::FAILURE
        }
    }
}
