//! Cross-project forks under the operator's tenancy rule: the operator copies a box from
//! another namespace only when a `ForkGrant` there allows it. forkr-api has already checked
//! that the caller may read the source project, so it writes that consent itself, for exactly
//! this fork (the target namespace and the source box), before it writes the forking Box, and
//! removes it once the copy is made. A grant left by a forkr-api that stopped in between allows
//! only that same copy again; `kubectl delete forkgrant` removes it.

use std::time::Duration;

use forkr_crds::{BoxResource, ForkGrant, conditions};
use kube::api::{Api, DeleteParams, Patch, PatchParams};

use super::{KubeBackend, kube_error};
use crate::error::ApiResult;

/// forkr-api's field manager for the grants it writes.
const MANAGER: &str = "forkr-api";

/// How often the cleanup looks for the fork's root.
const POLL: Duration = Duration::from_secs(1);

/// How long the cleanup waits for a fork's root before it leaves the grant in place.
const GIVE_UP: Duration = Duration::from_secs(3600);

impl KubeBackend {
    /// When `b` forks a box of another project, applies the grant that lets `b`'s project copy
    /// that one box, and removes it in the background once `b`'s root exists (or `b` is gone,
    /// or the wait runs out). A box that forks nothing, or within its project, needs nothing.
    pub(super) async fn grant_fork(&self, project: &str, b: &BoxResource) -> ApiResult<()> {
        let Some(fork) = &b.spec.fork else {
            return Ok(());
        };
        let Some(source_ns) = fork.project.as_deref().filter(|p| *p != project) else {
            return Ok(());
        };
        let name = b.metadata.name.as_deref().unwrap_or_default();
        let grant =
            forkr_crds::fork_grant::fork_grant_for(source_ns, &fork.box_name, project, name);
        grant.validate()?;
        let grant_name = grant.metadata.name.clone().unwrap_or_default();
        let grants: Api<ForkGrant> = Api::namespaced(self.client.clone(), source_ns);
        grants
            .patch(
                &grant_name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&grant),
            )
            .await
            .map_err(kube_error)?;
        let boxes: Api<BoxResource> = Api::namespaced(self.client.clone(), project);
        let (box_name, wait) = (name.to_owned(), self.wait);
        tokio::spawn(async move {
            revoke_when_copied(grants, grant_name, boxes, box_name, wait).await;
        });
        Ok(())
    }
}

/// Deletes the grant once the box's root is made: the operator reads a grant only until then,
/// so nothing outlives the fork it was for. A box never seen within `wait` (its create failed)
/// or deleted also ends the grant. A fork still not copied after an hour keeps its grant, so a
/// slow copy is never refused halfway; it is then an admin's to remove.
async fn revoke_when_copied(
    grants: Api<ForkGrant>,
    grant: String,
    boxes: Api<BoxResource>,
    box_name: String,
    wait: Duration,
) {
    let start = tokio::time::Instant::now();
    let mut seen = false;
    loop {
        match boxes.get_opt(&box_name).await {
            Ok(Some(b)) => {
                seen = true;
                let copied = b.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == conditions::ROOT_READY && c.status == "True")
                });
                if copied {
                    break;
                }
            }
            Ok(None) if seen || start.elapsed() > wait => break,
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "waiting for a fork's root"),
        }
        if start.elapsed() > GIVE_UP {
            tracing::warn!(grant = %grant, "a fork is not copied after an hour; its grant stays");
            return;
        }
        tokio::time::sleep(POLL).await;
    }
    match grants.delete(&grant, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => tracing::warn!(grant = %grant, error = %e, "removing a fork grant"),
    }
}
