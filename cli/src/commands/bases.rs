use std::path::Path;

use anyhow::Context as _;
use forkr_api_proto::wire::{BaseDetailsView, BaseSummaryView, ImportBase};
use futures::TryStreamExt;
use indicatif::{ProgressBar, ProgressStyle};

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
            import(ctx, &project, &name, &file, q).await
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

/// Streams the file to the server with a progress bar on stderr (hidden when it is not a
/// terminal), so a multi-gigabyte rootfs is never held in memory.
pub async fn import(
    ctx: &Context,
    project: &str,
    name: &str,
    file: &Path,
    q: ImportBase,
) -> anyhow::Result<String> {
    forkr_crds::validation::validate_base_alias(name)?;
    let client = ctx.client()?;
    let f = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("opening {}", file.display()))?;
    let len = f.metadata().await?.len();
    let bar = ProgressBar::new(len).with_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .map_err(|e| anyhow::anyhow!("progress template: {e}"))?
            .progress_chars("=> "),
    );
    bar.set_message(format!("uploading {}", file.display()));
    let counter = bar.clone();
    let stream = tokio_util::io::ReaderStream::new(f)
        .inspect_ok(move |chunk| counter.inc(chunk.len() as u64));
    let result = client
        .import_base(project, name, &q, reqwest::Body::wrap_stream(stream))
        .await;
    bar.finish_and_clear();
    let written = result?;
    Ok(format!(
        "imported {} as {}\n",
        written.name, written.version
    ))
}
