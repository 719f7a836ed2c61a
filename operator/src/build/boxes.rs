//! A Box's children: the runner Deployment, the headless Service and the Ingress.
//!
//! The Deployment's pod is the Kubernetes twin of the local runtime's runc bundle
//! (node-agent `runtime::bundle`): one privileged container `fork` whose entrypoint is
//! `forkr-runner`, the box root at `/volumes`, the system volumes under `/forkr-system/<name>`,
//! data volumes under `/forkr-data/<i>`, and the runner configuration as JSON in
//! `FORKR_RUNNER_CONFIG`. Kubernetes writes /etc/resolv.conf and /etc/hosts into the runner
//! container; the runner binds those into the box.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use forkr_agent_proto::layout::{
    self, BOX_ROOT, DATA_DIR, GLOBAL_SYSTEM_VOLUMES, SCRATCH_DIR, SYSTEM_DIR,
};
use forkr_agent_proto::runner::{
    CONFIG_ENV, DataMount as RunnerMount, Injected, RunnerConfig, SYSTEM_MOUNTS, default_init,
};
use forkr_crds::{BoxResource, labels};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Affinity, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, HostPathVolumeSource,
    NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, ObjectFieldSelector,
    PodDNSConfig, PodDNSConfigOption, PodSpec, PodTemplateSpec, ResourceRequirements,
    SecurityContext, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{box_labels, child_meta};
use crate::config::Settings;

/// Grace period when the Box names none, as in local mode.
pub const DEFAULT_GRACE_SECONDS: i64 = 10;
/// The annotation carrying the box's tags (JSON), on the Deployment.
pub const ANNOTATION_TAGS: &str = "forkr.dev/tags";

/// What the builders need besides the Box.
#[derive(Debug, Clone)]
pub struct BoxContext<'a> {
    pub settings: &'a Settings,
    /// The node that holds the root.
    pub node: &'a str,
    /// False scales to zero (stopped, or restoring).
    pub run: bool,
    /// The user's environment as fixed at creation (002: later changes are not applied).
    pub env: &'a BTreeMap<String, String>,
}

/// `name` and `project` of a box (its namespace is its project).
pub fn names(b: &BoxResource) -> (&str, &str) {
    (
        b.metadata
            .namespace
            .as_deref()
            .unwrap_or(labels::DEFAULT_PROJECT),
        b.metadata.name.as_deref().unwrap_or_default(),
    )
}

/// Host paths in the node's pool, as the agent lays them out (`forkr_agent_proto::layout`).
pub fn root_path(pool: &Path, project: &str, name: &str) -> PathBuf {
    pool.join(layout::root(project, name))
}

fn system_volume_path(pool: &Path, project: &str, vol: &str) -> PathBuf {
    pool.join(layout::system_volume(project, vol))
}

pub fn volume_path(pool: &Path, project: &str, vol: &str) -> PathBuf {
    pool.join(layout::volume(project, vol))
}

/// The runner's configuration, with paths as the `fork` container sees them. The node IP is
/// left empty: the runner takes it from FORKR_NODE_IP, which Kubernetes fills from
/// `status.hostIP`.
pub fn runner_config(b: &BoxResource, cx: &BoxContext<'_>) -> RunnerConfig {
    let (project, name) = names(b);
    let s = cx.settings;
    RunnerConfig {
        injected: Injected {
            project: project.to_owned(),
            box_name: name.to_owned(),
            api_url: s.api_url(),
            api_host: s.api_host(),
            node_ip: String::new(),
            insecure: s.insecure,
        },
        root: PathBuf::from(BOX_ROOT),
        scratch: PathBuf::from(SCRATCH_DIR),
        resolv_conf: Some(PathBuf::from("/etc/resolv.conf")),
        hosts: Some(PathBuf::from("/etc/hosts")),
        system_volumes: SYSTEM_MOUNTS
            .iter()
            .map(|(n, _)| ((*n).to_owned(), PathBuf::from(format!("{SYSTEM_DIR}/{n}"))))
            .collect(),
        data_volumes: b
            .spec
            .data
            .iter()
            .enumerate()
            .map(|(i, m)| RunnerMount {
                source: PathBuf::from(format!("{DATA_DIR}/{i}")),
                target: m.mount_path.clone(),
                read_only: m.read_only,
            })
            .collect(),
        env: cx.env.clone(),
        init: default_init(),
    }
}

fn host_path(name: String, path: &Path) -> Volume {
    Volume {
        name,
        host_path: Some(HostPathVolumeSource {
            path: path.to_string_lossy().into_owned(),
            type_: Some("Directory".into()),
        }),
        ..Volume::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_owned(),
                api_version: None,
            }),
            ..EnvVarSource::default()
        }),
        value: None,
    }
}

fn volumes_and_mounts(b: &BoxResource, pool: &Path) -> (Vec<Volume>, Vec<VolumeMount>) {
    let (project, name) = names(b);
    let mut volumes = vec![
        host_path("root".into(), &root_path(pool, project, name)),
        Volume {
            name: "scratch".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    ];
    let mut mounts = vec![
        mount("root", BOX_ROOT, false),
        // An emptyDir, so the box's /tmp and /run are gone after every stop.
        mount("scratch", SCRATCH_DIR, false),
    ];
    for (vol, _) in SYSTEM_MOUNTS {
        let vname = format!("sys-{vol}");
        volumes.push(host_path(
            vname.clone(),
            &system_volume_path(pool, project, vol),
        ));
        // The volumes every project shares are written by the agent on the host only; the
        // runner binds them into the box (read-only again there) and never writes them.
        let shared = GLOBAL_SYSTEM_VOLUMES.contains(&vol);
        mounts.push(mount(&vname, &format!("{SYSTEM_DIR}/{vol}"), shared));
    }
    for (i, m) in b.spec.data.iter().enumerate() {
        let vname = format!("data-{i}");
        volumes.push(host_path(
            vname.clone(),
            &volume_path(pool, project, &m.volume),
        ));
        mounts.push(mount(&vname, &format!("{DATA_DIR}/{i}"), m.read_only));
    }
    (volumes, mounts)
}

/// The 002 DNS behaviour: short names search `<project>.forks`, `forks` and `<project>`, and
/// `ndots:1` sends dotted names out absolutely first.
pub fn dns_config(project: &str) -> PodDNSConfig {
    PodDNSConfig {
        nameservers: None,
        options: Some(vec![PodDNSConfigOption {
            name: Some("ndots".into()),
            value: Some("1".into()),
        }]),
        searches: Some(vec![
            format!("{project}.forks"),
            "forks".into(),
            project.to_owned(),
        ]),
    }
}

fn resources(b: &BoxResource) -> Option<ResourceRequirements> {
    let mut requests = BTreeMap::new();
    let mut limits = BTreeMap::new();
    if let Some(m) = &b.spec.memory {
        requests.insert("memory".to_owned(), m.clone());
        limits.insert("memory".to_owned(), m.clone());
    }
    if let Some(c) = &b.spec.cpu {
        // A request only: 002 says CPU is never capped.
        requests.insert("cpu".to_owned(), c.clone());
    }
    (!requests.is_empty()).then(|| ResourceRequirements {
        requests: Some(requests),
        limits: (!limits.is_empty()).then_some(limits),
        ..ResourceRequirements::default()
    })
}

fn pin_to(node: &str) -> Affinity {
    Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_fields: Some(vec![NodeSelectorRequirement {
                        key: "metadata.name".into(),
                        operator: "In".into(),
                        values: Some(vec![node.to_owned()]),
                    }]),
                    match_expressions: None,
                }],
            }),
            preferred_during_scheduling_ignored_during_execution: None,
        }),
        ..Affinity::default()
    }
}

/// The runner Deployment: 1 replica (0 when stopped or restoring), pinned to the root's node.
pub fn deployment(b: &BoxResource, cx: &BoxContext<'_>) -> Result<Deployment, serde_json::Error> {
    let (project, name) = names(b);
    let labels = box_labels(project, name);
    let mut meta = child_meta(b, labels.clone());
    if !b.spec.tags.is_empty() {
        meta.annotations = Some(BTreeMap::from([(
            ANNOTATION_TAGS.to_owned(),
            serde_json::to_string(&b.spec.tags)?,
        )]));
    }
    let selector = BTreeMap::from([
        (labels::LABEL_BOX.to_owned(), name.to_owned()),
        (labels::LABEL_PROJECT.to_owned(), project.to_owned()),
    ]);
    let (volumes, volume_mounts) = volumes_and_mounts(b, &cx.settings.pool_dir);
    // Only what the runner itself reads. The box's own variables travel in the configuration
    // and reach PID 1 (and /etc/boxes-env) from there: set on the container, they would be the
    // environment of the privileged runner before it chroots, so a box's LD_PRELOAD or PATH
    // naming a file the box wrote would run as root on the node.
    let env = vec![
        EnvVar {
            name: CONFIG_ENV.into(),
            value: Some(serde_json::to_string(&runner_config(b, cx))?),
            value_from: None,
        },
        field_env("FORKR_NODE_IP", "status.hostIP"),
        field_env("FORKR_API_IP", "status.hostIP"),
    ];
    let container = Container {
        name: labels::RUNNER_CONTAINER.into(),
        image: Some(
            b.spec
                .runner_image
                .clone()
                .unwrap_or_else(|| cx.settings.runner_image.clone()),
        ),
        image_pull_policy: Some("IfNotPresent".into()),
        env: Some(env),
        resources: resources(b),
        security_context: Some(SecurityContext {
            privileged: Some(true),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(volume_mounts),
        ..Container::default()
    };
    let pod = PodSpec {
        containers: vec![container],
        volumes: Some(volumes),
        affinity: Some(pin_to(cx.node)),
        termination_grace_period_seconds: Some(
            b.spec
                .termination_grace_period_seconds
                .unwrap_or(DEFAULT_GRACE_SECONDS),
        ),
        dns_config: Some(dns_config(project)),
        hostname: Some(name.to_owned()),
        subdomain: Some(name.to_owned()),
        enable_service_links: Some(false),
        automount_service_account_token: Some(false),
        ..PodSpec::default()
    };
    Ok(Deployment {
        metadata: meta,
        spec: DeploymentSpec {
            replicas: Some(i32::from(cx.run)),
            selector: LabelSelector {
                match_labels: Some(selector),
                match_expressions: None,
            },
            // Never two runners on one root.
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                rolling_update: None,
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        },
        status: None,
    })
}

/// Every port the box serves: its own and the published hosts' (sorted, unique).
fn ports(b: &BoxResource) -> Vec<i32> {
    let mut out: Vec<i32> = b
        .spec
        .port
        .into_iter()
        .chain(b.spec.publish.iter().filter_map(|p| p.port))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The headless Service: `<box>` and `<box>.<project>` resolve to the pod IP. Every port has
/// `protocol: TCP` (a server-side apply without it fails on 1.20).
pub fn service(b: &BoxResource) -> Service {
    let (project, name) = names(b);
    let selector = BTreeMap::from([
        (labels::LABEL_BOX.to_owned(), name.to_owned()),
        (labels::LABEL_PROJECT.to_owned(), project.to_owned()),
    ]);
    let ports: Vec<ServicePort> = ports(b)
        .into_iter()
        .map(|p| ServicePort {
            name: Some(format!("tcp-{p}")),
            port: p,
            target_port: Some(IntOrString::Int(p)),
            protocol: Some("TCP".into()),
            ..ServicePort::default()
        })
        .collect();
    Service {
        metadata: child_meta(b, box_labels(project, name)),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(selector),
            ports: (!ports.is_empty()).then_some(ports),
            publish_not_ready_addresses: Some(true),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// Hosts the ingress serves, with the port each routes to: the box URL (when the box has a
/// port) and every published host that has one.
pub fn routes(b: &BoxResource, s: &Settings) -> Vec<(String, i32)> {
    routes_except(b, s, &[])
}

/// [`routes`] without the hosts in `taken`: hosts another box owns (`tenancy::taken_hosts`).
pub fn routes_except(b: &BoxResource, s: &Settings, taken: &[String]) -> Vec<(String, i32)> {
    let (project, name) = names(b);
    let mut out = Vec::new();
    if let Some(port) = b.spec.port {
        out.push((s.box_host(project, name), port));
    }
    for p in &b.spec.publish {
        if let Some(port) = p.port.or(b.spec.port) {
            out.push((p.host.clone(), port));
        }
    }
    out.retain(|(h, _)| !taken.contains(h));
    out
}

/// Whether the wildcard certificate `*.{domain}` covers `host`.
fn under_wildcard(host: &str, domain: &str) -> bool {
    host.strip_suffix(domain)
        .and_then(|h| h.strip_suffix('.'))
        .is_some_and(|label| !label.is_empty() && !label.contains('.'))
}

/// The Ingress of the box's URL and published hosts; `None` when nothing routes (no port).
pub fn ingress(b: &BoxResource, s: &Settings) -> Option<Ingress> {
    ingress_except(b, s, &[])
}

/// [`ingress`] serving none of the hosts in `taken`; `None` when no host is left.
pub fn ingress_except(b: &BoxResource, s: &Settings, taken: &[String]) -> Option<Ingress> {
    let (project, name) = names(b);
    let routes = routes_except(b, s, taken);
    if routes.is_empty() {
        return None;
    }
    let rules = routes
        .iter()
        .map(|(host, port)| IngressRule {
            host: Some(host.clone()),
            http: Some(HTTPIngressRuleValue {
                paths: vec![HTTPIngressPath {
                    path: Some("/".into()),
                    path_type: "Prefix".into(),
                    backend: IngressBackend {
                        service: Some(IngressServiceBackend {
                            name: name.to_owned(),
                            port: Some(ServiceBackendPort {
                                number: Some(*port),
                                name: None,
                            }),
                        }),
                        resource: None,
                    },
                }],
            }),
        })
        .collect();
    let mut wildcard_hosts = Vec::new();
    let mut issued_hosts = Vec::new();
    for (host, _) in &routes {
        let covered = s.wildcard_tls_secret.is_some()
            && (under_wildcard(host, &s.domain) || under_wildcard(host, &s.publish_domain));
        if covered {
            wildcard_hosts.push(host.clone());
        } else {
            issued_hosts.push(host.clone());
        }
    }
    wildcard_hosts.dedup();
    issued_hosts.dedup();
    let mut tls = Vec::new();
    if let (Some(secret), false) = (&s.wildcard_tls_secret, wildcard_hosts.is_empty()) {
        tls.push(IngressTLS {
            hosts: Some(wildcard_hosts),
            secret_name: Some(secret.clone()),
        });
    }
    let mut meta = child_meta(b, box_labels(project, name));
    if !issued_hosts.is_empty() {
        tls.push(IngressTLS {
            hosts: Some(issued_hosts),
            secret_name: Some(format!("{name}-tls")),
        });
        if let Some(issuer) = &s.cluster_issuer {
            meta.annotations = Some(BTreeMap::from([(
                "cert-manager.io/cluster-issuer".to_owned(),
                issuer.clone(),
            )]));
        }
    }
    Some(Ingress {
        metadata: meta,
        spec: Some(IngressSpec {
            ingress_class_name: s.ingress_class.clone(),
            rules: Some(rules),
            tls: Some(tls),
            default_backend: None,
        }),
        status: None,
    })
}

/// The user environment recorded in an existing Deployment's runner configuration, so that
/// later edits of `spec.env` do not reach a box that exists (002).
pub fn frozen_env(d: &Deployment) -> Option<BTreeMap<String, String>> {
    let c = d
        .spec
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == labels::RUNNER_CONTAINER)?;
    let json = c
        .env
        .as_ref()?
        .iter()
        .find(|e| e.name == CONFIG_ENV)?
        .value
        .as_ref()?;
    serde_json::from_str::<RunnerConfig>(json)
        .ok()
        .map(|r| r.env)
}

/// The memory request as a quantity, for capacity checks.
pub fn memory_request(b: &BoxResource) -> Option<&Quantity> {
    b.spec.memory.as_ref()
}
