//! forkr-operator: one kube-runtime controller per Forkr resource. Boxes become a runner
//! Deployment, a headless Service and an Ingress on the node that holds their root; storage
//! work goes through that node's agent.

pub mod build;
pub mod config;
pub mod context;
pub mod error;
pub mod lease;
pub mod metrics;
pub mod reconcile;
pub mod server;
pub mod status;
pub mod tenancy;

use std::sync::Arc;

use forkr_crds::{Base, BoxResource, DataVolume, ForkGrant, Snapshot, labels};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::context::{Context, Stores};
use crate::error::Error;

/// A cache of every `K` that matches `selector` (everything when it is empty), kept current by
/// a background watch. Managed fields are dropped to keep memory flat with thousands of boxes.
pub fn cache<K>(client: &kube::Client, selector: &str) -> Store<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let api: Api<K> = Api::all(client.clone());
    let mut config = watcher::Config::default().any_semantic();
    if !selector.is_empty() {
        config = config.labels(selector);
    }
    let stream = reflector::reflector(
        writer,
        watcher(api, config)
            .default_backoff()
            .modify(|o: &mut K| o.managed_fields_mut().clear()),
    )
    .applied_objects();
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(r) = stream.next().await {
            if let Err(e) = r {
                tracing::warn!(error = %e, "cache watch");
            }
        }
    });
    reader
}

/// The caches the Box controller reads.
pub async fn stores(client: &kube::Client) -> Stores {
    let managed = format!("{}={}", labels::LABEL_MANAGED_BY, labels::MANAGER);
    let s = Stores {
        deployments: cache(client, &managed),
        services: cache(client, &managed),
        ingresses: cache(client, &managed),
        pods: cache(client, labels::LABEL_BOX),
        boxes: cache(client, ""),
        grants: cache(client, ""),
        namespaces: cache(client, ""),
    };
    for ready in [
        s.deployments.wait_until_ready().await.is_ok(),
        s.services.wait_until_ready().await.is_ok(),
        s.ingresses.wait_until_ready().await.is_ok(),
        s.pods.wait_until_ready().await.is_ok(),
        s.boxes.wait_until_ready().await.is_ok(),
        s.grants.wait_until_ready().await.is_ok(),
        s.namespaces.wait_until_ready().await.is_ok(),
    ] {
        if !ready {
            tracing::warn!("a cache stopped before it was ready");
        }
    }
    s
}

fn error_policy<K>(obj: Arc<DeserializeGuard<K>>, e: &Error, _cx: Arc<Context>) -> Action
where
    K: Resource,
{
    let name = match &obj.0 {
        Ok(k) => k.meta().name.clone().unwrap_or_default(),
        Err(e) => e.metadata.name.clone().unwrap_or_default(),
    };
    if e.label() == "waiting" {
        tracing::debug!(object = %name, "{e}");
    } else {
        tracing::warn!(object = %name, error = %e, label = e.label(), "reconcile failed");
    }
    reconcile::error_action(e)
}

/// Runs the four controllers until `shutdown` resolves.
pub async fn run(
    cx: Arc<Context>,
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + Clone + 'static,
) {
    let client = cx.client.clone();
    let wc = watcher::Config::default().any_semantic();
    let managed = watcher::Config::default()
        .labels(&format!("{}={}", labels::LABEL_MANAGED_BY, labels::MANAGER))
        .any_semantic();
    let cfg = kube::runtime::controller::Config::default().concurrency(concurrency);

    let boxes = Controller::new(
        Api::<DeserializeGuard<BoxResource>>::all(client.clone()),
        wc.clone(),
    )
    .with_config(cfg.clone())
    .owns(Api::<Deployment>::all(client.clone()), managed.clone())
    .owns(Api::<Service>::all(client.clone()), managed.clone())
    .owns(Api::<Ingress>::all(client.clone()), managed.clone())
    .watches(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default()
            .labels(labels::LABEL_BOX)
            .any_semantic(),
        |p| reconcile::boxes::owner_of(&p),
    )
    // The tenancy rules read other objects: a host's owner letting go, a grant appearing, an
    // admin trusting a namespace each wake the boxes they decide.
    .watches(
        Api::<DeserializeGuard<BoxResource>>::all(client.clone()),
        wc.clone(),
        {
            let (boxes, settings) = (cx.stores.boxes.clone(), cx.settings.clone());
            move |g| match &g.0 {
                Ok(b) => tenancy::boxes_sharing_hosts(b, &boxes, &settings),
                Err(_) => Vec::new(),
            }
        },
    )
    .watches(
        Api::<DeserializeGuard<ForkGrant>>::all(client.clone()),
        wc.clone(),
        {
            let boxes = cx.stores.boxes.clone();
            move |g| tenancy::boxes_forking_from(&g.namespace().unwrap_or_default(), &boxes)
        },
    )
    .watches(Api::<Namespace>::all(client.clone()), wc.clone(), {
        let boxes = cx.stores.boxes.clone();
        move |n| tenancy::boxes_needing_trust(&n.name_any(), &boxes)
    })
    .graceful_shutdown_on(shutdown.clone())
    .run(reconcile::boxes::reconcile, error_policy, cx.clone())
    .for_each(|_| async {});
    let snapshots = Controller::new(
        Api::<DeserializeGuard<Snapshot>>::all(client.clone()),
        wc.clone(),
    )
    .with_config(cfg.clone())
    .graceful_shutdown_on(shutdown.clone())
    .run(reconcile::snapshot::reconcile, error_policy, cx.clone())
    .for_each(|_| async {});
    let volumes = Controller::new(
        Api::<DeserializeGuard<DataVolume>>::all(client.clone()),
        wc.clone(),
    )
    .with_config(cfg.clone())
    .graceful_shutdown_on(shutdown.clone())
    .run(reconcile::volume::reconcile, error_policy, cx.clone())
    .for_each(|_| async {});
    let bases = Controller::new(Api::<DeserializeGuard<Base>>::all(client.clone()), wc)
        .with_config(cfg)
        .graceful_shutdown_on(shutdown)
        .run(reconcile::base::reconcile, error_policy, cx.clone())
        .for_each(|_| async {});
    tracing::info!("controllers running");
    futures::join!(boxes, snapshots, volumes, bases);
}

/// The name of an object for logs.
pub fn display<K: Resource>(k: &K) -> String {
    format!("{}/{}", k.namespace().unwrap_or_default(), k.name_any())
}
