//! `4kr base ...`: list, show, save, import and delete base versions; `base build` is in
//! [`super::build`], and both upload through [`super::upload`].

use forkr_api_proto::wire::{BaseDetailsView, BaseSummaryView, ImportBase};

use super::Context;
use crate::cli::BaseCommand;
use crate::output;

fn dash(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".into())
}

pub async fn run(ctx: &Context, cmd: BaseCommand) -> anyhow::Result<String> {
    let project = ctx.project(None)?;
    match cmd {
        BaseCommand::List { .. } => Ok(list_table(&ctx.client()?.list_bases(&project).await?)),
        BaseCommand::Show { name, tag, .. } => {
            let d = ctx
                .client()?
                .show_base(&project, &name, tag.as_deref())
                .await?;
            Ok(show_text(&d))
        }
        BaseCommand::Save { name, target, .. } => {
            let (p, b) = ctx.box_ref(&target, None)?;
            let w = ctx.client()?.save_base(&p, &name, &b).await?;
            Ok(format!("saved {b} as {}\n", w.version))
        }
        BaseCommand::Import {
            name, file, parent, ..
        } => {
            let q = ImportBase {
                parent,
                ..Default::default()
            };
            super::upload::import(ctx, &project, &name, &file, q).await
        }
        BaseCommand::Build {
            name,
            file,
            context,
            ..
        } => super::build::build(ctx, &project, &name, &file, &context).await,
        BaseCommand::Delete { name, .. } => {
            ctx.client()?.delete_base(&project, &name).await?;
            Ok(format!("{name}: deleted\n"))
        }
    }
}

/// `base list`'s NAME, VERSION, SIZE, CREATED table.
pub fn list_table(bases: &[BaseSummaryView]) -> String {
    let rows: Vec<Vec<String>> = bases
        .iter()
        .map(|b| {
            vec![
                b.name.clone(),
                b.version.clone(),
                output::human_size(b.size),
                b.created.clone(),
            ]
        })
        .collect();
    output::table(&["NAME", "VERSION", "SIZE", "CREATED"], &rows)
}

/// `base show`: the name, the latest version, the version count and the versions' table.
pub fn show_text(d: &BaseDetailsView) -> String {
    let rows: Vec<Vec<String>> = d
        .versions
        .iter()
        .map(|v| {
            vec![
                v.version.clone(),
                v.kind.clone(),
                dash(&v.tag),
                dash(&v.builder),
                dash(&v.parent),
                output::human_size(v.size),
                v.created.clone(),
            ]
        })
        .collect();
    format!(
        "name:     {}\nlatest:   {}\nversions: {}\n\n{}",
        d.name,
        d.latest,
        d.version_count,
        output::table(
            &[
                "VERSION", "KIND", "TAG", "BUILDER", "PARENT", "SIZE", "CREATED"
            ],
            &rows
        )
    )
}
