//! Boxes in local mode: the Box object in SQLite, the root in the pool, the process tree in runc.
//!
//! Every change writes the object first (the intent), then acts, then records the outcome, so a
//! crash leaves an object whose phase says what was under way and a retry finishes it.

use async_trait::async_trait;
use axum::http::StatusCode;
use forkr_crds::validation::{self as v, cpu_millis, memory_bytes, parse_data_mount};
use forkr_crds::{BoxPhase, BoxResource, DataVolume, DataVolumeSpec, labels};
use forkr_node_agent::runtime::{self as rt, Phase};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{BOX, LocalBackend, VOLUME};
use crate::backend::{BoxKey, Boxes, Deletion, spec};
use crate::error::{ApiError, ApiResult};
use crate::wire::{BoxView, CreateBox};

/// Kubernetes' default, which local mode keeps so a box stops the same way in both.
const DEFAULT_GRACE_SECONDS: i64 = 30;

fn now() -> Time {
    Time(jiff::Timestamp::now())
}

fn box_running() -> ApiError {
    ApiError::conflict("fork_running", "box is running")
}

fn not_running(name: &str) -> ApiError {
    ApiError::conflict(
        "box_not_running",
        format!("box {name:?} is not running; resume it first"),
    )
}

/// The runtime's view of a box's spec.
pub(super) fn runtime_spec(project: &str, b: &BoxResource) -> ApiResult<rt::BoxSpec> {
    let name = b.metadata.name.clone().unwrap_or_default();
    let mut spec = rt::BoxSpec::new(project, &name);
    spec.env = b.spec.env.clone();
    spec.memory_bytes = b
        .spec
        .memory
        .as_ref()
        .map(|m| memory_bytes(&m.0))
        .transpose()?;
    spec.cpu_millis = b.spec.cpu.as_ref().map(|c| cpu_millis(&c.0)).transpose()?;
    let grace = b
        .spec
        .termination_grace_period_seconds
        .unwrap_or(DEFAULT_GRACE_SECONDS);
    spec.grace_seconds = u64::try_from(grace).unwrap_or(0);
    spec.volumes = b
        .spec
        .data
        .iter()
        .map(|m| rt::VolumeMount {
            volume: m.volume.clone(),
            target: m.mount_path.clone(),
            read_only: m.read_only,
        })
        .collect();
    Ok(spec)
}

/// Whether the runtime knows better than the stored phase.
fn needs_live(b: &BoxResource) -> bool {
    matches!(
        b.status.as_ref().and_then(|s| s.phase),
        Some(BoxPhase::Running | BoxPhase::Stopped)
    )
}

pub(super) fn set_phase(b: &mut BoxResource, phase: BoxPhase, message: Option<String>) {
    let status = b.status.get_or_insert_with(Default::default);
    status.phase = Some(phase);
    status.message = message;
    status.observed_generation = b.metadata.generation;
}

pub(super) fn mark_running(b: &mut BoxResource, st: &rt::BoxStatus) {
    set_phase(b, BoxPhase::Running, None);
    let status = b.status.get_or_insert_with(Default::default);
    status.pod_ip = st.ip.map(|ip| ip.to_string());
    status.started_at = Some(now());
}

pub(super) fn mark_stopped(b: &mut BoxResource) {
    set_phase(b, BoxPhase::Stopped, None);
    let status = b.status.get_or_insert_with(Default::default);
    status.pod_ip = None;
    status.stopped_at = Some(now());
}

impl LocalBackend {
    /// `https://{box}.{domain}` in the default project, `https://{box}.{project}.{domain}`
    /// elsewhere: box and project names hold no dots, so every host names one box.
    pub(super) fn url_of(&self, project: &str, name: &str) -> String {
        crate::backend::view::box_url(&self.domain, project, name)
    }

    /// What a new default-project box is told when another box published its URL host first
    /// (the proxy keeps serving that box there, as `hostrules` says).
    fn url_taken(&self, project: &str, name: &str) -> Option<String> {
        let host = crate::backend::hostrules::claimable_url_host(project, name, &self.domain)?;
        let owner = self
            .hosts
            .owner(&host)
            .filter(|o| (o.project.as_str(), o.name.as_str()) != (project, name))?;
        Some(crate::backend::hostrules::url_taken(
            &host,
            &owner.project,
            &owner.name,
        ))
    }

    pub(super) async fn find_box(
        &self,
        project: &str,
        name: &str,
    ) -> ApiResult<Option<BoxResource>> {
        let (p, n) = (project.to_owned(), name.to_owned());
        self.store(move |s| s.get(BOX, &p, &n)).await
    }

    pub(super) async fn get_box(&self, project: &str, name: &str) -> ApiResult<BoxResource> {
        self.find_box(project, name)
            .await?
            .ok_or_else(|| ApiError::not_found("box", name))
    }

    pub(super) async fn put_box(&self, project: &str, b: &BoxResource) -> ApiResult<()> {
        let (p, n, o) = (
            project.to_owned(),
            b.metadata.name.clone().unwrap_or_default(),
            b.clone(),
        );
        self.store(move |s| s.put(BOX, &p, &n, &o)).await
    }

    /// The object as users see it, with the live phase and address from the runtime.
    pub(super) async fn view(&self, project: &str, b: BoxResource) -> ApiResult<BoxView> {
        let name = b.metadata.name.clone().unwrap_or_default();
        let (p, n) = (project.to_owned(), name);
        let live = if needs_live(&b) {
            Some(self.rt(move |rt| rt.status(&p, &n)).await)
        } else {
            None
        };
        self.view_with(project, b, live)
    }

    /// [`Self::view`] of many boxes, with one trip to the runtime for all of them.
    pub(super) async fn views(
        &self,
        project: &str,
        boxes: Vec<BoxResource>,
    ) -> ApiResult<Vec<BoxView>> {
        let wanted: Vec<String> = boxes
            .iter()
            .filter(|b| needs_live(b))
            .filter_map(|b| b.metadata.name.clone())
            .collect();
        let p = project.to_owned();
        let mut live: std::collections::HashMap<String, ApiResult<rt::BoxStatus>> = self
            .rt(move |rt| {
                Ok(wanted
                    .into_iter()
                    .map(|n| {
                        let st = rt.status(&p, &n).map_err(ApiError::from);
                        (n, st)
                    })
                    .collect())
            })
            .await?;
        boxes
            .into_iter()
            .map(|b| {
                let st = b.metadata.name.as_ref().and_then(|n| live.remove(n));
                self.view_with(project, b, st)
            })
            .collect()
    }

    fn view_with(
        &self,
        project: &str,
        mut b: BoxResource,
        live: Option<ApiResult<rt::BoxStatus>>,
    ) -> ApiResult<BoxView> {
        let name = b.metadata.name.clone().unwrap_or_default();
        match live {
            Some(Ok(st)) => match st.phase {
                Phase::Running => {
                    set_phase(&mut b, BoxPhase::Running, None);
                    b.status.get_or_insert_with(Default::default).pod_ip =
                        st.ip.map(|ip| ip.to_string());
                }
                Phase::Stopped => set_phase(&mut b, BoxPhase::Stopped, None),
                Phase::Dead => set_phase(
                    &mut b,
                    BoxPhase::Failed,
                    Some("the box's processes died; resume it to start again".into()),
                ),
            },
            Some(Err(e)) if e.status == StatusCode::NOT_FOUND => {}
            Some(Err(e)) => return Err(e),
            None => {}
        }
        Ok(crate::backend::view::box_view(
            project,
            &b,
            self.url_of(project, &name),
        ))
    }

    /// Turns a create request into the object to store, resolving a fork's inheritance: the
    /// source's env (overridden by the request's), port, grace, tags, resources, and a copy of
    /// each of its data volumes as `box-<name>-<vol>`.
    async fn plan_box(
        &self,
        project: &str,
        req: &CreateBox,
    ) -> ApiResult<(BoxResource, Option<(String, String, Vec<String>)>)> {
        let mut spec = spec::requested(req)?;
        let mut fork = None;
        if let Some((src_project, src)) = spec::fork_of(project, req)? {
            let source = self.get_box(&src_project, &src).await?;
            let copied =
                spec::inherit(&mut spec, req, project, (&src_project, &src), &source.spec)?;
            fork = Some((src_project, src, copied));
        }
        let mut b = spec::new_box(project, req, spec)?;
        b.metadata.creation_timestamp = Some(now());
        b.metadata.generation = Some(1);
        Ok((b, fork))
    }

    /// The exact version `--base` names: aliases and versions resolve in the pool; `alias:tag`
    /// picks the newest version built from a script whose sha256 starts with the tag.
    async fn resolve_base(&self, reference: &str) -> ApiResult<String> {
        let reference = reference.to_owned();
        self.pool(move |pool| match reference.split_once(':') {
            None => pool.resolve_base(&reference),
            Some((alias, tag)) => pool
                .show_base(alias, None)?
                .versions
                .into_iter()
                .find(|ver| ver.tag.as_deref().is_some_and(|t| t.starts_with(tag)))
                .map(|ver| ver.version)
                .ok_or_else(|| {
                    forkr_node_agent::Error::NotFound(format!("base {reference:?} not found"))
                }),
        })
        .await
    }

    async fn build_and_start(
        &self,
        project: &str,
        b: &mut BoxResource,
        fork: Option<(String, String, Vec<String>)>,
        base: Option<String>,
    ) -> ApiResult<()> {
        let name = b.metadata.name.clone().unwrap_or_default();
        let root = match fork {
            Some((src_project, src, volumes)) => {
                let (p, n, vols) = (project.to_owned(), name.clone(), volumes.clone());
                let info = self
                    .pool(move |pool| pool.fork_root(&src_project, &src, &p, &n, &vols))
                    .await?;
                for vol in &volumes {
                    let copy = forkr_crds::fork_volume_name(&name, vol)?;
                    let mut obj = DataVolume::new(
                        &copy,
                        DataVolumeSpec {
                            clone_from: Some(forkr_crds::data_volume::VolumeCloneSource {
                                volume: vol.clone(),
                                project: None,
                                checkpoint: None,
                            }),
                            ..Default::default()
                        },
                    );
                    obj.metadata.namespace = Some(project.to_owned());
                    let (p, o) = (project.to_owned(), obj);
                    self.store(move |s| s.put(VOLUME, &p, &copy, &o)).await?;
                }
                info
            }
            None => {
                let base = match base {
                    Some(version) => version,
                    None => {
                        self.resolve_base(b.spec.effective_base().unwrap_or(labels::DEFAULT_BASE))
                            .await?
                    }
                };
                let (p, n) = (project.to_owned(), name.clone());
                self.pool(move |pool| pool.create_root(&p, &n, &base))
                    .await?
            }
        };
        b.status.get_or_insert_with(Default::default).base_version = root.base;
        let spec = runtime_spec(project, b)?;
        let st = self.rt(move |rt| rt.start(&spec)).await?;
        mark_running(b, &st);
        Ok(())
    }

    /// The host PID of a running box's PID 1.
    pub(super) async fn pid1(&self, project: &str, name: &str) -> ApiResult<i32> {
        self.get_box(project, name).await?;
        let (p, n) = (project.to_owned(), name.to_owned());
        self.rt(move |rt| rt.pid1(&p, &n)).await.map_err(|e| {
            if e.status == StatusCode::CONFLICT {
                not_running(name)
            } else {
                e
            }
        })
    }
}

#[async_trait]
impl Boxes for LocalBackend {
    async fn create_box(&self, project: String, req: CreateBox) -> ApiResult<BoxView> {
        let (mut b, fork) = self.plan_box(&project, &req).await?;
        let lock = self.box_lock(&project, &req.name);
        let _g = lock.lock().await;
        if let Some(existing) = self.find_box(&project, &req.name).await? {
            // A create that died half way is finished by the same request; anything else is
            // a name already taken.
            let unfinished = matches!(
                existing.status.as_ref().and_then(|s| s.phase),
                Some(BoxPhase::Pending | BoxPhase::Creating | BoxPhase::Failed)
            );
            if !(unfinished && existing.spec == b.spec) {
                return Err(ApiError::conflict(
                    "already_exists",
                    format!("box {:?} already exists", req.name),
                ));
            }
            b.metadata.creation_timestamp = existing.metadata.creation_timestamp.clone();
        }
        // The request's own mounts must name volumes of this project; a fork's copies are made
        // below.
        let requested = req.data.iter().filter_map(|a| parse_data_mount(a).ok());
        for m in requested {
            let (p, vol) = (project.clone(), m.volume.clone());
            self.pool(move |pool| pool.volume_path(&p, &vol))
                .await
                .map_err(|_| crate::backend::spec::volume_not_found(&project, &m.volume))?;
        }
        // A base that does not exist is bad input: refuse it before anything is written.
        let base = match &fork {
            Some(_) => None,
            None => Some(
                self.resolve_base(b.spec.effective_base().unwrap_or(labels::DEFAULT_BASE))
                    .await?,
            ),
        };
        set_phase(&mut b, BoxPhase::Creating, None);
        self.put_box(&project, &b).await?;
        match self.build_and_start(&project, &mut b, fork, base).await {
            Ok(()) => {
                self.put_box(&project, &b).await?;
                let mut view = self.view(&project, b).await?;
                view.message = self.url_taken(&project, &req.name).or(view.message);
                Ok(view)
            }
            Err(e) => {
                set_phase(&mut b, BoxPhase::Failed, Some(e.message.clone()));
                self.put_box(&project, &b).await?;
                Err(e)
            }
        }
    }

    async fn list_boxes(&self, project: String) -> ApiResult<Vec<BoxView>> {
        let p = project.clone();
        let boxes: Vec<BoxResource> = self.store(move |s| s.list(BOX, &p)).await?;
        self.views(&project, boxes).await
    }

    async fn show_box(&self, key: BoxKey) -> ApiResult<BoxView> {
        let (project, name) = key.into_parts();
        let b = self.get_box(&project, &name).await?;
        self.view(&project, b).await
    }

    async fn update_box(&self, key: BoxKey, update: v::BoxUpdate) -> ApiResult<BoxView> {
        let (project, name) = key.into_parts();
        let lock = self.box_lock(&project, &name);
        let _g = lock.lock().await;
        let mut b = self.get_box(&project, &name).await?;
        crate::backend::spec::apply_update(&mut b.spec, update);
        b.validate()?;
        b.metadata.generation = Some(b.metadata.generation.unwrap_or(1) + 1);
        self.put_box(&project, &b).await?;
        self.view(&project, b).await
    }

    /// Deletes a box: its container, its root and its checkpoints. Data and system volumes stay.
    async fn delete_box(&self, key: BoxKey, force: bool) -> ApiResult<Deletion> {
        let (project, name) = key.into_parts();
        let lock = self.box_lock(&project, &name);
        let _g = lock.lock().await;
        let Some(mut b) = self.find_box(&project, &name).await? else {
            return Err(ApiError::not_found("box", &name));
        };
        let (p, n) = (project.clone(), name.clone());
        let running = match self.rt(move |rt| rt.status(&p, &n)).await {
            Ok(st) => st.phase == Phase::Running,
            Err(e) if e.status == StatusCode::NOT_FOUND => false,
            Err(e) => return Err(e),
        };
        // A delete already under way goes on whatever the box is doing.
        let deleting = b.status.as_ref().and_then(|s| s.phase) == Some(BoxPhase::Deleting);
        if running && !force && !deleting {
            return Err(box_running());
        }
        set_phase(&mut b, BoxPhase::Deleting, None);
        self.put_box(&project, &b).await?;
        let cleanup = self.cleanup();
        match cleanup.attempt(&project, &name).await {
            Ok(()) => Ok(Deletion::Done),
            Err(e) => {
                tracing::warn!(%project, box = %name, error = %e.message, "delete incomplete; retrying in the background");
                cleanup.retry_in_background(project, name);
                Ok(Deletion::Pending)
            }
        }
    }

    async fn stop_box(&self, key: BoxKey) -> ApiResult<BoxView> {
        let (project, name) = key.into_parts();
        let lock = self.box_lock(&project, &name);
        let _g = lock.lock().await;
        let mut b = self.get_box(&project, &name).await?;
        b.spec.running = false;
        set_phase(&mut b, BoxPhase::Stopping, None);
        self.put_box(&project, &b).await?;
        let (p, n) = (project.clone(), name.clone());
        match self.rt(move |rt| rt.stop(&p, &n)).await {
            Ok(()) => {}
            Err(e) if e.status == StatusCode::NOT_FOUND => {}
            Err(e) => return Err(e),
        }
        mark_stopped(&mut b);
        self.put_box(&project, &b).await?;
        self.view(&project, b).await
    }

    /// Starts a stopped box again with its current spec (so `update`d resources apply).
    async fn resume_box(&self, key: BoxKey) -> ApiResult<BoxView> {
        let (project, name) = key.into_parts();
        let lock = self.box_lock(&project, &name);
        let _g = lock.lock().await;
        let mut b = self.get_box(&project, &name).await?;
        b.spec.running = true;
        self.put_box(&project, &b).await?;
        let spec = runtime_spec(&project, &b)?;
        let st = self.rt(move |rt| rt.start(&spec)).await?;
        mark_running(&mut b, &st);
        self.put_box(&project, &b).await?;
        self.view(&project, b).await
    }
}
