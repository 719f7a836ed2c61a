//! What every reconcile shares: the client, settings, agents, metrics, events and the caches of
//! the children (so unchanged children cost no API call at all), of every Box, ForkGrant and
//! Namespace (so the tenancy rules cost none either).

use std::sync::Arc;

use forkr_crds::{BoxResource, ForkGrant};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::core::DeserializeGuard;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};

use crate::config::Settings;
use crate::metrics::Metrics;
use forkr_agent_proto::client::Agents;

/// Read caches of the objects the operator makes (and of the box pods).
#[derive(Clone)]
pub struct Stores {
    pub deployments: Store<Deployment>,
    pub services: Store<Service>,
    pub ingresses: Store<Ingress>,
    pub pods: Store<Pod>,
    /// Every Box in the cluster: hosts are owned cluster-wide (`tenancy`).
    pub boxes: Store<DeserializeGuard<BoxResource>>,
    /// Every ForkGrant: consent for copies across namespaces.
    pub grants: Store<DeserializeGuard<ForkGrant>>,
    /// Every Namespace, for the admin's `forkr.dev/trusted` label.
    pub namespaces: Store<Namespace>,
}

pub struct Context {
    pub client: kube::Client,
    pub settings: Settings,
    pub agents: Arc<dyn Agents>,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    pub stores: Stores,
}

impl Context {
    pub fn new(
        client: kube::Client,
        settings: Settings,
        agents: Arc<dyn Agents>,
        metrics: Arc<Metrics>,
        stores: Stores,
        instance: Option<String>,
    ) -> Context {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: forkr_crds::labels::MANAGER.into(),
                instance,
            },
        );
        Context {
            client,
            settings,
            agents,
            metrics,
            recorder,
            stores,
        }
    }

    /// Publishes an event about `obj`; a failure to publish is logged, never fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        controller: &'static str,
        obj: &K,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        let ev = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_owned(),
            note: Some(note.chars().take(1000).collect()),
            action: "Reconcile".into(),
            secondary: None,
        };
        self.metrics.wrote(controller, "Event");
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::warn!(object = %obj.name_any(), error = %e, "publishing an event failed");
        }
    }
}
