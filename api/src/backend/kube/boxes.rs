//! Boxes and their published hosts as custom resources. forkr-api writes specs only; the
//! operator answers in status, which these calls wait on.

use std::time::Instant;

use async_trait::async_trait;
use axum::http::StatusCode;
use forkr_crds::validation as v;
use forkr_crds::{BoxPhase, BoxResource, PublishedHost, Snapshot, labels};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ListParams, PostParams};

use super::{KubeBackend, POLL, kube_error};
use crate::backend::hostrules::{self, Domains, Holder};
use crate::backend::view::{box_url, box_view};
use crate::backend::{Bases, BoxKey, Boxes, Deletion, Hosts, spec};
use crate::error::{ApiError, ApiResult};
use crate::wire::{BoxView, CreateBox, PublishBox, Published, UnpublishBox, Unpublished};

/// What a wait learns from one read: keep waiting, done, or failed.
pub(super) enum Seen {
    Wait,
    Done,
    Failed(ApiError),
}

fn phase(b: &BoxResource) -> Option<BoxPhase> {
    b.status.as_ref().and_then(|s| s.phase)
}

/// Whether a box's Deployment runs exactly one pod of its current template: the controller has
/// seen the newest spec, and the one pod is updated and ready (Recreate stops old pods before
/// the new one starts, so nothing else runs).
fn rolled_out(d: &Deployment) -> bool {
    let Some(st) = d.status.as_ref() else {
        return false;
    };
    st.observed_generation >= d.metadata.generation
        && st.updated_replicas == Some(1)
        && st.ready_replicas == Some(1)
        && st.replicas == Some(1)
}

fn failed(b: &BoxResource) -> ApiError {
    let message = b
        .status
        .as_ref()
        .and_then(|s| s.message.clone())
        .unwrap_or_else(|| "the operator reports the box as failed".into());
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "box_failed", message)
}

impl KubeBackend {
    fn boxes(&self, project: &str) -> Api<BoxResource> {
        Api::namespaced(self.client.clone(), project)
    }

    pub(super) fn snapshots(&self, project: &str) -> Api<Snapshot> {
        Api::namespaced(self.client.clone(), project)
    }

    /// A project is a namespace; the first box of a project makes it.
    pub(super) async fn ensure_namespace(&self, project: &str) -> ApiResult<()> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        if api.get_opt(project).await.map_err(kube_error)?.is_some() {
            return Ok(());
        }
        let mut ns = Namespace::default();
        ns.metadata.name = Some(project.to_owned());
        match api.create(&PostParams::default(), &ns).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(kube_error(e)),
        }
    }

    async fn find(&self, project: &str, name: &str) -> ApiResult<Option<BoxResource>> {
        self.boxes(project).get_opt(name).await.map_err(kube_error)
    }

    pub(super) async fn get(&self, project: &str, name: &str) -> ApiResult<BoxResource> {
        self.find(project, name)
            .await?
            .ok_or_else(|| ApiError::not_found("box", name))
    }

    pub(super) fn view(&self, project: &str, b: &BoxResource) -> BoxView {
        let name = b.metadata.name.clone().unwrap_or_default();
        let url = b
            .status
            .as_ref()
            .and_then(|s| s.url.clone())
            .unwrap_or_else(|| box_url(&self.domain, project, &name));
        box_view(project, b, url)
    }

    /// Reads the box until `seen` says done or failed, or the wait runs out (504).
    pub(super) async fn wait_box(
        &self,
        project: &str,
        name: &str,
        what: &str,
        seen: impl Fn(&BoxResource) -> Seen,
    ) -> ApiResult<BoxResource> {
        let seen = &seen;
        self.poll(
            || {
                format!(
                    "box {project}:{name} is not {what} after {}s; `4kr show` tells where it is",
                    self.wait.as_secs()
                )
            },
            || async move {
                let b = self.get(project, name).await?;
                let fresh =
                    b.status.as_ref().and_then(|s| s.observed_generation) >= b.metadata.generation;
                if !fresh {
                    return Ok(None);
                }
                match seen(&b) {
                    Seen::Done => Ok(Some(b)),
                    Seen::Failed(e) => Err(e),
                    Seen::Wait => Ok(None),
                }
            },
        )
        .await
    }

    /// The object a create asks for; a fork inherits as in local mode, and its data volumes
    /// are the operator's copies `box-<name>-<vol>`.
    async fn plan(&self, project: &str, req: &CreateBox) -> ApiResult<BoxResource> {
        let mut spec = spec::requested(req)?;
        if let Some((src_project, src)) = spec::fork_of(project, req)? {
            let source = self.get(&src_project, &src).await?;
            spec::inherit(&mut spec, req, project, (&src_project, &src), &source.spec)?;
        }
        spec::new_box(project, req, spec)
    }

    /// Replaces the object with `change` applied, retrying when someone wrote in between.
    pub(super) async fn change(
        &self,
        project: &str,
        name: &str,
        change: impl Fn(&mut BoxResource) -> ApiResult<()>,
    ) -> ApiResult<BoxResource> {
        for _ in 0..5 {
            let mut b = self.get(project, name).await?;
            change(&mut b)?;
            b.validate()?;
            match self
                .boxes(project)
                .replace(name, &PostParams::default(), &b)
                .await
            {
                Ok(written) => return Ok(written),
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => return Err(kube_error(e)),
            }
        }
        Err(ApiError::conflict(
            "conflict",
            format!("box {project}:{name} kept changing; try again"),
        ))
    }

    async fn set_running(&self, key: BoxKey, running: bool) -> ApiResult<BoxView> {
        let (project, name) = key.into_parts();
        self.change(&project, &name, |b| {
            b.spec.running = running;
            Ok(())
        })
        .await?;
        let want = if running {
            BoxPhase::Running
        } else {
            BoxPhase::Stopped
        };
        let what = if running { "running" } else { "stopped" };
        let b = self
            .wait_box(&project, &name, what, |b| match phase(b) {
                Some(p) if p == want => Seen::Done,
                Some(BoxPhase::Failed) => Seen::Failed(failed(b)),
                _ => Seen::Wait,
            })
            .await?;
        Ok(self.view(&project, &b))
    }

    /// The server's domains, for the host rules.
    fn domains(&self) -> Domains<'_> {
        Domains {
            domain: &self.domain,
            publish: &self.publish_domain,
        }
    }

    /// The box, other than `except`, whose spec publishes `host`, in any namespace.
    async fn host_holder(
        &self,
        host: &str,
        except: (&str, &str),
    ) -> ApiResult<Option<(String, String)>> {
        let all: Api<BoxResource> = Api::all(self.client.clone());
        let boxes = all.list(&ListParams::default()).await.map_err(kube_error)?;
        Ok(boxes
            .items
            .iter()
            .find(|b| {
                b.spec.publish.iter().any(|p| p.host == host)
                    && (b.metadata.namespace.as_deref(), b.metadata.name.as_deref())
                        != (Some(except.0), Some(except.1))
            })
            .map(|b| {
                (
                    b.metadata.namespace.clone().unwrap_or_default(),
                    b.metadata.name.clone().unwrap_or_default(),
                )
            }))
    }
}

#[async_trait]
impl Boxes for KubeBackend {
    async fn create_box(&self, project: String, req: CreateBox) -> ApiResult<BoxView> {
        let b = self.plan(&project, &req).await?;
        // What a box would wait for forever is bad input: a volume the project lacks, or a base
        // no node has.
        let volumes: Api<forkr_crds::DataVolume> = Api::namespaced(self.client.clone(), &project);
        for arg in &req.data {
            let m = v::parse_data_mount(arg)?;
            if volumes
                .get_opt(&m.volume)
                .await
                .map_err(kube_error)?
                .is_none()
            {
                return Err(spec::volume_not_found(&project, &m.volume));
            }
        }
        if req.fork.is_none() && self.has_agents() {
            let base = b.spec.effective_base().unwrap_or(labels::DEFAULT_BASE);
            self.show_base(crate::ownership::family(base).to_owned(), None)
                .await?;
        }
        self.ensure_namespace(&project).await?;
        self.grant_fork(&project, &b).await?;
        match self
            .boxes(&project)
            .create(&PostParams::default(), &b)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {
                return Err(ApiError::conflict(
                    "already_exists",
                    format!("box {:?} already exists", req.name),
                ));
            }
            Err(e) => return Err(kube_error(e)),
        }
        let b = self
            .wait_box(&project, &req.name, "running", |b| match phase(b) {
                Some(BoxPhase::Running) => Seen::Done,
                Some(BoxPhase::Failed) => Seen::Failed(failed(b)),
                _ => Seen::Wait,
            })
            .await?;
        let mut view = self.view(&project, &b);
        if let Some(host) = hostrules::claimable_url_host(&project, &req.name, &self.domain)
            && let Some((op, on)) = self.host_holder(&host, (&project, &req.name)).await?
        {
            view.message = Some(hostrules::url_taken(&host, &op, &on));
        }
        Ok(view)
    }

    async fn list_boxes(&self, project: String) -> ApiResult<Vec<BoxView>> {
        let list = self
            .boxes(&project)
            .list(&ListParams::default())
            .await
            .map_err(kube_error)?;
        let mut items = list.items;
        items.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        Ok(items.iter().map(|b| self.view(&project, b)).collect())
    }

    async fn show_box(&self, key: BoxKey) -> ApiResult<BoxView> {
        let (project, name) = key.into_parts();
        let b = self.get(&project, &name).await?;
        Ok(self.view(&project, &b))
    }

    /// Applies the allowlisted settings. On a cluster CPU, MEMORY, PORT and the grace period
    /// live in the pod template, so a running box's pod is replaced (Recreate: the old one
    /// stops first). The answer waits until the new pod runs: a command sent right after an
    /// update must not land in the pod being stopped, where it would be killed half-way.
    async fn update_box(&self, key: BoxKey, update: v::BoxUpdate) -> ApiResult<BoxView> {
        let (project, name) = key.into_parts();
        let b = self
            .change(&project, &name, |b| {
                crate::backend::spec::apply_update(&mut b.spec, update.clone());
                Ok(())
            })
            .await?;
        if !b.spec.running || phase(&b) != Some(BoxPhase::Running) {
            return Ok(self.view(&project, &b));
        }
        self.wait_box(&project, &name, "running", |b| match phase(b) {
            Some(BoxPhase::Running) => Seen::Done,
            Some(BoxPhase::Failed) => Seen::Failed(failed(b)),
            _ => Seen::Wait,
        })
        .await?;
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &project);
        let (deployments, name_ref) = (&deployments, name.as_str());
        self.poll(
            || format!("box {project}:{name} was updated, but its new pod is not running yet"),
            || async move {
                let Some(d) = deployments.get_opt(name_ref).await.map_err(kube_error)? else {
                    return Ok(Some(()));
                };
                Ok(rolled_out(&d).then_some(()))
            },
        )
        .await?;
        let b = self.get(&project, &name).await?;
        Ok(self.view(&project, &b))
    }

    /// Deletes the object; the operator's finalizer removes the workload, the root and its
    /// checkpoints. 204 when it is gone within a short wait, else 202 while the finalizer works.
    async fn delete_box(&self, key: BoxKey, force: bool) -> ApiResult<Deletion> {
        let (project, name) = key.into_parts();
        let b = self.get(&project, &name).await?;
        let deleting = b.metadata.deletion_timestamp.is_some();
        if phase(&b) == Some(BoxPhase::Running) && !force && !deleting {
            return Err(ApiError::conflict("fork_running", "box is running"));
        }
        match self
            .boxes(&project)
            .delete(&name, &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Deletion::Done),
            Err(e) => return Err(kube_error(e)),
        }
        let until = Instant::now() + std::time::Duration::from_secs(30).min(self.wait);
        while Instant::now() < until {
            if self.find(&project, &name).await?.is_none() {
                return Ok(Deletion::Done);
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(Deletion::Pending)
    }

    async fn stop_box(&self, key: BoxKey) -> ApiResult<BoxView> {
        self.set_running(key, false).await
    }

    async fn resume_box(&self, key: BoxKey) -> ApiResult<BoxView> {
        self.set_running(key, true).await
    }
}

#[async_trait]
impl Hosts for KubeBackend {
    async fn publish_box(&self, key: BoxKey, req: PublishBox, admin: bool) -> ApiResult<Published> {
        let (project, name) = key.into_parts();
        let host = spec::publish_target(
            req.subdomain.as_deref(),
            req.host.as_deref(),
            req.domain.as_deref(),
            &self.publish_domain,
        )?;
        hostrules::may_publish(&host, self.domains(), &project, admin)?;
        if let Some((p, n)) = hostrules::box_of_url_host(&host, &self.domain)
            && self.find(&p, &n).await?.is_some()
        {
            let holder = Holder::Url {
                project: &p,
                name: &n,
            };
            hostrules::take_over(&host, holder, (&project, &name), req.force, admin)?;
        }
        let _publishing = self.publish_lock.lock().await;
        self.get(&project, &name).await?;
        // Host ownership is the API's to keep: the operator serves whatever specs say.
        if let Some((op, on)) = self.host_holder(&host, (&project, &name)).await? {
            let holder = Holder::Published {
                project: &op,
                name: &on,
            };
            hostrules::take_over(&host, holder, (&project, &name), req.force, admin)?;
            let h = host.clone();
            self.change(&op, &on, move |b| {
                b.spec.publish.retain(|p| p.host != h);
                Ok(())
            })
            .await?;
        }
        let h = host.clone();
        self.change(&project, &name, move |b| {
            if !b.spec.publish.iter().any(|p| p.host == h) {
                b.spec.publish.push(PublishedHost {
                    host: h.clone(),
                    port: None,
                    service: None,
                });
            }
            Ok(())
        })
        .await?;
        Ok(Published { host })
    }

    async fn unpublish_box(&self, key: BoxKey, req: UnpublishBox) -> ApiResult<Unpublished> {
        let (project, name) = key.into_parts();
        let target = match (&req.subdomain, &req.host) {
            (None, None) => None,
            _ => Some(spec::publish_target(
                req.subdomain.as_deref(),
                req.host.as_deref(),
                req.domain.as_deref(),
                &self.publish_domain,
            )?),
        };
        let _publishing = self.publish_lock.lock().await;
        let b = self.get(&project, &name).await?;
        let removed: Vec<String> = match &target {
            Some(host) if !b.spec.publish.iter().any(|p| &p.host == host) => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "host_not_owned",
                    format!("host {host} is not published by box {project}:{name}"),
                ));
            }
            Some(host) => vec![host.clone()],
            None => b.spec.publish.iter().map(|p| p.host.clone()).collect(),
        };
        let gone = removed.clone();
        self.change(&project, &name, move |b| {
            b.spec.publish.retain(|p| !gone.contains(&p.host));
            Ok(())
        })
        .await?;
        Ok(Unpublished { hosts: removed })
    }
}
