//! How both backends show a Box object: the wire view is a pure function of the object (plus
//! its URL), so local and cluster boxes look the same to clients.

use forkr_crds::validation::{cpu_millis, memory_bytes};
use forkr_crds::{BoxPhase, BoxResource, labels};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::wire::{BoxView, DataMountView};

fn time_str(t: &Option<Time>) -> Option<String> {
    t.as_ref().map(|t| t.0.to_string())
}

/// `https://{box}.{domain}` in the default project, `https://{box}.{project}.{domain}`
/// elsewhere: box and project names hold no dots, so every host names one box.
pub fn box_url(domain: &str, project: &str, name: &str) -> String {
    if project == labels::DEFAULT_PROJECT {
        format!("https://{name}.{domain}")
    } else {
        format!("https://{name}.{project}.{domain}")
    }
}

/// The object as `show` prints it.
pub fn box_view(project: &str, b: &BoxResource, url: String) -> BoxView {
    let name = b.metadata.name.clone().unwrap_or_default();
    let status = b.status.clone().unwrap_or_default();
    let spec = &b.spec;
    BoxView {
        url,
        name,
        project: project.to_owned(),
        status: format!("{:?}", status.phase.unwrap_or(BoxPhase::Pending)).to_lowercase(),
        base: status.base_version.clone(),
        fork_of: spec
            .fork
            .as_ref()
            .map(|f| format!("{}:{}", f.project.as_deref().unwrap_or(project), f.box_name)),
        port: spec.port.and_then(|p| u16::try_from(p).ok()),
        created: b
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string()),
        started: time_str(&status.started_at),
        stopped: time_str(&status.stopped_at),
        published: spec.publish.iter().map(|p| p.host.clone()).collect(),
        tags: spec.tags.clone(),
        data: spec
            .data
            .iter()
            .map(|m| DataMountView {
                volume: m.volume.clone(),
                mount_path: m.mount_path.clone(),
                read_only: m.read_only,
            })
            .collect(),
        cpus: spec
            .cpu
            .as_ref()
            .and_then(|c| cpu_millis(&c.0).ok())
            .map(|m| m as f64 / 1000.0),
        ram_mb: spec
            .memory
            .as_ref()
            .and_then(|m| memory_bytes(&m.0).ok())
            .map(|b| b >> 20),
        storage_gb: None,
        ip: status.pod_ip.clone(),
        ephemeral: b
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(labels::ANNOTATION_EPHEMERAL)),
        message: status.message.clone(),
    }
}
