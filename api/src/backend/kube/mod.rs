//! The cluster backend: every call becomes reads and writes of the Forkr custom resources in the
//! project's namespace, and forkr-operator does the work. Where a client expects a synchronous
//! answer (a create returns a running box, a snapshot its name) the call waits on status, up to
//! a timeout. Commands, consoles, files and logs go to the node agent on the box's node, with
//! Kubernetes exec into the runner container as the fallback (`commands.rs`, `exec.rs`); diffs
//! and bases are the pools' (`storage.rs`); data volumes are `DataVolume` objects
//! (`volumes.rs`). Tokens and users are the gateway's own, in SQLite.

mod agent;
mod boxes;
mod commands;
mod exec;
mod grants;
mod storage;
mod volumes;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use kube::Client;

use super::{Backend, BoxFuture, Deletion, Upload, VolumeCopy};
use crate::error::{ApiError, ApiResult};
use crate::store::Store;
use crate::wire::{
    BackgroundExec, BaseDetailsView, BaseSummaryView, BaseWritten, BoxView, CheckpointVolume,
    CreateBox, DiffFileView, DiffStatusView, ExecCommand, ExecOutput, ImportBase, PublishBox,
    Published, RestoreVolume, SnapshotView, UnpublishBox, Unpublished, UserView, VolumeView,
};

/// How often a waiting call looks at status again.
const POLL: Duration = Duration::from_millis(200);

/// How long a call waits for the operator before giving up with 504.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(120);

pub struct KubeBackend {
    client: Client,
    /// The node agents; without them commands fall back to Kubernetes exec, and diffs and
    /// bases are unavailable.
    agents: Option<Arc<forkr_agent_proto::client::GrpcAgents>>,
    /// The largest `4kr cp` upload.
    max_upload: u64,
    /// Whether Kubernetes exec can close stdin alone (protocol v5), learned once.
    stdin_close: tokio::sync::OnceCell<bool>,
    /// Bearer tokens, hashed, as in local mode.
    store: Arc<Store>,
    domain: String,
    publish_domain: String,
    wait: Duration,
    /// Held while a host changes owner, as in local mode (one forkr-api replica).
    publish_lock: tokio::sync::Mutex<()>,
}

impl KubeBackend {
    pub fn new(client: Client, store: Store, domain: &str) -> KubeBackend {
        KubeBackend {
            client,
            agents: None,
            max_upload: 20 << 30,
            stdin_close: tokio::sync::OnceCell::new(),
            store: Arc::new(store),
            domain: domain.to_owned(),
            publish_domain: domain.to_owned(),
            wait: DEFAULT_WAIT,
            publish_lock: tokio::sync::Mutex::new(()),
        }
    }

    pub fn with_publish_domain(mut self, domain: &str) -> KubeBackend {
        self.publish_domain = domain.to_owned();
        self
    }

    pub fn with_wait(mut self, wait: Duration) -> KubeBackend {
        self.wait = wait;
        self
    }

    pub fn with_agents(
        mut self,
        agents: Arc<forkr_agent_proto::client::GrpcAgents>,
    ) -> KubeBackend {
        self.agents = Some(agents);
        self
    }

    pub fn with_max_upload(mut self, bytes: u64) -> KubeBackend {
        self.max_upload = bytes;
        self
    }

    /// Polls `step` every POLL until it answers, or gives up after the wait with 504 `timeout`
    /// and `late()`'s words.
    async fn poll<T, F, Fut>(&self, late: impl FnOnce() -> String, mut step: F) -> ApiResult<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = ApiResult<Option<T>>>,
    {
        let until = std::time::Instant::now() + self.wait;
        loop {
            if let Some(t) = step().await? {
                return Ok(t);
            }
            if std::time::Instant::now() >= until {
                return Err(ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "timeout",
                    late(),
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Runs a store call on the blocking pool.
    async fn store<T, F>(&self, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, crate::store::StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| ApiError::internal(format!("store task failed: {e}")))?
            .map_err(ApiError::from)
    }
}

/// Kubernetes API errors as API errors: the status code and reason carry over.
pub(crate) fn kube_error(e: kube::Error) -> ApiError {
    match e {
        kube::Error::Api(s) => {
            let status = StatusCode::from_u16(s.code).unwrap_or(StatusCode::BAD_GATEWAY);
            let code = match status {
                StatusCode::NOT_FOUND => "not_found",
                StatusCode::CONFLICT => "already_exists",
                StatusCode::FORBIDDEN => "forbidden",
                StatusCode::UNPROCESSABLE_ENTITY => "invalid",
                _ => "kube_api",
            };
            ApiError::new(status, code, s.message)
        }
        other => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "kube_unavailable",
            format!("the Kubernetes API did not answer: {other}"),
        ),
    }
}

impl Backend for KubeBackend {
    fn ready(&self) -> BoxFuture<'_, ApiResult<()>> {
        Box::pin(async move {
            self.client
                .apiserver_version()
                .await
                .map(drop)
                .map_err(kube_error)
        })
    }

    // Users are the gateway's, as tokens are: the agent creates the account in a box when a
    // command first runs as it.
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
        Box::pin(KubeBackend::list_volumes(self, project))
    }

    fn create_volume(
        &self,
        project: String,
        name: String,
        limit: Option<String>,
    ) -> BoxFuture<'_, ApiResult<VolumeView>> {
        Box::pin(KubeBackend::create_volume(self, project, name, limit))
    }

    fn show_volume(&self, project: String, name: String) -> BoxFuture<'_, ApiResult<VolumeView>> {
        Box::pin(KubeBackend::show_volume(self, project, name))
    }

    fn delete_volume(&self, project: String, name: String) -> BoxFuture<'_, ApiResult<()>> {
        Box::pin(KubeBackend::delete_volume(self, project, name))
    }

    fn list_volume_copies(
        &self,
        project: String,
        name: String,
        kind: VolumeCopy,
    ) -> BoxFuture<'_, ApiResult<Vec<SnapshotView>>> {
        Box::pin(KubeBackend::list_volume_copies(self, project, name, kind))
    }

    fn copy_volume(
        &self,
        project: String,
        name: String,
        kind: VolumeCopy,
        req: CheckpointVolume,
    ) -> BoxFuture<'_, ApiResult<SnapshotView>> {
        Box::pin(KubeBackend::copy_volume(self, project, name, kind, req))
    }

    fn restore_volume(
        &self,
        project: String,
        name: String,
        req: RestoreVolume,
    ) -> BoxFuture<'_, ApiResult<VolumeView>> {
        Box::pin(KubeBackend::restore_volume(self, project, name, req))
    }

    fn list_bases(&self) -> BoxFuture<'_, ApiResult<Vec<BaseSummaryView>>> {
        Box::pin(KubeBackend::list_bases(self))
    }

    fn show_base(
        &self,
        name: String,
        tag: Option<String>,
    ) -> BoxFuture<'_, ApiResult<BaseDetailsView>> {
        Box::pin(KubeBackend::show_base(self, name, tag))
    }

    fn delete_base(&self, name: String) -> BoxFuture<'_, ApiResult<()>> {
        Box::pin(KubeBackend::delete_base(self, name))
    }

    fn save_base(
        &self,
        project: String,
        name: String,
        box_name: String,
    ) -> BoxFuture<'_, ApiResult<BaseWritten>> {
        Box::pin(KubeBackend::save_base(self, project, name, box_name))
    }

    fn import_base(
        &self,
        name: String,
        req: ImportBase,
        owner: Option<String>,
        body: Upload,
    ) -> BoxFuture<'_, ApiResult<BaseWritten>> {
        Box::pin(KubeBackend::import_base(self, name, req, owner, body))
    }

    fn create_box(&self, project: String, req: CreateBox) -> BoxFuture<'_, ApiResult<BoxView>> {
        Box::pin(KubeBackend::create_box(self, project, req))
    }

    fn list_boxes(&self, project: String) -> BoxFuture<'_, ApiResult<Vec<BoxView>>> {
        Box::pin(KubeBackend::list_boxes(self, project))
    }

    fn show_box(&self, project: String, name: String) -> BoxFuture<'_, ApiResult<BoxView>> {
        Box::pin(KubeBackend::show_box(self, project, name))
    }

    fn update_box(
        &self,
        project: String,
        name: String,
        update: forkr_crds::validation::BoxUpdate,
    ) -> BoxFuture<'_, ApiResult<BoxView>> {
        Box::pin(KubeBackend::update_box(self, project, name, update))
    }

    fn delete_box(
        &self,
        project: String,
        name: String,
        force: bool,
    ) -> BoxFuture<'_, ApiResult<Deletion>> {
        Box::pin(KubeBackend::delete_box(self, project, name, force))
    }

    fn publish_box(
        &self,
        project: String,
        name: String,
        req: PublishBox,
        admin: bool,
    ) -> BoxFuture<'_, ApiResult<Published>> {
        Box::pin(KubeBackend::publish_box(self, project, name, req, admin))
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
        Box::pin(KubeBackend::unpublish_box(self, project, name, req))
    }

    fn stop_box(&self, project: String, name: String) -> BoxFuture<'_, ApiResult<BoxView>> {
        Box::pin(KubeBackend::set_running(self, project, name, false))
    }

    fn resume_box(&self, project: String, name: String) -> BoxFuture<'_, ApiResult<BoxView>> {
        Box::pin(KubeBackend::set_running(self, project, name, true))
    }

    fn list_snapshots(
        &self,
        project: String,
        name: String,
    ) -> BoxFuture<'_, ApiResult<Vec<SnapshotView>>> {
        Box::pin(KubeBackend::list_snapshots(self, project, name))
    }

    fn create_snapshot(
        &self,
        project: String,
        name: String,
        snapshot: Option<String>,
        description: Option<String>,
    ) -> BoxFuture<'_, ApiResult<SnapshotView>> {
        Box::pin(KubeBackend::create_snapshot(
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
        Box::pin(KubeBackend::restore_snapshot(self, project, name, snapshot))
    }

    fn diff_status(
        &self,
        project: String,
        name: String,
        against: Option<String>,
    ) -> BoxFuture<'_, ApiResult<DiffStatusView>> {
        Box::pin(KubeBackend::diff_status(self, project, name, against))
    }

    fn diff_file(
        &self,
        project: String,
        name: String,
        path: String,
        against: Option<String>,
    ) -> BoxFuture<'_, ApiResult<DiffFileView>> {
        Box::pin(KubeBackend::diff_file(self, project, name, path, against))
    }

    fn exec(
        &self,
        project: String,
        name: String,
        cmd: ExecCommand,
    ) -> BoxFuture<'_, ApiResult<ExecOutput>> {
        Box::pin(KubeBackend::exec(self, project, name, cmd))
    }

    fn exec_background(
        &self,
        project: String,
        name: String,
        cmd: ExecCommand,
    ) -> BoxFuture<'_, ApiResult<BackgroundExec>> {
        Box::pin(KubeBackend::exec_background(self, project, name, cmd))
    }

    fn put_file(
        &self,
        project: String,
        name: String,
        q: crate::wire::FileQuery,
        body: Upload,
        shared_writes: bool,
    ) -> BoxFuture<'_, ApiResult<crate::wire::FileWritten>> {
        Box::pin(KubeBackend::put_file(
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
        Box::pin(KubeBackend::get_file(self, project, name, path))
    }

    fn exec_stream(
        &self,
        project: String,
        name: String,
        start: crate::wire::ExecStart,
    ) -> BoxFuture<'_, ApiResult<crate::backend::ExecStream>> {
        Box::pin(KubeBackend::exec_stream(self, project, name, start))
    }

    fn list_ports(
        &self,
        project: String,
        name: String,
    ) -> BoxFuture<'_, ApiResult<Vec<crate::wire::PortView>>> {
        Box::pin(KubeBackend::list_ports(self, project, name))
    }

    fn wait_port(
        &self,
        project: String,
        name: String,
        port: u16,
        timeout: Duration,
    ) -> BoxFuture<'_, ApiResult<crate::wire::PortView>> {
        Box::pin(KubeBackend::wait_port(self, project, name, port, timeout))
    }

    fn logs(
        &self,
        project: String,
        name: String,
        pid: Option<u32>,
        offset: u64,
    ) -> BoxFuture<'_, ApiResult<Vec<u8>>> {
        Box::pin(KubeBackend::logs(self, project, name, pid, offset))
    }
}
