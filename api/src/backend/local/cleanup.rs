//! Deleting a box's container, root and checkpoints, and finishing that in the background when a
//! step fails. The Box object stays, in phase `Deleting`, until every step has succeeded, so a
//! restarted server finds the unfinished deletes and carries them on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use forkr_crds::{BoxPhase, BoxResource};
use forkr_node_agent::Pool;
use forkr_node_agent::runtime::LocalRuntime;

use super::{BOX, BoxLock, HostIndex};
use crate::error::{ApiError, ApiResult};
use crate::store::Store;

/// Per-box locks, shared with background work.
pub(super) type BoxLocks = Arc<Mutex<HashMap<(String, String), BoxLock>>>;

pub(super) fn lock_for(locks: &BoxLocks, project: &str, name: &str) -> BoxLock {
    let mut map = locks.lock().unwrap_or_else(|p| p.into_inner());
    map.entry((project.to_owned(), name.to_owned()))
        .or_default()
        .clone()
}

/// Everything a delete touches, cheap to clone into a background task.
#[derive(Clone)]
pub(super) struct Cleanup {
    pub store: Arc<Store>,
    pub pool: Arc<Pool>,
    pub runtime: Arc<LocalRuntime>,
    pub locks: BoxLocks,
    pub hosts: Arc<HostIndex>,
}

/// First wait between background attempts; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl Cleanup {
    /// One attempt at every step; each is idempotent, so a retry redoes only what is left.
    /// The caller holds the box's lock.
    pub async fn attempt(&self, project: &str, name: &str) -> ApiResult<()> {
        let this = self.clone();
        let (p, n) = (project.to_owned(), name.to_owned());
        tokio::task::spawn_blocking(move || -> ApiResult<()> {
            match this.runtime.remove(&p, &n) {
                Ok(()) => {}
                Err(e) => {
                    let e = ApiError::from(e);
                    if e.status != StatusCode::NOT_FOUND {
                        return Err(e);
                    }
                }
            }
            this.pool.delete_root(&p, &n)?;
            this.store.remove(BOX, &p, &n)?;
            this.hosts.forget_box(&p, &n);
            Ok(())
        })
        .await
        .map_err(|e| ApiError::internal(format!("cleanup task failed: {e}")))?
    }

    /// Retries until the box is gone, with a capped exponential backoff.
    pub fn retry_in_background(self, project: String, name: String) {
        tokio::spawn(async move {
            let mut wait = FIRST_BACKOFF;
            loop {
                tokio::time::sleep(wait).await;
                let lock = lock_for(&self.locks, &project, &name);
                let _g = lock.lock().await;
                match self.attempt(&project, &name).await {
                    Ok(()) => {
                        tracing::info!(%project, box = %name, "background delete finished");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(%project, box = %name, error = %e.message, "delete still incomplete; retrying");
                    }
                }
                wait = (wait * 2).min(MAX_BACKOFF);
            }
        });
    }

    /// Carries on every delete a previous server left unfinished.
    pub fn resume_unfinished(&self) -> ApiResult<usize> {
        let mut n = 0;
        for (project, b) in self.store.list_all::<BoxResource>(BOX)? {
            let phase = b.status.as_ref().and_then(|s| s.phase);
            if phase == Some(BoxPhase::Deleting)
                && let Some(name) = b.metadata.name.clone()
            {
                self.clone().retry_in_background(project, name);
                n += 1;
            }
        }
        Ok(n)
    }
}
