//! Data volume checkpoints, backups and restores in local mode. Checkpoints go with the volume
//! when it is deleted; backups stay, and a volume can be restored from either.

use axum::http::StatusCode;
use forkr_crds::BoxResource;
use forkr_crds::validation::{validate_snapshot_name, validate_volume_name};
use forkr_node_agent::runtime::Phase;
use forkr_node_agent::{Shelf, Subject};

use super::{BOX, LocalBackend, volume_view};
use crate::error::{ApiError, ApiResult};
use crate::wire::{CheckpointVolume, RestoreVolume, SnapshotView, VolumeView};

fn shelf_word(shelf: Shelf) -> &'static str {
    match shelf {
        Shelf::Checkpoints => "checkpoint",
        Shelf::Backups => "backup",
    }
}

impl LocalBackend {
    async fn require_volume(&self, project: &str, name: &str) -> ApiResult<()> {
        validate_volume_name(name)?;
        match self.volume_info(project, name).await? {
            Some(_) => Ok(()),
            None => Err(ApiError::not_found("data volume", name)),
        }
    }

    pub(super) async fn list_volume_shelf(
        &self,
        project: String,
        name: String,
        shelf: Shelf,
    ) -> ApiResult<Vec<SnapshotView>> {
        self.require_volume(&project, &name).await?;
        let list = self
            .pool(move |pool| {
                pool.list_checkpoints(
                    Subject::Volume {
                        project: &project,
                        name: &name,
                    },
                    shelf,
                )
            })
            .await?;
        Ok(list.into_iter().map(super::checkpoint_view).collect())
    }

    /// A read-only copy of the volume as it is now, on the checkpoint or backup shelf.
    pub(super) async fn shelve_volume(
        &self,
        project: String,
        name: String,
        shelf: Shelf,
        req: CheckpointVolume,
    ) -> ApiResult<SnapshotView> {
        if let Some(n) = &req.name {
            validate_snapshot_name(n)?;
        }
        let lock = self.volume_lock(&project, &name);
        let g = lock.lock().await;
        self.require_volume(&project, &name).await?;
        let (p, n) = (project.clone(), name.clone());
        let made = self
            .pool(move |pool| {
                pool.create_checkpoint(
                    Subject::Volume {
                        project: &p,
                        name: &n,
                    },
                    shelf,
                    req.name.as_deref(),
                    req.description.as_deref(),
                    None,
                )
            })
            .await
            .map_err(|e| {
                if e.code == "already_exists" {
                    ApiError::conflict(
                        "snapshot_exists",
                        format!("{} {:?} already exists", shelf_word(shelf), e.message),
                    )
                } else {
                    e
                }
            })?;
        drop(g);
        self.list_volume_shelf(project, name, shelf)
            .await?
            .into_iter()
            .find(|s| s.name == made)
            .ok_or_else(|| ApiError::internal("checkpoint vanished after create"))
    }

    /// Swaps the volume for a copy of a checkpoint or backup. A running box would keep the old
    /// data mounted, so the boxes that mount it must be stopped first.
    pub(super) async fn restore_volume(
        &self,
        project: String,
        name: String,
        req: RestoreVolume,
    ) -> ApiResult<VolumeView> {
        let (shelf, from) = match (req.checkpoint, req.backup) {
            (Some(c), None) => (Shelf::Checkpoints, c),
            (None, Some(b)) => (Shelf::Backups, b),
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_restore",
                    "give exactly one of checkpoint or backup",
                ));
            }
        };
        validate_snapshot_name(&from)?;
        let lock = self.volume_lock(&project, &name);
        let _g = lock.lock().await;
        validate_volume_name(&name)?;
        let p = project.clone();
        let boxes: Vec<BoxResource> = self.store(move |s| s.list(BOX, &p)).await?;
        let mut running = Vec::new();
        for b in boxes
            .iter()
            .filter(|b| b.spec.data.iter().any(|m| m.volume == name))
        {
            let Some(box_name) = b.metadata.name.clone() else {
                continue;
            };
            let (p, n) = (project.clone(), box_name.clone());
            match self.rt(move |rt| rt.status(&p, &n)).await {
                Ok(st) if st.phase == Phase::Running => running.push(box_name),
                Ok(_) => {}
                Err(e) if e.status == StatusCode::NOT_FOUND => {}
                Err(e) => return Err(e),
            }
        }
        if !running.is_empty() {
            return Err(ApiError::conflict(
                "volume_in_use",
                format!(
                    "data volume {name:?} is mounted by running box {}; stop it first",
                    running.join(", ")
                ),
            ));
        }
        let (p, n) = (project.clone(), name.clone());
        self.pool(move |pool| {
            pool.restore_checkpoint(
                Subject::Volume {
                    project: &p,
                    name: &n,
                },
                shelf,
                &from,
            )
        })
        .await?;
        let info = self
            .volume_info(&project, &name)
            .await?
            .ok_or_else(|| ApiError::not_found("data volume", &name))?;
        let (p, n) = (project.clone(), name.clone());
        let mut obj: Option<forkr_crds::DataVolume> =
            self.store(move |s| s.get(super::VOLUME, &p, &n)).await?;
        if obj.is_none() {
            // A backup outlives its volume; restoring it brings the object back too.
            let mut fresh = forkr_crds::DataVolume::new(&name, Default::default());
            fresh.metadata.namespace = Some(project.clone());
            let (p, n, o) = (project.clone(), name.clone(), fresh.clone());
            self.store(move |s| s.put(super::VOLUME, &p, &n, &o))
                .await?;
            obj = Some(fresh);
        }
        Ok(volume_view(&project, &info, obj.as_ref()))
    }
}
