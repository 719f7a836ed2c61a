//! Bearer tokens: list, mint and revoke (`4kr token`). Admin only: a token that could mint
//! tokens could mint itself a wider scope. These routes have no `{project}`, so
//! `auth::require_token` only authenticates them; the admin check is here, before the body is
//! read, so a project token learns nothing from its mistakes but 403.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use crate::auth::{self, Caller};
use crate::authz::{self, Who};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::JsonBody;
use crate::state::AppState;
use crate::store::{Store, StoreResult};
use crate::wire::{CreateToken, CreatedToken, TokenView};

fn admin_only(caller: &Caller) -> ApiResult<()> {
    if authz::is_admin(caller) {
        Ok(())
    } else {
        Err(ApiError::forbidden("only an admin token manages tokens"))
    }
}

async fn store_call<T, F>(state: &AppState, f: F) -> ApiResult<T>
where
    T: Send + 'static,
    F: FnOnce(&Store) -> StoreResult<T> + Send + 'static,
{
    let store = state.backend.gateway_store();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| ApiError::internal(format!("store task failed: {e}")))?
        .map_err(ApiError::from)
}

/// Every token: id, name, scope, created, expires, last used. Never a secret or a hash.
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens",
    responses((status = 200, body = Vec<TokenView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Who(caller): Who,
) -> ApiResult<Json<Vec<TokenView>>> {
    admin_only(&caller)?;
    let tokens = store_call(&state, Store::list_tokens).await?;
    Ok(Json(tokens.into_iter().map(auth::token_view).collect()))
}

/// Mints a token; its secret is in this answer and nowhere else, ever.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", request_body = CreateToken,
    responses((status = 201, body = CreatedToken), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Who(caller): Who,
    body: Result<JsonBody<CreateToken>, ApiError>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    admin_only(&caller)?;
    let JsonBody(req) = body?;
    let (scope, expires) = auth::token_request(&req, jiff::Timestamp::now())?;
    let name = req.name;
    let store = state.backend.gateway_store();
    let issued = tokio::task::spawn_blocking(move || auth::mint(&store, &name, &scope, expires))
        .await
        .map_err(|e| ApiError::internal(format!("store task failed: {e}")))??;
    tracing::info!(
        target: auth::AUDIT_TARGET,
        by = %caller.token_id,
        token_id = %issued.record.id,
        token_name = ?issued.record.name,
        "token minted"
    );
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: issued.secret,
            info: auth::token_view(issued.record),
        }),
    ))
}

/// Revokes a token: from the next request on it is 401.
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    Who(caller): Who,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    admin_only(&caller)?;
    let revoked = store_call(&state, move |s| s.revoke_token(&id)).await?;
    tracing::info!(
        target: auth::AUDIT_TARGET,
        by = %caller.token_id,
        token_id = %revoked.id,
        token_name = ?revoked.name,
        "token revoked"
    );
    Ok(StatusCode::NO_CONTENT)
}
