//! `4kr cp` (aliases `get` and `put`): one file, with its mode, and its owner when you are root.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::Context as _;
use forkr_api_proto::wire::FileQuery;
use forkr_crds::validation::{BoxPath, CopyDirection, ResolvedTarget, parse_copy};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::Context;

/// The documented refusal for directories.
const ONLY_FILES: &str = "only files are supported (directories require -r, not yet supported)";

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

pub async fn cp(
    ctx: &Context,
    src: &str,
    dest: &str,
    project: Option<&str>,
) -> anyhow::Result<String> {
    let direction = parse_copy(src, dest)?;
    let remote = match &direction {
        CopyDirection::Upload { remote, .. } | CopyDirection::Download { remote, .. } => {
            remote.clone()
        }
    };
    let BoxPath { box_ref, path } = remote;
    let resolved = box_ref.resolve(&ctx.project(project)?, |k| ctx.env(k))?;
    let client = ctx.client()?;
    let (name, ephemeral) = match resolved.target {
        ResolvedTarget::Named(n) => (n, false),
        ResolvedTarget::Ephemeral => (
            super::exec::make_ephemeral(&client, &resolved.project).await?,
            true,
        ),
    };
    let transfer = async {
        match direction {
            CopyDirection::Upload { local, .. } => {
                upload(&client, &resolved.project, &name, &local, &path).await
            }
            CopyDirection::Download { local, .. } => {
                download(&client, &resolved.project, &name, &path, &local).await
            }
        }
    };
    // Ctrl-C during a transfer into an ephemeral box still deletes the box.
    let result = if ephemeral {
        super::exec::until_ctrl_c(transfer).await
    } else {
        transfer.await
    };
    if ephemeral {
        let _ = client.delete_box(&resolved.project, &name, true).await;
    }
    result
}

async fn upload(
    client: &forkr_api_proto::client::Client,
    project: &str,
    name: &str,
    local: &str,
    path: &str,
) -> anyhow::Result<String> {
    let md = std::fs::metadata(local).with_context(|| format!("reading {local}"))?;
    if md.is_dir() {
        anyhow::bail!(ONLY_FILES);
    }
    if !md.is_file() {
        anyhow::bail!("{local} is not a regular file; {ONLY_FILES}");
    }
    let (uid, gid) = if is_root() {
        (Some(md.uid()), Some(md.gid()))
    } else {
        (None, None)
    };
    let q = FileQuery {
        path: path.to_owned(),
        mode: Some(format!("{:o}", md.permissions().mode() & 0o7777)),
        uid,
        gid,
    };
    let f = tokio::fs::File::open(local)
        .await
        .with_context(|| format!("opening {local}"))?;
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(f));
    client.put_file(project, name, &q, body).await?;
    Ok(String::new())
}

async fn download(
    client: &forkr_api_proto::client::Client,
    project: &str,
    name: &str,
    path: &str,
    local: &str,
) -> anyhow::Result<String> {
    let target = if Path::new(local).is_dir() {
        let file_name = Path::new(path)
            .file_name()
            .context("the box path names no file")?;
        Path::new(local).join(file_name)
    } else {
        Path::new(local).to_path_buf()
    };
    let file = client.get_file(project, name, path).await?;
    // Written under a temporary name and renamed, so a broken transfer leaves no half file.
    let tmp = target.with_file_name(format!(
        ".{}.4kr-{}",
        target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let mut out = tokio::fs::File::create(&tmp)
        .await
        .with_context(|| format!("writing {}", tmp.display()))?;
    let mut stream = file.response.bytes_stream();
    let copied = async {
        while let Some(chunk) = stream.next().await {
            out.write_all(&chunk?).await?;
        }
        out.flush().await?;
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if is_root() {
        std::os::unix::fs::chown(&tmp, Some(file.uid), Some(file.gid))?;
    }
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(file.mode))?;
    std::fs::rename(&tmp, &target).with_context(|| format!("writing {}", target.display()))?;
    Ok(String::new())
}
