use axum::Json;
use axum::extract::State;

use crate::error::ApiResult;
use crate::state::AppState;
use crate::wire::Health;

/// Liveness: the process answers. No token needed.
#[utoipa::path(get, path = "/healthz", security(()), responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Readiness: the store and the pool answer. No token needed.
#[utoipa::path(get, path = "/readyz", security(()), responses((status = 200, body = Health), (status = 500, body = crate::error::ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Health>> {
    state
        .with_store(|s| s.token_scope("readyz-probe").map(drop))
        .await?;
    state.with_pool(|p| p.list_bases().map(drop)).await?;
    Ok(Json(Health {
        status: "ready".into(),
    }))
}
