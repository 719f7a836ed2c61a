//! Bases: `4kr base list/show/import/save/delete`. Bases are shared by every project: every
//! token lists them and boots from them. Writes follow `crate::authz::base_write`: `box-base`
//! and unclaimed bases are an admin's, a claimed name its project's.

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use forkr_crds::validation::{
    validate_base_alias, validate_base_ref, validate_base_version, validate_request_id,
};
use futures::TryStreamExt;
use serde::Deserialize;

use crate::authz::{self, Checked, Who};
use crate::backend::BoxKey;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Named, Project};
use crate::state::AppState;
use crate::wire::{BaseDetailsView, BaseSummaryView, BaseWritten, ImportBase, SaveBase};

/// Every base with its newest version: NAME, VERSION, SIZE, CREATED.
#[utoipa::path(get, path = "/v1/projects/{project}/bases", tag = "bases",
    params(("project" = String, Path)),
    responses((status = 200, body = Vec<BaseSummaryView>), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Project(_): Project,
) -> ApiResult<Json<Vec<BaseSummaryView>>> {
    Ok(Json(state.backend.list_bases().await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ShowQuery {
    /// Only versions whose build script has this sha256.
    tag: Option<String>,
}

/// A base's versions, newest first: VERSION, KIND, TAG, BUILDER, PARENT, SIZE, CREATED.
#[utoipa::path(get, path = "/v1/projects/{project}/bases/{name}", tag = "bases",
    params(("project" = String, Path), ("name" = String, Path), ShowQuery),
    responses((status = 200, body = BaseDetailsView), (status = 404, body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    named: Named,
    Query(q): Query<ShowQuery>,
) -> ApiResult<Json<BaseDetailsView>> {
    validate_base_version(&named.name)?;
    Ok(Json(state.backend.show_base(named.name, q.tag).await?))
}

/// Deletes a base (every version) or one exact version. Refused while a box root depends on it,
/// and (403) unless the token is an admin's or the base belongs to the token's project.
#[utoipa::path(delete, path = "/v1/projects/{project}/bases/{name}", tag = "bases",
    params(("project" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Who(caller): Who,
    named: Named,
) -> ApiResult<StatusCode> {
    validate_base_version(&named.name)?;
    if authz::base_delete(&state, &caller, &named.name).await? {
        state.backend.delete_base(named.name).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Imports a rootfs `.tar.gz` (the request body, streamed) as the next version of a base: the
/// exact name the first time, `<name>-vYYYYMMDDhhmmss` after. With `parent`, it is extracted on
/// top of a snapshot of that base. Entries that escape the root and non-amd64 userlands are
/// refused and leave nothing behind. Only an admin token writes `box-base` and bases no project
/// owns; a project token's first import of a new name makes it that project's (403 otherwise).
#[utoipa::path(post, path = "/v1/projects/{project}/bases/{name}/import", tag = "bases",
    params(("project" = String, Path), ("name" = String, Path), ImportBase),
    request_body(content = Vec<u8>, content_type = "application/gzip"),
    responses((status = 201, body = BaseWritten), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn import(
    State(state): State<AppState>,
    Who(caller): Who,
    named: Named,
    Query(q): Query<ImportBase>,
    body: Body,
) -> ApiResult<(StatusCode, Json<BaseWritten>)> {
    validate_base_alias(&named.name)?;
    if let Some(p) = &q.parent {
        validate_base_ref(p)?;
    }
    if let Some(id) = &q.request_id {
        validate_request_id(id)?;
    }
    let write = authz::base_write(&state, &caller, &named.project, &named.name).await?;
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    match state
        .backend
        .import_base(named.name, q, write.owner(), Box::pin(stream))
        .await
    {
        Ok(written) => Ok((StatusCode::CREATED, Json(written))),
        Err(e) => {
            write.failed(&state).await;
            Err(e)
        }
    }
}

/// Saves a box's root, as it is on disk, as the next version of a base. The box need not run.
/// The base is written under the same rule as an import (403 otherwise).
#[utoipa::path(post, path = "/v1/projects/{project}/bases/{name}/save", tag = "bases",
    params(("project" = String, Path), ("name" = String, Path)), request_body = SaveBase,
    responses((status = 201, body = BaseWritten), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn save(
    State(state): State<AppState>,
    Who(caller): Who,
    named: Named,
    Checked(req): Checked<SaveBase>,
) -> ApiResult<(StatusCode, Json<BaseWritten>)> {
    validate_base_alias(&named.name)?;
    let from = BoxKey::new(named.project.as_str(), req.box_name)?;
    let write = authz::base_write(&state, &caller, &named.project, &named.name).await?;
    match state.backend.save_base(named.name, from).await {
        Ok(written) => Ok((StatusCode::CREATED, Json(written))),
        Err(e) => {
            write.failed(&state).await;
            Err(e)
        }
    }
}
