//! The gRPC face of the pool: the `Storage` service and token authentication (serving it next to
//! `Runtime` is `rpc::serve`). Pool calls block on the kernel, so each runs on the blocking
//! thread pool.

use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::error::Error;
use crate::metrics::Metrics;
use crate::pool::Pool;
use crate::pool::checkpoint::{Shelf, Subject};
use crate::pool::diff::{Change, Strategy};
use crate::pool::import::ImportOptions;
use crate::sys;

/// Generated protocol types, shared by server and clients (forkr-agent-proto).
pub use forkr_agent_proto::storage as proto;
// Token auth is part of the contract with the callers; kept reachable here for old paths.
pub use forkr_agent_proto::auth::{BearerToken, TokenAuth};

use proto::storage_server::{Storage, StorageServer};

/// Maps pool errors onto the gRPC codes forkr-api relies on; messages pass through unchanged.
pub fn to_status(e: Error) -> Status {
    let msg = e.to_string();
    match e {
        Error::NotFound(_) => Status::not_found(msg),
        Error::AlreadyExists(_) => Status::already_exists(msg),
        Error::InvalidArgument(_) => Status::invalid_argument(msg),
        Error::FailedPrecondition(_) => Status::failed_precondition(msg),
        Error::PermissionDenied(_) => Status::permission_denied(msg),
        Error::Io { .. } | Error::Btrfs { .. } | Error::Fault { .. } => Status::internal(msg),
    }
}

/// The `Storage` service over one pool.
pub struct StorageService {
    pool: Arc<Pool>,
    metrics: Arc<Metrics>,
    /// Presented to peer agents when pulling bases: the agents of one cluster share the token.
    peer_token: BearerToken,
}

/// The authenticated service, ready to add to a tonic server. Fails when the token could not be
/// sent in a header (it must be visible ASCII).
pub fn service(
    pool: Arc<Pool>,
    token: &str,
) -> Result<
    tonic::service::interceptor::InterceptedService<StorageServer<StorageService>, TokenAuth>,
    Error,
> {
    service_with_metrics(pool, token, Arc::default())
}

/// `service`, recording into a shared metrics registry.
pub fn service_with_metrics(
    pool: Arc<Pool>,
    token: &str,
    metrics: Arc<Metrics>,
) -> Result<
    tonic::service::interceptor::InterceptedService<StorageServer<StorageService>, TokenAuth>,
    Error,
> {
    let peer_token = BearerToken::new(token)
        .map_err(|_| Error::InvalidArgument("the agent token must be visible ASCII".into()))?;
    Ok(StorageServer::with_interceptor(
        StorageService {
            pool,
            metrics,
            peer_token,
        },
        TokenAuth::new(token),
    ))
}

impl StorageService {
    /// Runs a pool call on the blocking pool and records it under `op`.
    async fn blocking<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Pool) -> crate::Result<T> + Send + 'static,
    ) -> Result<T, Status> {
        let pool = self.pool.clone();
        let start = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || f(&pool))
            .await
            .map_err(|e| Status::internal(format!("agent task failed: {e}")))?;
        let outcome = result.as_ref().map_or_else(Error::label, |_| "ok");
        self.metrics.record(op, outcome, start.elapsed());
        result.map_err(to_status)
    }
}

fn opt(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// An owned checkpoint target, so it can move into a blocking task.
#[derive(Clone)]
enum OwnedTarget {
    Root(String, String),
    Volume(String, String),
}

impl OwnedTarget {
    fn parse(t: Option<proto::Target>) -> Result<OwnedTarget, Status> {
        match t.and_then(|t| t.kind) {
            Some(proto::target::Kind::Root(r)) => Ok(OwnedTarget::Root(r.project, r.r#box)),
            Some(proto::target::Kind::Volume(v)) => Ok(OwnedTarget::Volume(v.project, v.volume)),
            None => Err(Status::invalid_argument(
                "target (a box root or a volume) is required",
            )),
        }
    }

    fn subject(&self) -> Subject<'_> {
        match self {
            OwnedTarget::Root(p, n) => Subject::Root {
                project: p,
                name: n,
            },
            OwnedTarget::Volume(p, n) => Subject::Volume {
                project: p,
                name: n,
            },
        }
    }
}

fn shelf(v: i32) -> Result<Shelf, Status> {
    match proto::Shelf::try_from(v) {
        Ok(proto::Shelf::Checkpoints) => Ok(Shelf::Checkpoints),
        Ok(proto::Shelf::Backups) => Ok(Shelf::Backups),
        Err(_) => Err(Status::invalid_argument(format!("unknown shelf {v}"))),
    }
}

fn root_msg(pool: &Pool, r: crate::pool::roots::RootInfo) -> proto::Root {
    let path = pool
        .path()
        .join(forkr_agent_proto::layout::root(&r.project, &r.name));
    proto::Root {
        project: r.project,
        r#box: r.name,
        base: r.base.unwrap_or_default(),
        origin: r.origin.unwrap_or_default(),
        created: r.created,
        path: path.to_string_lossy().into_owned(),
    }
}

/// Presents the chunks of a client stream as a blocking `Read` for the extractor.
struct ChunkReader {
    rx: mpsc::Receiver<Result<Vec<u8>, io::Error>>,
    buf: Vec<u8>,
    at: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.buf.len() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(chunk) => {
                    self.buf = chunk?;
                    self.at = 0;
                }
            }
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

const EXPORT_CHUNK: usize = 256 * 1024;

#[tonic::async_trait]
impl Storage for StorageService {
    async fn create_root(
        &self,
        req: Request<proto::CreateRootRequest>,
    ) -> Result<Response<proto::Root>, Status> {
        let r = req.into_inner();
        let msg = self
            .blocking("create_root", move |p| {
                Ok(root_msg(p, p.create_root(&r.project, &r.r#box, &r.base)?))
            })
            .await?;
        Ok(Response::new(msg))
    }

    async fn fork_root(
        &self,
        req: Request<proto::ForkRootRequest>,
    ) -> Result<Response<proto::Root>, Status> {
        let r = req.into_inner();
        let msg = self
            .blocking("fork_root", move |p| {
                let info = p.fork_root(
                    &r.from_project,
                    &r.from_box,
                    &r.project,
                    &r.r#box,
                    &r.volumes,
                )?;
                Ok(root_msg(p, info))
            })
            .await?;
        Ok(Response::new(msg))
    }

    async fn delete_root(
        &self,
        req: Request<proto::RootRef>,
    ) -> Result<Response<proto::Empty>, Status> {
        let r = req.into_inner();
        self.blocking("delete_root", move |p| p.delete_root(&r.project, &r.r#box))
            .await?;
        Ok(Response::new(proto::Empty {}))
    }

    async fn list_roots(
        &self,
        req: Request<proto::ListRootsRequest>,
    ) -> Result<Response<proto::ListRootsResponse>, Status> {
        let r = req.into_inner();
        let roots = self
            .blocking("list_roots", move |p| {
                Ok(p.list_roots(&r.project)?
                    .into_iter()
                    .map(|i| root_msg(p, i))
                    .collect())
            })
            .await?;
        Ok(Response::new(proto::ListRootsResponse { roots }))
    }

    async fn create_checkpoint(
        &self,
        req: Request<proto::CreateCheckpointRequest>,
    ) -> Result<Response<proto::Checkpoint>, Status> {
        let r = req.into_inner();
        let target = OwnedTarget::parse(r.target)?;
        let sh = shelf(r.shelf)?;
        let (name, desc, rid) = (opt(r.name), opt(r.description), opt(r.request_id));
        let cp = self
            .blocking("create_checkpoint", move |p| {
                let s = target.subject();
                let made =
                    p.create_checkpoint(s, sh, name.as_deref(), desc.as_deref(), rid.as_deref())?;
                p.checkpoint_info(s, sh, &made)
            })
            .await?;
        Ok(Response::new(proto::Checkpoint {
            name: cp.name,
            size: cp.size,
            created: cp.created,
            description: cp.description.unwrap_or_default(),
        }))
    }

    async fn list_checkpoints(
        &self,
        req: Request<proto::ListCheckpointsRequest>,
    ) -> Result<Response<proto::ListCheckpointsResponse>, Status> {
        let r = req.into_inner();
        let target = OwnedTarget::parse(r.target)?;
        let sh = shelf(r.shelf)?;
        let list = self
            .blocking("list_checkpoints", move |p| {
                p.list_checkpoints(target.subject(), sh)
            })
            .await?;
        let checkpoints = list
            .into_iter()
            .map(|c| proto::Checkpoint {
                name: c.name,
                size: c.size,
                created: c.created,
                description: c.description.unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(proto::ListCheckpointsResponse {
            checkpoints,
        }))
    }

    async fn restore_checkpoint(
        &self,
        req: Request<proto::CheckpointRef>,
    ) -> Result<Response<proto::Empty>, Status> {
        let r = req.into_inner();
        let target = OwnedTarget::parse(r.target)?;
        let sh = shelf(r.shelf)?;
        self.blocking("restore_checkpoint", move |p| {
            p.restore_checkpoint(target.subject(), sh, &r.name)
        })
        .await?;
        Ok(Response::new(proto::Empty {}))
    }

    async fn delete_checkpoint(
        &self,
        req: Request<proto::CheckpointRef>,
    ) -> Result<Response<proto::Empty>, Status> {
        let r = req.into_inner();
        let target = OwnedTarget::parse(r.target)?;
        let sh = shelf(r.shelf)?;
        self.blocking("delete_checkpoint", move |p| {
            p.delete_checkpoint(target.subject(), sh, &r.name)
        })
        .await?;
        Ok(Response::new(proto::Empty {}))
    }

    async fn diff_status(
        &self,
        req: Request<proto::DiffStatusRequest>,
    ) -> Result<Response<proto::DiffStatusResponse>, Status> {
        let r = req.into_inner();
        let against = opt(r.against);
        let report = self
            .blocking("diff_status", move |p| {
                p.diff_status(&r.project, &r.r#box, against.as_deref(), Strategy::Auto)
            })
            .await?;
        let text = report.render();
        let changes = report
            .changes
            .into_iter()
            .map(|(c, path)| proto::PathChange {
                kind: match c {
                    Change::Added => proto::ChangeKind::ChangeAdded,
                    Change::Modified => proto::ChangeKind::ChangeModified,
                    Change::Deleted => proto::ChangeKind::ChangeDeleted,
                } as i32,
                path,
            })
            .collect();
        Ok(Response::new(proto::DiffStatusResponse {
            against: report.against,
            changes,
            text,
        }))
    }

    async fn diff_file(
        &self,
        req: Request<proto::DiffFileRequest>,
    ) -> Result<Response<proto::DiffFileResponse>, Status> {
        let r = req.into_inner();
        let against = opt(r.against);
        let d = self
            .blocking("diff_file", move |p| {
                p.diff_file(&r.project, &r.r#box, &r.path, against.as_deref())
            })
            .await?;
        Ok(Response::new(proto::DiffFileResponse {
            against: d.against,
            status: d.status.as_str().to_string(),
            diff: d.diff.unwrap_or_default(),
        }))
    }

    async fn import_base(
        &self,
        req: Request<Streaming<proto::ImportBaseChunk>>,
    ) -> Result<Response<proto::BaseVersionRef>, Status> {
        let mut stream = req.into_inner();
        let header = match stream.message().await?.and_then(|c| c.part) {
            Some(proto::import_base_chunk::Part::Header(h)) => h,
            _ => {
                return Err(Status::invalid_argument(
                    "the first message of ImportBase must be its header",
                ));
            }
        };
        let (tx, rx) = mpsc::channel(8);
        tokio::spawn(async move {
            loop {
                let item = match stream.message().await {
                    Ok(None) => break,
                    Ok(Some(proto::ImportBaseChunk {
                        part: Some(proto::import_base_chunk::Part::Data(d)),
                    })) => Ok(d),
                    Ok(Some(_)) => Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "ImportBase takes one header, then data",
                    )),
                    Err(s) => Err(io::Error::other(format!(
                        "upload interrupted: {}",
                        s.message()
                    ))),
                };
                let stop = item.is_err();
                if tx.send(item).await.is_err() || stop {
                    break;
                }
            }
        });
        let opts = ImportOptions {
            parent: opt(header.parent),
            tag: opt(header.tag),
            builder: opt(header.builder),
            request_id: opt(header.request_id),
            owner: opt(header.owner),
        };
        let name = header.name;
        let name2 = name.clone();
        let version = self
            .blocking("import_base", move |p| {
                p.import_base(
                    &name2,
                    ChunkReader {
                        rx,
                        buf: Vec::new(),
                        at: 0,
                    },
                    &opts,
                )
            })
            .await?;
        Ok(Response::new(proto::BaseVersionRef { name, version }))
    }

    async fn save_base(
        &self,
        req: Request<proto::SaveBaseRequest>,
    ) -> Result<Response<proto::BaseVersionRef>, Status> {
        let r = req.into_inner();
        let name = r.name.clone();
        let rid = opt(r.request_id);
        let version = self
            .blocking("save_base", move |p| {
                p.save_base(&r.name, &r.project, &r.r#box, rid.as_deref())
            })
            .await?;
        Ok(Response::new(proto::BaseVersionRef { name, version }))
    }

    async fn list_bases(
        &self,
        _req: Request<proto::Empty>,
    ) -> Result<Response<proto::ListBasesResponse>, Status> {
        let list = self.blocking("list_bases", |p| p.list_bases()).await?;
        let bases = list
            .into_iter()
            .map(|b| proto::BaseSummary {
                name: b.name,
                version: b.version,
                size: b.size,
                created: b.created,
            })
            .collect();
        Ok(Response::new(proto::ListBasesResponse { bases }))
    }

    async fn show_base(
        &self,
        req: Request<proto::ShowBaseRequest>,
    ) -> Result<Response<proto::ShowBaseResponse>, Status> {
        let r = req.into_inner();
        let tag = opt(r.tag);
        let d = self
            .blocking("show_base", move |p| p.show_base(&r.name, tag.as_deref()))
            .await?;
        Ok(Response::new(proto::ShowBaseResponse {
            name: d.name,
            latest: d.latest,
            version_count: u32::try_from(d.version_count).unwrap_or(u32::MAX),
            versions: d
                .versions
                .into_iter()
                .map(|v| proto::BaseVersion {
                    version: v.version,
                    kind: v.kind,
                    tag: v.tag.unwrap_or_default(),
                    builder: v.builder.unwrap_or_default(),
                    owner: v.owner.unwrap_or_default(),
                    parent: v.parent.unwrap_or_default(),
                    size: v.size,
                    created: v.created,
                })
                .collect(),
        }))
    }

    async fn delete_base(
        &self,
        req: Request<proto::DeleteBaseRequest>,
    ) -> Result<Response<proto::Empty>, Status> {
        let r = req.into_inner();
        self.blocking("delete_base", move |p| p.delete_base(&r.name))
            .await?;
        Ok(Response::new(proto::Empty {}))
    }

    async fn create_volume(
        &self,
        req: Request<proto::VolumeRef>,
    ) -> Result<Response<proto::Empty>, Status> {
        let r = req.into_inner();
        self.blocking("create_volume", move |p| {
            p.create_volume(&r.project, &r.volume)
        })
        .await?;
        Ok(Response::new(proto::Empty {}))
    }

    async fn delete_volume(
        &self,
        req: Request<proto::VolumeRef>,
    ) -> Result<Response<proto::Empty>, Status> {
        let r = req.into_inner();
        self.blocking("delete_volume", move |p| {
            p.delete_volume(&r.project, &r.volume)
        })
        .await?;
        Ok(Response::new(proto::Empty {}))
    }

    async fn list_volumes(
        &self,
        req: Request<proto::ListVolumesRequest>,
    ) -> Result<Response<proto::ListVolumesResponse>, Status> {
        let r = req.into_inner();
        let list = self
            .blocking("list_volumes", move |p| p.list_volumes(&r.project))
            .await?;
        let volumes = list
            .into_iter()
            .map(|v| proto::VolumeInfo {
                volume: v.name,
                size: v.size,
                created: v.created,
            })
            .collect();
        Ok(Response::new(proto::ListVolumesResponse { volumes }))
    }

    async fn pull_base(
        &self,
        req: Request<proto::PullBaseRequest>,
    ) -> Result<Response<proto::PullBaseResponse>, Status> {
        let r = req.into_inner();
        Ok(Response::new(self.pull(&r.peer, &r.version).await?))
    }

    type ExportBaseStream = ReceiverStream<Result<proto::ExportChunk, Status>>;

    async fn export_base(
        &self,
        req: Request<proto::ExportBaseRequest>,
    ) -> Result<Response<Self::ExportBaseStream>, Status> {
        let r = req.into_inner();
        let parent = opt(r.parent);
        let (source, parent): (PathBuf, Option<PathBuf>) = self
            .blocking("export_base", move |p| {
                let parent = parent.map(|v| p.base_path(&v)).transpose()?;
                Ok((p.base_path(&r.version)?, parent))
            })
            .await?;
        let mut stream = sys::send(&source, parent.as_deref(), false).map_err(to_status)?;
        let (tx, rx) = mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            loop {
                let mut buf = vec![0u8; EXPORT_CHUNK];
                let item = match read_full(&mut stream, &mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        buf.truncate(n);
                        Ok(proto::ExportChunk { data: buf })
                    }
                    Err(e) => Err(Status::internal(format!("send stream failed: {e}"))),
                };
                let stop = item.is_err();
                if tx.blocking_send(item).is_err() || stop {
                    break;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

impl StorageService {
    /// Receives `version` from `peer`: incremental against its parent when this node has the
    /// very tree the peer would diff against, in full otherwise.
    async fn pull(&self, peer: &str, version: &str) -> Result<proto::PullBaseResponse, Status> {
        let channel = tonic::transport::Endpoint::from_shared(peer.to_string())
            .map_err(|e| Status::invalid_argument(format!("bad peer address {peer:?}: {e}")))?
            .connect()
            .await
            .map_err(|e| Status::unavailable(format!("cannot reach peer {peer}: {e}")))?;
        let mut client = proto::storage_client::StorageClient::with_interceptor(
            channel,
            self.peer_token.clone(),
        );
        let info = peer_version(&mut client, version).await?;
        let response = |version: String, incremental_from: String| proto::PullBaseResponse {
            name: info.name.clone(),
            version,
            incremental_from,
        };
        if self.local_exact(&info.version).await?.is_some() {
            return Ok(response(info.version.clone(), String::new()));
        }
        let local_parent = match &info.parent {
            Some(parent) => self.local_exact(parent).await?,
            None => None,
        };
        if let Some(parent) = local_parent {
            match self
                .receive_from(&mut client, &info, Some(parent.clone()))
                .await
            {
                Ok(v) => return Ok(response(v, parent)),
                Err(e) if e.code() == tonic::Code::FailedPrecondition => {
                    tracing::info!(version = %info.version, parent, "local parent differs from the peer's, pulling in full");
                }
                Err(e) => return Err(e),
            }
        }
        let v = self.receive_from(&mut client, &info, None).await?;
        Ok(response(v, String::new()))
    }

    /// `Some(version)` when this node has exactly that base version (not just an alias of it).
    async fn local_exact(&self, version: &str) -> Result<Option<String>, Status> {
        let v = version.to_string();
        self.blocking("pull_base_lookup", move |p| {
            Ok(p.resolve_base(&v).ok().filter(|r| *r == v))
        })
        .await
    }

    async fn receive_from(
        &self,
        client: &mut PeerClient,
        info: &crate::pool::receive::ReceivedVersion,
        parent: Option<String>,
    ) -> Result<String, Status> {
        let mut stream = client
            .export_base(proto::ExportBaseRequest {
                version: info.version.clone(),
                parent: parent.clone().unwrap_or_default(),
            })
            .await?
            .into_inner();
        let (tx, rx) = mpsc::channel(8);
        tokio::spawn(async move {
            loop {
                let item = match stream.message().await {
                    Ok(None) => break,
                    Ok(Some(chunk)) => Ok(chunk.data),
                    Err(s) => Err(io::Error::other(format!(
                        "peer stream failed: {}",
                        s.message()
                    ))),
                };
                let stop = item.is_err();
                if tx.send(item).await.is_err() || stop {
                    break;
                }
            }
        });
        let info = info.clone();
        self.blocking("receive_base", move |p| {
            p.receive_base(
                &info,
                parent.as_deref(),
                ChunkReader {
                    rx,
                    buf: Vec::new(),
                    at: 0,
                },
            )
        })
        .await
    }
}

type PeerClient = proto::storage_client::StorageClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, BearerToken>,
>;

/// What the peer knows about `version` (an alias resolves to its newest version there).
async fn peer_version(
    client: &mut PeerClient,
    version: &str,
) -> Result<crate::pool::receive::ReceivedVersion, Status> {
    let show = client
        .show_base(proto::ShowBaseRequest {
            name: version.to_string(),
            tag: String::new(),
        })
        .await?
        .into_inner();
    let row = show
        .versions
        .iter()
        .find(|v| v.version == version)
        .or_else(|| show.versions.first())
        .cloned()
        .ok_or_else(|| Status::not_found(format!("peer has no base {version:?}")))?;
    Ok(crate::pool::receive::ReceivedVersion {
        version: row.version,
        name: show.name,
        kind: row.kind,
        tag: opt(row.tag),
        builder: opt(row.builder),
        owner: opt(row.owner),
        parent: opt(row.parent),
        created: opt(row.created),
    })
}

/// Fills `buf` unless the stream ends first; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut at = 0;
    while at < buf.len() {
        match r.read(&mut buf[at..])? {
            0 => break,
            n => at += n,
        }
    }
    Ok(at)
}
