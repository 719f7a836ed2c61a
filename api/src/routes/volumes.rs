//! Data volumes: `4kr data create/list/show/delete`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use forkr_crds::validation::{memory_bytes, validate_volume_name};
use forkr_crds::{BoxResource, DataVolume, DataVolumeSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{JsonBody, Named, Project};
use crate::state::AppState;
use crate::wire::{CreateVolume, VolumeView};

pub(crate) const KIND: &str = "DataVolume";

fn view(
    project: &str,
    info: &forkr_node_agent::volumes::VolumeInfo,
    obj: Option<&DataVolume>,
) -> VolumeView {
    VolumeView {
        name: info.name.clone(),
        project: project.to_owned(),
        size: info.size,
        limit: obj.and_then(|o| o.spec.size.as_ref()).map(|q| q.0.clone()),
        created: info.created.clone(),
    }
}

/// The project's data volumes with the bytes each uses.
#[utoipa::path(get, path = "/v1/projects/{project}/volumes", tag = "volumes",
    params(("project" = String, Path)),
    responses((status = 200, body = Vec<VolumeView>), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Project(project): Project,
) -> ApiResult<Json<Vec<VolumeView>>> {
    let p = project.clone();
    let infos = state.with_pool(move |pool| pool.list_volumes(&p)).await?;
    let p = project.clone();
    let objects: Vec<DataVolume> = state.with_store(move |s| s.list(KIND, &p)).await?;
    let views = infos
        .iter()
        .map(|info| {
            let obj = objects
                .iter()
                .find(|o| o.metadata.name.as_deref() == Some(info.name.as_str()));
            view(&project, info, obj)
        })
        .collect();
    Ok(Json(views))
}

/// Creates an empty data volume. An optional size is recorded as the limit.
#[utoipa::path(post, path = "/v1/projects/{project}/volumes", tag = "volumes",
    params(("project" = String, Path)), request_body = CreateVolume,
    responses((status = 201, body = VolumeView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Project(project): Project,
    JsonBody(req): JsonBody<CreateVolume>,
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
    let mut obj = DataVolume::new(
        &req.name,
        DataVolumeSpec {
            size: req.size.clone().map(Quantity),
            ..Default::default()
        },
    );
    obj.metadata.namespace = Some(project.clone());
    obj.validate()?;
    let (p, n) = (project.clone(), req.name.clone());
    if state
        .with_store(move |s| s.get::<DataVolume>(KIND, &p, &n))
        .await?
        .is_some()
    {
        return Err(ApiError::conflict(
            "already_exists",
            format!("data volume {:?} already exists", req.name),
        ));
    }
    // The pool step is idempotent, so a create that died after it is finished by a retry.
    let (p, n) = (project.clone(), req.name.clone());
    state
        .with_pool(move |pool| pool.create_volume(&p, &n))
        .await?;
    let (p, n, o) = (project.clone(), req.name.clone(), obj.clone());
    state
        .with_store(move |s| s.insert(KIND, &p, &n, &o))
        .await?;
    let (p, n) = (project.clone(), req.name.clone());
    let info = state
        .with_pool(move |pool| {
            pool.list_volumes(&p)
                .map(|v| v.into_iter().find(|i| i.name == n))
        })
        .await?
        .ok_or_else(|| ApiError::internal("volume vanished after create"))?;
    Ok((StatusCode::CREATED, Json(view(&project, &info, Some(&obj)))))
}

/// One data volume.
#[utoipa::path(get, path = "/v1/projects/{project}/volumes/{name}", tag = "volumes",
    params(("project" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = VolumeView), (status = 404, body = ErrorBody)))]
pub async fn show(State(state): State<AppState>, named: Named) -> ApiResult<Json<VolumeView>> {
    validate_volume_name(&named.name)?;
    let (p, n) = (named.project.clone(), named.name.clone());
    let info = state
        .with_pool(move |pool| {
            pool.list_volumes(&p)
                .map(|v| v.into_iter().find(|i| i.name == n))
        })
        .await?
        .ok_or_else(|| ApiError::not_found("data volume", &named.name))?;
    let (p, n) = (named.project.clone(), named.name.clone());
    let obj: Option<DataVolume> = state.with_store(move |s| s.get(KIND, &p, &n)).await?;
    Ok(Json(view(&named.project, &info, obj.as_ref())))
}

/// Deletes a data volume and its checkpoints (backups stay). Refused while a box mounts it;
/// deleting one that does not exist succeeds.
#[utoipa::path(delete, path = "/v1/projects/{project}/volumes/{name}", tag = "volumes",
    params(("project" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 409, body = ErrorBody)))]
pub async fn delete(State(state): State<AppState>, named: Named) -> ApiResult<StatusCode> {
    validate_volume_name(&named.name)?;
    let p = named.project.clone();
    let boxes: Vec<BoxResource> = state.with_store(move |s| s.list("Box", &p)).await?;
    let users: Vec<String> = boxes
        .iter()
        .filter(|b| b.spec.data.iter().any(|m| m.volume == named.name))
        .filter_map(|b| b.metadata.name.clone())
        .collect();
    if !users.is_empty() {
        return Err(ApiError::conflict(
            "volume_in_use",
            format!(
                "data volume {:?} is mounted by {}",
                named.name,
                users.join(", ")
            ),
        ));
    }
    let (p, n) = (named.project.clone(), named.name.clone());
    state
        .with_pool(move |pool| pool.delete_volume(&p, &n))
        .await?;
    let (p, n) = (named.project.clone(), named.name.clone());
    state.with_store(move |s| s.remove(KIND, &p, &n)).await?;
    Ok(StatusCode::NO_CONTENT)
}
