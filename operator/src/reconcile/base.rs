//! The Base controller: `spec.source.save` makes a new version from a box's root, on the box's
//! node, once per request id. Versions reach other nodes on demand (a box created elsewhere
//! pulls its base from a node that has it). Imports are streamed to an agent by forkr-api, which
//! records the version in status itself; the operator reports a save's outcome.

use std::sync::Arc;

use forkr_crds::base::BasePhase;
use forkr_crds::{Base, BaseVersion, BaseVersionKind, BoxResource, GrantKind, conditions};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;

use super::{measured, patch_status, unguard};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::status::{condition, is_true};
use crate::tenancy;

pub const CONTROLLER: &str = "base";

pub async fn reconcile(g: Arc<DeserializeGuard<Base>>, cx: Arc<Context>) -> Result<Action> {
    let cx2 = cx.clone();
    measured(&cx2, CONTROLLER, async move {
        let b = unguard(&g, "Base")?;
        apply(&b, &cx).await
    })
    .await
}

async fn apply(base: &Base, cx: &Context) -> Result<Action> {
    let generation = base.metadata.generation;
    let prev = base.status.clone().unwrap_or_default();
    let mut st = prev.clone();
    if let Err(errs) = base.validate() {
        st.phase = Some(BasePhase::Failed);
        st.message = Some(errs.to_string());
        st.observed_generation = generation;
        if base.status.as_ref() != Some(&st) {
            patch_status(cx, CONTROLLER, base, &st).await?;
            cx.event(CONTROLLER, base, true, "FailedInvalid", errs.to_string())
                .await;
        }
        return Err(Error::Invalid {
            kind: "Base",
            message: errs.to_string(),
        });
    }
    let alias = base.name_any();
    if let Some(src) = &base.spec.source
        && prev.last_request_id.as_deref() != Some(src.request_id.as_str())
        && let Some(save) = &src.save
    {
        let project = save
            .project
            .clone()
            .unwrap_or_else(|| base.namespace().unwrap_or_default());
        // Saving another namespace's box copies its root: its owner must have said yes.
        if let Some(r) = tenancy::copy_refusal(
            &cx.stores.grants,
            "box to save",
            &base.namespace().unwrap_or_default(),
            &project,
            GrantKind::Box,
            &save.box_name,
        ) {
            return refuse(base, cx, &st, r).await;
        }
        // A new version is what everyone who names the base boots next: outside a trusted
        // namespace, only a base this namespace made may get one.
        if let Some(r) =
            ownership_refusal(cx, base, &base.namespace().unwrap_or_default(), &alias).await?
        {
            return refuse(base, cx, &st, r).await;
        }
        let boxes: Api<BoxResource> = Api::namespaced(cx.client.clone(), &project);
        let b = boxes
            .get_opt(&save.box_name)
            .await?
            .ok_or_else(|| Error::Missing(format!("box {project}/{} not found", save.box_name)))?;
        let bst = b.status.unwrap_or_default();
        let node = match (bst.node, is_true(&bst.conditions, conditions::ROOT_READY)) {
            (Some(n), true) => n,
            _ => {
                return Err(Error::Missing(format!(
                    "box {} has no root yet",
                    save.box_name
                )));
            }
        };
        let version = cx
            .agents
            .save_base(&node, &alias, (&project, &save.box_name), &src.request_id)
            .await?;
        if !st.versions.iter().any(|v| v.name == version) {
            st.versions.push(BaseVersion {
                name: version.clone(),
                kind: BaseVersionKind::Save,
                tag: None,
                builder: None,
                parent: Some(format!("{project}:{}", save.box_name)),
                size: None,
                created: Some(Timestamp::now().to_string()),
                nodes: vec![node.clone()],
            });
        }
        st.last_request_id = Some(src.request_id.clone());
        cx.event(
            CONTROLLER,
            base,
            false,
            "Saved",
            format!("version {version} from box {project}/{}", save.box_name),
        )
        .await;
    }
    st.current_version = base
        .spec
        .version
        .clone()
        .or_else(|| st.versions.last().map(|v| v.name.clone()));
    st.phase = Some(if st.versions.is_empty() {
        BasePhase::Pending
    } else {
        BasePhase::Ready
    });
    st.message = None;
    st.observed_generation = generation;
    st.conditions = vec![
        condition(
            &prev.conditions,
            conditions::READY,
            !st.versions.is_empty(),
            if st.versions.is_empty() {
                "NoVersion"
            } else {
                "Ready"
            },
            String::new(),
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
    if base.status.as_ref() != Some(&st) {
        patch_status(cx, CONTROLLER, base, &st).await?;
    }
    Ok(Action::await_change())
}

/// The ownership rule of saves (`tenancy::base_write_refusal`), with the versions of the
/// alias's family read from every node's agent and those recorded in the status of this
/// namespace's Base of the family (this object, unless it is named like one of its versions). A
/// trusted namespace asks no agent; an agent that cannot answer fails the reconcile (it is
/// retried), so an unreachable node never lets a write through.
async fn ownership_refusal(
    cx: &Context,
    base: &Base,
    ns: &str,
    alias: &str,
) -> Result<Option<tenancy::Refusal>> {
    if tenancy::trusted(&cx.stores.namespaces, ns) {
        return Ok(None);
    }
    let family = tenancy::base_family(alias);
    if [alias, family].contains(&forkr_crds::labels::DEFAULT_BASE) {
        // Refused whatever its versions are: no agent needs asking.
        return Ok(tenancy::base_write_refusal(ns, alias, false, &[], &[]));
    }
    let mut names = vec![alias];
    if family != alias {
        names.push(family);
    }
    let nodes = cx.agents.nodes().await?;
    if nodes.is_empty() {
        // With no node to ask, every name would look new: wait for an agent instead.
        return Err(forkr_agent_proto::client::AgentError::unreachable(
            "*",
            "no node agent to read base versions from",
        )
        .into());
    }
    let mut versions = Vec::new();
    for node in nodes {
        for name in &names {
            versions.extend(cx.agents.base_versions(&node, name).await?);
        }
    }
    let status = if family == alias {
        base.status.clone()
    } else {
        let bases: Api<Base> = Api::namespaced(cx.client.clone(), ns);
        bases.get_opt(family).await?.and_then(|b| b.status)
    };
    let recorded: Vec<String> = status
        .map(|s| s.versions.into_iter().map(|v| v.name).collect())
        .unwrap_or_default();
    Ok(tenancy::base_write_refusal(
        ns, alias, false, &versions, &recorded,
    ))
}

/// A save the tenancy rules forbid: `Stalled` with the reason, the message, one Warning event
/// per change; the request id stays unhandled, so a grant or a trust label made later lets it
/// run (a refused Base is looked at again within a minute).
async fn refuse(
    base: &Base,
    cx: &Context,
    st: &forkr_crds::BaseStatus,
    r: tenancy::Refusal,
) -> Result<Action> {
    let mut st = st.clone();
    let now = Timestamp::now();
    let prev = st.conditions.clone();
    st.conditions.retain(|c| c.type_ != conditions::STALLED);
    st.conditions.push(condition(
        &prev,
        conditions::STALLED,
        true,
        r.reason,
        r.message.clone(),
        base.metadata.generation,
        now,
    ));
    st.message = Some(r.message.clone());
    st.observed_generation = base.metadata.generation;
    if base.status.as_ref() != Some(&st) {
        patch_status(cx, CONTROLLER, base, &st).await?;
        cx.event(CONTROLLER, base, true, r.reason, r.message.clone())
            .await;
    }
    Err(Error::Refused {
        kind: "Base",
        reason: r.reason,
        message: r.message,
    })
}
