//! Data volumes in local mode: the object in SQLite, the subvolume in the pool; and their
//! checkpoints, backups and restores. Checkpoints go with the volume
//! when it is deleted; backups stay, and a volume can be restored from either.

use async_trait::async_trait;
use axum::http::StatusCode;
use forkr_crds::validation::{validate_snapshot_name, validate_volume_name};
use forkr_crds::{BoxResource, DataVolume};
use forkr_node_agent::runtime::Phase;
use forkr_node_agent::{Shelf, Subject};

use super::{BOX, LocalBackend, VOLUME, volume_view};
use crate::backend::{VolumeCopy, Volumes};
use crate::error::{ApiError, ApiResult};
use crate::wire::{CheckpointVolume, RestoreVolume, SnapshotView, VolumeView};

fn shelf_of(kind: VolumeCopy) -> Shelf {
    match kind {
        VolumeCopy::Checkpoint => Shelf::Checkpoints,
        VolumeCopy::Backup => Shelf::Backups,
    }
}

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
}

#[async_trait]
impl Volumes for LocalBackend {
    async fn list_volumes(&self, project: String) -> ApiResult<Vec<VolumeView>> {
        let p = project.clone();
        let infos = self.pool(move |pool| pool.list_volumes(&p)).await?;
        let p = project.clone();
        let objects: Vec<DataVolume> = self.store(move |s| s.list(VOLUME, &p)).await?;
        Ok(infos
            .iter()
            .map(|info| {
                let obj = objects
                    .iter()
                    .find(|o| o.metadata.name.as_deref() == Some(info.name.as_str()));
                volume_view(&project, info, obj)
            })
            .collect())
    }

    async fn create_volume(
        &self,
        project: String,
        name: String,
        limit: Option<String>,
    ) -> ApiResult<VolumeView> {
        let obj = crate::backend::spec::new_volume(&project, &name, limit)?;
        let (p, n) = (project.clone(), name.clone());
        if self
            .store(move |s| s.get::<DataVolume>(VOLUME, &p, &n))
            .await?
            .is_some()
        {
            return Err(ApiError::conflict(
                "already_exists",
                format!("data volume {name:?} already exists"),
            ));
        }
        // The pool step is idempotent, so a create that died after it is finished by a retry.
        let (p, n) = (project.clone(), name.clone());
        self.pool(move |pool| pool.create_volume(&p, &n)).await?;
        let (p, n, o) = (project.clone(), name.clone(), obj.clone());
        self.store(move |s| s.insert(VOLUME, &p, &n, &o)).await?;
        let info = self
            .volume_info(&project, &name)
            .await?
            .ok_or_else(|| ApiError::internal("volume vanished after create"))?;
        Ok(volume_view(&project, &info, Some(&obj)))
    }

    async fn show_volume(&self, project: String, name: String) -> ApiResult<VolumeView> {
        let info = self
            .volume_info(&project, &name)
            .await?
            .ok_or_else(|| ApiError::not_found("data volume", &name))?;
        let (p, n) = (project.clone(), name.clone());
        let obj: Option<DataVolume> = self.store(move |s| s.get(VOLUME, &p, &n)).await?;
        Ok(volume_view(&project, &info, obj.as_ref()))
    }

    async fn delete_volume(&self, project: String, name: String) -> ApiResult<()> {
        let p = project.clone();
        let boxes: Vec<BoxResource> = self.store(move |s| s.list(BOX, &p)).await?;
        let users: Vec<String> = boxes
            .iter()
            .filter(|b| b.spec.data.iter().any(|m| m.volume == name))
            .filter_map(|b| b.metadata.name.clone())
            .collect();
        if !users.is_empty() {
            return Err(ApiError::conflict(
                "volume_in_use",
                format!("data volume {name:?} is mounted by {}", users.join(", ")),
            ));
        }
        let (p, n) = (project.clone(), name.clone());
        self.pool(move |pool| pool.delete_volume(&p, &n)).await?;
        self.store(move |s| s.remove(VOLUME, &project, &name).map(drop))
            .await
    }

    async fn list_volume_copies(
        &self,
        project: String,
        name: String,
        kind: VolumeCopy,
    ) -> ApiResult<Vec<SnapshotView>> {
        let shelf = shelf_of(kind);
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
    async fn copy_volume(
        &self,
        project: String,
        name: String,
        kind: VolumeCopy,
        req: CheckpointVolume,
    ) -> ApiResult<SnapshotView> {
        let shelf = shelf_of(kind);
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
        self.list_volume_copies(project, name, kind)
            .await?
            .into_iter()
            .find(|s| s.name == made)
            .ok_or_else(|| ApiError::internal("checkpoint vanished after create"))
    }

    /// Swaps the volume for a copy of a checkpoint or backup. A running box would keep the old
    /// data mounted, so the boxes that mount it must be stopped first.
    async fn restore_volume(
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
