//! Data volumes on a cluster: `DataVolume` objects the operator places and fills. Checkpoints
//! are declared in the object (`spec.checkpoints`, restores in `spec.restore`); backups, which
//! outlive the object, are taken and restored by forkr-api through the volume's node agent, as
//! the operator expects.

use async_trait::async_trait;
use forkr_agent_proto::storage as agent;
use forkr_crds::data_volume::{
    DataVolumePhase, VolumeCheckpointSpec, VolumeCopyStatus, VolumeRestoreRequest,
};
use forkr_crds::validation::{validate_snapshot_name, validate_volume_name};
use forkr_crds::{BoxResource, DataVolume};
use kube::api::{Api, DeleteParams, ListParams, PostParams};

use super::agent::status_error;
use super::{KubeBackend, kube_error};
use crate::backend::{VolumeCopy, Volumes};
use crate::error::{ApiError, ApiResult};
use crate::wire::{CheckpointVolume, RestoreVolume, SnapshotView, VolumeView};

fn volume_view(project: &str, v: &DataVolume) -> VolumeView {
    let st = v.status.clone().unwrap_or_default();
    VolumeView {
        name: v.metadata.name.clone().unwrap_or_default(),
        project: project.to_owned(),
        size: st.size.and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
        limit: v.spec.size.as_ref().map(|q| q.0.clone()),
        created: v
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default(),
    }
}

fn copy_view(c: &VolumeCopyStatus) -> SnapshotView {
    SnapshotView {
        name: c.name.clone(),
        size: c.size.and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
        created: c.created.clone().unwrap_or_default(),
        description: c.description.clone(),
    }
}

fn agent_copy_view(c: agent::Checkpoint) -> SnapshotView {
    SnapshotView {
        name: c.name,
        size: c.size,
        created: c.created,
        description: Some(c.description).filter(|d| !d.is_empty()),
    }
}

fn target(project: &str, name: &str) -> agent::Target {
    agent::Target {
        kind: Some(agent::target::Kind::Volume(agent::VolumeRef {
            project: project.to_owned(),
            volume: name.to_owned(),
        })),
    }
}

fn request_id() -> String {
    format!("r{}", jiff::Timestamp::now().as_nanosecond().unsigned_abs())
}

impl KubeBackend {
    fn volumes(&self, project: &str) -> Api<DataVolume> {
        Api::namespaced(self.client.clone(), project)
    }

    async fn volume(&self, project: &str, name: &str) -> ApiResult<DataVolume> {
        validate_volume_name(name)?;
        self.volumes(project)
            .get_opt(name)
            .await
            .map_err(kube_error)?
            .ok_or_else(|| ApiError::not_found("data volume", name))
    }

    /// The node that holds the volume, once the operator has placed it.
    fn volume_node(v: &DataVolume) -> ApiResult<String> {
        v.status
            .as_ref()
            .and_then(|s| s.node.clone())
            .ok_or_else(|| {
                ApiError::conflict(
                    "volume_not_ready",
                    format!(
                        "data volume {:?} has no node yet",
                        v.metadata.name.as_deref().unwrap_or_default()
                    ),
                )
            })
    }

    /// Waits until `done` finds what it wants in the volume, or 504.
    async fn wait_volume<T>(
        &self,
        project: &str,
        name: &str,
        what: &str,
        done: impl Fn(&DataVolume) -> ApiResult<Option<T>>,
    ) -> ApiResult<T> {
        let done = &done;
        self.poll(
            || {
                format!(
                    "data volume {project}:{name} is not {what} after {}s",
                    self.wait.as_secs()
                )
            },
            || async move { done(&self.volume(project, name).await?) },
        )
        .await
    }

    /// Boxes of the project that mount the volume, with whether each should run.
    async fn volume_users(&self, project: &str, name: &str) -> ApiResult<Vec<(String, bool)>> {
        let boxes: Api<BoxResource> = Api::namespaced(self.client.clone(), project);
        let list = boxes
            .list(&ListParams::default())
            .await
            .map_err(kube_error)?;
        Ok(list
            .items
            .iter()
            .filter(|b| b.spec.data.iter().any(|m| m.volume == name))
            .map(|b| {
                let running = b.spec.running
                    || b.status.as_ref().and_then(|s| s.phase)
                        == Some(forkr_crds::BoxPhase::Running);
                (b.metadata.name.clone().unwrap_or_default(), running)
            })
            .collect())
    }

    async fn backups_on(
        &self,
        node: &str,
        project: &str,
        name: &str,
    ) -> ApiResult<Vec<SnapshotView>> {
        let req = agent::ListCheckpointsRequest {
            target: Some(target(project, name)),
            shelf: agent::Shelf::Backups.into(),
        };
        let list = self
            .storage(node)
            .await?
            .list_checkpoints(req)
            .await
            .map_err(status_error)?
            .into_inner();
        Ok(list.checkpoints.into_iter().map(agent_copy_view).collect())
    }

    /// A backup outlives its volume, so it is looked for on every node when the object is gone,
    /// and restoring it brings the object back.
    async fn restore_backup(
        &self,
        project: String,
        name: String,
        backup: String,
    ) -> ApiResult<VolumeView> {
        let existing = self
            .volumes(&project)
            .get_opt(&name)
            .await
            .map_err(kube_error)?;
        let node = match &existing {
            Some(v) => Self::volume_node(v)?,
            None => {
                let mut found = None;
                for node in self.agent_nodes().await? {
                    let list = self.backups_on(&node, &project, &name).await;
                    if list.is_ok_and(|l| l.iter().any(|c| c.name == backup)) {
                        found = Some(node);
                        break;
                    }
                }
                found.ok_or_else(|| ApiError::not_found("backup", &backup))?
            }
        };
        let r = agent::CheckpointRef {
            target: Some(target(&project, &name)),
            shelf: agent::Shelf::Backups.into(),
            name: backup,
        };
        self.storage(&node)
            .await?
            .restore_checkpoint(r)
            .await
            .map_err(status_error)?;
        match existing {
            Some(v) => Ok(volume_view(&project, &v)),
            None => self.create_volume(project, name, None).await,
        }
    }
}

#[async_trait]
impl Volumes for KubeBackend {
    async fn list_volumes(&self, project: String) -> ApiResult<Vec<VolumeView>> {
        let list = self
            .volumes(&project)
            .list(&ListParams::default())
            .await
            .map_err(kube_error)?;
        let mut out: Vec<VolumeView> = list
            .items
            .iter()
            .map(|v| volume_view(&project, v))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn create_volume(
        &self,
        project: String,
        name: String,
        limit: Option<String>,
    ) -> ApiResult<VolumeView> {
        let obj = crate::backend::spec::new_volume(&project, &name, limit)?;
        self.ensure_namespace(&project).await?;
        match self
            .volumes(&project)
            .create(&PostParams::default(), &obj)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {
                return Err(ApiError::conflict(
                    "already_exists",
                    format!("data volume {name:?} already exists"),
                ));
            }
            Err(e) => return Err(kube_error(e)),
        }
        self.wait_volume(&project, &name, "ready", |v| {
            let st = v.status.as_ref();
            match st.and_then(|s| s.phase) {
                Some(DataVolumePhase::Ready) => Ok(Some(volume_view(&project, v))),
                Some(DataVolumePhase::Failed) => Err(ApiError::internal(
                    st.and_then(|s| s.message.clone())
                        .unwrap_or_else(|| "the volume failed".into()),
                )),
                _ => Ok(None),
            }
        })
        .await
    }

    async fn show_volume(&self, project: String, name: String) -> ApiResult<VolumeView> {
        Ok(volume_view(&project, &self.volume(&project, &name).await?))
    }

    async fn delete_volume(&self, project: String, name: String) -> ApiResult<()> {
        self.volume(&project, &name).await?;
        let users: Vec<String> = self
            .volume_users(&project, &name)
            .await?
            .into_iter()
            .map(|(b, _)| b)
            .collect();
        if !users.is_empty() {
            return Err(ApiError::conflict(
                "volume_in_use",
                format!("data volume {name:?} is mounted by {}", users.join(", ")),
            ));
        }
        match self
            .volumes(&project)
            .delete(&name, &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(kube_error(e)),
        }
        // The finalizer removes the volume on its node; a create of the same name waits for it.
        let (api, name) = (&self.volumes(&project), name.as_str());
        self.poll(
            || format!("data volume {project}:{name} is still being deleted"),
            || async move {
                let gone = api.get_opt(name).await.map_err(kube_error)?.is_none();
                Ok(gone.then_some(()))
            },
        )
        .await
    }

    async fn list_volume_copies(
        &self,
        project: String,
        name: String,
        kind: VolumeCopy,
    ) -> ApiResult<Vec<SnapshotView>> {
        let v = self.volume(&project, &name).await?;
        match kind {
            VolumeCopy::Checkpoint => Ok(v
                .status
                .unwrap_or_default()
                .checkpoints
                .iter()
                .map(copy_view)
                .collect()),
            VolumeCopy::Backup => {
                let node = Self::volume_node(&v)?;
                self.backups_on(&node, &project, &name).await
            }
        }
    }

    async fn copy_volume(
        &self,
        project: String,
        name: String,
        kind: VolumeCopy,
        req: CheckpointVolume,
    ) -> ApiResult<SnapshotView> {
        if let Some(n) = &req.name {
            validate_snapshot_name(n)?;
        }
        let v = self.volume(&project, &name).await?;
        let node = Self::volume_node(&v)?;
        let word = match kind {
            VolumeCopy::Checkpoint => "checkpoint",
            VolumeCopy::Backup => "backup",
        };
        let exists =
            |n: &str| ApiError::conflict("snapshot_exists", format!("{word} {n:?} already exists"));
        if kind == VolumeCopy::Backup {
            let r = agent::CreateCheckpointRequest {
                target: Some(target(&project, &name)),
                shelf: agent::Shelf::Backups.into(),
                name: req.name.clone().unwrap_or_default(),
                description: req.description.clone().unwrap_or_default(),
                request_id: String::new(),
            };
            return match self.storage(&node).await?.create_checkpoint(r).await {
                Ok(c) => Ok(agent_copy_view(c.into_inner())),
                Err(s) if s.code() == tonic::Code::AlreadyExists => {
                    Err(exists(req.name.as_deref().unwrap_or_default()))
                }
                Err(s) => Err(status_error(s)),
            };
        }
        // A checkpoint is declared in the object; resourceVersion makes concurrent declarations
        // retry instead of overwriting each other.
        let api = self.volumes(&project);
        let mut obj = v;
        let chosen = loop {
            let taken: Vec<String> = obj
                .spec
                .checkpoints
                .iter()
                .map(|c| c.name.clone())
                .chain(
                    obj.status
                        .iter()
                        .flat_map(|s| s.checkpoints.iter().map(|c| c.name.clone())),
                )
                .collect();
            let chosen = match &req.name {
                Some(n) if taken.contains(n) => return Err(exists(n)),
                Some(n) => n.clone(),
                None => forkr_agent_proto::naming::next_auto_name(&taken),
            };
            obj.spec.checkpoints.push(VolumeCheckpointSpec {
                name: chosen.clone(),
                description: req.description.clone(),
            });
            match api.replace(&name, &PostParams::default(), &obj).await {
                Ok(_) => break chosen,
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    obj = self.volume(&project, &name).await?;
                }
                Err(e) => return Err(kube_error(e)),
            }
        };
        self.wait_volume(&project, &name, "checkpointed", |v| {
            Ok(v.status
                .as_ref()
                .and_then(|s| s.checkpoints.iter().find(|c| c.name == chosen))
                .map(copy_view))
        })
        .await
    }

    async fn restore_volume(
        &self,
        project: String,
        name: String,
        req: RestoreVolume,
    ) -> ApiResult<VolumeView> {
        let (checkpoint, backup) = match (req.checkpoint, req.backup) {
            (Some(c), None) => (Some(c), None),
            (None, Some(b)) => (None, Some(b)),
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_restore",
                    "give exactly one of checkpoint or backup",
                ));
            }
        };
        for n in checkpoint.iter().chain(backup.iter()) {
            validate_snapshot_name(n)?;
        }
        validate_volume_name(&name)?;
        let running: Vec<String> = self
            .volume_users(&project, &name)
            .await?
            .into_iter()
            .filter(|(_, running)| *running)
            .map(|(b, _)| b)
            .collect();
        if !running.is_empty() {
            return Err(ApiError::conflict(
                "volume_in_use",
                format!(
                    "data volume {name:?} is mounted by running box {}; stop it first",
                    running.join(", ")
                ),
            ));
        }
        if let Some(b) = backup {
            return self.restore_backup(project, name, b).await;
        }
        let checkpoint = checkpoint.unwrap_or_default();
        let v = self.volume(&project, &name).await?;
        let known = v
            .status
            .as_ref()
            .is_some_and(|s| s.checkpoints.iter().any(|c| c.name == checkpoint));
        if !known {
            return Err(ApiError::not_found("checkpoint", &checkpoint));
        }
        let id = request_id();
        let mut obj = v;
        loop {
            obj.spec.restore = Some(VolumeRestoreRequest {
                checkpoint: Some(checkpoint.clone()),
                backup: None,
                request_id: id.clone(),
            });
            match self
                .volumes(&project)
                .replace(&name, &PostParams::default(), &obj)
                .await
            {
                Ok(_) => break,
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    obj = self.volume(&project, &name).await?;
                }
                Err(e) => return Err(kube_error(e)),
            }
        }
        self.wait_volume(&project, &name, "restored", |v| {
            let done = v
                .status
                .as_ref()
                .and_then(|s| s.last_restore_request_id.as_deref())
                == Some(id.as_str());
            Ok(done.then(|| volume_view(&project, v)))
        })
        .await
    }
}
