//! Uploading a rootfs `.tar.gz` as a new base version: what `base import` and `base build`
//! share, kept apart so that neither command module imports the other.

use std::path::Path;

use anyhow::Context as _;
use forkr_api_proto::wire::ImportBase;
use futures::TryStreamExt;
use indicatif::{ProgressBar, ProgressStyle};

use super::Context;

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
