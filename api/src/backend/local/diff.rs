//! Diffs of a box's root against its snapshots, and saving a root as a base.

use forkr_node_agent::diff::Strategy;

use super::LocalBackend;
use crate::error::ApiResult;
use crate::wire::{BaseWritten, DiffChange, DiffFileView, DiffStatusView};

impl LocalBackend {
    pub(super) async fn diff_status(
        &self,
        project: String,
        name: String,
        against: Option<String>,
    ) -> ApiResult<DiffStatusView> {
        if let Some(a) = &against {
            forkr_crds::validation::validate_snapshot_name(a)?;
        }
        self.get_box(&project, &name).await?;
        let report = self
            .pool(move |pool| pool.diff_status(&project, &name, against.as_deref(), Strategy::Auto))
            .await?;
        Ok(DiffStatusView {
            text: report.render(),
            against: report.against,
            changes: report
                .changes
                .into_iter()
                .map(|(c, path)| DiffChange {
                    change: c.symbol().to_string(),
                    path,
                })
                .collect(),
        })
    }

    pub(super) async fn diff_file(
        &self,
        project: String,
        name: String,
        path: String,
        against: Option<String>,
    ) -> ApiResult<DiffFileView> {
        if let Some(a) = &against {
            forkr_crds::validation::validate_snapshot_name(a)?;
        }
        self.get_box(&project, &name).await?;
        let p = path.clone();
        let d = self
            .pool(move |pool| pool.diff_file(&project, &name, &p, against.as_deref()))
            .await?;
        Ok(DiffFileView {
            against: d.against,
            path,
            status: d.status.as_str().to_owned(),
            diff: d.diff,
        })
    }

    /// A read-only snapshot of the box's root on disk; the box need not be running.
    pub(super) async fn save_base(
        &self,
        project: String,
        name: String,
        box_name: String,
    ) -> ApiResult<BaseWritten> {
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
