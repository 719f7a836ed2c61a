//! The cluster backend: every call becomes reads and writes of the Forkr custom resources in the
//! project's namespace, and forkr-operator does the work. Where a client expects a synchronous
//! answer (a create returns a running box, a snapshot its name) the call waits on status, up to
//! a timeout. Commands run in the box through Kubernetes exec into the runner container.
//!
//! Not yet served here (each answers 501 `not_supported` naming itself): volume copies and
//! restores, base import and delete, diff, files, ports, logs, background exec and streamed exec.
//! docs/api.md lists them.

mod boxes;
mod exec;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use kube::Client;

use super::{Backend, BoxFuture, Deletion, Upload, VolumeCopy};
use crate::error::{ApiError, ApiResult};
use crate::store::{Scope, Store};
use crate::wire::{
    BackgroundExec, BaseDetailsView, BaseSummaryView, BaseWritten, BoxView, CheckpointVolume,
    CreateBox, DiffFileView, DiffStatusView, ExecCommand, ExecOutput, ImportBase, PublishBox,
    Published, RestoreVolume, SnapshotView, UnpublishBox, Unpublished, UserView, VolumeView,
};

/// How long a call waits for the operator before giving up with 504.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(120);

pub struct KubeBackend {
    client: Client,
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

fn not_supported<T>(what: &str) -> ApiResult<T> {
    Err(ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "not_supported",
        format!("{what} is not available with the Kubernetes backend yet"),
    ))
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

    fn token_scope(&self, hash: String) -> BoxFuture<'_, ApiResult<Option<Scope>>> {
        let store = self.store.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || store.token_scope(&hash))
                .await
                .map_err(|e| ApiError::internal(format!("store task failed: {e}")))?
                .map_err(ApiError::from)
        })
    }

    fn list_users(&self, _project: String) -> BoxFuture<'_, ApiResult<Vec<UserView>>> {
        Box::pin(async { not_supported("user list") })
    }

    fn create_user(
        &self,
        _project: String,
        _name: String,
        _shell: String,
    ) -> BoxFuture<'_, ApiResult<UserView>> {
        Box::pin(async { not_supported("user create") })
    }

    fn update_user(
        &self,
        _project: String,
        _name: String,
        _shell: String,
    ) -> BoxFuture<'_, ApiResult<UserView>> {
        Box::pin(async { not_supported("user update") })
    }

    fn delete_user(&self, _project: String, _name: String) -> BoxFuture<'_, ApiResult<()>> {
        Box::pin(async { not_supported("user delete") })
    }

    fn list_volumes(&self, _project: String) -> BoxFuture<'_, ApiResult<Vec<VolumeView>>> {
        Box::pin(async { not_supported("volume list") })
    }

    fn create_volume(
        &self,
        _project: String,
        _name: String,
        _limit: Option<String>,
    ) -> BoxFuture<'_, ApiResult<VolumeView>> {
        Box::pin(async { not_supported("volume create") })
    }

    fn show_volume(&self, _project: String, _name: String) -> BoxFuture<'_, ApiResult<VolumeView>> {
        Box::pin(async { not_supported("volume show") })
    }

    fn delete_volume(&self, _project: String, _name: String) -> BoxFuture<'_, ApiResult<()>> {
        Box::pin(async { not_supported("volume delete") })
    }

    fn list_volume_copies(
        &self,
        _project: String,
        _name: String,
        _kind: VolumeCopy,
    ) -> BoxFuture<'_, ApiResult<Vec<SnapshotView>>> {
        Box::pin(async { not_supported("volume checkpoints and backups") })
    }

    fn copy_volume(
        &self,
        _project: String,
        _name: String,
        _kind: VolumeCopy,
        _req: CheckpointVolume,
    ) -> BoxFuture<'_, ApiResult<SnapshotView>> {
        Box::pin(async { not_supported("volume checkpoints and backups") })
    }

    fn restore_volume(
        &self,
        _project: String,
        _name: String,
        _req: RestoreVolume,
    ) -> BoxFuture<'_, ApiResult<VolumeView>> {
        Box::pin(async { not_supported("volume restore") })
    }

    fn list_bases(&self) -> BoxFuture<'_, ApiResult<Vec<BaseSummaryView>>> {
        Box::pin(async { not_supported("base list") })
    }

    fn show_base(
        &self,
        _name: String,
        _tag: Option<String>,
    ) -> BoxFuture<'_, ApiResult<BaseDetailsView>> {
        Box::pin(async { not_supported("base show") })
    }

    fn delete_base(&self, _name: String) -> BoxFuture<'_, ApiResult<()>> {
        Box::pin(async { not_supported("base delete") })
    }

    fn save_base(
        &self,
        _project: String,
        _name: String,
        _box_name: String,
    ) -> BoxFuture<'_, ApiResult<BaseWritten>> {
        Box::pin(async { not_supported("base save") })
    }

    fn import_base(
        &self,
        _name: String,
        _req: ImportBase,
        _body: Upload,
    ) -> BoxFuture<'_, ApiResult<BaseWritten>> {
        Box::pin(async { not_supported("base import") })
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
    ) -> BoxFuture<'_, ApiResult<Published>> {
        Box::pin(KubeBackend::publish_box(self, project, name, req))
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
        _project: String,
        _name: String,
        _against: Option<String>,
    ) -> BoxFuture<'_, ApiResult<DiffStatusView>> {
        Box::pin(async { not_supported("diff") })
    }

    fn diff_file(
        &self,
        _project: String,
        _name: String,
        _path: String,
        _against: Option<String>,
    ) -> BoxFuture<'_, ApiResult<DiffFileView>> {
        Box::pin(async { not_supported("diff") })
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
        _project: String,
        _name: String,
        _cmd: ExecCommand,
    ) -> BoxFuture<'_, ApiResult<BackgroundExec>> {
        Box::pin(async { not_supported("background exec") })
    }

    fn put_file(
        &self,
        _project: String,
        _name: String,
        _q: crate::wire::FileQuery,
        _body: Upload,
    ) -> BoxFuture<'_, ApiResult<crate::wire::FileWritten>> {
        Box::pin(async { not_supported("file copy") })
    }

    fn get_file(
        &self,
        _project: String,
        _name: String,
        _path: String,
    ) -> BoxFuture<'_, ApiResult<crate::backend::FileDownload>> {
        Box::pin(async { not_supported("file copy") })
    }

    fn exec_stream(
        &self,
        _project: String,
        _name: String,
        _start: crate::wire::ExecStart,
    ) -> BoxFuture<'_, ApiResult<crate::backend::ExecStream>> {
        Box::pin(async { not_supported("streamed exec and console") })
    }

    fn list_ports(
        &self,
        _project: String,
        _name: String,
    ) -> BoxFuture<'_, ApiResult<Vec<crate::wire::PortView>>> {
        Box::pin(async { not_supported("port list") })
    }

    fn wait_port(
        &self,
        _project: String,
        _name: String,
        _port: u16,
        _timeout: Duration,
    ) -> BoxFuture<'_, ApiResult<crate::wire::PortView>> {
        Box::pin(async { not_supported("port wait") })
    }

    fn logs(
        &self,
        _project: String,
        _name: String,
        _pid: Option<u32>,
        _offset: u64,
    ) -> BoxFuture<'_, ApiResult<Vec<u8>>> {
        Box::pin(async { not_supported("logs") })
    }
}
