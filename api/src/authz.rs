//! What a token may reach beyond the `{project}` of the path, which `auth::require_token`
//! checks. A request can name objects of other projects in its body (a fork source
//! `project:box`), and it can write what every project shares (bases). Both are decided here,
//! once, for every route:
//!
//! - every JSON body is read through [`Checked`], which asks the body's type ([`Refs`]) which
//!   projects it names and refuses any the token cannot reach with 403 `forbidden`, before the
//!   handler runs, so nothing changes;
//! - writes of a base go through [`base_write`] and [`base_delete`], after `crate::ownership`.
//!
//! Published hosts are the third shared namespace; their rule needs the server's domains and
//! lives in `crate::backend::hostrules`, which both backends call.

use axum::extract::{FromRequest, FromRequestParts, Request};
use serde::de::DeserializeOwned;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Project};
use crate::state::AppState;
use crate::store::{Scope, Store};
use crate::wire;

/// The answer to a token that names a project it has no access to: the same words as
/// `require_token`'s, so a reference in a body and one in the path read alike.
pub fn no_access(project: &str) -> ApiError {
    ApiError::forbidden(format!("this token has no access to project {project:?}"))
}

/// 403 unless the caller's token reaches `project`.
pub fn require(caller: &Caller, project: &str) -> ApiResult<()> {
    if caller.scope.allows(project) {
        Ok(())
    } else {
        Err(no_access(project))
    }
}

/// Whether the caller holds an admin token.
pub fn is_admin(caller: &Caller) -> bool {
    matches!(caller.scope, Scope::Admin)
}

/// The caller attached by `require_token`; a route outside that middleware has none.
fn caller_of(extensions: &axum::http::Extensions) -> ApiResult<Caller> {
    extensions
        .get::<Caller>()
        .cloned()
        .ok_or_else(ApiError::unauthorized)
}

/// The caller, as a handler's argument (a 401 in the documented shape if it is missing).
pub struct Who(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Who {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        caller_of(&parts.extensions).map(Who)
    }
}

/// The projects a request body names besides the path's. Every JSON body type of a route
/// implements it (routes read bodies through [`Checked`], which needs it), so a field added
/// later that names another project's object is decided here, not forgotten.
pub trait Refs {
    /// The projects named, `here` being the path's. A reference that does not parse names
    /// nothing: the handler refuses it as bad input.
    fn projects(&self, here: &str) -> Vec<String>;
}

/// Bodies whose fields name only objects of the path's project (volume, snapshot, backup, user
/// and box names are bare DNS labels, resolved in that project), shared ones every project may
/// read (bases), or hosts, which `hostrules` decides.
macro_rules! names_no_project {
    ($($t:ty),* $(,)?) => {
        $(impl Refs for $t {
            fn projects(&self, _here: &str) -> Vec<String> {
                Vec::new()
            }
        })*
    };
}

names_no_project!(
    wire::CreateSnapshot,
    wire::SaveBase,
    wire::CreateVolume,
    wire::CreateUser,
    wire::UpdateUser,
    wire::UpdateBox,
    wire::ExecCommand,
    wire::PublishBox,
    wire::UnpublishBox,
    wire::CheckpointVolume,
    wire::RestoreVolume,
);

impl Refs for wire::CreateBox {
    /// `fork: "project:box"` (or `project.box`) copies that box's root, env and data volumes.
    fn projects(&self, here: &str) -> Vec<String> {
        crate::backend::spec::fork_of(here, self)
            .ok()
            .flatten()
            .map(|(project, _)| project)
            .into_iter()
            .collect()
    }
}

/// A JSON body (as [`JsonBody`] reads it) whose every project reference the caller's token
/// reaches; otherwise 403 `forbidden` before the handler runs.
pub struct Checked<T>(pub T);

impl<S, T> FromRequest<S> for Checked<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Refs,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let caller = caller_of(&parts.extensions)?;
        let Project(here) = Project::from_request_parts(&mut parts, state).await?;
        let JsonBody(value) =
            JsonBody::<T>::from_request(Request::from_parts(parts, body), state).await?;
        for project in value.projects(&here) {
            require(&caller, &project)?;
        }
        Ok(Checked(value))
    }
}

/// A base write that may go ahead. If it claimed the name, [`BaseWrite::failed`] gives the
/// claim back when the write did not happen.
#[must_use]
pub struct BaseWrite {
    claimed: Option<(String, String)>,
    /// The project the written base belongs to; `None` for an admin's write.
    owner: Option<String>,
}

impl BaseWrite {
    /// The project the new version is written for, which the node agent records with it, so
    /// that the operator can tell a project's own base from a shared one when a Base object of
    /// an untrusted namespace saves to it (docs/crds.md, "Tenancy").
    pub fn owner(&self) -> Option<String> {
        self.owner.clone()
    }

    /// The write failed: a claim this request made is released if no base of that name exists.
    pub async fn failed(self, state: &AppState) {
        let Some((family, project)) = self.claimed else {
            return;
        };
        let exists = state.backend.show_base(family.clone(), None).await.is_ok();
        if !exists {
            let store = state.backend.gateway_store();
            let released = store_call(store, move |s| {
                crate::ownership::release(s, &family, &project)
            })
            .await;
            if let Err(e) = released {
                tracing::warn!(error = %e.message, "could not release a base name claim");
            }
        }
    }
}

async fn store_call<T, F>(store: std::sync::Arc<Store>, f: F) -> ApiResult<T>
where
    T: Send + 'static,
    F: FnOnce(&Store) -> crate::store::StoreResult<T> + Send + 'static,
{
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| ApiError::internal(format!("store task failed: {e}")))?
        .map_err(ApiError::from)
}

fn shared_base(family: &str) -> ApiError {
    ApiError::forbidden(format!(
        "base {family:?} is shared by every project: only an admin token writes or deletes it"
    ))
}

fn owned_elsewhere(family: &str) -> ApiError {
    ApiError::forbidden(format!(
        "base {family:?} belongs to another project: only that project or an admin token writes or deletes it"
    ))
}

/// Whether the caller may write a new version of base `alias` (import or save) from project
/// `project`. Admins write any base and claim nothing. A project token writes `box-base` never,
/// a name nobody claimed never if the base exists (it is shared), a name its projects own
/// always; the first write of a new name claims it for `project`.
pub async fn base_write(
    state: &AppState,
    caller: &Caller,
    project: &str,
    alias: &str,
) -> ApiResult<BaseWrite> {
    if is_admin(caller) {
        return Ok(BaseWrite {
            claimed: None,
            owner: None,
        });
    }
    let family = crate::ownership::family(alias).to_owned();
    if family == forkr_crds::labels::DEFAULT_BASE {
        return Err(shared_base(&family));
    }
    let store = state.backend.gateway_store();
    let f = family.clone();
    match store_call(store.clone(), move |s| crate::ownership::owner(s, &f)).await? {
        Some(owner) if caller.scope.allows(&owner) => {
            return Ok(BaseWrite {
                claimed: None,
                owner: Some(owner),
            });
        }
        Some(_) => return Err(owned_elsewhere(&family)),
        None => {}
    }
    match state.backend.show_base(family.clone(), None).await {
        Ok(_) => return Err(shared_base(&family)),
        Err(e) if e.code == "not_found" => {}
        Err(e) => return Err(e),
    }
    let (f, p) = (family.clone(), project.to_owned());
    let (owner, made) = store_call(store, move |s| crate::ownership::claim(s, &f, &p)).await?;
    if !caller.scope.allows(&owner) {
        return Err(owned_elsewhere(&family));
    }
    Ok(BaseWrite {
        claimed: made.then(|| (family, project.to_owned())),
        owner: Some(owner),
    })
}

/// Whether the caller may delete base `name` (an alias or one exact version). `Ok(false)` means
/// there is nothing to delete, which the route answers as a delete of nothing (204) without
/// touching the pools.
pub async fn base_delete(state: &AppState, caller: &Caller, name: &str) -> ApiResult<bool> {
    if is_admin(caller) {
        return Ok(true);
    }
    let family = crate::ownership::family(name).to_owned();
    let store = state.backend.gateway_store();
    let f = family.clone();
    match store_call(store, move |s| crate::ownership::owner(s, &f)).await? {
        Some(owner) if caller.scope.allows(&owner) => return Ok(true),
        Some(_) => return Err(owned_elsewhere(&family)),
        None => {}
    }
    match state.backend.show_base(name.to_owned(), None).await {
        Ok(_) => Err(shared_base(&family)),
        Err(e) if e.code == "not_found" => Ok(false),
        Err(e) => Err(e),
    }
}
