//! Bearer tokens, stored hashed, each scoped to a set of projects or to everything (admin).

use std::io::Read;

use axum::extract::{RawPathParams, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{Scope, Store};

/// Prefix of every token, so a leaked one is recognisable in logs and by secret scanners.
pub const TOKEN_PREFIX: &str = "fkr_";

/// The sha256 of a token: what the store keeps.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Makes a new token with 256 bits from the kernel's CSPRNG and records its hash.
pub fn issue_token(store: &Store, name: &str, scope: &Scope) -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
    store.add_token(&hash_token(&token), name, scope)?;
    Ok(token)
}

/// Who is calling: attached to the request by [`require_token`].
#[derive(Debug, Clone)]
pub struct Caller {
    pub scope: Scope,
}

fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Middleware for every `/v1` route: no token or an unknown one is 401; a token whose scope
/// does not include the `{project}` of the path is 403.
pub async fn require_token(
    State(state): State<AppState>,
    params: RawPathParams,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let token = bearer(&req).ok_or_else(ApiError::unauthorized)?;
    let scope = state
        .backend
        .token_scope(hash_token(token))
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    if let Some((_, project)) = params.iter().find(|(k, _)| *k == "project")
        && !scope.allows(project)
    {
        return Err(ApiError::forbidden(format!(
            "this token has no access to project {project:?}"
        )));
    }
    req.extensions_mut().insert(Caller { scope });
    Ok(next.run(req).await)
}
