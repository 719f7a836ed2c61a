//! The embedded backend: objects in SQLite, storage in this machine's btrfs pool, boxes as
//! runc containers of the node agent's local runtime.
//!
//! Box and DataVolume objects (the CRD types) live in SQLite. Snapshots and bases are not copied
//! there: the pool is self-describing (names, times, descriptions, provenance), so it is their
//! one source of truth and nothing can drift.

mod bases;
mod boxes;
mod cleanup;
mod exec;
mod files;
pub mod hosts;
mod ports;
mod publish;
mod snapshots;
mod stream;
mod volumes;

pub use crate::backend::hostrules::api_host;
pub use hosts::{HostIndex, HostOwner};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use forkr_crds::DataVolume;
use forkr_node_agent::Pool;
use forkr_node_agent::pool::volumes::VolumeInfo;
use forkr_node_agent::runtime::LocalRuntime;

use async_trait::async_trait;

use super::Backend;
use crate::error::{ApiError, ApiResult};
use crate::store::{Store, StoreError};
use crate::wire::{SnapshotView, VolumeView};

const VOLUME: &str = "DataVolume";
const BOX: &str = "Box";

/// Held while an operation changes one box.
type BoxLock = Arc<tokio::sync::Mutex<()>>;

pub struct LocalBackend {
    store: Arc<Store>,
    pool: Arc<Pool>,
    runtime: Arc<LocalRuntime>,
    domain: String,
    max_upload: u64,
    /// Console sessions, kept across client reconnects.
    sessions: forkr_node_agent::exec::session::Sessions,
    /// One lock per box: operations on a box run one at a time, different boxes concurrently.
    box_locks: cleanup::BoxLocks,
    /// Published hosts, for the proxy and for publish conflicts.
    hosts: Arc<HostIndex>,
    /// Held while a host changes owner.
    publish_lock: tokio::sync::Mutex<()>,
    /// Where `4kr publish <box> <sub>` puts `<sub>` by default.
    publish_domain: String,
}

/// Largest base upload accepted by default: a generous rootfs.
pub const DEFAULT_MAX_UPLOAD: u64 = 16 << 30;

impl LocalBackend {
    /// The backend over a store, a pool and the runtime that runs boxes from that pool.
    pub fn new(
        store: Store,
        pool: Arc<Pool>,
        runtime: Arc<LocalRuntime>,
        domain: &str,
    ) -> ApiResult<LocalBackend> {
        let hosts = HostIndex::load(&store)?;
        Ok(LocalBackend {
            store: Arc::new(store),
            pool,
            runtime,
            domain: domain.to_owned(),
            max_upload: DEFAULT_MAX_UPLOAD,
            sessions: Default::default(),
            box_locks: Arc::new(Mutex::new(HashMap::new())),
            hosts: Arc::new(hosts),
            publish_lock: tokio::sync::Mutex::new(()),
            publish_domain: domain.to_owned(),
        })
    }

    /// Publishes under `domain` instead of the deployment domain.
    pub fn with_publish_domain(mut self, domain: &str) -> LocalBackend {
        self.publish_domain = domain.to_owned();
        self
    }

    /// Starts background work: deletes a previous server left unfinished. Call inside a Tokio
    /// runtime.
    pub fn start_background(&self) -> ApiResult<usize> {
        self.cleanup().resume_unfinished()
    }

    /// The deployment domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Who owns a published host.
    pub fn host_owner(&self, host: &str) -> Option<HostOwner> {
        self.hosts.owner(host)
    }

    fn cleanup(&self) -> cleanup::Cleanup {
        cleanup::Cleanup {
            store: self.store.clone(),
            pool: self.pool.clone(),
            runtime: self.runtime.clone(),
            locks: self.box_locks.clone(),
            hosts: self.hosts.clone(),
        }
    }

    fn box_lock(&self, project: &str, name: &str) -> BoxLock {
        cleanup::lock_for(&self.box_locks, project, name)
    }

    /// Volumes share the lock map; the NUL keeps their keys apart from boxes'.
    fn volume_lock(&self, project: &str, name: &str) -> BoxLock {
        cleanup::lock_for(&self.box_locks, &format!("{project}\0volume"), name)
    }

    /// Runs a blocking runtime operation (runc, nsenter) off the async workers.
    async fn rt<T, F>(&self, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&LocalRuntime) -> forkr_node_agent::Result<T> + Send + 'static,
    {
        let rt = self.runtime.clone();
        tokio::task::spawn_blocking(move || f(&rt))
            .await
            .map_err(|e| ApiError::internal(format!("runtime task failed: {e}")))?
            .map_err(ApiError::from)
    }

    /// Caps the size of base uploads.
    pub fn with_max_upload(mut self, bytes: u64) -> LocalBackend {
        self.max_upload = bytes;
        self
    }

    /// Runs a blocking pool operation (btrfs ioctls, file walks) off the async workers.
    async fn pool<T, F>(&self, f: F) -> ApiResult<T>
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
    async fn store<T, F>(&self, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        crate::backend::on_store(self.store.clone(), f).await
    }

    async fn volume_info(&self, project: &str, name: &str) -> ApiResult<Option<VolumeInfo>> {
        let (p, n) = (project.to_owned(), name.to_owned());
        self.pool(move |pool| {
            pool.list_volumes(&p)
                .map(|v| v.into_iter().find(|i| i.name == n))
        })
        .await
    }
}

/// A pool checkpoint as the API shows it (snapshots and volume copies alike).
fn checkpoint_view(c: forkr_node_agent::pool::checkpoint::CheckpointInfo) -> SnapshotView {
    SnapshotView {
        name: c.name,
        size: c.size,
        created: c.created,
        description: c.description,
    }
}

fn volume_view(project: &str, info: &VolumeInfo, obj: Option<&DataVolume>) -> VolumeView {
    VolumeView {
        name: info.name.clone(),
        project: project.to_owned(),
        size: info.size,
        limit: obj.and_then(|o| o.spec.size.as_ref()).map(|q| q.0.clone()),
        created: info.created.clone(),
    }
}

#[async_trait]
impl Backend for LocalBackend {
    async fn ready(&self) -> ApiResult<()> {
        self.store(|s| s.token_scope("readyz-probe").map(drop))
            .await?;
        self.pool(|p| p.list_bases().map(drop)).await
    }

    fn gateway_store(&self) -> Arc<Store> {
        self.store.clone()
    }
}
