//! The embedded backend: objects in SQLite, storage in this machine's btrfs pool, boxes as
//! runc containers of the node agent's local runtime.
//!
//! Box and DataVolume objects (the CRD types) live in SQLite. Snapshots and bases are not copied
//! there: the pool is self-describing (names, times, descriptions, provenance), so it is their
//! one source of truth and nothing can drift.

mod boxes;
mod cleanup;
mod diff;
mod exec;
mod files;
pub mod hosts;
mod ports;
mod publish;
mod stream;
mod volumes;

pub use crate::backend::hostrules::api_host;
pub use hosts::{HostIndex, HostOwner};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use forkr_crds::{BoxResource, DataVolume};
use forkr_node_agent::Pool;
use forkr_node_agent::runtime::LocalRuntime;
use forkr_node_agent::volumes::VolumeInfo;

use super::{Backend, BoxFuture, Deletion, Upload, VolumeCopy};
use crate::error::{ApiError, ApiResult};
use crate::store::{Store, StoreError};
use crate::upload::LimitedReader;
use crate::wire::{
    BackgroundExec, BaseDetailsView, BaseSummaryView, BaseVersionView, BaseWritten, BoxView,
    CheckpointVolume, CreateBox, DiffFileView, DiffStatusView, ExecCommand, ExecOutput, ImportBase,
    PublishBox, Published, RestoreVolume, SnapshotView, UnpublishBox, Unpublished, UserView,
    VolumeView,
};

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
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| ApiError::internal(format!("store task failed: {e}")))?
            .map_err(ApiError::from)
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
fn checkpoint_view(c: forkr_node_agent::checkpoint::CheckpointInfo) -> SnapshotView {
    SnapshotView {
        name: c.name,
        size: c.size,
        created: c.created,
        description: c.description,
    }
}

fn shelf_of(kind: VolumeCopy) -> forkr_node_agent::Shelf {
    match kind {
        VolumeCopy::Checkpoint => forkr_node_agent::Shelf::Checkpoints,
        VolumeCopy::Backup => forkr_node_agent::Shelf::Backups,
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

impl Backend for LocalBackend {
    fn ready(&self) -> BoxFuture<'_, ApiResult<()>> {
        Box::pin(async move {
            self.store(|s| s.token_scope("readyz-probe").map(drop))
                .await?;
            self.pool(|p| p.list_bases().map(drop)).await
        })
    }

    fn list_users(&self, project: String) -> BoxFuture<'_, ApiResult<Vec<UserView>>> {
        Box::pin(self.store(move |s| s.list_users(&project)))
    }

    fn create_user(
        &self,
        project: String,
        name: String,
        shell: String,
    ) -> BoxFuture<'_, ApiResult<UserView>> {
        Box::pin(self.store(move |s| s.create_user(&project, &name, &shell)))
    }

    fn update_user(
        &self,
        project: String,
        name: String,
        shell: String,
    ) -> BoxFuture<'_, ApiResult<UserView>> {
        Box::pin(self.store(move |s| s.update_user(&project, &name, &shell)))
    }

    fn delete_user(&self, project: String, name: String) -> BoxFuture<'_, ApiResult<()>> {
        Box::pin(self.store(move |s| s.delete_user(&project, &name).map(drop)))
    }

    fn list_volumes(&self, project: String) -> BoxFuture<'_, ApiResult<Vec<VolumeView>>> {
        Box::pin(async move {
            let p = project.clone();
            let infos = self.pool(move |pool| pool.list_volumes(&p)).await?;
            let p = project.clone();
            let objects: Vec<DataVolume> = self.store(move |s| s.list(VOLUME, &p)).await?;
            Ok(infos
                .iter()
                .map(|info| {
                    let obj = objects
                        .iter()
                        .find(|o| o.metadata.name.as_deref() == Some(info.name.as_str()));
                    volume_view(&project, info, obj)
                })
                .collect())
        })
    }

    fn create_volume(
        &self,
        project: String,
        name: String,
        limit: Option<String>,
    ) -> BoxFuture<'_, ApiResult<VolumeView>> {
        Box::pin(async move {
            let obj = crate::backend::spec::new_volume(&project, &name, limit)?;
            let (p, n) = (project.clone(), name.clone());
            if self
                .store(move |s| s.get::<DataVolume>(VOLUME, &p, &n))
                .await?
                .is_some()
            {
                return Err(ApiError::conflict(
                    "already_exists",
                    format!("data volume {name:?} already exists"),
                ));
            }
            // The pool step is idempotent, so a create that died after it is finished by a retry.
            let (p, n) = (project.clone(), name.clone());
            self.pool(move |pool| pool.create_volume(&p, &n)).await?;
            let (p, n, o) = (project.clone(), name.clone(), obj.clone());
            self.store(move |s| s.insert(VOLUME, &p, &n, &o)).await?;
            let info = self
                .volume_info(&project, &name)
                .await?
                .ok_or_else(|| ApiError::internal("volume vanished after create"))?;
            Ok(volume_view(&project, &info, Some(&obj)))
        })
    }

    fn show_volume(&self, project: String, name: String) -> BoxFuture<'_, ApiResult<VolumeView>> {
        Box::pin(async move {
            let info = self
                .volume_info(&project, &name)
                .await?
                .ok_or_else(|| ApiError::not_found("data volume", &name))?;
            let (p, n) = (project.clone(), name.clone());
            let obj: Option<DataVolume> = self.store(move |s| s.get(VOLUME, &p, &n)).await?;
            Ok(volume_view(&project, &info, obj.as_ref()))
        })
    }

    fn delete_volume(&self, project: String, name: String) -> BoxFuture<'_, ApiResult<()>> {
        Box::pin(async move {
            let p = project.clone();
            let boxes: Vec<BoxResource> = self.store(move |s| s.list(BOX, &p)).await?;
            let users: Vec<String> = boxes
                .iter()
                .filter(|b| b.spec.data.iter().any(|m| m.volume == name))
                .filter_map(|b| b.metadata.name.clone())
                .collect();
            if !users.is_empty() {
                return Err(ApiError::conflict(
                    "volume_in_use",
                    format!("data volume {name:?} is mounted by {}", users.join(", ")),
                ));
            }
            let (p, n) = (project.clone(), name.clone());
            self.pool(move |pool| pool.delete_volume(&p, &n)).await?;
            self.store(move |s| s.remove(VOLUME, &project, &name).map(drop))
                .await
        })
    }

    fn list_bases(&self) -> BoxFuture<'_, ApiResult<Vec<BaseSummaryView>>> {
        Box::pin(async move {
            let bases = self.pool(|pool| pool.list_bases()).await?;
            Ok(bases
                .into_iter()
                .map(|b| BaseSummaryView {
                    name: b.name,
                    version: b.version,
                    size: b.size,
                    created: b.created,
                })
                .collect())
        })
    }

    fn show_base(
        &self,
        name: String,
        tag: Option<String>,
    ) -> BoxFuture<'_, ApiResult<BaseDetailsView>> {
        Box::pin(async move {
            let d = self
                .pool(move |pool| pool.show_base(&name, tag.as_deref()))
                .await?;
            Ok(BaseDetailsView {
                name: d.name,
                latest: d.latest,
                version_count: d.version_count,
                versions: d
                    .versions
                    .into_iter()
                    .map(|v| BaseVersionView {
                        version: v.version,
                        kind: v.kind,
                        tag: v.tag,
                        builder: v.builder,
                        parent: v.parent,
                        size: v.size,
                        created: v.created,
                    })
                    .collect(),
            })
        })
    }

    fn delete_base(&self, name: String) -> BoxFuture<'_, ApiResult<()>> {
        Box::pin(self.pool(move |pool| pool.delete_base(&name)))
    }

    fn import_base(
        &self,
        name: String,
        req: ImportBase,
        owner: Option<String>,
        body: Upload,
    ) -> BoxFuture<'_, ApiResult<BaseWritten>> {
        Box::pin(async move {
            let limit = self.max_upload;
            let reader = LimitedReader::new(body, limit);
            let exceeded = reader.exceeded_flag();
            let opts = forkr_node_agent::import::ImportOptions {
                parent: req.parent,
                tag: req.tag,
                builder: req.builder,
                owner,
                request_id: req.request_id,
            };
            let n = name.clone();
            let result = self
                .pool(move |pool| pool.import_base(&n, reader, &opts))
                .await;
            if exceeded.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(crate::upload::too_large(limit));
            }
            Ok(BaseWritten {
                name,
                version: result?,
            })
        })
    }

    fn save_base(
        &self,
        project: String,
        name: String,
        box_name: String,
    ) -> BoxFuture<'_, ApiResult<BaseWritten>> {
        Box::pin(LocalBackend::save_base(self, project, name, box_name))
    }

    fn create_box(&self, project: String, req: CreateBox) -> BoxFuture<'_, ApiResult<BoxView>> {
        Box::pin(LocalBackend::create_box(self, project, req))
    }

    fn list_boxes(&self, project: String) -> BoxFuture<'_, ApiResult<Vec<BoxView>>> {
        Box::pin(LocalBackend::list_boxes(self, project))
    }

    fn show_box(&self, project: String, name: String) -> BoxFuture<'_, ApiResult<BoxView>> {
        Box::pin(LocalBackend::show_box(self, project, name))
    }

    fn update_box(
        &self,
        project: String,
        name: String,
        update: forkr_crds::validation::BoxUpdate,
    ) -> BoxFuture<'_, ApiResult<BoxView>> {
        Box::pin(LocalBackend::update_box(self, project, name, update))
    }

    fn delete_box(
        &self,
        project: String,
        name: String,
        force: bool,
    ) -> BoxFuture<'_, ApiResult<Deletion>> {
        Box::pin(LocalBackend::delete_box(self, project, name, force))
    }

    fn publish_box(
        &self,
        project: String,
        name: String,
        req: PublishBox,
        admin: bool,
    ) -> BoxFuture<'_, ApiResult<Published>> {
        Box::pin(LocalBackend::publish_box(self, project, name, req, admin))
    }

    fn gateway_store(&self) -> Arc<Store> {
        self.store.clone()
    }

    fn unpublish_box(
        &self,
        project: String,
        name: String,
        req: UnpublishBox,
    ) -> BoxFuture<'_, ApiResult<Unpublished>> {
        Box::pin(LocalBackend::unpublish_box(self, project, name, req))
    }

    fn list_volume_copies(
        &self,
        project: String,
        name: String,
        kind: VolumeCopy,
    ) -> BoxFuture<'_, ApiResult<Vec<SnapshotView>>> {
        Box::pin(self.list_volume_shelf(project, name, shelf_of(kind)))
    }

    fn copy_volume(
        &self,
        project: String,
        name: String,
        kind: VolumeCopy,
        req: CheckpointVolume,
    ) -> BoxFuture<'_, ApiResult<SnapshotView>> {
        Box::pin(self.shelve_volume(project, name, shelf_of(kind), req))
    }

    fn restore_volume(
        &self,
        project: String,
        name: String,
        req: RestoreVolume,
    ) -> BoxFuture<'_, ApiResult<VolumeView>> {
        Box::pin(LocalBackend::restore_volume(self, project, name, req))
    }

    fn stop_box(&self, project: String, name: String) -> BoxFuture<'_, ApiResult<BoxView>> {
        Box::pin(LocalBackend::stop_box(self, project, name))
    }

    fn resume_box(&self, project: String, name: String) -> BoxFuture<'_, ApiResult<BoxView>> {
        Box::pin(LocalBackend::resume_box(self, project, name))
    }

    fn list_snapshots(
        &self,
        project: String,
        name: String,
    ) -> BoxFuture<'_, ApiResult<Vec<SnapshotView>>> {
        Box::pin(LocalBackend::list_snapshots(self, project, name))
    }

    fn create_snapshot(
        &self,
        project: String,
        name: String,
        snapshot: Option<String>,
        description: Option<String>,
    ) -> BoxFuture<'_, ApiResult<SnapshotView>> {
        Box::pin(LocalBackend::create_snapshot(
            self,
            project,
            name,
            snapshot,
            description,
        ))
    }

    fn restore_snapshot(
        &self,
        project: String,
        name: String,
        snapshot: String,
    ) -> BoxFuture<'_, ApiResult<BoxView>> {
        Box::pin(LocalBackend::restore_snapshot(
            self, project, name, snapshot,
        ))
    }

    fn diff_status(
        &self,
        project: String,
        name: String,
        against: Option<String>,
    ) -> BoxFuture<'_, ApiResult<DiffStatusView>> {
        Box::pin(LocalBackend::diff_status(self, project, name, against))
    }

    fn diff_file(
        &self,
        project: String,
        name: String,
        path: String,
        against: Option<String>,
    ) -> BoxFuture<'_, ApiResult<DiffFileView>> {
        Box::pin(LocalBackend::diff_file(self, project, name, path, against))
    }

    fn exec(
        &self,
        project: String,
        name: String,
        cmd: ExecCommand,
    ) -> BoxFuture<'_, ApiResult<ExecOutput>> {
        Box::pin(LocalBackend::exec(self, project, name, cmd))
    }

    fn exec_background(
        &self,
        project: String,
        name: String,
        cmd: ExecCommand,
    ) -> BoxFuture<'_, ApiResult<BackgroundExec>> {
        Box::pin(LocalBackend::exec_background(self, project, name, cmd))
    }

    fn logs(
        &self,
        project: String,
        name: String,
        pid: Option<u32>,
        offset: u64,
    ) -> BoxFuture<'_, ApiResult<Vec<u8>>> {
        Box::pin(LocalBackend::logs(self, project, name, pid, offset))
    }

    fn put_file(
        &self,
        project: String,
        name: String,
        q: crate::wire::FileQuery,
        body: Upload,
        shared_writes: bool,
    ) -> BoxFuture<'_, ApiResult<crate::wire::FileWritten>> {
        Box::pin(LocalBackend::put_file(
            self,
            project,
            name,
            q,
            body,
            shared_writes,
        ))
    }

    fn get_file(
        &self,
        project: String,
        name: String,
        path: String,
    ) -> BoxFuture<'_, ApiResult<crate::backend::FileDownload>> {
        Box::pin(LocalBackend::get_file(self, project, name, path))
    }

    fn exec_stream(
        &self,
        project: String,
        name: String,
        start: crate::wire::ExecStart,
    ) -> BoxFuture<'_, ApiResult<crate::backend::ExecStream>> {
        Box::pin(LocalBackend::exec_stream(self, project, name, start))
    }

    fn list_ports(
        &self,
        project: String,
        name: String,
    ) -> BoxFuture<'_, ApiResult<Vec<crate::wire::PortView>>> {
        Box::pin(LocalBackend::list_ports(self, project, name))
    }

    fn wait_port(
        &self,
        project: String,
        name: String,
        port: u16,
        timeout: std::time::Duration,
    ) -> BoxFuture<'_, ApiResult<crate::wire::PortView>> {
        Box::pin(LocalBackend::wait_port(self, project, name, port, timeout))
    }
}
