//! snapshot create/list/restore and diff status/file.

use forkr_api_proto::wire::CreateSnapshot;

use super::Context;
use crate::cli::{DiffCommand, PortCommand, SnapshotCommand};
use crate::output;

pub async fn snapshot(ctx: &Context, cmd: SnapshotCommand) -> anyhow::Result<String> {
    match cmd {
        SnapshotCommand::Create {
            target,
            name,
            name_flag,
            message,
            project,
            ..
        } => {
            let (p, b) = ctx.box_ref(&target, project.project.as_deref())?;
            // --name overrides the positional name.
            let req = CreateSnapshot {
                name: name_flag.or(name),
                description: message,
            };
            let s = ctx.client()?.create_snapshot(&p, &b, &req).await?;
            Ok(format!("{}\n", s.name))
        }
        SnapshotCommand::List {
            target, project, ..
        } => {
            let (p, b) = ctx.box_ref(&target, project.project.as_deref())?;
            let list = ctx.client()?.list_snapshots(&p, &b).await?;
            Ok(output::snapshot_table(&list))
        }
        SnapshotCommand::Restore {
            target,
            name,
            project,
            ..
        } => {
            let (p, b) = ctx.box_ref(&target, project.project.as_deref())?;
            ctx.client()?.restore_snapshot(&p, &b, &name).await?;
            Ok(format!("restored {b} from {name}\n"))
        }
    }
}

pub async fn diff(ctx: &Context, cmd: DiffCommand) -> anyhow::Result<String> {
    match cmd {
        DiffCommand::Status {
            target,
            against,
            project,
            ..
        } => {
            let (p, b) = ctx.box_ref(&target, project.project.as_deref())?;
            let d = ctx
                .client()?
                .diff_status(&p, &b, against.as_deref())
                .await?;
            Ok(d.text)
        }
        DiffCommand::File {
            target,
            path,
            against,
            project,
            ..
        } => {
            if !path.starts_with('/') {
                anyhow::bail!("path {path:?} must be absolute");
            }
            let (p, b) = ctx.box_ref(&target, project.project.as_deref())?;
            let d = ctx
                .client()?
                .diff_file(&p, &b, &path, against.as_deref())
                .await?;
            let mut out = format!("{}: {}\n", d.path, d.status);
            if let Some(diff) = d.diff {
                out.push_str(&diff);
            }
            Ok(out)
        }
    }
}

pub async fn port(ctx: &Context, cmd: PortCommand) -> anyhow::Result<String> {
    match cmd {
        PortCommand::List {
            target,
            project,
            json,
        } => {
            let (p, b) = ctx.box_ref(&target, project.project.as_deref())?;
            let ports = ctx.client()?.list_ports(&p, &b).await?;
            if json.json {
                return output::json(&ports);
            }
            Ok(ports_table(&ports))
        }
        PortCommand::Wait {
            target,
            port,
            timeout,
            project,
            json,
        } => {
            let (p, b) = ctx.box_ref(&target, project.project.as_deref())?;
            let view = ctx.client()?.wait_port(&p, &b, port, timeout).await?;
            if json.json {
                output::json(&view)
            } else {
                Ok(format!(
                    "port {} is listening ({})\n",
                    view.port, view.address
                ))
            }
        }
    }
}

/// `port list`'s PORT, ADDRESS table.
pub fn ports_table(ports: &[forkr_api_proto::wire::PortView]) -> String {
    let rows: Vec<Vec<String>> = ports
        .iter()
        .map(|p| vec![p.port.to_string(), p.address.clone()])
        .collect();
    output::table(&["PORT", "ADDRESS"], &rows)
}
