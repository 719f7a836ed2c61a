//! A box's snapshots in local mode (read-only checkpoints of its root in the pool), and diffs
//! of the root against them.

use async_trait::async_trait;
use forkr_crds::BoxPhase;
use forkr_crds::validation as v;
use forkr_node_agent::pool::diff::Strategy;
use forkr_node_agent::runtime::Phase;
use forkr_node_agent::{Shelf, Subject};

use super::LocalBackend;
use super::boxes::{mark_running, mark_stopped, runtime_spec, set_phase};
use crate::backend::{BoxKey, Snapshots};
use crate::error::{ApiError, ApiResult};
use crate::wire::{BoxView, DiffChange, DiffFileView, DiffStatusView, SnapshotView};

#[async_trait]
impl Snapshots for LocalBackend {
    async fn diff_status(&self, key: BoxKey, against: Option<String>) -> ApiResult<DiffStatusView> {
        let (project, name) = key.into_parts();
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

    async fn diff_file(
        &self,
        key: BoxKey,
        path: String,
        against: Option<String>,
    ) -> ApiResult<DiffFileView> {
        let (project, name) = key.into_parts();
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
    async fn list_snapshots(&self, key: BoxKey) -> ApiResult<Vec<SnapshotView>> {
        let (project, name) = key.into_parts();
        self.get_box(&project, &name).await?;
        let list = self
            .pool(move |pool| {
                pool.list_checkpoints(
                    Subject::Root {
                        project: &project,
                        name: &name,
                    },
                    Shelf::Checkpoints,
                )
            })
            .await?;
        Ok(list.into_iter().map(super::checkpoint_view).collect())
    }

    async fn create_snapshot(
        &self,
        key: BoxKey,
        snapshot: Option<String>,
        description: Option<String>,
    ) -> ApiResult<SnapshotView> {
        let (project, name) = key.clone().into_parts();
        if let Some(s) = &snapshot {
            v::validate_snapshot_name(s)?;
        }
        let lock = self.box_lock(&project, &name);
        let _g = lock.lock().await;
        self.get_box(&project, &name).await?;
        let (p, n) = (project.clone(), name.clone());
        let made = self
            .pool(move |pool| {
                pool.create_checkpoint(
                    Subject::Root {
                        project: &p,
                        name: &n,
                    },
                    Shelf::Checkpoints,
                    snapshot.as_deref(),
                    description.as_deref(),
                    None,
                )
            })
            .await
            .map_err(|e| {
                if e.code == "already_exists" {
                    ApiError::conflict("snapshot_exists", e.message)
                } else {
                    e
                }
            })?;
        drop(_g);
        self.list_snapshots(key)
            .await?
            .into_iter()
            .find(|s| s.name == made)
            .ok_or_else(|| ApiError::internal("snapshot vanished after create"))
    }

    /// Rolls the root back to a snapshot: the box stops, the root is swapped atomically, and it
    /// starts again if it was running.
    async fn restore_snapshot(&self, key: BoxKey, snapshot: String) -> ApiResult<BoxView> {
        let (project, name) = key.into_parts();
        v::validate_snapshot_name(&snapshot)?;
        let lock = self.box_lock(&project, &name);
        let _g = lock.lock().await;
        let mut b = self.get_box(&project, &name).await?;
        let (p, n) = (project.clone(), name.clone());
        let was_running = matches!(self.rt(move |rt| rt.status(&p, &n)).await, Ok(st) if st.phase == Phase::Running);
        let (p, n, s) = (project.clone(), name.clone(), snapshot.clone());
        // Refuse a missing snapshot before stopping anything.
        self.pool(move |pool| {
            let list = pool.list_checkpoints(
                Subject::Root {
                    project: &p,
                    name: &n,
                },
                Shelf::Checkpoints,
            )?;
            if list.iter().any(|c| c.name == s) {
                Ok(())
            } else {
                Err(forkr_node_agent::Error::NotFound(format!(
                    "snapshot {s:?} of box {n:?} not found"
                )))
            }
        })
        .await?;
        set_phase(&mut b, BoxPhase::Restoring, None);
        self.put_box(&project, &b).await?;
        if was_running {
            let (p, n) = (project.clone(), name.clone());
            self.rt(move |rt| rt.stop(&p, &n)).await?;
        }
        let (p, n, s) = (project.clone(), name.clone(), snapshot.clone());
        self.pool(move |pool| {
            pool.restore_checkpoint(
                Subject::Root {
                    project: &p,
                    name: &n,
                },
                Shelf::Checkpoints,
                &s,
            )
        })
        .await?;
        if was_running {
            let spec = runtime_spec(&project, &b)?;
            let st = self.rt(move |rt| rt.start(&spec)).await?;
            mark_running(&mut b, &st);
        } else {
            mark_stopped(&mut b);
        }
        self.put_box(&project, &b).await?;
        self.view(&project, b).await
    }
}
