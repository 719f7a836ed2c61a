//! `4kr volume` (aliases `vol` and `data`): data volumes, their checkpoints and backups.

use forkr_api_proto::wire::{CheckpointVolume, CreateVolume, RestoreVolume, VolumeView};

use super::Context;
use crate::cli::{VolumeArg, VolumeCommand, VolumeCopyArgs};
use crate::output;

/// The NAME, SIZE, LIMIT, CREATED table.
pub fn table(volumes: &[VolumeView]) -> String {
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

/// Which shelf a copy goes on: checkpoints go with the volume, backups outlive it.
#[derive(Clone, Copy)]
enum Shelf {
    Checkpoint,
    Backup,
}

pub async fn run(ctx: &Context, cmd: VolumeCommand) -> anyhow::Result<String> {
    match cmd {
        VolumeCommand::Create {
            name,
            size,
            project,
            ..
        } => {
            let p = ctx.project(project.project.as_deref())?;
            let v = ctx
                .client()?
                .create_volume(&p, &CreateVolume { name, size })
                .await?;
            Ok(table(&[v]))
        }
        VolumeCommand::List { project, .. } => {
            let p = ctx.project(project.project.as_deref())?;
            Ok(table(&ctx.client()?.list_volumes(&p).await?))
        }
        VolumeCommand::Show { name, project, .. } => {
            let p = ctx.project(project.project.as_deref())?;
            Ok(table(&[ctx.client()?.show_volume(&p, &name).await?]))
        }
        VolumeCommand::Delete { names, project, .. } => {
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
            output::delete_report(&results, false)
        }
        VolumeCommand::Checkpoint(a) => copy(ctx, a, Shelf::Checkpoint).await,
        VolumeCommand::Backup(a) => copy(ctx, a, Shelf::Backup).await,
        VolumeCommand::Checkpoints(a) => copies(ctx, a, Shelf::Checkpoint).await,
        VolumeCommand::Backups(a) => copies(ctx, a, Shelf::Backup).await,
        VolumeCommand::Restore {
            name,
            checkpoint,
            backup,
            project,
            ..
        } => {
            let p = ctx.project(project.project.as_deref())?;
            let from = match (&checkpoint, &backup) {
                (Some(c), None) => format!("checkpoint {c}"),
                (None, Some(b)) => format!("backup {b}"),
                _ => anyhow::bail!("give exactly one of --checkpoint or --backup"),
            };
            let req = RestoreVolume { checkpoint, backup };
            ctx.client()?.restore_volume(&p, &name, &req).await?;
            Ok(format!("restored {name} from {from}\n"))
        }
    }
}

/// Takes a checkpoint or backup and prints its name.
async fn copy(ctx: &Context, a: VolumeCopyArgs, shelf: Shelf) -> anyhow::Result<String> {
    let p = ctx.project(a.project.project.as_deref())?;
    // --name overrides the positional name, as for snapshots.
    let req = CheckpointVolume {
        name: a.name_flag.or(a.name),
        description: a.message,
    };
    let client = ctx.client()?;
    let made = match shelf {
        Shelf::Checkpoint => client.checkpoint_volume(&p, &a.volume, &req).await?,
        Shelf::Backup => client.backup_volume(&p, &a.volume, &req).await?,
    };
    Ok(format!("{}\n", made.name))
}

/// The NAME, SIZE, CREATED, DESCRIPTION table of a volume's checkpoints or backups.
async fn copies(ctx: &Context, a: VolumeArg, shelf: Shelf) -> anyhow::Result<String> {
    let p = ctx.project(a.project.project.as_deref())?;
    let client = ctx.client()?;
    let list = match shelf {
        Shelf::Checkpoint => client.list_volume_checkpoints(&p, &a.volume).await?,
        Shelf::Backup => client.list_volume_backups(&p, &a.volume).await?,
    };
    Ok(output::snapshot_table(&list))
}
