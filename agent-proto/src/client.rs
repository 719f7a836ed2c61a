//! The per-node client: one trait for every storage call forkr-operator's controllers make, and
//! its gRPC implementation that finds each node's agent (a configured address, or the agent
//! DaemonSet's pod on that node, see [`Discovery`]) and talks to its `Storage` service. forkr-api's
//! Kubernetes backend shares its channels for the `Runtime` service.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::auth::BearerToken;
pub use crate::discovery::Discovery;
use crate::storage::{self as proto, storage_client::StorageClient};

/// A failed agent call. `code` is the gRPC code the agent answered with.
#[derive(Debug, Clone, thiserror::Error)]
#[error("node agent on {node}: {message}")]
pub struct AgentError {
    pub node: String,
    pub code: tonic::Code,
    pub message: String,
}

impl AgentError {
    fn new(node: &str, status: tonic::Status) -> AgentError {
        AgentError {
            node: node.to_owned(),
            code: status.code(),
            message: status.message().to_owned(),
        }
    }

    /// No agent serves `node` (yet).
    pub fn unreachable(node: &str, why: impl std::fmt::Display) -> AgentError {
        AgentError {
            node: node.to_owned(),
            code: tonic::Code::Unavailable,
            message: format!("no reachable node agent: {why}"),
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code == tonic::Code::NotFound
    }
}

/// What a checkpoint belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Root { project: String, name: String },
    Volume { project: String, name: String },
}

impl Subject {
    fn target(&self) -> proto::Target {
        let kind = match self {
            Subject::Root { project, name } => proto::target::Kind::Root(proto::RootRef {
                project: project.clone(),
                r#box: name.clone(),
            }),
            Subject::Volume { project, name } => proto::target::Kind::Volume(proto::VolumeRef {
                project: project.clone(),
                volume: name.clone(),
            }),
        };
        proto::Target { kind: Some(kind) }
    }
}

/// A root as the agent reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RootInfo {
    /// Exact base version.
    pub base: String,
    /// Absolute path on the node.
    pub path: String,
}

/// A checkpoint as the agent reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckpointInfo {
    pub name: String,
    pub size: u64,
    pub created: String,
}

/// One version of a base as the node's pool records it (what the ownership rule of Base saves
/// reads, `tenancy::base_write_refusal`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BaseVersionInfo {
    /// The exact version name.
    pub version: String,
    /// `import`, `build` or `save`: set by the agent itself, never by a request.
    pub kind: String,
    /// For a save, `box <project>/<box>` as the agent writes it; for an import, the uploader's
    /// free text.
    pub builder: String,
    /// The project the version was made for: the saved box's project, or the project on whose
    /// behalf forkr-api imported it after its ownership check. Empty for an admin's import and
    /// for versions made before the agent recorded it. Only the agent's authenticated callers
    /// set it, never a Base object.
    pub owner: String,
}

/// Every storage call the controllers make, addressed by node name. Implementations must be
/// idempotent where the agent is (create and delete calls are).
#[async_trait]
pub trait Agents: Send + Sync {
    /// Nodes that have a reachable agent, sorted.
    async fn nodes(&self) -> Result<Vec<String>, AgentError>;
    async fn create_root(
        &self,
        node: &str,
        project: &str,
        name: &str,
        base: &str,
    ) -> Result<RootInfo, AgentError>;
    async fn fork_root(
        &self,
        node: &str,
        from: (&str, &str),
        project: &str,
        name: &str,
        volumes: Vec<String>,
    ) -> Result<RootInfo, AgentError>;
    async fn delete_root(&self, node: &str, project: &str, name: &str) -> Result<(), AgentError>;
    async fn create_checkpoint(
        &self,
        node: &str,
        subject: &Subject,
        name: &str,
        description: &str,
        request_id: &str,
    ) -> Result<CheckpointInfo, AgentError>;
    async fn restore_checkpoint(
        &self,
        node: &str,
        subject: &Subject,
        name: &str,
    ) -> Result<(), AgentError>;
    async fn delete_checkpoint(
        &self,
        node: &str,
        subject: &Subject,
        name: &str,
    ) -> Result<(), AgentError>;
    async fn create_volume(&self, node: &str, project: &str, name: &str) -> Result<(), AgentError>;
    async fn delete_volume(&self, node: &str, project: &str, name: &str) -> Result<(), AgentError>;
    /// Saves a box's root as a new version of base `name`; returns the exact version.
    async fn save_base(
        &self,
        node: &str,
        name: &str,
        from: (&str, &str),
        request_id: &str,
    ) -> Result<String, AgentError>;
    /// Makes `node` fetch base `version` from `peer`'s agent.
    async fn pull_base(&self, node: &str, peer: &str, version: &str) -> Result<(), AgentError>;
    /// Data volumes of `project` on `node`.
    async fn volumes(&self, node: &str, project: &str) -> Result<Vec<String>, AgentError>;
    /// Whether `node`'s pool has base `name` (alias or version).
    async fn has_base(&self, node: &str, name: &str) -> Result<bool, AgentError>;
    /// Every version of base `name`'s family on `node`; empty when the pool has none.
    async fn base_versions(
        &self,
        node: &str,
        name: &str,
    ) -> Result<Vec<BaseVersionInfo>, AgentError>;
}

type Client = StorageClient<InterceptedService<Channel, BearerToken>>;

/// The gRPC implementation of [`Agents`]. Channels are cached per address.
pub struct GrpcAgents {
    discovery: Discovery,
    kube: Option<kube::Client>,
    token: BearerToken,
    channels: tokio::sync::Mutex<BTreeMap<String, Channel>>,
}

impl GrpcAgents {
    /// `kube` is needed for [`Discovery::Pods`] only.
    pub fn new(
        discovery: Discovery,
        kube: Option<kube::Client>,
        token: &str,
    ) -> Result<Arc<GrpcAgents>, AgentError> {
        let token = BearerToken::new(token).map_err(|s| AgentError::new("*", s))?;
        Ok(Arc::new(GrpcAgents {
            discovery,
            kube,
            token,
            channels: tokio::sync::Mutex::default(),
        }))
    }

    /// node → address of every agent that can be found now.
    async fn addresses(&self) -> Result<BTreeMap<String, String>, AgentError> {
        match &self.discovery {
            Discovery::Static(map) => Ok(map.clone()),
            Discovery::Pods {
                namespace,
                selector,
                port,
            } => {
                let client = self
                    .kube
                    .clone()
                    .ok_or_else(|| AgentError::unreachable("*", "no Kubernetes client"))?;
                let pods: Api<Pod> = Api::namespaced(client, namespace);
                let list = pods
                    .list(&ListParams::default().labels(selector))
                    .await
                    .map_err(|e| AgentError::unreachable("*", e))?;
                let mut out = BTreeMap::new();
                for pod in list {
                    let spec_node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
                    let status = pod.status.as_ref();
                    let running = status.and_then(|s| s.phase.as_deref()) == Some("Running");
                    let ip = status.and_then(|s| s.pod_ip.clone());
                    if let (Some(node), Some(ip), true) = (spec_node, ip, running) {
                        out.insert(node, format!("http://{ip}:{port}"));
                    }
                }
                Ok(out)
            }
        }
    }

    async fn address(&self, node: &str) -> Result<String, AgentError> {
        let all = self.addresses().await?;
        all.get(node)
            .or_else(|| all.get("*"))
            .cloned()
            .ok_or_else(|| AgentError::unreachable(node, "no agent pod runs there"))
    }

    /// A channel to `node`'s agent, cached per address; calls need [`GrpcAgents::token`].
    pub async fn channel(&self, node: &str) -> Result<Channel, AgentError> {
        let addr = self.address(node).await?;
        let mut channels = self.channels.lock().await;
        let channel = match channels.get(&addr) {
            Some(c) => c.clone(),
            None => {
                let c = Endpoint::from_shared(addr.clone())
                    .map_err(|e| AgentError::unreachable(node, e))?
                    .connect_timeout(Duration::from_secs(5))
                    .timeout(Duration::from_secs(600))
                    .connect_lazy();
                channels.insert(addr, c.clone());
                c
            }
        };
        Ok(channel)
    }

    /// The interceptor that adds the agents' bearer token.
    pub fn token(&self) -> BearerToken {
        self.token.clone()
    }

    async fn client(&self, node: &str) -> Result<Client, AgentError> {
        let channel = self.channel(node).await?;
        Ok(StorageClient::with_interceptor(channel, self.token.clone()))
    }
}

fn root_info(r: proto::Root) -> RootInfo {
    RootInfo {
        base: r.base,
        path: r.path,
    }
}

#[async_trait]
impl Agents for GrpcAgents {
    async fn nodes(&self) -> Result<Vec<String>, AgentError> {
        Ok(self
            .addresses()
            .await?
            .into_keys()
            .filter(|n| n != "*")
            .collect())
    }

    async fn create_root(
        &self,
        node: &str,
        project: &str,
        name: &str,
        base: &str,
    ) -> Result<RootInfo, AgentError> {
        let req = proto::CreateRootRequest {
            project: project.into(),
            r#box: name.into(),
            base: base.into(),
        };
        let r = self.client(node).await?.create_root(req).await;
        r.map(|r| root_info(r.into_inner()))
            .map_err(|s| AgentError::new(node, s))
    }

    async fn fork_root(
        &self,
        node: &str,
        from: (&str, &str),
        project: &str,
        name: &str,
        volumes: Vec<String>,
    ) -> Result<RootInfo, AgentError> {
        let req = proto::ForkRootRequest {
            from_project: from.0.into(),
            from_box: from.1.into(),
            project: project.into(),
            r#box: name.into(),
            volumes,
        };
        let r = self.client(node).await?.fork_root(req).await;
        r.map(|r| root_info(r.into_inner()))
            .map_err(|s| AgentError::new(node, s))
    }

    async fn delete_root(&self, node: &str, project: &str, name: &str) -> Result<(), AgentError> {
        let req = proto::RootRef {
            project: project.into(),
            r#box: name.into(),
        };
        let r = self.client(node).await?.delete_root(req).await;
        r.map(drop).map_err(|s| AgentError::new(node, s))
    }

    async fn create_checkpoint(
        &self,
        node: &str,
        subject: &Subject,
        name: &str,
        description: &str,
        request_id: &str,
    ) -> Result<CheckpointInfo, AgentError> {
        let req = proto::CreateCheckpointRequest {
            target: Some(subject.target()),
            shelf: proto::Shelf::Checkpoints.into(),
            name: name.into(),
            description: description.into(),
            request_id: request_id.into(),
        };
        let r = self.client(node).await?.create_checkpoint(req).await;
        r.map(|c| {
            let c = c.into_inner();
            CheckpointInfo {
                name: c.name,
                size: c.size,
                created: c.created,
            }
        })
        .map_err(|s| AgentError::new(node, s))
    }

    async fn restore_checkpoint(
        &self,
        node: &str,
        subject: &Subject,
        name: &str,
    ) -> Result<(), AgentError> {
        let req = proto::CheckpointRef {
            target: Some(subject.target()),
            shelf: proto::Shelf::Checkpoints.into(),
            name: name.into(),
        };
        let r = self.client(node).await?.restore_checkpoint(req).await;
        r.map(drop).map_err(|s| AgentError::new(node, s))
    }

    async fn delete_checkpoint(
        &self,
        node: &str,
        subject: &Subject,
        name: &str,
    ) -> Result<(), AgentError> {
        let req = proto::CheckpointRef {
            target: Some(subject.target()),
            shelf: proto::Shelf::Checkpoints.into(),
            name: name.into(),
        };
        let r = self.client(node).await?.delete_checkpoint(req).await;
        r.map(drop).map_err(|s| AgentError::new(node, s))
    }

    async fn create_volume(&self, node: &str, project: &str, name: &str) -> Result<(), AgentError> {
        let req = proto::VolumeRef {
            project: project.into(),
            volume: name.into(),
        };
        let r = self.client(node).await?.create_volume(req).await;
        match r {
            Ok(_) => Ok(()),
            // Creating an existing volume is what a retry does.
            Err(s) if s.code() == tonic::Code::AlreadyExists => Ok(()),
            Err(s) => Err(AgentError::new(node, s)),
        }
    }

    async fn delete_volume(&self, node: &str, project: &str, name: &str) -> Result<(), AgentError> {
        let req = proto::VolumeRef {
            project: project.into(),
            volume: name.into(),
        };
        let r = self.client(node).await?.delete_volume(req).await;
        match r {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(s) => Err(AgentError::new(node, s)),
        }
    }

    async fn save_base(
        &self,
        node: &str,
        name: &str,
        from: (&str, &str),
        request_id: &str,
    ) -> Result<String, AgentError> {
        let req = proto::SaveBaseRequest {
            name: name.into(),
            project: from.0.into(),
            r#box: from.1.into(),
            request_id: request_id.into(),
        };
        let r = self.client(node).await?.save_base(req).await;
        r.map(|v| v.into_inner().version)
            .map_err(|s| AgentError::new(node, s))
    }

    async fn pull_base(&self, node: &str, peer: &str, version: &str) -> Result<(), AgentError> {
        let peer = self.address(peer).await?;
        let req = proto::PullBaseRequest {
            peer,
            version: version.into(),
        };
        let r = self.client(node).await?.pull_base(req).await;
        r.map(drop).map_err(|s| AgentError::new(node, s))
    }

    async fn volumes(&self, node: &str, project: &str) -> Result<Vec<String>, AgentError> {
        let req = proto::ListVolumesRequest {
            project: project.into(),
        };
        let r = self.client(node).await?.list_volumes(req).await;
        r.map(|v| {
            v.into_inner()
                .volumes
                .into_iter()
                .map(|v| v.volume)
                .collect()
        })
        .map_err(|s| AgentError::new(node, s))
    }

    async fn has_base(&self, node: &str, name: &str) -> Result<bool, AgentError> {
        let req = proto::ShowBaseRequest {
            name: name.into(),
            tag: String::new(),
        };
        match self.client(node).await?.show_base(req).await {
            Ok(r) => Ok(r.into_inner().version_count > 0),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(false),
            Err(s) => Err(AgentError::new(node, s)),
        }
    }

    async fn base_versions(
        &self,
        node: &str,
        name: &str,
    ) -> Result<Vec<BaseVersionInfo>, AgentError> {
        let req = proto::ShowBaseRequest {
            name: name.into(),
            tag: String::new(),
        };
        match self.client(node).await?.show_base(req).await {
            Ok(r) => Ok(r
                .into_inner()
                .versions
                .into_iter()
                .map(|v| BaseVersionInfo {
                    version: v.version,
                    kind: v.kind,
                    builder: v.builder,
                    owner: v.owner,
                })
                .collect()),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(Vec::new()),
            Err(s) => Err(AgentError::new(node, s)),
        }
    }
}
