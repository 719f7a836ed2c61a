//! Serving the node's gRPC services: `Storage` and `Runtime` together on TCP and on a Unix
//! socket, with the keepalives long exec and console streams need.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio_stream::wrappers::UnixListenerStream;

use super::proto::runtime_server::RuntimeServer;
use super::storage::{TokenAuth, service_with_metrics};
use super::{HEARTBEAT, RuntimeService, service_on_node as runtime_service};
use crate::exec::NodeBoxes;
use crate::metrics::Metrics;
use crate::pool::Pool;
use crate::runtime::LocalRuntime;

/// Serves the Storage and Runtime services on a TCP address until `shutdown` resolves.
pub async fn serve_tcp(
    pool: Arc<Pool>,
    metrics: Arc<Metrics>,
    runtime: Option<Arc<LocalRuntime>>,
    token: &str,
    addr: SocketAddr,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    serve_tcp_on_node(
        pool,
        metrics,
        runtime,
        Arc::default(),
        token,
        addr,
        shutdown,
    )
    .await
}

/// [`serve_tcp`], finding Kubernetes-mode boxes with `node_boxes`.
pub async fn serve_tcp_on_node(
    pool: Arc<Pool>,
    metrics: Arc<Metrics>,
    runtime: Option<Arc<LocalRuntime>>,
    node_boxes: Arc<NodeBoxes>,
    token: &str,
    addr: SocketAddr,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_listener(
        pool, metrics, runtime, node_boxes, token, listener, shutdown,
    )
    .await
}

/// Serves on an already bound TCP listener (lets callers pick port 0).
pub async fn serve_tcp_listener(
    pool: Arc<Pool>,
    metrics: Arc<Metrics>,
    runtime: Option<Arc<LocalRuntime>>,
    token: &str,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    serve_listener(
        pool,
        metrics,
        runtime,
        Arc::default(),
        token,
        listener,
        shutdown,
    )
    .await
}

async fn serve_listener(
    pool: Arc<Pool>,
    metrics: Arc<Metrics>,
    runtime: Option<Arc<LocalRuntime>>,
    node_boxes: Arc<NodeBoxes>,
    token: &str,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    server_builder()
        .add_service(service_with_metrics(pool.clone(), token, metrics)?)
        .add_service(runtime_service(pool, runtime, token, HEARTBEAT, node_boxes))
        // Without TCP_NODELAY, the small frames of an exec stream wait on delayed ACKs: about
        // 40 ms per exec. tonic sets it only on listeners it binds itself.
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener)
                .with_nodelay(Some(true))
                .with_keepalive(Some(std::time::Duration::from_secs(60))),
            shutdown,
        )
        .await?;
    Ok(())
}

/// Serves on a Unix socket (replacing a stale one), readable by root only, until `shutdown`.
pub async fn serve_unix(
    pool: Arc<Pool>,
    metrics: Arc<Metrics>,
    runtime: Option<Arc<LocalRuntime>>,
    token: &str,
    path: &Path,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    serve_unix_on_node(
        pool,
        metrics,
        runtime,
        Arc::default(),
        token,
        path,
        shutdown,
    )
    .await
}

/// [`serve_unix`], finding Kubernetes-mode boxes with `node_boxes`.
pub async fn serve_unix_on_node(
    pool: Arc<Pool>,
    metrics: Arc<Metrics>,
    runtime: Option<Arc<LocalRuntime>>,
    node_boxes: Arc<NodeBoxes>,
    token: &str,
    path: &Path,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    let listener = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    server_builder()
        .add_service(service_with_metrics(pool.clone(), token, metrics)?)
        .add_service(runtime_service(pool, runtime, token, HEARTBEAT, node_boxes))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await?;
    Ok(())
}

/// HTTP/2 keepalive for long idle exec and console streams: a PING every 20 s, and the
/// connection is dropped when one goes unanswered for 20 s.
pub fn server_builder() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(20)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .tcp_keepalive(Some(Duration::from_secs(60)))
}

/// Serves the Runtime service alone on a Unix socket (replacing a stale one) until `shutdown` (tests, benchmarks).
pub async fn serve_runtime_unix(
    svc: tonic::service::interceptor::InterceptedService<RuntimeServer<RuntimeService>, TokenAuth>,
    path: &Path,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(path);
    let listener = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    server_builder()
        .add_service(svc)
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await?;
    Ok(())
}
