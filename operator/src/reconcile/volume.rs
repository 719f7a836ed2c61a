//! The DataVolume controller: the volume on a node, its declared checkpoints, restores once per
//! request id; deletion removes the volume and its checkpoints (backups outlive it).

use std::sync::Arc;

use forkr_crds::data_volume::{DataVolumePhase, VolumeCopyStatus};
use forkr_crds::{DataVolume, DataVolumeStatus, GrantKind, conditions, labels};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;

use super::{measured, patch_status, unguard, with_finalizer};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::status::condition;
use crate::tenancy;
use forkr_agent_proto::client::Subject;

pub const CONTROLLER: &str = "datavolume";

pub async fn reconcile(g: Arc<DeserializeGuard<DataVolume>>, cx: Arc<Context>) -> Result<Action> {
    let cx2 = cx.clone();
    measured(&cx2, CONTROLLER, async move {
        let v = unguard(&g, "DataVolume")?;
        let (c1, c2) = (cx.clone(), cx.clone());
        with_finalizer(
            &cx,
            CONTROLLER,
            labels::FINALIZER_VOLUME,
            v,
            |v| async move { apply(&v, &c1).await },
            |v| async move { cleanup(&v, &c2).await },
        )
        .await
    })
    .await
}

fn subject(v: &DataVolume) -> Subject {
    Subject::Volume {
        project: v.namespace().unwrap_or_default(),
        name: v.name_any(),
    }
}

async fn apply(v: &DataVolume, cx: &Context) -> Result<Action> {
    let generation = v.metadata.generation;
    let prev = v.status.clone().unwrap_or_default();
    if let Err(errs) = v.validate() {
        let st = DataVolumeStatus {
            phase: Some(DataVolumePhase::Failed),
            message: Some(errs.to_string()),
            observed_generation: generation,
            ..prev.clone()
        };
        if v.status.as_ref() != Some(&st) {
            patch_status(cx, CONTROLLER, v, &st).await?;
            cx.event(CONTROLLER, v, true, "FailedInvalid", errs.to_string())
                .await;
        }
        return Err(Error::Invalid {
            kind: "DataVolume",
            message: errs.to_string(),
        });
    }
    let project = v.namespace().unwrap_or_default();
    // A clone of another namespace's volume copies its data: its owner must have said yes,
    // until the volume is made (a grant revoked later does not touch a made copy).
    if prev.phase != Some(DataVolumePhase::Ready)
        && prev.phase != Some(DataVolumePhase::Restoring)
        && let Some(src) = &v.spec.clone_from
        && let Some(r) = tenancy::copy_refusal(
            &cx.stores.grants,
            "clone source volume",
            &project,
            src.project.as_deref().unwrap_or(&project),
            GrantKind::DataVolume,
            &src.volume,
        )
    {
        return refuse(v, cx, &prev, r).await;
    }
    let node = match &prev.node {
        Some(n) => n.clone(),
        None => place(v, cx, &project).await?,
    };
    let mut st = prev.clone();
    if prev.phase != Some(DataVolumePhase::Ready) && prev.phase != Some(DataVolumePhase::Restoring)
    {
        if v.spec.clone_from.is_some() {
            // A clone is made by the fork that names it (ForkRoot clones the source box's
            // volumes on the source's node); creating an empty one here would make that fork
            // skip the copy.
            let have = cx.agents.volumes(&node, &project).await?;
            if !have.iter().any(|n| *n == v.name_any()) {
                return Err(Error::Missing(format!(
                    "volume {} waits for the fork that clones it",
                    v.name_any()
                )));
            }
        } else {
            cx.agents
                .create_volume(&node, &project, &v.name_any())
                .await?;
        }
    }
    st.node = Some(node.clone());
    st.phase = Some(DataVolumePhase::Ready);
    let subj = subject(v);
    // Declared checkpoints: take the new ones, delete the undeclared ones.
    for c in &v.spec.checkpoints {
        if !st.checkpoints.iter().any(|s| s.name == c.name) {
            let desc = c.description.clone().unwrap_or_default();
            let rid = format!("{}-{}", v.uid().unwrap_or_default(), c.name);
            let cp = cx
                .agents
                .create_checkpoint(&node, &subj, &c.name, &desc, &rid)
                .await?;
            st.checkpoints.push(VolumeCopyStatus {
                name: cp.name,
                size: i64::try_from(cp.size).ok(),
                created: Some(cp.created),
                description: c.description.clone(),
            });
        }
    }
    let mut keep = Vec::new();
    for s in std::mem::take(&mut st.checkpoints) {
        if v.spec.checkpoints.iter().any(|c| c.name == s.name) {
            keep.push(s);
        } else {
            match cx.agents.delete_checkpoint(&node, &subj, &s.name).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    st.checkpoints = keep;
    if crate::status::is_true(&prev.conditions, conditions::STALLED) {
        // The refusal's message; the volume is past it now.
        st.message = None;
    }
    if let Some(r) = &v.spec.restore
        && st.last_restore_request_id.as_deref() != Some(r.request_id.as_str())
    {
        match &r.checkpoint {
            Some(name) => {
                cx.agents.restore_checkpoint(&node, &subj, name).await?;
                st.message = None;
            }
            None => {
                st.message = Some("restoring from a backup is done by forkr-api".into());
            }
        }
        st.last_restore_request_id = Some(r.request_id.clone());
    }
    st.observed_generation = generation;
    st.conditions = vec![
        condition(
            &prev.conditions,
            conditions::READY,
            true,
            "Created",
            format!("on node {node}"),
            generation,
            Timestamp::now(),
        ),
        condition(
            &prev.conditions,
            conditions::STALLED,
            false,
            "Progressing",
            String::new(),
            generation,
            Timestamp::now(),
        ),
    ];
    if v.status.as_ref() != Some(&st) {
        patch_status(cx, CONTROLLER, v, &st).await?;
    }
    Ok(Action::await_change())
}

/// A new volume goes to its clone source's node, else to the first agent node.
async fn place(v: &DataVolume, cx: &Context, project: &str) -> Result<String> {
    if let Some(src) = &v.spec.clone_from {
        let p = src.project.as_deref().unwrap_or(project);
        let api: kube::Api<DataVolume> = kube::Api::namespaced(cx.client.clone(), p);
        let source = api.get_opt(&src.volume).await?.ok_or_else(|| {
            Error::Missing(format!("clone source volume {p}/{} not found", src.volume))
        })?;
        return source.status.and_then(|s| s.node).ok_or_else(|| {
            Error::Missing(format!(
                "clone source volume {p}/{} has no node yet",
                src.volume
            ))
        });
    }
    cx.agents
        .nodes()
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| Error::Unschedulable {
            what: format!("volume {}", v.name_any()),
            why: "no node agent is running".into(),
        })
}

async fn cleanup(v: &DataVolume, cx: &Context) -> Result<Action> {
    if let Some(node) = v.status.as_ref().and_then(|s| s.node.as_deref()) {
        cx.agents
            .delete_volume(node, &v.namespace().unwrap_or_default(), &v.name_any())
            .await?;
    }
    Ok(Action::await_change())
}

/// A clone the tenancy rules forbid: `Pending` and `Stalled` with the reason, one Warning event
/// per change, nothing placed or created.
async fn refuse(
    v: &DataVolume,
    cx: &Context,
    prev: &DataVolumeStatus,
    r: tenancy::Refusal,
) -> Result<Action> {
    let now = Timestamp::now();
    let mut conds: Vec<_> = prev
        .conditions
        .iter()
        .filter(|c| c.type_ != conditions::STALLED)
        .cloned()
        .collect();
    conds.push(condition(
        &prev.conditions,
        conditions::STALLED,
        true,
        r.reason,
        r.message.clone(),
        v.metadata.generation,
        now,
    ));
    let st = DataVolumeStatus {
        phase: Some(DataVolumePhase::Pending),
        message: Some(r.message.clone()),
        observed_generation: v.metadata.generation,
        conditions: conds,
        ..prev.clone()
    };
    if v.status.as_ref() != Some(&st) {
        patch_status(cx, CONTROLLER, v, &st).await?;
        cx.event(CONTROLLER, v, true, r.reason, r.message.clone())
            .await;
    }
    Err(Error::Refused {
        kind: "DataVolume",
        reason: r.reason,
        message: r.message,
    })
}
