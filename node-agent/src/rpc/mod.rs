//! The node's gRPC services. This module is the `Runtime` service (box start/stop/status in local
//! mode; exec, console, ps, logs and files in both modes, in `exec` and `files`), authenticated
//! with the agent's token; `storage` is the `Storage` service over the pool; `serve` serves both.
//! `serve` depends on the two services and neither depends on it.
//!
//! Its code is generated from `proto/forkr/runtime/v1/runtime.proto` by the build script, like the
//! Storage service's.

mod exec;
mod files;
pub mod serve;
pub mod storage;

use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status, Streaming};

use crate::error::Error;
use crate::exec::Target;
use crate::exec::session::Sessions;
use crate::pool::Pool;
use crate::rpc::storage::{TokenAuth, to_status};
use crate::runtime::{BoxSpec, LocalRuntime, Phase, VolumeMount};

/// Generated protocol types, shared by server and clients (forkr-agent-proto).
pub use forkr_agent_proto::runtime as proto;

use proto::runtime_server::{Runtime, RuntimeServer};

/// Default interval of heartbeats on idle exec and console streams.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// The Runtime service. Without a local runtime (Kubernetes mode) box lifecycle calls are
/// refused, and exec finds PID 1 among the node's processes.
pub struct RuntimeService {
    pub(crate) pool: Arc<Pool>,
    pub(crate) runtime: Option<Arc<LocalRuntime>>,
    pub(crate) sessions: Arc<Sessions>,
    pub(crate) heartbeat: Duration,
    /// Kubernetes mode: where boxes' PID 1s were last seen.
    pub(crate) node_boxes: Arc<crate::exec::NodeBoxes>,
}

/// The authenticated service, ready to add to a tonic server next to `Storage`. In Kubernetes
/// mode it finds boxes through containerd's default state directory.
pub fn service(
    pool: Arc<Pool>,
    runtime: Option<Arc<LocalRuntime>>,
    token: &str,
    heartbeat: Duration,
) -> tonic::service::interceptor::InterceptedService<RuntimeServer<RuntimeService>, TokenAuth> {
    service_on_node(pool, runtime, token, heartbeat, Arc::default())
}

/// The service, finding Kubernetes-mode boxes with `node_boxes` (containerd's state directory
/// of this node).
pub fn service_on_node(
    pool: Arc<Pool>,
    runtime: Option<Arc<LocalRuntime>>,
    token: &str,
    heartbeat: Duration,
    node_boxes: Arc<crate::exec::NodeBoxes>,
) -> tonic::service::interceptor::InterceptedService<RuntimeServer<RuntimeService>, TokenAuth> {
    RuntimeServer::with_interceptor(
        RuntimeService {
            pool,
            runtime,
            sessions: Arc::default(),
            heartbeat,
            node_boxes,
        },
        TokenAuth::new(token),
    )
}

pub(crate) fn box_ref(b: Option<proto::BoxRef>) -> Result<(String, String), Status> {
    let b = b.ok_or_else(|| Status::invalid_argument("box is required"))?;
    forkr_crds::validation::validate_project_name(&b.project)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    forkr_crds::validation::validate_box_name(&b.name)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    Ok((b.project, b.name))
}

/// Runs blocking work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("agent task failed: {e}")))?
        .map_err(to_status)
}

impl RuntimeService {
    fn local(&self) -> Result<Arc<LocalRuntime>, Status> {
        self.runtime.clone().ok_or_else(|| {
            Status::failed_precondition(
                "box lifecycle is the operator's job in Kubernetes mode; this agent has no local runtime",
            )
        })
    }

    /// The running box's PID 1: from runc locally, from the node's processes otherwise.
    pub(crate) async fn target(&self, project: String, name: String) -> Result<Target, Status> {
        let rt = self.runtime.clone();
        let node_boxes = self.node_boxes.clone();
        blocking(move || match rt {
            Some(rt) => rt.pid1(&project, &name).map(Target::new),
            None => node_boxes.find(&project, &name),
        })
        .await
    }
}

fn status_to_proto(st: crate::runtime::BoxStatus) -> proto::BoxStatus {
    proto::BoxStatus {
        r#box: Some(proto::BoxRef {
            project: st.project,
            name: st.name,
        }),
        phase: match st.phase {
            Phase::Running => proto::Phase::Running,
            Phase::Stopped => proto::Phase::Stopped,
            Phase::Dead => proto::Phase::Dead,
        } as i32,
        pid: st.pid.unwrap_or(0),
        ip: st.ip.map(|ip| ip.to_string()).unwrap_or_default(),
    }
}

fn spec_from_proto(req: proto::StartBoxRequest) -> Result<BoxSpec, Status> {
    let (project, name) = box_ref(req.r#box)?;
    let mut spec = BoxSpec::new(&project, &name);
    spec.env = req.env.into_iter().collect();
    forkr_crds::validation::validate_env(&spec.env).map_err(|e| {
        Status::invalid_argument(e.first().map_or("invalid env".into(), |f| f.to_string()))
    })?;
    spec.memory_bytes = (req.memory_bytes > 0).then_some(req.memory_bytes);
    spec.cpu_millis = (req.cpu_millis > 0).then_some(req.cpu_millis);
    if req.grace_seconds > 0 {
        spec.grace_seconds = req.grace_seconds;
    }
    spec.volumes = req
        .volumes
        .into_iter()
        .map(|v| VolumeMount {
            volume: v.volume,
            target: v.target,
            read_only: v.read_only,
        })
        .collect();
    Ok(spec)
}

type Stream<T> = std::pin::Pin<Box<dyn futures::Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl Runtime for RuntimeService {
    async fn start_box(
        &self,
        req: Request<proto::StartBoxRequest>,
    ) -> Result<Response<proto::BoxStatus>, Status> {
        let rt = self.local()?;
        let spec = spec_from_proto(req.into_inner())?;
        let st = blocking(move || rt.start(&spec)).await?;
        Ok(Response::new(status_to_proto(st)))
    }

    async fn stop_box(
        &self,
        req: Request<proto::BoxRef>,
    ) -> Result<Response<proto::BoxStatus>, Status> {
        let rt = self.local()?;
        let (p, n) = box_ref(Some(req.into_inner()))?;
        let st = blocking(move || {
            rt.stop(&p, &n)?;
            rt.status(&p, &n)
        })
        .await?;
        Ok(Response::new(status_to_proto(st)))
    }

    async fn resume_box(
        &self,
        req: Request<proto::BoxRef>,
    ) -> Result<Response<proto::BoxStatus>, Status> {
        let rt = self.local()?;
        let (p, n) = box_ref(Some(req.into_inner()))?;
        let st = blocking(move || rt.resume(&p, &n)).await?;
        Ok(Response::new(status_to_proto(st)))
    }

    async fn get_box_status(
        &self,
        req: Request<proto::BoxRef>,
    ) -> Result<Response<proto::BoxStatus>, Status> {
        let rt = self.local()?;
        let (p, n) = box_ref(Some(req.into_inner()))?;
        let st = blocking(move || rt.status(&p, &n)).await?;
        Ok(Response::new(status_to_proto(st)))
    }

    async fn list_boxes(
        &self,
        _req: Request<proto::ListBoxesRequest>,
    ) -> Result<Response<proto::ListBoxesResponse>, Status> {
        let rt = self.local()?;
        let all = blocking(move || rt.list()).await?;
        Ok(Response::new(proto::ListBoxesResponse {
            boxes: all.into_iter().map(status_to_proto).collect(),
        }))
    }

    type ExecStream = Stream<proto::ExecOutput>;

    async fn exec(
        &self,
        req: Request<Streaming<proto::ExecInput>>,
    ) -> Result<Response<Self::ExecStream>, Status> {
        exec::exec(self, req.into_inner()).await
    }

    async fn exec_background(
        &self,
        req: Request<proto::ExecStart>,
    ) -> Result<Response<proto::ExecBackgroundResponse>, Status> {
        exec::background(self, req.into_inner()).await
    }

    async fn ps(
        &self,
        req: Request<proto::PsRequest>,
    ) -> Result<Response<proto::PsResponse>, Status> {
        exec::ps(self, req.into_inner()).await
    }

    type LogsStream = Stream<proto::LogsChunk>;

    async fn logs(
        &self,
        req: Request<proto::LogsRequest>,
    ) -> Result<Response<Self::LogsStream>, Status> {
        exec::logs(self, req.into_inner()).await
    }

    async fn put_file(
        &self,
        req: Request<Streaming<proto::PutFileChunk>>,
    ) -> Result<Response<proto::PutFileResponse>, Status> {
        files::put(self, req.into_inner()).await
    }

    type GetFileStream = Stream<proto::GetFileChunk>;

    async fn get_file(
        &self,
        req: Request<proto::GetFileRequest>,
    ) -> Result<Response<Self::GetFileStream>, Status> {
        files::get(self, req.into_inner()).await
    }
}

/// Errors from the engine, as statuses.
pub(crate) fn st(e: Error) -> Status {
    to_status(e)
}
