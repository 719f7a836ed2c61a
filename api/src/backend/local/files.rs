//! `4kr cp`: one file in or out of a box, through the node agent's confined file access (paths
//! resolve inside the root; writes land in the root subvolume and the system volumes).

use std::io::Read;

use async_trait::async_trait;

use forkr_node_agent::exec::files::BoxFiles;

use super::LocalBackend;
use crate::backend::{BoxKey, FileDownload, Files, Upload, parse_mode};
use crate::error::ApiResult;
use crate::upload::LimitedReader;
use crate::wire::{FileQuery, FileWritten};

#[async_trait]
impl Files for LocalBackend {
    async fn put_file(
        &self,
        key: BoxKey,
        q: FileQuery,
        body: Upload,
        shared_writes: bool,
    ) -> ApiResult<FileWritten> {
        let (project, name) = key.into_parts();
        let mode = parse_mode(q.mode.as_deref())?;
        let owner = q.uid.zip(q.gid);
        self.get_box(&project, &name).await?;
        let limit = self.max_upload;
        let path = q.path.clone();
        let size = self
            .pool(move |pool| {
                // The agent's resolver decides where the path lands (symlinks in the box
                // followed) and refuses the shared volumes unless the caller is an admin.
                let files =
                    BoxFiles::for_box(pool, &project, &name)?.allow_shared_writes(shared_writes);
                let mut reader = LimitedReader::new(body, limit);
                let mut put = files.put(&path, mode, owner)?;
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    let n =
                        reader
                            .read(&mut buf)
                            .map_err(|source| forkr_node_agent::Error::Io {
                                context: "receive the upload".into(),
                                source,
                            })?;
                    if n == 0 {
                        break;
                    }
                    put.write(&buf[..n])?;
                }
                put.commit()
            })
            .await?;
        Ok(FileWritten { path: q.path, size })
    }

    async fn get_file(&self, key: BoxKey, path: String) -> ApiResult<FileDownload> {
        let (project, name) = key.into_parts();
        self.get_box(&project, &name).await?;
        let f = self
            .pool(move |pool| BoxFiles::for_box(pool, &project, &name)?.get(&path))
            .await?;
        Ok(FileDownload {
            file: f.file,
            mode: f.mode,
            uid: f.uid,
            gid: f.gid,
            size: f.size,
        })
    }
}
