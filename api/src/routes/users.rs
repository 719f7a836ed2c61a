//! Project users: `4kr user list/create/update/delete`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use forkr_crds::validation::validate_user_name;

use crate::authz::Checked;
use crate::backend::on_store;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Named, Project};
use crate::state::AppState;
use crate::wire::{CreateUser, UpdateUser, UserView};

const DEFAULT_SHELL: &str = "/bin/bash";

/// A login shell: an absolute path that cannot break a passwd line.
fn validate_shell(shell: &str) -> ApiResult<()> {
    let ok = shell.starts_with('/') && shell.len() <= 256 && !shell.contains(['\0', ':', '\n']);
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_shell",
            format!("invalid shell {shell:?}: an absolute path without ':' or newlines"),
        ))
    }
}

/// The project's users, by UID.
#[utoipa::path(get, path = "/v1/projects/{project}/users", tag = "users",
    params(("project" = String, Path)),
    responses((status = 200, body = Vec<UserView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Project(project): Project,
) -> ApiResult<Json<Vec<UserView>>> {
    Ok(Json(
        on_store(state.backend.gateway_store(), move |s| {
            s.list_users(&project)
        })
        .await?,
    ))
}

/// Adds a user: the next UID from 20000, GID = UID, home /home/<name>, shell /bin/bash.
#[utoipa::path(post, path = "/v1/projects/{project}/users", tag = "users",
    params(("project" = String, Path)), request_body = CreateUser,
    responses((status = 201, body = UserView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Project(project): Project,
    Checked(req): Checked<CreateUser>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    validate_user_name(&req.name)?;
    let shell = req.shell.unwrap_or_else(|| DEFAULT_SHELL.to_owned());
    validate_shell(&shell)?;
    let user = on_store(state.backend.gateway_store(), move |s| {
        s.create_user(&project, &req.name, &shell)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// Changes a user's shell.
#[utoipa::path(patch, path = "/v1/projects/{project}/users/{name}", tag = "users",
    params(("project" = String, Path), ("name" = String, Path)), request_body = UpdateUser,
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    named: Named,
    Checked(req): Checked<UpdateUser>,
) -> ApiResult<Json<UserView>> {
    validate_user_name(&named.name)?;
    validate_shell(&req.shell)?;
    Ok(Json(
        on_store(state.backend.gateway_store(), move |s| {
            s.update_user(&named.project, &named.name, &req.shell)
        })
        .await?,
    ))
}

/// Removes a user; removing one that does not exist succeeds (delete is idempotent).
#[utoipa::path(delete, path = "/v1/projects/{project}/users/{name}", tag = "users",
    params(("project" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 400, body = ErrorBody)))]
pub async fn delete(State(state): State<AppState>, named: Named) -> ApiResult<StatusCode> {
    validate_user_name(&named.name)?;
    on_store(state.backend.gateway_store(), move |s| {
        s.delete_user(&named.project, &named.name).map(drop)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
