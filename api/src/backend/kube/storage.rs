//! Bases, which only the pools know (on every node; the pools are their source of truth, as in
//! local mode). Imports go to
//! one node and reach the others when a box there needs them; a save is a `Base` object the
//! operator carries out on the box's node.

use std::collections::BTreeMap;

use async_trait::async_trait;
use forkr_agent_proto::storage as agent;
use forkr_crds::base::{BaseSource, SaveSource};
use forkr_crds::validation as v;
use forkr_crds::{Base, BaseSpec};
use kube::api::{Api, Patch, PatchParams};

use super::agent::{status_error, stream_upload};
use super::{KubeBackend, kube_error};
use crate::backend::{Bases, BoxKey, Upload};
use crate::error::{ApiError, ApiResult};
use crate::wire::{BaseDetailsView, BaseSummaryView, BaseVersionView, BaseWritten, ImportBase};

/// The field manager of forkr-api's own writes.
const MANAGER: &str = "forkr-api";

#[async_trait]
impl Bases for KubeBackend {
    /// Every base on any node; for a name on several nodes, the newest version wins (versions
    /// after the first sort by their timestamp suffix).
    async fn list_bases(&self) -> ApiResult<Vec<BaseSummaryView>> {
        let mut by_name: BTreeMap<String, BaseSummaryView> = BTreeMap::new();
        for node in self.agent_nodes().await? {
            let list = self
                .storage(&node)
                .await?
                .list_bases(agent::Empty {})
                .await
                .map_err(status_error)?
                .into_inner();
            for b in list.bases {
                let newer = by_name
                    .get(&b.name)
                    .is_none_or(|have| b.version > have.version);
                if newer {
                    by_name.insert(
                        b.name.clone(),
                        BaseSummaryView {
                            name: b.name,
                            version: b.version,
                            size: b.size,
                            created: b.created,
                        },
                    );
                }
            }
        }
        Ok(by_name.into_values().collect())
    }

    /// A base's versions across the nodes.
    async fn show_base(&self, name: String, tag: Option<String>) -> ApiResult<BaseDetailsView> {
        let mut versions: BTreeMap<String, BaseVersionView> = BTreeMap::new();
        let mut missing = None;
        for node in self.agent_nodes().await? {
            let req = agent::ShowBaseRequest {
                name: name.clone(),
                tag: tag.clone().unwrap_or_default(),
            };
            let r = match self.storage(&node).await?.show_base(req).await {
                Ok(r) => r.into_inner(),
                Err(s) if s.code() == tonic::Code::NotFound => {
                    missing = Some(s);
                    continue;
                }
                Err(s) => return Err(status_error(s)),
            };
            for ver in r.versions {
                versions
                    .entry(ver.version.clone())
                    .or_insert(BaseVersionView {
                        version: ver.version,
                        kind: ver.kind,
                        tag: Some(ver.tag).filter(|t| !t.is_empty()),
                        builder: Some(ver.builder).filter(|t| !t.is_empty()),
                        parent: Some(ver.parent).filter(|t| !t.is_empty()),
                        size: ver.size,
                        created: ver.created,
                    });
            }
        }
        if versions.is_empty() {
            return Err(match missing {
                Some(s) => status_error(s),
                None => ApiError::not_found("base", &name),
            });
        }
        let versions: Vec<BaseVersionView> = versions.into_values().collect();
        Ok(BaseDetailsView {
            name,
            latest: versions
                .last()
                .map(|v| v.version.clone())
                .unwrap_or_default(),
            version_count: versions.len(),
            versions,
        })
    }

    /// Deleted on every node that has it; a base still in use somewhere is refused there.
    async fn delete_base(&self, name: String) -> ApiResult<()> {
        let mut deleted = false;
        let mut missing = None;
        for node in self.agent_nodes().await? {
            let req = agent::DeleteBaseRequest { name: name.clone() };
            match self.storage(&node).await?.delete_base(req).await {
                Ok(_) => deleted = true,
                Err(s) if s.code() == tonic::Code::NotFound => missing = Some(s),
                Err(s) => return Err(status_error(s)),
            }
        }
        match (deleted, missing) {
            (false, Some(s)) => Err(status_error(s)),
            _ => Ok(()),
        }
    }

    /// Streams the tarball to the first node's agent, which extracts it as it arrives.
    async fn import_base(
        &self,
        name: String,
        req: ImportBase,
        owner: Option<String>,
        body: Upload,
    ) -> ApiResult<BaseWritten> {
        let node = self
            .agent_nodes()
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::internal("no node agent"))?;
        let mut client = self.storage(&node).await?;
        let header = agent::ImportBaseHeader {
            name: name.clone(),
            parent: req.parent.unwrap_or_default(),
            tag: req.tag.unwrap_or_default(),
            builder: req.builder.unwrap_or_default(),
            request_id: req.request_id.unwrap_or_default(),
            owner: owner.unwrap_or_default(),
        };
        let first = agent::ImportBaseChunk {
            part: Some(agent::import_base_chunk::Part::Header(header)),
        };
        let data = |d| agent::ImportBaseChunk {
            part: Some(agent::import_base_chunk::Part::Data(d)),
        };
        let made = stream_upload(first, body, self.max_upload, data, |s| {
            client.import_base(s)
        })
        .await?;
        Ok(BaseWritten {
            name,
            version: made.version,
        })
    }

    /// `4kr base save`: a new request id in the project's `Base` object; the operator saves the
    /// root on the box's node and records the version.
    async fn save_base(&self, name: String, from: BoxKey) -> ApiResult<BaseWritten> {
        let (project, box_name) = from.into_parts();
        v::validate_base_alias(&name)?;
        self.rooted(&project, &box_name).await?;
        let request_id = format!("s{}", jiff::Timestamp::now().as_nanosecond().unsigned_abs());
        let mut base = Base::new(
            &name,
            BaseSpec {
                version: None,
                source: Some(BaseSource {
                    request_id: request_id.clone(),
                    import: None,
                    save: Some(SaveSource {
                        box_name: box_name.clone(),
                        project: Some(project.clone()),
                    }),
                    parent: None,
                }),
            },
        );
        base.metadata.namespace = Some(project.clone());
        let api: Api<Base> = Api::namespaced(self.client.clone(), &project);
        api.patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&base),
        )
        .await
        .map_err(kube_error)?;
        // The operator's last word, for the timeout's message.
        let last = std::sync::Mutex::new(None::<String>);
        let (api, name_ref, request_id, last_ref) =
            (&api, name.as_str(), request_id.as_str(), &last);
        let parent = format!("{project}:{box_name}");
        let parent = parent.as_str();
        let version = self
            .poll(
                || {
                    let m = last.lock().unwrap_or_else(|e| e.into_inner()).take();
                    format!(
                        "base {name:?} is not saved after {}s{}",
                        self.wait.as_secs(),
                        m.map(|m| format!(": {m}")).unwrap_or_default()
                    )
                },
                || async move {
                    let st = api
                        .get(name_ref)
                        .await
                        .map_err(kube_error)?
                        .status
                        .unwrap_or_default();
                    if st.last_request_id.as_deref() != Some(request_id) {
                        *last_ref.lock().unwrap_or_else(|e| e.into_inner()) = st.message;
                        return Ok(None);
                    }
                    st.versions
                        .iter()
                        .rev()
                        .find(|v| v.parent.as_deref() == Some(parent))
                        .map(|v| Some(v.name.clone()))
                        .ok_or_else(|| ApiError::internal("the saved version is not recorded"))
                },
            )
            .await?;
        Ok(BaseWritten { name, version })
    }
}
