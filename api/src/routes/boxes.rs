//! Boxes: create, list, show, update, delete, stop, resume, snapshots, diff, exec, logs.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use forkr_crds::validation::{parse_box_update, validate_snapshot_name};
use serde::Deserialize;

use crate::authz::{Checked, Who};
use crate::backend::{BoxKey, Deletion};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Project;
use crate::state::AppState;
use crate::wire::{
    BackgroundExec, BoxView, CreateBox, CreateSnapshot, DiffFileView, DiffStatusView, ExecCommand,
    ExecOutput, PublishBox, Published, SnapshotView, UnpublishBox, Unpublished, UpdateBox,
};

/// Creates a box from a base (default `box-base`) or as a fork of another box, and starts it.
/// A fork of another project's box needs a token with access to that project (else 403).
#[utoipa::path(post, path = "/v1/projects/{project}/boxes", tag = "boxes",
    params(("project" = String, Path)), request_body = CreateBox,
    responses((status = 201, body = BoxView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Project(project): Project,
    Checked(req): Checked<CreateBox>,
) -> ApiResult<(StatusCode, Json<BoxView>)> {
    Ok((
        StatusCode::CREATED,
        Json(state.backend.create_box(project, req).await?),
    ))
}

/// The project's boxes.
#[utoipa::path(get, path = "/v1/projects/{project}/boxes", tag = "boxes",
    params(("project" = String, Path)),
    responses((status = 200, body = Vec<BoxView>), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Project(project): Project,
) -> ApiResult<Json<Vec<BoxView>>> {
    Ok(Json(state.backend.list_boxes(project).await?))
}

/// One box.
#[utoipa::path(get, path = "/v1/projects/{project}/boxes/{name}", tag = "boxes",
    params(("project" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = BoxView), (status = 404, body = ErrorBody)))]
pub async fn show(State(state): State<AppState>, key: BoxKey) -> ApiResult<Json<BoxView>> {
    Ok(Json(state.backend.show_box(key).await?))
}

/// Applies PORT (1-65535), CPU, MEMORY, TERMINATION_GRACE_PERIOD_SECONDS or
/// TERMINATION_GRACE_SECONDS (up to 86400) and tags. Every other key is dropped without a word;
/// nothing applicable is 400 `no_updates`.
#[utoipa::path(patch, path = "/v1/projects/{project}/boxes/{name}", tag = "boxes",
    params(("project" = String, Path), ("name" = String, Path)), request_body = UpdateBox,
    responses((status = 200, body = BoxView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    key: BoxKey,
    Checked(req): Checked<UpdateBox>,
) -> ApiResult<Json<BoxView>> {
    let update = parse_box_update(&req.env, req.tags.as_ref())?;
    Ok(Json(state.backend.update_box(key, update).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    /// Delete even if the box is running.
    #[serde(default)]
    force: bool,
}

/// Deletes a box's container, root and snapshots; data and system volumes stay. A running box
/// needs `force`, else 409 `fork_running`.
#[utoipa::path(delete, path = "/v1/projects/{project}/boxes/{name}", tag = "boxes",
    params(("project" = String, Path), ("name" = String, Path), DeleteQuery),
    responses((status = 204, description = "deleted"),
        (status = 202, description = "a step failed; the cleanup goes on in the background"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    key: BoxKey,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<StatusCode> {
    Ok(match state.backend.delete_box(key, q.force).await? {
        Deletion::Done => StatusCode::NO_CONTENT,
        Deletion::Pending => StatusCode::ACCEPTED,
    })
}

/// Routes a public hostname to the box's port: `host` wins, else `{subdomain}.{domain}` (`@` is
/// the bare domain; the domain defaults to the server's publish domain). `*.{project}.{domain}`
/// is that project's, a single label under the domain goes to the first publish, and the bare
/// domain and other domains need an admin token (403); `force` takes a host only from a box of
/// the same project, unless the token is an admin's.
#[utoipa::path(post, path = "/v1/projects/{project}/boxes/{name}/publish", tag = "boxes",
    params(("project" = String, Path), ("name" = String, Path)), request_body = PublishBox,
    responses((status = 200, body = Published), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn publish(
    State(state): State<AppState>,
    Who(caller): Who,
    key: BoxKey,
    Checked(req): Checked<PublishBox>,
) -> ApiResult<Json<Published>> {
    let admin = crate::authz::is_admin(&caller);
    Ok(Json(state.backend.publish_box(key, req, admin).await?))
}

/// Removes one published host, or every host of the box when none is named.
#[utoipa::path(post, path = "/v1/projects/{project}/boxes/{name}/unpublish", tag = "boxes",
    params(("project" = String, Path), ("name" = String, Path)), request_body = UnpublishBox,
    responses((status = 200, body = Unpublished), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn unpublish(
    State(state): State<AppState>,
    key: BoxKey,
    Checked(req): Checked<UnpublishBox>,
) -> ApiResult<Json<Unpublished>> {
    Ok(Json(state.backend.unpublish_box(key, req).await?))
}

/// Stops a box: SIGTERM, the grace period, then SIGKILL. /tmp and /run are wiped; the root stays.
#[utoipa::path(post, path = "/v1/projects/{project}/boxes/{name}/stop", tag = "boxes",
    params(("project" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = BoxView), (status = 404, body = ErrorBody)))]
pub async fn stop(State(state): State<AppState>, key: BoxKey) -> ApiResult<Json<BoxView>> {
    Ok(Json(state.backend.stop_box(key).await?))
}

/// Starts a stopped box again, with a fresh PID 1 and its current settings.
#[utoipa::path(post, path = "/v1/projects/{project}/boxes/{name}/resume", tag = "boxes",
    params(("project" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = BoxView), (status = 404, body = ErrorBody)))]
pub async fn resume(State(state): State<AppState>, key: BoxKey) -> ApiResult<Json<BoxView>> {
    Ok(Json(state.backend.resume_box(key).await?))
}

/// The box's snapshots: NAME, SIZE, CREATED (RFC3339), DESCRIPTION.
#[utoipa::path(get, path = "/v1/projects/{project}/boxes/{name}/snapshots", tag = "snapshots",
    params(("project" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = Vec<SnapshotView>), (status = 404, body = ErrorBody)))]
pub async fn list_snapshots(
    State(state): State<AppState>,
    key: BoxKey,
) -> ApiResult<Json<Vec<SnapshotView>>> {
    Ok(Json(state.backend.list_snapshots(key).await?))
}

/// Takes a read-only snapshot of the box's root, named `v0`, `v1`, ... unless a name is given.
/// A name that exists already is 409.
#[utoipa::path(post, path = "/v1/projects/{project}/boxes/{name}/snapshots", tag = "snapshots",
    params(("project" = String, Path), ("name" = String, Path)), request_body = CreateSnapshot,
    responses((status = 201, body = SnapshotView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_snapshot(
    State(state): State<AppState>,
    key: BoxKey,
    Checked(req): Checked<CreateSnapshot>,
) -> ApiResult<(StatusCode, Json<SnapshotView>)> {
    let snap = state
        .backend
        .create_snapshot(key, req.name, req.description)
        .await?;
    Ok((StatusCode::CREATED, Json(snap)))
}

/// The path of a snapshot route; `{project}` and `{name}` come as the [`BoxKey`].
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SnapshotPath {
    snapshot: String,
}

/// Restores the box's root from one of its snapshots. Destructive: the box restarts, and /tmp
/// and /run are wiped.
#[utoipa::path(post, path = "/v1/projects/{project}/boxes/{name}/snapshots/{snapshot}/restore", tag = "snapshots",
    params(("project" = String, Path), ("name" = String, Path), SnapshotPath),
    responses((status = 200, body = BoxView), (status = 404, body = ErrorBody)))]
pub async fn restore_snapshot(
    State(state): State<AppState>,
    key: BoxKey,
    Path(p): Path<SnapshotPath>,
) -> ApiResult<Json<BoxView>> {
    validate_snapshot_name(&p.snapshot)?;
    Ok(Json(state.backend.restore_snapshot(key, p.snapshot).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    /// The snapshot to compare with; the most recent one by default.
    against: Option<String>,
}

/// What changed in the root since a snapshot: `+` added, `~` modified, `-` deleted.
#[utoipa::path(get, path = "/v1/projects/{project}/boxes/{name}/diff", tag = "snapshots",
    params(("project" = String, Path), ("name" = String, Path), DiffQuery),
    responses((status = 200, body = DiffStatusView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn diff_status(
    State(state): State<AppState>,
    key: BoxKey,
    Query(q): Query<DiffQuery>,
) -> ApiResult<Json<DiffStatusView>> {
    Ok(Json(state.backend.diff_status(key, q.against).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DiffFileQuery {
    /// Absolute path inside the box.
    path: String,
    against: Option<String>,
}

/// One file against a snapshot: added, deleted, modified (with a unified diff) or unchanged.
/// Files over 1 MB are refused.
#[utoipa::path(get, path = "/v1/projects/{project}/boxes/{name}/diff/file", tag = "snapshots",
    params(("project" = String, Path), ("name" = String, Path), DiffFileQuery),
    responses((status = 200, body = DiffFileView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn diff_file(
    State(state): State<AppState>,
    key: BoxKey,
    Query(q): Query<DiffFileQuery>,
) -> ApiResult<Json<DiffFileView>> {
    if !q.path.starts_with('/') {
        return Err(ApiError::bad_request(
            "invalid_path",
            format!("path {:?} must be absolute", q.path),
        ));
    }
    Ok(Json(state.backend.diff_file(key, q.path, q.against).await?))
}

/// Runs a command and returns its exit code and output; with `bg`, starts it detached and
/// returns its pid (its output goes to /tmp/boxes/exec/<pid>.log). Commands run through a login
/// shell (`bash -lc`), so /etc/profile.d applies.
#[utoipa::path(post, path = "/v1/projects/{project}/boxes/{name}/exec", tag = "exec",
    params(("project" = String, Path), ("name" = String, Path)), request_body = ExecCommand,
    responses((status = 200, body = ExecOutput), (status = 202, body = BackgroundExec), (status = 409, body = ErrorBody)))]
pub async fn exec(
    State(state): State<AppState>,
    key: BoxKey,
    Checked(cmd): Checked<ExecCommand>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    if cmd.bg {
        let started = state.backend.exec_background(key, cmd).await?;
        return Ok((StatusCode::ACCEPTED, Json(started)).into_response());
    }
    Ok(Json(state.backend.exec(key, cmd).await?).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    /// The background process (required).
    pid: Option<u32>,
    /// Byte offset to read from, for following.
    #[serde(default)]
    offset: u64,
}

/// A background process's log, from `offset`.
#[utoipa::path(get, path = "/v1/projects/{project}/boxes/{name}/logs", tag = "exec",
    params(("project" = String, Path), ("name" = String, Path), LogsQuery),
    responses((status = 200, body = Vec<u8>, content_type = "application/octet-stream"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn logs(
    State(state): State<AppState>,
    key: BoxKey,
    Query(q): Query<LogsQuery>,
) -> ApiResult<Vec<u8>> {
    state.backend.logs(key, q.pid, q.offset).await
}

/// Writes one file into the box (the body, streamed), creating missing parent directories. The
/// path resolves inside the box and cannot escape it; a directory is refused with
/// "only files are supported (directories require -r, not yet supported)". Paths under a data
/// volume land in the root, shadowed by the live mount. `/box/bin` and `/box/all`, shared by
/// every project and read-only inside boxes, take writes from an admin token only: a path that
/// lands there (after the box's symlinks) is 403 `forbidden` for a project token.
#[utoipa::path(put, path = "/v1/projects/{project}/boxes/{name}/files", tag = "files",
    params(("project" = String, Path), ("name" = String, Path), crate::wire::FileQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = crate::wire::FileWritten), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn put_file(
    State(state): State<AppState>,
    key: BoxKey,
    Who(caller): Who,
    Query(q): Query<crate::wire::FileQuery>,
    body: axum::body::Body,
) -> ApiResult<(StatusCode, Json<crate::wire::FileWritten>)> {
    use futures::TryStreamExt;
    forkr_crds::validation::normalize_box_path(&q.path)?;
    let shared_writes = crate::authz::is_admin(&caller);
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let written = state
        .backend
        .put_file(key, q, Box::pin(stream), shared_writes)
        .await?;
    Ok((StatusCode::CREATED, Json(written)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GetFileQuery {
    /// Absolute path inside the box.
    path: String,
}

/// Reads one file of the box. Its mode and owner come back in `x-forkr-mode` (octal),
/// `x-forkr-uid` and `x-forkr-gid`.
#[utoipa::path(get, path = "/v1/projects/{project}/boxes/{name}/files", tag = "files",
    params(("project" = String, Path), ("name" = String, Path), GetFileQuery),
    responses((status = 200, body = Vec<u8>, content_type = "application/octet-stream"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_file(
    State(state): State<AppState>,
    key: BoxKey,
    Query(q): Query<GetFileQuery>,
) -> ApiResult<axum::response::Response> {
    use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
    use axum::response::IntoResponse;
    forkr_crds::validation::normalize_box_path(&q.path)?;
    let f = state.backend.get_file(key, q.path).await?;
    let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(f.file));
    let headers = [
        (CONTENT_TYPE, "application/octet-stream".to_owned()),
        (CONTENT_LENGTH, f.size.to_string()),
        (
            axum::http::HeaderName::from_static(crate::wire::HEADER_MODE),
            format!("{:o}", f.mode),
        ),
        (
            axum::http::HeaderName::from_static(crate::wire::HEADER_UID),
            f.uid.to_string(),
        ),
        (
            axum::http::HeaderName::from_static(crate::wire::HEADER_GID),
            f.gid.to_string(),
        ),
    ];
    Ok((headers, axum::body::Body::from_stream(stream)).into_response())
}

/// TCP ports something listens on inside the box.
#[utoipa::path(get, path = "/v1/projects/{project}/boxes/{name}/ports", tag = "ports",
    params(("project" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = Vec<crate::wire::PortView>), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn list_ports(
    State(state): State<AppState>,
    key: BoxKey,
) -> ApiResult<Json<Vec<crate::wire::PortView>>> {
    Ok(Json(state.backend.list_ports(key).await?))
}

/// The path of a port route; `{project}` and `{name}` come as the [`BoxKey`].
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PortPath {
    port: u16,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    /// Seconds to wait (default 60, at most 600).
    #[serde(default)]
    timeout: Option<u64>,
}

/// Waits until something listens on the port inside the box; 408 `port_timeout` otherwise.
#[utoipa::path(post, path = "/v1/projects/{project}/boxes/{name}/ports/{port}/wait", tag = "ports",
    params(("project" = String, Path), ("name" = String, Path), PortPath, WaitQuery),
    responses((status = 200, body = crate::wire::PortView), (status = 408, body = ErrorBody)))]
pub async fn wait_port(
    State(state): State<AppState>,
    key: BoxKey,
    Path(p): Path<PortPath>,
    Query(q): Query<WaitQuery>,
) -> ApiResult<Json<crate::wire::PortView>> {
    if p.port == 0 {
        return Err(ApiError::bad_request(
            "invalid_port",
            "invalid PORT \"0\": must be an integer from 1 to 65535",
        ));
    }
    let secs = q.timeout.unwrap_or(60).min(600);
    let view = state
        .backend
        .wait_port(key, p.port, std::time::Duration::from_secs(secs))
        .await?;
    Ok(Json(view))
}
