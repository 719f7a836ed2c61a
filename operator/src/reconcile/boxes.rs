//! The Box controller: node → root (through the node's agent) → restore → Deployment, Service,
//! Ingress → status. Cleanup (behind the finalizer) stops the pod, then deletes the root and
//! its checkpoints; system and data volumes stay.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use forkr_crds::box_resource::RestoreStatus;
use forkr_crds::{BoxPhase, BoxResource, BoxStatus, Snapshot, conditions, labels};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::{apps::v1::Deployment, networking::v1::Ingress};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use super::{apply_child, delete_child, measured, patch_status, unguard, with_finalizer};
use crate::build::boxes::{self as build, BoxContext, names};
use crate::config::Settings;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::status::{condition, is_true};
use crate::tenancy;
use forkr_agent_proto::client::Subject;

pub const CONTROLLER: &str = "box";

/// The controller's entry point.
pub async fn reconcile(g: Arc<DeserializeGuard<BoxResource>>, cx: Arc<Context>) -> Result<Action> {
    let cx2 = cx.clone();
    measured(&cx2, CONTROLLER, async move {
        let b = unguard(&g, "Box")?;
        let c1 = cx.clone();
        let c2 = cx.clone();
        with_finalizer(
            &cx,
            CONTROLLER,
            labels::FINALIZER_BOX,
            b,
            |b| async move { apply(&b, &c1).await },
            |b| async move { cleanup(&b, &c2).await },
        )
        .await
    })
    .await
}

/// Validation failures land in status (and an event) instead of looping.
async fn apply(b: &BoxResource, cx: &Context) -> Result<Action> {
    if let Err(errs) = b.validate() {
        let message = errs.to_string();
        let mut status = b.status.clone().unwrap_or_default();
        status.phase = Some(BoxPhase::Failed);
        status.message = Some(message.clone());
        status.observed_generation = b.metadata.generation;
        if b.status.as_ref() != Some(&status) {
            patch_status(cx, CONTROLLER, b, &status).await?;
            cx.event(CONTROLLER, b, true, "FailedInvalid", message.clone())
                .await;
        }
        return Err(Error::Invalid {
            kind: "Box",
            message,
        });
    }
    let (project, name) = names(b);
    let previous = b.status.clone().unwrap_or_default();
    let root_ready = is_true(&previous.conditions, conditions::ROOT_READY);

    // Tenancy: a field this namespace may not use stops everything; a fork from another
    // namespace needs its grant until the copy is made (a grant revoked later changes nothing
    // for a root already copied).
    let refusal = tenancy::privilege_refusal(b, &cx.stores.namespaces).or_else(|| {
        (!root_ready)
            .then(|| tenancy::fork_refusal(b, &cx.stores.grants))
            .flatten()
    });
    if let Some(r) = refusal {
        return refuse(b, cx, r).await;
    }

    // Dereference: the node that holds (or will hold) the root.
    let node = match &previous.node {
        Some(n) => n.clone(),
        None => {
            let node = choose_node(b, cx).await?;
            let mut st = previous.clone();
            st.node = Some(node.clone());
            st.phase = Some(BoxPhase::Creating);
            st.observed_generation = b.metadata.generation;
            patch_status(cx, CONTROLLER, b, &st).await?;
            cx.event(
                CONTROLLER,
                b,
                false,
                "Scheduled",
                format!("root goes to node {node}"),
            )
            .await;
            node
        }
    };

    // The root, through the node's agent.
    let mut base_version = previous.base_version.clone();
    if !root_ready {
        base_version = Some(ensure_root(b, cx, &node).await?);
        cx.event(
            CONTROLLER,
            b,
            false,
            "RootCreated",
            format!("root created on {node}"),
        )
        .await;
    }

    // A declarative restore: scale to zero, swap the root, scale back.
    let mut restore = previous.restore.clone();
    let restoring = match &b.spec.restore {
        Some(req) => {
            restore
                .as_ref()
                .is_none_or(|r| r.request_id != req.request_id)
                || restore.as_ref().is_some_and(|r| r.state == "Restoring")
        }
        None => false,
    };
    let env = existing_env(b, cx);
    // Hosts are owned cluster-wide: the ingress serves only the ones this box owns.
    let taken = tenancy::taken_hosts(b, &cx.stores.boxes, &cx.settings);
    let build_cx = BoxContext {
        settings: &cx.settings,
        node: &node,
        run: b.spec.running && !restoring,
        env: &env,
    };
    apply_children(b, cx, &build_cx, &taken).await?;
    if restoring && let Some(req) = &b.spec.restore {
        let pods = pods_of(cx, project, name);
        if !pods.is_empty() {
            let st = RestoreStatus {
                request_id: req.request_id.clone(),
                snapshot: req.snapshot.clone(),
                state: "Restoring".into(),
                completed_at: None,
                message: None,
            };
            if restore.as_ref() != Some(&st) {
                let mut s = previous.clone();
                s.phase = Some(BoxPhase::Restoring);
                s.restore = Some(st);
                patch_status(cx, CONTROLLER, b, &s).await?;
            }
            return Err(Error::Waiting(format!(
                "restore of {name} waits for its pod to stop"
            )));
        }
        restore = Some(do_restore(b, cx, &node, req).await?);
        let run_cx = BoxContext {
            run: b.spec.running,
            ..build_cx.clone()
        };
        apply_children(b, cx, &run_cx, &taken).await?;
    }

    // Status.
    let pod = pods_of(cx, project, name).into_iter().next();
    let status = box_status(
        b,
        &cx.settings,
        &Observed {
            node: &node,
            base_version,
            pod: pod.as_deref(),
            restore,
            taken: taken.clone(),
        },
        Timestamp::now(),
    );
    if b.status.as_ref() != Some(&status) {
        patch_status(cx, CONTROLLER, b, &status).await?;
        if previous.taken_hosts != taken
            && let Some(r) = tenancy::host_refusal(&taken)
        {
            cx.event(CONTROLLER, b, true, r.reason, r.message).await;
        }
    }
    // The pod cache is a watch of its own and can lag the event that woke this reconcile (a
    // pod's deletion, say): while the box is between states, look again soon. Steady boxes are
    // left alone, so this costs no writes.
    let settling = matches!(
        status.phase,
        Some(BoxPhase::Stopping | BoxPhase::Creating | BoxPhase::Pending)
    );
    Ok(Action::requeue(if settling {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(3600)
    }))
}

/// The user environment frozen in the existing Deployment, else the spec's.
fn existing_env(b: &BoxResource, cx: &Context) -> BTreeMap<String, String> {
    let (project, name) = names(b);
    cx.stores
        .deployments
        .get(&ObjectRef::<Deployment>::new(name).within(project))
        .and_then(|d| build::frozen_env(&d))
        .unwrap_or_else(|| b.spec.env.clone())
}

async fn apply_children(
    b: &BoxResource,
    cx: &Context,
    bcx: &BoxContext<'_>,
    taken: &[String],
) -> Result<()> {
    let (project, name) = names(b);
    apply_child(
        cx,
        CONTROLLER,
        &cx.stores.deployments,
        build::deployment(b, bcx)?,
    )
    .await?;
    apply_child(cx, CONTROLLER, &cx.stores.services, build::service(b)).await?;
    match build::ingress_except(b, &cx.settings, taken) {
        Some(ing) => {
            apply_child(cx, CONTROLLER, &cx.stores.ingresses, ing).await?;
        }
        None => {
            delete_child::<Ingress>(cx, CONTROLLER, &cx.stores.ingresses, project, name).await?
        }
    }
    Ok(())
}

/// The cached pods of a box.
fn pods_of(cx: &Context, project: &str, name: &str) -> Vec<Arc<Pod>> {
    cx.stores
        .pods
        .state()
        .into_iter()
        .filter(|p| {
            p.namespace().as_deref() == Some(project)
                && p.labels().get(labels::LABEL_BOX).map(String::as_str) == Some(name)
        })
        .collect()
}

/// Creates the root (from a base, replicating it first when the node lacks it) or forks it.
/// Returns the exact base version.
async fn ensure_root(b: &BoxResource, cx: &Context, node: &str) -> Result<String> {
    let (project, name) = names(b);
    if let Some(fork) = &b.spec.fork {
        let from_project = fork.project.as_deref().unwrap_or(project);
        let source = get_box(cx, from_project, &fork.box_name).await?;
        let volumes = source.spec.data.iter().map(|m| m.volume.clone()).collect();
        let root = cx
            .agents
            .fork_root(node, (from_project, &fork.box_name), project, name, volumes)
            .await?;
        return Ok(root.base);
    }
    let base = b.spec.effective_base().unwrap_or(labels::DEFAULT_BASE);
    match cx.agents.create_root(node, project, name, base).await {
        Ok(root) => Ok(root.base),
        Err(e) if e.is_not_found() => {
            replicate_base(cx, node, base).await?;
            Ok(cx.agents.create_root(node, project, name, base).await?.base)
        }
        Err(e) => Err(e.into()),
    }
}

/// Pulls `base` onto `node` from the first other node that has it.
async fn replicate_base(cx: &Context, node: &str, base: &str) -> Result<()> {
    for peer in cx.agents.nodes().await? {
        if peer != node && cx.agents.has_base(&peer, base).await.unwrap_or(false) {
            cx.agents.pull_base(node, &peer, base).await?;
            return Ok(());
        }
    }
    Err(Error::Missing(format!("base {base} exists on no node")))
}

async fn get_box(cx: &Context, project: &str, name: &str) -> Result<BoxResource> {
    let api: Api<BoxResource> = Api::namespaced(cx.client.clone(), project);
    api.get_opt(name)
        .await?
        .ok_or_else(|| Error::Missing(format!("box {name} not found in project {project}")))
}

async fn do_restore(
    b: &BoxResource,
    cx: &Context,
    node: &str,
    req: &forkr_crds::RestoreRequest,
) -> Result<RestoreStatus> {
    let (project, name) = names(b);
    let obj = forkr_crds::snapshot_object_name(name, &req.snapshot);
    let snaps: Api<Snapshot> = Api::namespaced(cx.client.clone(), project);
    let mut st = RestoreStatus {
        request_id: req.request_id.clone(),
        snapshot: req.snapshot.clone(),
        state: "Succeeded".into(),
        completed_at: Some(Time(Timestamp::now())),
        message: None,
    };
    if snaps.get_opt(&obj).await?.is_none() {
        st.state = "Failed".into();
        st.message = Some(format!("snapshot {} of box {name} not found", req.snapshot));
        cx.event(
            CONTROLLER,
            b,
            true,
            "RestoreFailed",
            st.message.clone().unwrap_or_default(),
        )
        .await;
        return Ok(st);
    }
    let subject = Subject::Root {
        project: project.into(),
        name: name.into(),
    };
    match cx
        .agents
        .restore_checkpoint(node, &subject, &req.snapshot)
        .await
    {
        Ok(()) => {
            cx.event(
                CONTROLLER,
                b,
                false,
                "Restored",
                format!("root rolled back to {}", req.snapshot),
            )
            .await;
        }
        Err(e) if e.code == tonic::Code::NotFound || e.code == tonic::Code::InvalidArgument => {
            st.state = "Failed".into();
            st.message = Some(e.message.clone());
            cx.event(CONTROLLER, b, true, "RestoreFailed", e.message)
                .await;
        }
        Err(e) => return Err(e.into()),
    }
    Ok(st)
}

/// Picks a node: the fork source's node, the data volumes' node, else the agent node with the
/// base and the most unrequested memory.
async fn choose_node(b: &BoxResource, cx: &Context) -> Result<String> {
    let (project, name) = names(b);
    if let Some(fork) = &b.spec.fork {
        let from_project = fork.project.as_deref().unwrap_or(project);
        let src = get_box(cx, from_project, &fork.box_name).await?;
        let st = src.status.unwrap_or_default();
        return match (st.node, is_true(&st.conditions, conditions::ROOT_READY)) {
            (Some(n), true) => Ok(n),
            _ => Err(Error::Missing(format!(
                "fork source {from_project}/{} has no root yet",
                fork.box_name
            ))),
        };
    }
    if let Some(m) = b.spec.data.first() {
        let vols: Api<forkr_crds::DataVolume> = Api::namespaced(cx.client.clone(), project);
        let v = vols
            .get_opt(&m.volume)
            .await?
            .ok_or_else(|| Error::Missing(format!("data volume {} not found", m.volume)))?;
        return v
            .status
            .and_then(|s| s.node)
            .ok_or_else(|| Error::Missing(format!("data volume {} is not ready", m.volume)));
    }
    let base = b.spec.effective_base().unwrap_or(labels::DEFAULT_BASE);
    let nodes = cx.agents.nodes().await?;
    let node_api: Api<Node> = Api::all(cx.client.clone());
    let mut candidates = Vec::new();
    for n in nodes {
        let allocatable = node_api
            .get_opt(&n)
            .await?
            .and_then(|node| node.status?.allocatable?.get("memory").cloned())
            .and_then(|q| forkr_crds::validation::memory_bytes(&q.0).ok())
            .unwrap_or(0);
        let used: u64 = cx
            .stores
            .pods
            .state()
            .iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&n))
            .map(|p| pod_memory_request(p))
            .sum();
        let has_base = cx.agents.has_base(&n, base).await.unwrap_or(false);
        candidates.push(Candidate {
            name: n,
            free: allocatable.saturating_sub(used),
            has_base,
        });
    }
    let want = b
        .spec
        .memory
        .as_ref()
        .and_then(|q| forkr_crds::validation::memory_bytes(&q.0).ok())
        .unwrap_or(0);
    pick_node(&candidates, want).ok_or_else(|| Error::Unschedulable {
        what: format!("box {project}/{name}"),
        why: if candidates.is_empty() {
            "no node agent is running".into()
        } else {
            format!("no node has {want} bytes of memory free")
        },
    })
}

fn pod_memory_request(p: &Pod) -> u64 {
    p.spec
        .iter()
        .flat_map(|s| &s.containers)
        .filter_map(|c| c.resources.as_ref()?.requests.as_ref()?.get("memory"))
        .filter_map(|q| forkr_crds::validation::memory_bytes(&q.0).ok())
        .sum()
}

/// A node the root could go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub name: String,
    /// Allocatable memory minus what box pods there request.
    pub free: u64,
    /// The base is already in its pool (no replication needed).
    pub has_base: bool,
}

/// Nodes with room for `want` bytes; among them those with the base first, then the most free
/// memory, then the name. A node that reports no allocatable memory counts as roomy only when
/// nothing is asked.
pub fn pick_node(candidates: &[Candidate], want: u64) -> Option<String> {
    candidates
        .iter()
        .filter(|c| c.free >= want)
        .max_by(|a, b| {
            (a.has_base, a.free)
                .cmp(&(b.has_base, b.free))
                .then_with(|| b.name.cmp(&a.name))
        })
        .map(|c| c.name.clone())
}

/// Waiting reasons of the runner container that will not fix themselves.
const FATAL_WAITING: [&str; 6] = [
    "CrashLoopBackOff",
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// What reconcile observed, for [`box_status`].
pub struct Observed<'a> {
    pub node: &'a str,
    pub base_version: Option<String>,
    pub pod: Option<&'a Pod>,
    pub restore: Option<RestoreStatus>,
    /// Hosts the box claims that another box owns (see `tenancy::taken_hosts`).
    pub taken: Vec<String>,
}

/// The runner container's state: (running, ready, started at, waiting reason).
fn runner_state(pod: &Pod) -> (bool, bool, Option<Time>, Option<String>) {
    let cs = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|v| v.iter().find(|c| c.name == labels::RUNNER_CONTAINER));
    let Some(cs) = cs else {
        return (false, false, None, None);
    };
    let state = cs.state.as_ref();
    let running = state.and_then(|s| s.running.as_ref());
    let waiting = state
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.reason.clone());
    (
        running.is_some(),
        cs.ready,
        running.and_then(|r| r.started_at.clone()),
        waiting,
    )
}

/// The Box status for what was observed: phase, conditions, node, pod IP, URL, hosts.
pub fn box_status(b: &BoxResource, s: &Settings, o: &Observed<'_>, now: Timestamp) -> BoxStatus {
    let (project, name) = names(b);
    let prev = b.status.clone().unwrap_or_default();
    let generation = b.metadata.generation;
    let restoring = o.restore.as_ref().is_some_and(|r| r.state == "Restoring");
    let (running, ready, started_at, waiting) = o.pod.map(runner_state).unwrap_or_default();
    let terminating = o
        .pod
        .is_some_and(|p| p.metadata.deletion_timestamp.is_some());
    let phase = if restoring {
        BoxPhase::Restoring
    } else if !b.spec.running {
        if o.pod.is_some() {
            BoxPhase::Stopping
        } else {
            BoxPhase::Stopped
        }
    } else if running && !terminating {
        BoxPhase::Running
    } else if waiting
        .as_deref()
        .is_some_and(|w| FATAL_WAITING.contains(&w))
    {
        // The kubelet keeps retrying, but a client waiting for Running should hear it now.
        BoxPhase::Failed
    } else {
        BoxPhase::Creating
    };
    let message = match (&phase, &waiting) {
        (BoxPhase::Creating | BoxPhase::Failed, Some(w)) => Some(format!("runner container: {w}")),
        _ => tenancy::host_refusal(&o.taken).map(|r| r.message),
    };
    let routes = build::routes_except(b, s, &o.taken);
    let published: Vec<String> = b
        .spec
        .publish
        .iter()
        .filter(|p| routes.iter().any(|(h, _)| h == &p.host))
        .map(|p| p.host.clone())
        .collect();
    let c = &prev.conditions;
    let mut conds = vec![
        condition(
            c,
            conditions::READY,
            phase == BoxPhase::Running,
            &format!("{phase:?}"),
            message.clone().unwrap_or_default(),
            generation,
            now,
        ),
        condition(
            c,
            conditions::ROOT_READY,
            true,
            "Created",
            format!("on node {}", o.node),
            generation,
            now,
        ),
        condition(
            c,
            conditions::SCHEDULED,
            true,
            "Pinned",
            format!("pinned to node {}", o.node),
            generation,
            now,
        ),
        condition(
            c,
            conditions::PUBLISHED,
            published.len() == b.spec.publish.len() && o.taken.is_empty(),
            if o.taken.is_empty() {
                "Ingress"
            } else {
                tenancy::REASON_HOST_TAKEN
            },
            match tenancy::host_refusal(&o.taken) {
                Some(r) => r.message,
                None if published.len() == b.spec.publish.len() => String::new(),
                None => "a published host has no port to route to".into(),
            },
            generation,
            now,
        ),
        stalled(c, tenancy::host_refusal(&o.taken).as_ref(), generation, now),
    ];
    if let Some(r) = &o.restore {
        conds.push(condition(
            c,
            conditions::RESTORED,
            r.state == "Succeeded",
            &r.state,
            r.message.clone().unwrap_or_default(),
            generation,
            now,
        ));
    }
    let stopped_at = match phase {
        BoxPhase::Stopped => prev.stopped_at.clone().or(Some(Time(now))),
        _ => None,
    };
    BoxStatus {
        phase: Some(phase),
        conditions: conds,
        observed_generation: generation,
        node: Some(o.node.to_owned()),
        pod_ip: o
            .pod
            .filter(|_| ready || running)
            .and_then(|p| p.status.as_ref()?.pod_ip.clone()),
        url: Some(format!("https://{}", s.box_host(project, name))),
        base_version: o.base_version.clone(),
        published_hosts: published,
        taken_hosts: o.taken.clone(),
        started_at: started_at.filter(|_| phase == BoxPhase::Running),
        stopped_at,
        restore: o.restore.clone(),
        message,
    }
}

/// The `Stalled` condition: True with the refusal's reason, else False.
fn stalled(
    previous: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    refusal: Option<&tenancy::Refusal>,
    generation: Option<i64>,
    now: Timestamp,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    match refusal {
        Some(r) => condition(
            previous,
            conditions::STALLED,
            true,
            r.reason,
            r.message.clone(),
            generation,
            now,
        ),
        None => condition(
            previous,
            conditions::STALLED,
            false,
            "Progressing",
            String::new(),
            generation,
            now,
        ),
    }
}

/// The status of a box the operator refuses to act on: `Stalled` with the reason, the reason
/// in `message`, and a Warning event once per change. A box whose root is not made yet stays
/// `Pending` (a grant or a label may still come); one that was further along is `Failed`. No
/// child is applied, no root made, nothing copied.
pub fn refused_status(b: &BoxResource, r: &tenancy::Refusal, now: Timestamp) -> BoxStatus {
    let mut st = b.status.clone().unwrap_or_default();
    let root_ready = is_true(&st.conditions, conditions::ROOT_READY);
    st.phase = Some(if root_ready {
        BoxPhase::Failed
    } else {
        BoxPhase::Pending
    });
    st.message = Some(r.message.clone());
    st.observed_generation = b.metadata.generation;
    let prev = st.conditions.clone();
    st.conditions
        .retain(|c| c.type_ != conditions::STALLED && c.type_ != conditions::READY);
    st.conditions.push(condition(
        &prev,
        conditions::READY,
        false,
        r.reason,
        r.message.clone(),
        b.metadata.generation,
        now,
    ));
    st.conditions
        .push(stalled(&prev, Some(r), b.metadata.generation, now));
    st
}

async fn refuse(b: &BoxResource, cx: &Context, r: tenancy::Refusal) -> Result<Action> {
    let st = refused_status(b, &r, Timestamp::now());
    if b.status.as_ref() != Some(&st) {
        patch_status(cx, CONTROLLER, b, &st).await?;
        cx.event(CONTROLLER, b, true, r.reason, r.message.clone())
            .await;
    }
    Err(Error::Refused {
        kind: "Box",
        reason: r.reason,
        message: r.message,
    })
}

/// Finalizer cleanup: the pod goes first (its mounts pin the root), then the root and its
/// checkpoints, then the Snapshot objects of the box. Volumes stay.
async fn cleanup(b: &BoxResource, cx: &Context) -> Result<Action> {
    let (project, name) = names(b);
    let deployments: Api<Deployment> = Api::namespaced(cx.client.clone(), project);
    match deployments.delete(name, &DeleteParams::foreground()).await {
        Ok(_) => cx.metrics.wrote(CONTROLLER, "Deployment"),
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    let pods: Api<Pod> = Api::namespaced(cx.client.clone(), project);
    let selector = format!("{}={name}", labels::LABEL_BOX);
    if !pods
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .is_empty()
    {
        return Err(Error::Waiting(format!(
            "box {name}: waiting for its pod to stop"
        )));
    }
    if let Some(node) = b.status.as_ref().and_then(|s| s.node.as_deref()) {
        cx.agents.delete_root(node, project, name).await?;
    }
    let snaps: Api<Snapshot> = Api::namespaced(cx.client.clone(), project);
    let of = format!("{}={name}", labels::LABEL_SNAPSHOT_BOX);
    let list = snaps.list(&ListParams::default().labels(&of)).await?;
    if !list.items.is_empty() {
        snaps
            .delete_collection(
                &DeleteParams::background(),
                &ListParams::default().labels(&of),
            )
            .await?;
        cx.metrics.wrote(CONTROLLER, "Snapshot");
    }
    cx.event(
        CONTROLLER,
        b,
        false,
        "Deleted",
        format!("root of {name} deleted"),
    )
    .await;
    Ok(Action::await_change())
}

/// Maps a box pod (or any labelled child) to its Box.
pub fn owner_of<K: Resource>(obj: &K) -> Option<ObjectRef<DeserializeGuard<BoxResource>>> {
    let name = obj.meta().labels.as_ref()?.get(labels::LABEL_BOX)?;
    Some(ObjectRef::new(name).within(obj.meta().namespace.as_deref()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_base_holders_then_free_memory() {
        let c = |n: &str, free: u64, has_base: bool| Candidate {
            name: n.into(),
            free,
            has_base,
        };
        let nodes = [
            c("a", 8 << 30, false),
            c("b", 2 << 30, true),
            c("c", 4 << 30, true),
        ];
        assert_eq!(pick_node(&nodes, 1 << 30).as_deref(), Some("c"));
        assert_eq!(pick_node(&nodes, 5 << 30).as_deref(), Some("a"));
        assert_eq!(pick_node(&nodes, 9 << 30), None);
        assert_eq!(pick_node(&[], 0), None);
        let tie = [c("y", 1, true), c("x", 1, true)];
        assert_eq!(pick_node(&tie, 0).as_deref(), Some("x"));
    }

    fn pod_waiting(reason: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "status": {"containerStatuses": [{"name": "fork", "ready": false, "restartCount": 3,
                "image": "i", "imageID": "", "state": {"waiting": {"reason": reason}}}]}
        }))
        .unwrap_or_default()
    }

    #[test]
    fn phase_follows_the_runner_container() {
        let mut b = BoxResource::new("web", forkr_crds::BoxSpec::default());
        b.metadata.namespace = Some("default".into());
        let s = Settings::example();
        let now = Timestamp::UNIX_EPOCH;
        let phase = |pod: Option<&Pod>, b: &BoxResource| {
            let o = Observed {
                node: "n",
                base_version: None,
                pod,
                restore: None,
                taken: Vec::new(),
            };
            box_status(b, &s, &o, now)
        };
        let creating = pod_waiting("ContainerCreating");
        assert_eq!(phase(Some(&creating), &b).phase, Some(BoxPhase::Creating));
        let crash = pod_waiting("CrashLoopBackOff");
        let st = phase(Some(&crash), &b);
        assert_eq!(st.phase, Some(BoxPhase::Failed));
        assert_eq!(
            st.message.as_deref(),
            Some("runner container: CrashLoopBackOff")
        );
        assert_eq!(st.url.as_deref(), Some("https://web.forkr.example.com"));
        b.spec.running = false;
        assert_eq!(phase(Some(&crash), &b).phase, Some(BoxPhase::Stopping));
        assert_eq!(phase(None, &b).phase, Some(BoxPhase::Stopped));
    }
}
