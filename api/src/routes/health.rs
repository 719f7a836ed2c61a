use axum::Json;
use axum::extract::State;

use crate::error::{ApiResult, ErrorBody};
use crate::state::AppState;
use crate::wire::Health;

/// Liveness: the process answers. No token needed.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Readiness: the backend's store and storage answer. No token needed.
#[utoipa::path(get, path = "/readyz", tag = "health", security(()),
    responses((status = 200, body = Health), (status = 500, body = ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Health>> {
    state.backend.ready().await?;
    Ok(Json(Health {
        status: "ready".into(),
    }))
}
