use forkr_api_proto::wire::{CreateUser, UpdateUser, UserView};

use super::Context;
use crate::cli::UserCommand;
use crate::output;

/// The NAME, UID, GID, HOME, SHELL table.
pub fn table(users: &[UserView]) -> String {
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| {
            vec![
                u.name.clone(),
                u.uid.to_string(),
                u.gid.to_string(),
                u.home.clone(),
                u.shell.clone(),
            ]
        })
        .collect();
    output::table(&["NAME", "UID", "GID", "HOME", "SHELL"], &rows)
}

pub async fn run(ctx: &Context, cmd: UserCommand) -> anyhow::Result<String> {
    match cmd {
        UserCommand::List { project, json } => {
            let users = ctx
                .client()?
                .list_users(&ctx.project(project.project.as_deref())?)
                .await?;
            if json.json {
                output::json(&users)
            } else {
                Ok(table(&users))
            }
        }
        UserCommand::Create {
            name,
            shell,
            project,
            json,
        } => {
            let p = ctx.project(project.project.as_deref())?;
            let user = ctx
                .client()?
                .create_user(&p, &CreateUser { name, shell })
                .await?;
            if json.json {
                output::json(&user)
            } else {
                Ok(table(&[user]))
            }
        }
        UserCommand::Update {
            name,
            shell,
            project,
            json,
        } => {
            let p = ctx.project(project.project.as_deref())?;
            let user = ctx
                .client()?
                .update_user(&p, &name, &UpdateUser { shell })
                .await?;
            if json.json {
                output::json(&user)
            } else {
                Ok(table(&[user]))
            }
        }
        UserCommand::Delete { name, project, .. } => {
            let p = ctx.project(project.project.as_deref())?;
            ctx.client()?.delete_user(&p, &name).await?;
            Ok(format!("{name}: deleted\n"))
        }
    }
}
