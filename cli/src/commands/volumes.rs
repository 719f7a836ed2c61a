use forkr_api::wire::{CreateVolume, VolumeView};

use super::Context;
use crate::cli::DataCommand;
use crate::output;

fn rows(volumes: &[VolumeView]) -> String {
    let rows: Vec<Vec<String>> = volumes
        .iter()
        .map(|v| {
            vec![
                v.name.clone(),
                output::human_size(v.size),
                v.limit.clone().unwrap_or_else(|| "-".into()),
                v.created.clone(),
            ]
        })
        .collect();
    output::table(&["NAME", "SIZE", "LIMIT", "CREATED"], &rows)
}

pub async fn run(ctx: &Context, cmd: DataCommand) -> anyhow::Result<String> {
    match cmd {
        DataCommand::Create {
            name,
            size,
            project,
            json,
        } => {
            let p = ctx.project(project.project.as_deref())?;
            let v = ctx
                .client()?
                .create_volume(&p, &CreateVolume { name, size })
                .await?;
            if json.json {
                output::json(&v)
            } else {
                Ok(rows(&[v]))
            }
        }
        DataCommand::List { project, json } => {
            let vols = ctx
                .client()?
                .list_volumes(&ctx.project(project.project.as_deref())?)
                .await?;
            if json.json {
                output::json(&vols)
            } else {
                Ok(rows(&vols))
            }
        }
        DataCommand::Show {
            name,
            project,
            json,
        } => {
            let p = ctx.project(project.project.as_deref())?;
            let v = ctx.client()?.show_volume(&p, &name).await?;
            if json.json {
                output::json(&v)
            } else {
                Ok(rows(&[v]))
            }
        }
        DataCommand::Delete {
            names,
            project,
            json,
        } => {
            let p = ctx.project(project.project.as_deref())?;
            let client = ctx.client()?;
            let mut results = Vec::new();
            for name in names {
                let outcome = client
                    .delete_volume(&p, &name)
                    .await
                    .map_err(|e| e.to_string());
                results.push(output::Deleted::new(name, outcome));
            }
            output::delete_report(&results, json.json)
        }
    }
}
