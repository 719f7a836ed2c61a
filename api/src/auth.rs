//! Bearer tokens, stored hashed, each scoped to a set of projects or to everything (admin),
//! optionally with an expiry; and the middleware that checks them and logs who did what.

use std::io::Read;
use std::time::Duration;

use axum::extract::{RawPathParams, Request, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{Scope, Store, StoreError, TokenRecord};

/// Prefix of every token, so a leaked one is recognisable in logs and by secret scanners.
pub const TOKEN_PREFIX: &str = "fkr_";

/// How often a token's `last_used` is written at most: often enough to tell a live token from
/// a dead one, rarely enough that the hot path stays a read.
pub const LAST_USED_EVERY: Duration = Duration::from_secs(60);

/// The `tracing` target of the audit lines, so they can be filtered and shipped on their own.
pub const AUDIT_TARGET: &str = "forkr_api::audit";

/// The sha256 of a token: what the store keeps.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("reading the kernel's random numbers: {0}")]
    Random(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<IssueError> for ApiError {
    fn from(e: IssueError) -> Self {
        match e {
            IssueError::Store(e) => e.into(),
            IssueError::Random(e) => ApiError::internal(format!("minting a token: {e}")),
        }
    }
}

/// A token just made: its secret, shown once, and its record.
#[derive(Debug, Clone)]
pub struct Issued {
    pub secret: String,
    pub record: TokenRecord,
}

/// Makes a new token with 256 bits from the kernel's CSPRNG and records its hash.
pub fn issue_token(store: &Store, name: &str, scope: &Scope) -> anyhow::Result<String> {
    Ok(mint(store, name, scope, None)?.secret)
}

/// Makes a new token that stops working at `expires` (never when none).
pub fn mint(
    store: &Store,
    name: &str,
    scope: &Scope,
    expires: Option<jiff::Timestamp>,
) -> Result<Issued, IssueError> {
    // Ids are 48 bits of the hash: a clash is all but impossible, and a new secret resolves it.
    let mut attempts = 0;
    loop {
        let mut bytes = [0u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
        let secret = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
        match store.add_token_expiring(&hash_token(&secret), name, scope, expires) {
            Ok(record) => return Ok(Issued { secret, record }),
            Err(StoreError::Exists(_)) if attempts < 3 => attempts += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Who is calling: attached to the request by [`require_token`].
#[derive(Debug, Clone)]
pub struct Caller {
    pub scope: Scope,
    /// The token's id (not secret): what logs and `GET /v1/tokens` show.
    pub token_id: String,
    /// The name the token was minted with.
    pub token_name: String,
}

fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The token's record, with `last_used` brought up to date when it is due: one read on the
/// hot path, a write at most once a minute per token.
fn authenticate(store: &Store, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
    let Some(record) = store.token(hash)? else {
        return Ok(None);
    };
    let now = jiff::Timestamp::now();
    if !record.expired(now) && record.use_due(now, LAST_USED_EVERY) {
        store.touch_token(hash, now)?;
    }
    Ok(Some(record))
}

/// Middleware for every `/v1` route: no token, an unknown or a revoked one is 401, an expired
/// one is 401 saying so; a token whose scope does not include the `{project}` of the path is
/// 403. Every authenticated request leaves one audit line: token id and name, method, path,
/// project and status.
pub async fn require_token(
    State(state): State<AppState>,
    params: RawPathParams,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let hash = hash_token(bearer(&req).ok_or_else(ApiError::unauthorized)?);
    let store = state.backend.gateway_store();
    let record = tokio::task::spawn_blocking(move || authenticate(&store, &hash))
        .await
        .map_err(|e| ApiError::internal(format!("token lookup failed: {e}")))??
        .ok_or_else(ApiError::unauthorized)?;
    if record.expired(jiff::Timestamp::now()) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!(
                "this token expired at {}",
                record.expires.as_deref().unwrap_or("an unreadable time")
            ),
        ));
    }
    let project = params
        .iter()
        .find(|(k, _)| *k == "project")
        .map(|(_, v)| v.to_owned());
    let method = req.method().clone();
    // The path only: a query string may carry what does not belong in a log.
    let path = req.uri().path().to_owned();
    let caller = Caller {
        scope: record.scope,
        token_id: record.id,
        token_name: record.name,
    };
    let audit = |status: StatusCode| {
        tracing::info!(
            target: AUDIT_TARGET,
            token_id = %caller.token_id,
            token_name = ?caller.token_name,
            %method,
            %path,
            project = %project.as_deref().unwrap_or("-"),
            status = status.as_u16(),
            "request"
        );
    };
    if let Some(project) = project.as_deref()
        && !caller.scope.allows(project)
    {
        audit(StatusCode::FORBIDDEN);
        return Err(ApiError::forbidden(format!(
            "this token has no access to project {project:?}"
        )));
    }
    req.extensions_mut().insert(caller.clone());
    let resp = next.run(req).await;
    audit(resp.status());
    Ok(resp)
}

/// The longest token name: names show in listings and audit lines.
const MAX_TOKEN_NAME: usize = 64;

/// What a token request asks for, checked: its scope and when it ends. `forkr-api token` and
/// `POST /v1/tokens` share it, so both refuse the same input with the same words.
pub fn token_request(
    req: &crate::wire::CreateToken,
    now: jiff::Timestamp,
) -> Result<(Scope, Option<jiff::Timestamp>), ApiError> {
    let invalid = |m: String| ApiError::bad_request("invalid_argument", m);
    if req.name.is_empty()
        || req.name.chars().count() > MAX_TOKEN_NAME
        || req.name.chars().any(char::is_control)
    {
        return Err(invalid(format!(
            "invalid token name {:?}: 1-{MAX_TOKEN_NAME} characters, no control characters",
            req.name
        )));
    }
    let scope = match (req.admin, req.projects.is_empty()) {
        (true, true) => Scope::Admin,
        (false, false) => {
            for p in &req.projects {
                forkr_crds::validation::validate_project_name(p)?;
            }
            Scope::Projects(req.projects.clone())
        }
        (true, false) => return Err(invalid("give admin or projects, not both".into())),
        (false, true) => return Err(invalid("give admin or at least one project".into())),
    };
    let expires = match (&req.expires_in, &req.expires) {
        (Some(_), Some(_)) => {
            return Err(invalid("give expires_in or expires, not both".into()));
        }
        (Some(life), None) => {
            let secs = life.seconds().map_err(invalid)?;
            let secs = i64::try_from(secs)
                .ok()
                .filter(|s| *s > 0)
                .ok_or_else(|| invalid(format!("invalid lifetime {secs}: at least 1 second")))?;
            Some(
                now.checked_add(jiff::SignedDuration::from_secs(secs))
                    .map_err(|_| invalid(format!("lifetime {secs}s ends too late")))?,
            )
        }
        (None, Some(at)) => {
            let at: jiff::Timestamp = at.parse().map_err(|e| {
                invalid(format!(
                    "invalid expires {at:?}: an RFC 3339 time such as 2030-01-31T00:00:00Z ({e})"
                ))
            })?;
            if at <= now {
                return Err(invalid(format!("expires {at} is not in the future")));
            }
            Some(at)
        }
        (None, None) => None,
    };
    Ok((scope, expires))
}

/// A token's record as the API shows it.
pub fn token_view(t: TokenRecord) -> crate::wire::TokenView {
    let (admin, projects) = match t.scope {
        Scope::Admin => (true, Vec::new()),
        Scope::Projects(p) => (false, p),
    };
    crate::wire::TokenView {
        id: t.id,
        name: t.name,
        admin,
        projects,
        created: t.created,
        expires: t.expires,
        last_used: t.last_used,
    }
}
