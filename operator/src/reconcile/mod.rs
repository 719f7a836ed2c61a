//! The controllers. Each reconcile reads as: dereference → validate → build → apply → status.

pub mod base;
pub mod boxes;
pub mod snapshot;
pub mod volume;

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::build::{applied_hash, stamp};
use crate::context::Context;
use crate::error::{Error, Result};

/// The operator's one field manager.
pub fn apply_params() -> PatchParams {
    PatchParams::apply(forkr_crds::labels::MANAGER).force()
}

/// Server-side applies `desired` unless the cached object already carries its hash. Returns
/// whether it wrote.
pub async fn apply_child<K>(
    cx: &Context,
    controller: &'static str,
    store: &Store<K>,
    mut desired: K,
) -> Result<bool>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug,
{
    let hash = stamp(&mut desired)?;
    let name = desired.name_any();
    let ns = desired.namespace().unwrap_or_default();
    let key = ObjectRef::<K>::new(&name).within(&ns);
    if store
        .get(&key)
        .is_some_and(|cur| applied_hash(cur.as_ref()) == Some(hash.as_str()))
    {
        return Ok(false);
    }
    let api: Api<K> = Api::namespaced(cx.client.clone(), &ns);
    api.patch(&name, &apply_params(), &Patch::Apply(&desired))
        .await?;
    cx.metrics.wrote(controller, kind_of::<K>());
    Ok(true)
}

/// Deletes a cached child that should no longer exist.
pub async fn delete_child<K>(
    cx: &Context,
    controller: &'static str,
    store: &Store<K>,
    ns: &str,
    name: &str,
) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + DeserializeOwned
        + Clone
        + Debug,
{
    if store.get(&ObjectRef::<K>::new(name).within(ns)).is_none() {
        return Ok(());
    }
    let api: Api<K> = Api::namespaced(cx.client.clone(), ns);
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    cx.metrics.wrote(controller, kind_of::<K>());
    Ok(())
}

fn kind_of<K: Resource<DynamicType = ()>>() -> &'static str {
    match K::kind(&()).as_ref() {
        "Deployment" => "Deployment",
        "Service" => "Service",
        "Ingress" => "Ingress",
        "DataVolume" => "DataVolume",
        "Snapshot" => "Snapshot",
        _ => "Other",
    }
}

/// Writes `status` through the status subresource (server-side apply of `status` only).
pub async fn patch_status<K>(
    cx: &Context,
    controller: &'static str,
    obj: &K,
    status: &impl Serialize,
) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + DeserializeOwned
        + Clone
        + Debug,
{
    let api: Api<K> = Api::namespaced(cx.client.clone(), &obj.namespace().unwrap_or_default());
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(&obj.name_any(), &apply_params(), &Patch::Apply(&body))
        .await?;
    cx.metrics.wrote(controller, "Status");
    Ok(())
}

/// Unwraps a guarded object; a malformed one becomes a permanent `invalid` error so the other
/// objects keep flowing.
pub fn unguard<K: Clone>(g: &DeserializeGuard<K>, kind: &'static str) -> Result<Arc<K>> {
    match &g.0 {
        Ok(k) => Ok(Arc::new(k.clone())),
        Err(e) => Err(Error::Invalid {
            kind,
            message: format!(
                "{}: cannot be read: {}",
                e.metadata.name.as_deref().unwrap_or("?"),
                e.error
            ),
        }),
    }
}

/// Runs one reconcile with metrics around it.
pub async fn measured<F>(cx: &Context, controller: &'static str, f: F) -> Result<Action>
where
    F: std::future::Future<Output = Result<Action>>,
{
    let start = Instant::now();
    let r = f.await;
    cx.metrics.reconciled(
        controller,
        start.elapsed(),
        r.as_ref().err().map(Error::label),
    );
    r
}

/// Retries transient errors with a short delay; permanent ones wait for the object to change.
pub fn error_action(e: &Error) -> Action {
    if e.is_permanent() {
        Action::await_change()
    } else if e.label() == "refused" {
        // Boxes are woken by the grant, namespace and box watches; Bases and DataVolumes that
        // wait for a grant look again now and then. A look costs no API call (the caches).
        Action::requeue(Duration::from_secs(60))
    } else if e.label() == "waiting" {
        Action::requeue(Duration::from_secs(1))
    } else {
        Action::requeue(Duration::from_secs(5))
    }
}

/// Everything a namespaced Forkr object needs to be reconciled by the shared helpers.
pub trait Object:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Serialize
    + DeserializeOwned
    + Clone
    + Debug
    + Send
    + Sync
    + 'static
{
}
impl<K> Object for K where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug
        + Send
        + Sync
        + 'static
{
}

/// Wraps `apply`/`cleanup` in the finalizer, with an event for failures.
pub async fn with_finalizer<K, A, C, FA, FC>(
    cx: &Arc<Context>,
    controller: &'static str,
    finalizer: &str,
    obj: Arc<K>,
    apply: A,
    cleanup: C,
) -> Result<Action>
where
    K: Object,
    A: FnOnce(Arc<K>) -> FA,
    C: FnOnce(Arc<K>) -> FC,
    FA: std::future::Future<Output = Result<Action>>,
    FC: std::future::Future<Output = Result<Action>>,
{
    let api: Api<K> = Api::namespaced(cx.client.clone(), &obj.namespace().unwrap_or_default());
    let has = obj.finalizers().iter().any(|f| f == finalizer);
    let deleting = obj.meta().deletion_timestamp.is_some();
    if has == deleting {
        // The finalizer helper writes here: adding the finalizer, or removing it after cleanup.
        cx.metrics.wrote(controller, "Finalizer");
    }
    kube::runtime::finalizer::finalizer(&api, finalizer, obj, |ev| async move {
        match ev {
            kube::runtime::finalizer::Event::Apply(o) => apply(o).await,
            kube::runtime::finalizer::Event::Cleanup(o) => cleanup(o).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}
