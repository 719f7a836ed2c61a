//! Data volumes: `4kr data create/list/show/delete`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use forkr_crds::validation::{memory_bytes, validate_volume_name};

use crate::authz::Checked;
use crate::backend::VolumeCopy;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Named, Project};
use crate::state::AppState;
use crate::wire::{CheckpointVolume, CreateVolume, RestoreVolume, SnapshotView, VolumeView};

/// The project's data volumes with the bytes each uses.
#[utoipa::path(get, path = "/v1/projects/{project}/volumes", tag = "volumes",
    params(("project" = String, Path)),
    responses((status = 200, body = Vec<VolumeView>), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Project(project): Project,
) -> ApiResult<Json<Vec<VolumeView>>> {
    Ok(Json(state.backend.list_volumes(project).await?))
}

/// Creates an empty data volume. An optional size is recorded as its limit.
#[utoipa::path(post, path = "/v1/projects/{project}/volumes", tag = "volumes",
    params(("project" = String, Path)), request_body = CreateVolume,
    responses((status = 201, body = VolumeView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Project(project): Project,
    Checked(req): Checked<CreateVolume>,
) -> ApiResult<(StatusCode, Json<VolumeView>)> {
    validate_volume_name(&req.name)?;
    if let Some(size) = &req.size {
        memory_bytes(size).map_err(|_| {
            ApiError::bad_request(
                "invalid_quantity",
                format!("invalid size {size:?}: a quantity of at least 16Mi, e.g. 10Gi"),
            )
        })?;
    }
    let view = state
        .backend
        .create_volume(project, req.name, req.size)
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// One data volume.
#[utoipa::path(get, path = "/v1/projects/{project}/volumes/{name}", tag = "volumes",
    params(("project" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = VolumeView), (status = 404, body = ErrorBody)))]
pub async fn show(State(state): State<AppState>, named: Named) -> ApiResult<Json<VolumeView>> {
    validate_volume_name(&named.name)?;
    Ok(Json(
        state.backend.show_volume(named.project, named.name).await?,
    ))
}

/// Deletes a data volume and its checkpoints (backups stay). Refused while a box mounts it;
/// deleting one that does not exist succeeds.
#[utoipa::path(delete, path = "/v1/projects/{project}/volumes/{name}", tag = "volumes",
    params(("project" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 409, body = ErrorBody)))]
pub async fn delete(State(state): State<AppState>, named: Named) -> ApiResult<StatusCode> {
    validate_volume_name(&named.name)?;
    state
        .backend
        .delete_volume(named.project, named.name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The volume's checkpoints, oldest first.
#[utoipa::path(get, path = "/v1/projects/{project}/volumes/{name}/checkpoints", tag = "volumes",
    params(("project" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = Vec<SnapshotView>), (status = 404, body = ErrorBody)))]
pub async fn list_checkpoints(
    State(state): State<AppState>,
    named: Named,
) -> ApiResult<Json<Vec<SnapshotView>>> {
    let list = state
        .backend
        .list_volume_copies(named.project, named.name, VolumeCopy::Checkpoint)
        .await?;
    Ok(Json(list))
}

/// Checkpoints the volume (`v0`, `v1`, ... unless named); deleted with the volume.
#[utoipa::path(post, path = "/v1/projects/{project}/volumes/{name}/checkpoints", tag = "volumes",
    params(("project" = String, Path), ("name" = String, Path)), request_body = CheckpointVolume,
    responses((status = 201, body = SnapshotView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn checkpoint(
    State(state): State<AppState>,
    named: Named,
    Checked(req): Checked<CheckpointVolume>,
) -> ApiResult<(StatusCode, Json<SnapshotView>)> {
    let made = state
        .backend
        .copy_volume(named.project, named.name, VolumeCopy::Checkpoint, req)
        .await?;
    Ok((StatusCode::CREATED, Json(made)))
}

/// The volume's backups, which outlive it.
#[utoipa::path(get, path = "/v1/projects/{project}/volumes/{name}/backups", tag = "volumes",
    params(("project" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = Vec<SnapshotView>), (status = 404, body = ErrorBody)))]
pub async fn list_backups(
    State(state): State<AppState>,
    named: Named,
) -> ApiResult<Json<Vec<SnapshotView>>> {
    validate_volume_name(&named.name)?;
    let list = state
        .backend
        .list_volume_copies(named.project, named.name, VolumeCopy::Backup)
        .await?;
    Ok(Json(list))
}

/// Backs the volume up; a backup stays when the volume is deleted.
#[utoipa::path(post, path = "/v1/projects/{project}/volumes/{name}/backups", tag = "volumes",
    params(("project" = String, Path), ("name" = String, Path)), request_body = CheckpointVolume,
    responses((status = 201, body = SnapshotView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn backup(
    State(state): State<AppState>,
    named: Named,
    Checked(req): Checked<CheckpointVolume>,
) -> ApiResult<(StatusCode, Json<SnapshotView>)> {
    let made = state
        .backend
        .copy_volume(named.project, named.name, VolumeCopy::Backup, req)
        .await?;
    Ok((StatusCode::CREATED, Json(made)))
}

/// Replaces the volume's contents with a checkpoint or a backup (a backup also brings back a
/// deleted volume). Boxes that mount it must be stopped.
#[utoipa::path(post, path = "/v1/projects/{project}/volumes/{name}/restore", tag = "volumes",
    params(("project" = String, Path), ("name" = String, Path)), request_body = RestoreVolume,
    responses((status = 200, body = VolumeView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn restore(
    State(state): State<AppState>,
    named: Named,
    Checked(req): Checked<RestoreVolume>,
) -> ApiResult<Json<VolumeView>> {
    let view = state
        .backend
        .restore_volume(named.project, named.name, req)
        .await?;
    Ok(Json(view))
}
