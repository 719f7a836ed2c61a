//! The cluster backend: every call becomes reads and writes of the Forkr custom resources in the
//! project's namespace, and forkr-operator does the work. Where a client expects a synchronous
//! answer (a create returns a running box, a snapshot its name) the call waits on status, up to
//! a timeout. Commands, consoles, files and logs go to the node agent on the box's node, with
//! Kubernetes exec into the runner container as the fallback (`commands.rs`, `exec.rs`); diffs
//! are the pools' (`snapshots.rs`), as are bases (`storage.rs`); data volumes are `DataVolume` objects
//! (`volumes.rs`). Tokens and users are the gateway's own, in SQLite.

mod agent;
mod boxes;
mod commands;
mod exec;
mod grants;
mod snapshots;
mod storage;
mod volumes;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::http::StatusCode;
use kube::Client;

use super::Backend;
use crate::error::{ApiError, ApiResult};
use crate::store::Store;

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
        crate::backend::on_store(self.store.clone(), f).await
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

#[async_trait]
impl Backend for KubeBackend {
    async fn ready(&self) -> ApiResult<()> {
        self.client
            .apiserver_version()
            .await
            .map(drop)
            .map_err(kube_error)
    }

    fn gateway_store(&self) -> Arc<Store> {
        self.store.clone()
    }
}
