//! The seam between the HTTP surface and where state lives. `local` keeps it in SQLite and the
//! node agent's pool on this machine; a `kube` backend will write the same objects as custom
//! resources. Routes and wire types do not change between the two.

pub mod hostrules;
pub mod kube;
pub mod local;
pub mod procnet;
pub mod spec;
pub mod view;

use std::future::Future;
use std::pin::Pin;

use crate::error::{ApiError, ApiResult};
use crate::wire::{
    BackgroundExec, BaseDetailsView, BaseSummaryView, BaseWritten, BoxView, CreateBox,
    DiffFileView, DiffStatusView, ExecCommand, ExecOutput, ImportBase, SnapshotView, UserView,
    VolumeView,
};

/// An upload as it arrives: chunks of the request body, never buffered whole.
pub type Upload = futures::stream::BoxStream<'static, std::io::Result<axum::body::Bytes>>;

/// What a client sends into a running exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecIn {
    Stdin(Vec<u8>),
    /// End of stdin.
    Eof,
    Resize {
        rows: u16,
        cols: u16,
    },
    Signal(i32),
}

/// What a running exec sends back. `Exit` is last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecOut {
    /// A console's id, first, for a later reattach.
    Session(String),
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exit(i32),
}

/// Both ends of a running exec. Dropping `input` closes stdin; a console keeps running.
pub struct ExecStream {
    pub input: tokio::sync::mpsc::Sender<ExecIn>,
    pub output: tokio::sync::mpsc::Receiver<ExecOut>,
}

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

/// Copies a command's stdout or stderr into its exec stream until the end or until the stream's
/// reader goes away.
pub(crate) async fn pump_output(
    mut r: impl tokio::io::AsyncRead + Unpin,
    tx: tokio::sync::mpsc::Sender<ExecOut>,
    stderr: bool,
) {
    use tokio::io::AsyncReadExt as _;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let chunk = buf[..n].to_vec();
                let msg = if stderr {
                    ExecOut::Stderr(chunk)
                } else {
                    ExecOut::Stdout(chunk)
                };
                if tx.send(msg).await.is_err() {
                    break;
                }
            }
        }
    }
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

/// A boxed future, so that the trait can be used as `dyn Backend`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Everything the routes need. Inputs are validated by the routes before they get here; a
/// backend still refuses what its own state forbids (a name taken, a volume in use).
pub trait Backend: Send + Sync + 'static {
    /// Whether the backend can serve (its store and storage answer).
    fn ready(&self) -> BoxFuture<'_, ApiResult<()>>;
    /// The gateway's own SQLite (tokens, users, base owners), which both backends keep.
    fn gateway_store(&self) -> std::sync::Arc<crate::store::Store>;

    fn list_users(&self, project: String) -> BoxFuture<'_, ApiResult<Vec<UserView>>>;
    fn create_user(
        &self,
        project: String,
        name: String,
        shell: String,
    ) -> BoxFuture<'_, ApiResult<UserView>>;
    fn update_user(
        &self,
        project: String,
        name: String,
        shell: String,
    ) -> BoxFuture<'_, ApiResult<UserView>>;
    fn delete_user(&self, project: String, name: String) -> BoxFuture<'_, ApiResult<()>>;

    fn list_volumes(&self, project: String) -> BoxFuture<'_, ApiResult<Vec<VolumeView>>>;
    fn create_volume(
        &self,
        project: String,
        name: String,
        limit: Option<String>,
    ) -> BoxFuture<'_, ApiResult<VolumeView>>;
    fn show_volume(&self, project: String, name: String) -> BoxFuture<'_, ApiResult<VolumeView>>;
    fn delete_volume(&self, project: String, name: String) -> BoxFuture<'_, ApiResult<()>>;
    /// The volume's checkpoints (`Shelf::Checkpoints`) or backups.
    fn list_volume_copies(
        &self,
        project: String,
        name: String,
        kind: VolumeCopy,
    ) -> BoxFuture<'_, ApiResult<Vec<SnapshotView>>>;
    /// A read-only copy of the volume now: a checkpoint, or a backup that outlives the volume.
    fn copy_volume(
        &self,
        project: String,
        name: String,
        kind: VolumeCopy,
        req: crate::wire::CheckpointVolume,
    ) -> BoxFuture<'_, ApiResult<SnapshotView>>;
    /// Replaces the volume's contents with a checkpoint or a backup; refused while a running
    /// box mounts it.
    fn restore_volume(
        &self,
        project: String,
        name: String,
        req: crate::wire::RestoreVolume,
    ) -> BoxFuture<'_, ApiResult<VolumeView>>;

    fn list_bases(&self) -> BoxFuture<'_, ApiResult<Vec<BaseSummaryView>>>;
    fn show_base(
        &self,
        name: String,
        tag: Option<String>,
    ) -> BoxFuture<'_, ApiResult<BaseDetailsView>>;
    fn delete_base(&self, name: String) -> BoxFuture<'_, ApiResult<()>>;
    /// Saves a box's root as the next version of base `name`.
    fn save_base(
        &self,
        project: String,
        name: String,
        box_name: String,
    ) -> BoxFuture<'_, ApiResult<BaseWritten>>;
    /// Imports a rootfs `.tar.gz` as the next version of `name`, extracting as it streams in.
    /// `owner`: the project the version is imported for (after the route's ownership check),
    /// which the pool records with it; `None` for an admin's import.
    fn import_base(
        &self,
        name: String,
        req: ImportBase,
        owner: Option<String>,
        body: Upload,
    ) -> BoxFuture<'_, ApiResult<BaseWritten>>;

    fn create_box(&self, project: String, req: CreateBox) -> BoxFuture<'_, ApiResult<BoxView>>;
    fn list_boxes(&self, project: String) -> BoxFuture<'_, ApiResult<Vec<BoxView>>>;
    fn show_box(&self, project: String, name: String) -> BoxFuture<'_, ApiResult<BoxView>>;
    /// Applies the allowlisted settings; the route has already picked them.
    fn update_box(
        &self,
        project: String,
        name: String,
        update: forkr_crds::validation::BoxUpdate,
    ) -> BoxFuture<'_, ApiResult<BoxView>>;
    /// Without `force`, a running box is refused with 409 `fork_running`.
    fn delete_box(
        &self,
        project: String,
        name: String,
        force: bool,
    ) -> BoxFuture<'_, ApiResult<Deletion>>;
    /// Routes a public host to the box, within `hostrules`: 409 `host_in_use` when another box
    /// has it, unless `force` takes it over (from another project only with `admin`, whether
    /// the caller's token is an admin's).
    fn publish_box(
        &self,
        project: String,
        name: String,
        req: crate::wire::PublishBox,
        admin: bool,
    ) -> BoxFuture<'_, ApiResult<crate::wire::Published>>;
    /// Removes one host (403 `host_not_owned` if the box does not have it) or all of them.
    fn unpublish_box(
        &self,
        project: String,
        name: String,
        req: crate::wire::UnpublishBox,
    ) -> BoxFuture<'_, ApiResult<crate::wire::Unpublished>>;
    fn stop_box(&self, project: String, name: String) -> BoxFuture<'_, ApiResult<BoxView>>;
    fn resume_box(&self, project: String, name: String) -> BoxFuture<'_, ApiResult<BoxView>>;

    fn list_snapshots(
        &self,
        project: String,
        name: String,
    ) -> BoxFuture<'_, ApiResult<Vec<SnapshotView>>>;
    fn create_snapshot(
        &self,
        project: String,
        name: String,
        snapshot: Option<String>,
        description: Option<String>,
    ) -> BoxFuture<'_, ApiResult<SnapshotView>>;
    fn restore_snapshot(
        &self,
        project: String,
        name: String,
        snapshot: String,
    ) -> BoxFuture<'_, ApiResult<BoxView>>;
    fn diff_status(
        &self,
        project: String,
        name: String,
        against: Option<String>,
    ) -> BoxFuture<'_, ApiResult<DiffStatusView>>;
    fn diff_file(
        &self,
        project: String,
        name: String,
        path: String,
        against: Option<String>,
    ) -> BoxFuture<'_, ApiResult<DiffFileView>>;

    /// Runs a command to completion and returns its output and exit code.
    fn exec(
        &self,
        project: String,
        name: String,
        cmd: ExecCommand,
    ) -> BoxFuture<'_, ApiResult<ExecOutput>>;
    /// Starts a command detached; its output goes to /tmp/boxes/exec/<pid>.log in the box.
    fn exec_background(
        &self,
        project: String,
        name: String,
        cmd: ExecCommand,
    ) -> BoxFuture<'_, ApiResult<BackgroundExec>>;
    /// Writes one file into the box's root or system volumes, streamed; mode and owner kept.
    /// A path that lands in `/box/bin` or `/box/all` (after the box's symlinks) is refused with
    /// 403 `forbidden` unless `shared_writes` (the caller holds an admin token).
    fn put_file(
        &self,
        project: String,
        name: String,
        q: crate::wire::FileQuery,
        body: Upload,
        shared_writes: bool,
    ) -> BoxFuture<'_, ApiResult<crate::wire::FileWritten>>;
    /// Opens one file of the box for download.
    fn get_file(
        &self,
        project: String,
        name: String,
        path: String,
    ) -> BoxFuture<'_, ApiResult<FileDownload>>;
    /// Starts (or, for a console, reattaches to) a streamed exec.
    fn exec_stream(
        &self,
        project: String,
        name: String,
        start: crate::wire::ExecStart,
    ) -> BoxFuture<'_, ApiResult<ExecStream>>;
    /// TCP ports listening inside the box.
    fn list_ports(
        &self,
        project: String,
        name: String,
    ) -> BoxFuture<'_, ApiResult<Vec<crate::wire::PortView>>>;
    /// Waits until something listens on `port` inside the box, or 408 `port_timeout`.
    fn wait_port(
        &self,
        project: String,
        name: String,
        port: u16,
        timeout: std::time::Duration,
    ) -> BoxFuture<'_, ApiResult<crate::wire::PortView>>;
    /// A background process's log from byte `offset`.
    fn logs(
        &self,
        project: String,
        name: String,
        pid: Option<u32>,
        offset: u64,
    ) -> BoxFuture<'_, ApiResult<Vec<u8>>>;
}
