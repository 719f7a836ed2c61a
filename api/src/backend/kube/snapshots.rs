//! A box's snapshots as `Snapshot` objects (the operator takes them and answers in status), and
//! diffs of its root against them, which only the pool on the box's node knows.

use std::collections::BTreeMap;

use async_trait::async_trait;
use axum::http::StatusCode;
use forkr_agent_proto::storage as agent;
use forkr_crds::validation as v;
use forkr_crds::{RestoreRequest, Snapshot, SnapshotSpec, labels, snapshot_object_name};
use kube::api::{ListParams, PostParams};

use super::agent::status_error;
use super::boxes::Seen;
use super::{KubeBackend, kube_error};
use crate::backend::{BoxKey, Snapshots};
use crate::error::{ApiError, ApiResult};
use crate::wire::{BoxView, DiffChange, DiffFileView, DiffStatusView, SnapshotView};

fn change_symbol(kind: i32) -> String {
    match agent::ChangeKind::try_from(kind) {
        Ok(agent::ChangeKind::ChangeAdded) => "+",
        Ok(agent::ChangeKind::ChangeModified) => "~",
        Ok(agent::ChangeKind::ChangeDeleted) => "-",
        Err(_) => "?",
    }
    .to_owned()
}

impl KubeBackend {
    async fn box_snapshots(&self, project: &str, name: &str) -> ApiResult<Vec<Snapshot>> {
        let lp = ListParams::default().labels(&format!("{}={name}", labels::LABEL_SNAPSHOT_BOX));
        let mut items = self
            .snapshots(project)
            .list(&lp)
            .await
            .map_err(kube_error)?
            .items;
        items.sort_by(|a, b| {
            let created = |s: &Snapshot| s.status.as_ref().and_then(|st| st.created.clone());
            created(a)
                .cmp(&created(b))
                .then(a.spec.name.cmp(&b.spec.name))
        });
        Ok(items)
    }
}

#[async_trait]
impl Snapshots for KubeBackend {
    async fn list_snapshots(&self, key: BoxKey) -> ApiResult<Vec<SnapshotView>> {
        let (project, name) = key.into_parts();
        self.get(&project, &name).await?;
        Ok(self
            .box_snapshots(&project, &name)
            .await?
            .iter()
            .map(snapshot_view)
            .collect())
    }

    async fn create_snapshot(
        &self,
        key: BoxKey,
        snapshot: Option<String>,
        description: Option<String>,
    ) -> ApiResult<SnapshotView> {
        let (project, name) = key.into_parts();
        if let Some(s) = &snapshot {
            v::validate_snapshot_name(s)?;
        }
        self.get(&project, &name).await?;
        let chosen = match snapshot {
            Some(s) => s,
            None => {
                let existing: Vec<String> = self
                    .box_snapshots(&project, &name)
                    .await?
                    .into_iter()
                    .map(|s| s.spec.name)
                    .collect();
                forkr_agent_proto::naming::next_auto_name(&existing)
            }
        };
        let object = snapshot_object_name(&name, &chosen);
        let mut snap = Snapshot::new(
            &object,
            SnapshotSpec {
                box_name: name.clone(),
                name: chosen.clone(),
                description,
            },
        );
        snap.metadata.namespace = Some(project.clone());
        snap.metadata.labels = Some(BTreeMap::from([(
            labels::LABEL_SNAPSHOT_BOX.to_owned(),
            name.clone(),
        )]));
        let api = self.snapshots(&project);
        match api.create(&PostParams::default(), &snap).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {
                return Err(ApiError::conflict(
                    "snapshot_exists",
                    format!("snapshot {chosen:?} of box {name:?} already exists"),
                ));
            }
            Err(e) => return Err(kube_error(e)),
        }
        let (api, object) = (&api, object.as_str());
        self.poll(
            || {
                format!(
                    "snapshot {chosen:?} is not ready after {}s",
                    self.wait.as_secs()
                )
            },
            || async move {
                let s = api.get(object).await.map_err(kube_error)?;
                match s.status.as_ref().and_then(|st| st.phase) {
                    Some(forkr_crds::snapshot::SnapshotPhase::Ready) => Ok(Some(snapshot_view(&s))),
                    Some(forkr_crds::snapshot::SnapshotPhase::Failed) => Err(ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "snapshot_failed",
                        s.status
                            .as_ref()
                            .and_then(|st| st.message.clone())
                            .unwrap_or_else(|| "the snapshot failed".into()),
                    )),
                    _ => Ok(None),
                }
            },
        )
        .await
    }

    /// A declarative restore: a new request id in `spec.restore`, then the operator's answer
    /// in `status.restore`.
    async fn restore_snapshot(&self, key: BoxKey, snapshot: String) -> ApiResult<BoxView> {
        let (project, name) = key.into_parts();
        v::validate_snapshot_name(&snapshot)?;
        let known = self.box_snapshots(&project, &name).await?;
        if !known.iter().any(|s| s.spec.name == snapshot) {
            return Err(ApiError::not_found("snapshot", &snapshot));
        }
        let request_id = format!("r{}", jiff::Timestamp::now().as_nanosecond().unsigned_abs());
        let (id, snap) = (request_id.clone(), snapshot.clone());
        self.change(&project, &name, move |b| {
            b.spec.restore = Some(RestoreRequest {
                snapshot: snap.clone(),
                request_id: id.clone(),
            });
            Ok(())
        })
        .await?;
        let b = self
            .wait_box(&project, &name, "restored", |b| {
                let r = b.status.as_ref().and_then(|s| s.restore.as_ref());
                match r {
                    Some(r) if r.request_id == request_id && r.state == "Succeeded" => Seen::Done,
                    Some(r) if r.request_id == request_id && r.state == "Failed" => {
                        Seen::Failed(ApiError::new(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "restore_failed",
                            r.message
                                .clone()
                                .unwrap_or_else(|| "the restore failed".into()),
                        ))
                    }
                    _ => Seen::Wait,
                }
            })
            .await?;
        Ok(self.view(&project, &b))
    }

    async fn diff_status(&self, key: BoxKey, against: Option<String>) -> ApiResult<DiffStatusView> {
        let (project, name) = key.into_parts();
        if let Some(a) = &against {
            v::validate_snapshot_name(a)?;
        }
        let node = self.rooted(&project, &name).await?.1;
        let req = agent::DiffStatusRequest {
            project,
            r#box: name,
            against: against.unwrap_or_default(),
        };
        let r = self
            .storage(&node)
            .await?
            .diff_status(req)
            .await
            .map_err(status_error)?
            .into_inner();
        Ok(DiffStatusView {
            against: r.against,
            changes: r
                .changes
                .into_iter()
                .map(|c| DiffChange {
                    change: change_symbol(c.kind),
                    path: c.path,
                })
                .collect(),
            text: r.text,
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
            v::validate_snapshot_name(a)?;
        }
        let node = self.rooted(&project, &name).await?.1;
        let req = agent::DiffFileRequest {
            project,
            r#box: name,
            path: path.clone(),
            against: against.unwrap_or_default(),
        };
        let r = self
            .storage(&node)
            .await?
            .diff_file(req)
            .await
            .map_err(status_error)?
            .into_inner();
        Ok(DiffFileView {
            against: r.against,
            path,
            status: r.status,
            diff: Some(r.diff).filter(|d| !d.is_empty()),
        })
    }
}

fn snapshot_view(s: &Snapshot) -> SnapshotView {
    let status = s.status.clone().unwrap_or_default();
    SnapshotView {
        name: s.spec.name.clone(),
        size: status.size.and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
        created: status.created.unwrap_or_default(),
        description: s.spec.description.clone(),
    }
}
