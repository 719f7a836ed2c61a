//! The Snapshot controller: a checkpoint of the box's root on the box's node, taken once;
//! deleting the object deletes the checkpoint (behind the finalizer).

use std::sync::Arc;

use forkr_crds::snapshot::SnapshotPhase;
use forkr_crds::{BoxResource, Snapshot, SnapshotStatus, conditions, labels};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;

use super::{measured, patch_status, unguard, with_finalizer};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::status::{condition, is_true};
use forkr_agent_proto::client::Subject;

pub const CONTROLLER: &str = "snapshot";

pub async fn reconcile(g: Arc<DeserializeGuard<Snapshot>>, cx: Arc<Context>) -> Result<Action> {
    let cx2 = cx.clone();
    measured(&cx2, CONTROLLER, async move {
        let s = unguard(&g, "Snapshot")?;
        let (c1, c2) = (cx.clone(), cx.clone());
        with_finalizer(
            &cx,
            CONTROLLER,
            labels::FINALIZER_SNAPSHOT,
            s,
            |s| async move { apply(&s, &c1).await },
            |s| async move { cleanup(&s, &c2).await },
        )
        .await
    })
    .await
}

fn subject(s: &Snapshot) -> Subject {
    Subject::Root {
        project: s.namespace().unwrap_or_default(),
        name: s.spec.box_name.clone(),
    }
}

async fn apply(s: &Snapshot, cx: &Context) -> Result<Action> {
    let generation = s.metadata.generation;
    let prev = s.status.clone().unwrap_or_default();
    if let Err(errs) = s.validate() {
        let st = SnapshotStatus {
            phase: Some(SnapshotPhase::Failed),
            message: Some(errs.to_string()),
            observed_generation: generation,
            ..prev.clone()
        };
        if s.status.as_ref() != Some(&st) {
            patch_status(cx, CONTROLLER, s, &st).await?;
            cx.event(CONTROLLER, s, true, "FailedInvalid", errs.to_string())
                .await;
        }
        return Err(Error::Invalid {
            kind: "Snapshot",
            message: errs.to_string(),
        });
    }
    if prev.phase == Some(SnapshotPhase::Ready) {
        // Taken; nothing to do until deletion.
        return Ok(Action::await_change());
    }
    let ns = s.namespace().unwrap_or_default();
    let boxes: Api<BoxResource> = Api::namespaced(cx.client.clone(), &ns);
    let b = boxes
        .get_opt(&s.spec.box_name)
        .await?
        .ok_or_else(|| Error::Missing(format!("box {} not found", s.spec.box_name)))?;
    let bst = b.status.unwrap_or_default();
    let node = match (bst.node, is_true(&bst.conditions, conditions::ROOT_READY)) {
        (Some(n), true) => n,
        _ => {
            return Err(Error::Missing(format!(
                "box {} has no root yet",
                s.spec.box_name
            )));
        }
    };
    let uid = s.uid().unwrap_or_default();
    let cp = cx
        .agents
        .create_checkpoint(
            &node,
            &subject(s),
            &s.spec.name,
            s.spec.description.as_deref().unwrap_or_default(),
            &uid,
        )
        .await?;
    let now = Timestamp::now();
    let st = SnapshotStatus {
        phase: Some(SnapshotPhase::Ready),
        size: i64::try_from(cp.size).ok(),
        created: Some(cp.created),
        node: Some(node.clone()),
        conditions: vec![condition(
            &prev.conditions,
            conditions::READY,
            true,
            "Taken",
            format!("checkpoint {} on node {node}", cp.name),
            generation,
            now,
        )],
        observed_generation: generation,
        message: None,
    };
    patch_status(cx, CONTROLLER, s, &st).await?;
    cx.event(
        CONTROLLER,
        s,
        false,
        "Taken",
        format!("snapshot {} of box {}", s.spec.name, s.spec.box_name),
    )
    .await;
    Ok(Action::await_change())
}

async fn cleanup(s: &Snapshot, cx: &Context) -> Result<Action> {
    if let Some(node) = s.status.as_ref().and_then(|st| st.node.as_deref()) {
        match cx
            .agents
            .delete_checkpoint(node, &subject(s), &s.spec.name)
            .await
        {
            Ok(()) => {}
            // Gone with its box's root, or never taken.
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Action::await_change())
}
