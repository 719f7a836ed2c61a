//! Bases in local mode: versions in this machine's pool, imported from a rootfs upload or saved
//! from a box's root.

use async_trait::async_trait;

use super::LocalBackend;
use crate::backend::{Bases, BoxKey, Upload};
use crate::error::ApiResult;
use crate::upload::LimitedReader;
use crate::wire::{BaseDetailsView, BaseSummaryView, BaseVersionView, BaseWritten, ImportBase};

#[async_trait]
impl Bases for LocalBackend {
    async fn list_bases(&self) -> ApiResult<Vec<BaseSummaryView>> {
        let bases = self.pool(|pool| pool.list_bases()).await?;
        Ok(bases
            .into_iter()
            .map(|b| BaseSummaryView {
                name: b.name,
                version: b.version,
                size: b.size,
                created: b.created,
            })
            .collect())
    }

    async fn show_base(&self, name: String, tag: Option<String>) -> ApiResult<BaseDetailsView> {
        let d = self
            .pool(move |pool| pool.show_base(&name, tag.as_deref()))
            .await?;
        Ok(BaseDetailsView {
            name: d.name,
            latest: d.latest,
            version_count: d.version_count,
            versions: d
                .versions
                .into_iter()
                .map(|v| BaseVersionView {
                    version: v.version,
                    kind: v.kind,
                    tag: v.tag,
                    builder: v.builder,
                    parent: v.parent,
                    size: v.size,
                    created: v.created,
                })
                .collect(),
        })
    }

    async fn delete_base(&self, name: String) -> ApiResult<()> {
        self.pool(move |pool| pool.delete_base(&name)).await
    }

    async fn import_base(
        &self,
        name: String,
        req: ImportBase,
        owner: Option<String>,
        body: Upload,
    ) -> ApiResult<BaseWritten> {
        let limit = self.max_upload;
        let reader = LimitedReader::new(body, limit);
        let exceeded = reader.exceeded_flag();
        let opts = forkr_node_agent::pool::import::ImportOptions {
            parent: req.parent,
            tag: req.tag,
            builder: req.builder,
            owner,
            request_id: req.request_id,
        };
        let n = name.clone();
        let result = self
            .pool(move |pool| pool.import_base(&n, reader, &opts))
            .await;
        if exceeded.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(crate::upload::too_large(limit));
        }
        Ok(BaseWritten {
            name,
            version: result?,
        })
    }

    /// A read-only snapshot of the box's root on disk; the box need not be running.
    async fn save_base(&self, name: String, from: BoxKey) -> ApiResult<BaseWritten> {
        let (project, box_name) = from.into_parts();
        self.get_box(&project, &box_name).await?;
        let lock = self.box_lock(&project, &box_name);
        let _g = lock.lock().await;
        let n = name.clone();
        let version = self
            .pool(move |pool| pool.save_base(&n, &project, &box_name, None))
            .await?;
        Ok(BaseWritten { name, version })
    }
}
