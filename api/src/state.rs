//! What every handler shares.

use std::sync::Arc;

use forkr_node_agent::Pool;

use crate::error::{ApiError, ApiResult};
use crate::store::{Store, StoreError};

/// Server-wide settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The deployment domain (FORKR_DOMAIN): boxes are `https://{box}.{domain}`.
    pub domain: String,
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub pool: Arc<Pool>,
    pub config: Arc<Config>,
}

impl AppState {
    /// Runs a blocking pool operation (btrfs ioctls, file walks) off the async workers.
    pub async fn with_pool<T, F>(&self, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Pool) -> forkr_node_agent::Result<T> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || f(&pool))
            .await
            .map_err(|e| ApiError::internal(format!("pool task failed: {e}")))?
            .map_err(ApiError::from)
    }

    /// Runs a store operation off the async workers: SQLite may wait on its lock.
    pub async fn with_store<T, F>(&self, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| ApiError::internal(format!("store task failed: {e}")))?
            .map_err(ApiError::from)
    }
}

impl From<forkr_node_agent::Error> for ApiError {
    fn from(e: forkr_node_agent::Error) -> Self {
        use axum::http::StatusCode;
        use forkr_node_agent::Error as E;
        match &e {
            E::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "not_found", m.clone()),
            E::AlreadyExists(m) => ApiError::new(StatusCode::CONFLICT, "already_exists", m.clone()),
            E::InvalidArgument(m) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_argument", m.clone())
            }
            E::FailedPrecondition(m) => {
                ApiError::new(StatusCode::CONFLICT, "failed_precondition", m.clone())
            }
            _ => ApiError::internal(e.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::Exists(what) => {
                ApiError::conflict("already_exists", format!("{what} already exists"))
            }
            StoreError::Missing(what) => ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "not_found",
                format!("{what} not found"),
            ),
            _ => ApiError::internal(e.to_string()),
        }
    }
}
