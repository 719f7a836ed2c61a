//! The seam between the HTTP surface and where state lives. `local` keeps it in SQLite and the
//! node agent's pool on this machine; a `kube` backend will write the same objects as custom
//! resources. Routes and wire types do not change between the two.

pub mod hostrules;
mod key;
pub mod kube;
pub mod local;
pub mod procnet;
pub mod spec;
pub mod view;

use async_trait::async_trait;

pub use key::BoxKey;

use crate::error::{ApiError, ApiResult};
use crate::wire::{
    BackgroundExec, BaseDetailsView, BaseSummaryView, BaseWritten, BoxView, CheckpointVolume,
    CreateBox, DiffFileView, DiffStatusView, ExecCommand, ExecOutput, ExecStart, FileQuery,
    FileWritten, ImportBase, PortView, PublishBox, Published, RestoreVolume, SnapshotView,
    UnpublishBox, Unpublished, VolumeView,
};

/// An upload as it arrives: chunks of the request body, never buffered whole.
pub type Upload = futures::stream::BoxStream<'static, std::io::Result<axum::body::Bytes>>;

// One exec protocol for every backend and the node's driver: what a client sends in, what a
// running exec sends back (`Exit` last), and both ends (dropping `output` detaches the client
// and starts the reconnect grace; a console keeps running).
pub use forkr_node_agent::exec::stream::{
    Input as ExecIn, Output as ExecOut, Stream as ExecStream,
};

/// A file on its way out: its metadata and an open handle.
pub struct FileDownload {
    pub file: std::fs::File,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
}

/// How a delete ended: everything is gone, or a step failed and a background retry carries on
/// (the API answers 202).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    Done,
    Pending,
}

/// The two kinds of read-only volume copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeCopy {
    /// Deleted with the volume.
    Checkpoint,
    /// Kept after the volume is deleted.
    Backup,
}

/// `4kr cp`'s mode: octal, 0644 when unset.
pub(crate) fn parse_mode(mode: Option<&str>) -> ApiResult<u32> {
    match mode {
        None => Ok(0o644),
        Some(m) => u32::from_str_radix(m, 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_mode",
                    format!("invalid mode {m:?}: octal, at most 7777"),
                )
            }),
    }
}

/// Everything the routes need, one trait per concern (the API's tags), so that each backend file
/// implements its own part. Inputs are validated by the routes before they get here: a box
/// arrives as a [`BoxKey`], valid by construction. A backend still refuses what its own state
/// forbids (a name taken, a volume in use).
#[async_trait]
pub trait Backend:
    Volumes + Bases + Boxes + Hosts + Snapshots + Exec + Ports + Files + 'static
{
    /// Whether the backend can serve (its store and storage answer).
    async fn ready(&self) -> ApiResult<()>;
    /// The gateway's own SQLite (tokens, users, base owners), which both backends keep: a
    /// project's users live there alone, so the routes read them through [`on_store`].
    fn gateway_store(&self) -> std::sync::Arc<crate::store::Store>;
}

/// Runs `f` on the gateway's SQLite off the async threads (its calls block).
pub(crate) async fn on_store<T, F>(store: std::sync::Arc<crate::store::Store>, f: F) -> ApiResult<T>
where
    T: Send + 'static,
    F: FnOnce(&crate::store::Store) -> Result<T, crate::store::StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| ApiError::internal(format!("store task failed: {e}")))?
        .map_err(ApiError::from)
}

/// Data volumes and their read-only copies.
#[async_trait]
pub trait Volumes: Send + Sync {
    async fn list_volumes(&self, project: String) -> ApiResult<Vec<VolumeView>>;
    async fn create_volume(
        &self,
        project: String,
        name: String,
        limit: Option<String>,
    ) -> ApiResult<VolumeView>;
    async fn show_volume(&self, project: String, name: String) -> ApiResult<VolumeView>;
    async fn delete_volume(&self, project: String, name: String) -> ApiResult<()>;
    /// The volume's checkpoints or backups.
    async fn list_volume_copies(
        &self,
        project: String,
        name: String,
        kind: VolumeCopy,
    ) -> ApiResult<Vec<SnapshotView>>;
    /// A read-only copy of the volume now: a checkpoint, or a backup that outlives the volume.
    async fn copy_volume(
        &self,
        project: String,
        name: String,
        kind: VolumeCopy,
        req: CheckpointVolume,
    ) -> ApiResult<SnapshotView>;
    /// Replaces the volume's contents with a checkpoint or a backup; refused while a running
    /// box mounts it.
    async fn restore_volume(
        &self,
        project: String,
        name: String,
        req: RestoreVolume,
    ) -> ApiResult<VolumeView>;
}

/// Bases: the shared, versioned roots boxes start from.
#[async_trait]
pub trait Bases: Send + Sync {
    async fn list_bases(&self) -> ApiResult<Vec<BaseSummaryView>>;
    async fn show_base(&self, name: String, tag: Option<String>) -> ApiResult<BaseDetailsView>;
    async fn delete_base(&self, name: String) -> ApiResult<()>;
    /// Saves the root of box `from` as the next version of base `name`.
    async fn save_base(&self, name: String, from: BoxKey) -> ApiResult<BaseWritten>;
    /// Imports a rootfs `.tar.gz` as the next version of `name`, extracting as it streams in.
    /// `owner`: the project the version is imported for (after the route's ownership check),
    /// which the pool records with it; `None` for an admin's import.
    async fn import_base(
        &self,
        name: String,
        req: ImportBase,
        owner: Option<String>,
        body: Upload,
    ) -> ApiResult<BaseWritten>;
}

/// Boxes: their lifecycle and settings.
#[async_trait]
pub trait Boxes: Send + Sync {
    async fn create_box(&self, project: String, req: CreateBox) -> ApiResult<BoxView>;
    async fn list_boxes(&self, project: String) -> ApiResult<Vec<BoxView>>;
    async fn show_box(&self, key: BoxKey) -> ApiResult<BoxView>;
    /// Applies the allowlisted settings; the route has already picked them.
    async fn update_box(
        &self,
        key: BoxKey,
        update: forkr_crds::validation::BoxUpdate,
    ) -> ApiResult<BoxView>;
    /// Without `force`, a running box is refused with 409 `fork_running`.
    async fn delete_box(&self, key: BoxKey, force: bool) -> ApiResult<Deletion>;
    async fn stop_box(&self, key: BoxKey) -> ApiResult<BoxView>;
    async fn resume_box(&self, key: BoxKey) -> ApiResult<BoxView>;
}

/// The public hosts routed to a box.
#[async_trait]
pub trait Hosts: Send + Sync {
    /// Routes a public host to the box, within `hostrules`: 409 `host_in_use` when another box
    /// has it, unless `force` takes it over (from another project only with `admin`, whether
    /// the caller's token is an admin's).
    async fn publish_box(&self, key: BoxKey, req: PublishBox, admin: bool) -> ApiResult<Published>;
    /// Removes one host (403 `host_not_owned` if the box does not have it) or all of them.
    async fn unpublish_box(&self, key: BoxKey, req: UnpublishBox) -> ApiResult<Unpublished>;
}

/// A box's snapshots, and diffs of its root against them.
#[async_trait]
pub trait Snapshots: Send + Sync {
    async fn list_snapshots(&self, key: BoxKey) -> ApiResult<Vec<SnapshotView>>;
    async fn create_snapshot(
        &self,
        key: BoxKey,
        snapshot: Option<String>,
        description: Option<String>,
    ) -> ApiResult<SnapshotView>;
    async fn restore_snapshot(&self, key: BoxKey, snapshot: String) -> ApiResult<BoxView>;
    async fn diff_status(&self, key: BoxKey, against: Option<String>) -> ApiResult<DiffStatusView>;
    async fn diff_file(
        &self,
        key: BoxKey,
        path: String,
        against: Option<String>,
    ) -> ApiResult<DiffFileView>;
}

/// Commands inside a running box.
#[async_trait]
pub trait Exec: Send + Sync {
    /// Runs a command to completion and returns its output and exit code.
    async fn exec(&self, key: BoxKey, cmd: ExecCommand) -> ApiResult<ExecOutput>;
    /// Starts a command detached; its output goes to /tmp/boxes/exec/<pid>.log in the box.
    async fn exec_background(&self, key: BoxKey, cmd: ExecCommand) -> ApiResult<BackgroundExec>;
    /// Starts (or, for a console, reattaches to) a streamed exec.
    async fn exec_stream(&self, key: BoxKey, start: ExecStart) -> ApiResult<ExecStream>;
    /// A background process's log from byte `offset`.
    async fn logs(&self, key: BoxKey, pid: Option<u32>, offset: u64) -> ApiResult<Vec<u8>>;
}

/// TCP ports listening inside a box.
#[async_trait]
pub trait Ports: Send + Sync {
    async fn list_ports(&self, key: BoxKey) -> ApiResult<Vec<PortView>>;
    /// Waits until something listens on `port` inside the box, or 408 `port_timeout`.
    async fn wait_port(
        &self,
        key: BoxKey,
        port: u16,
        timeout: std::time::Duration,
    ) -> ApiResult<PortView>;
}

/// One file in or out of a box.
#[async_trait]
pub trait Files: Send + Sync {
    /// Writes one file into the box's root or system volumes, streamed; mode and owner kept.
    /// A path that lands in `/box/bin` or `/box/all` (after the box's symlinks) is refused with
    /// 403 `forbidden` unless `shared_writes` (the caller holds an admin token).
    async fn put_file(
        &self,
        key: BoxKey,
        q: FileQuery,
        body: Upload,
        shared_writes: bool,
    ) -> ApiResult<FileWritten>;
    /// Opens one file of the box for download.
    async fn get_file(&self, key: BoxKey, path: String) -> ApiResult<FileDownload>;
}
