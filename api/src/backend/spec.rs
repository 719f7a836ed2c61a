//! Spec changes both backends make the same way: creates, forks, updates and published hosts.

use std::collections::BTreeMap;

use forkr_crds::validation::{
    self as v, BoxUpdate, ResolvedTarget, ValidationError, parse_data_mount, parse_ref,
    publish_host,
};
use forkr_crds::{BoxResource, BoxSpec, DataMount, ForkSource, labels};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::error::{ApiError, ApiResult};
use crate::wire::CreateBox;

/// Applies the allowlisted settings of `4kr update`: PORT, CPU, MEMORY, the grace period, tags.
pub fn apply_update(spec: &mut BoxSpec, update: BoxUpdate) {
    if let Some(port) = update.port {
        spec.port = Some(i32::from(port));
    }
    if let Some(cpu) = update.cpu {
        spec.cpu = Some(Quantity(cpu));
    }
    if let Some(memory) = update.memory {
        spec.memory = Some(Quantity(memory));
    }
    if let Some(grace) = update.termination_grace_period_seconds {
        spec.termination_grace_period_seconds = Some(grace);
    }
    if let Some(tags) = update.tags {
        spec.tags.extend(tags);
    }
}

/// The spec a create request asks for before any fork is resolved: base, env, resources, port,
/// tags and data mounts. `--base` with `--fork` is refused.
pub fn requested(req: &CreateBox) -> ApiResult<BoxSpec> {
    v::validate_box_name(&req.name)?;
    if req.base.is_some() && req.fork.is_some() {
        return Err(ValidationError::BaseWithFork.into());
    }
    let mut spec = BoxSpec {
        base: req.base.clone(),
        env: req.env.clone(),
        cpu: req.cpu.clone().map(Quantity),
        memory: req.memory.clone().map(Quantity),
        port: req.port.map(i32::from),
        tags: req.tags.clone(),
        ..Default::default()
    };
    for arg in &req.data {
        spec.data.push(parse_data_mount(arg)?.into());
    }
    Ok(spec)
}

/// The `(project, box)` a create forks from, if any; a box cannot be forked from itself.
pub fn fork_of(project: &str, req: &CreateBox) -> ApiResult<Option<(String, String)>> {
    let Some(reference) = &req.fork else {
        return Ok(None);
    };
    // `.` means "the box I am in", which only a client inside a box can resolve.
    let resolved = parse_ref(reference)?.resolve(project, |_| None)?;
    let ResolvedTarget::Named(src) = resolved.target else {
        return Err(ApiError::bad_request(
            "invalid_ref",
            "--fork needs an existing box, not -",
        ));
    };
    if resolved.project == project && src == req.name {
        return Err(ValidationError::ForkSelf.into());
    }
    Ok(Some((resolved.project, src)))
}

/// What a fork inherits, as 001 says: the source's env (overridden by the request's), port,
/// grace, tags, resources, and a copy `box-<name>-<vol>` of each data volume. Returns the source
/// volumes that are copied.
pub fn inherit(
    spec: &mut BoxSpec,
    req: &CreateBox,
    project: &str,
    (src_project, src): (&str, &str),
    source: &BoxSpec,
) -> ApiResult<Vec<String>> {
    let mut env = source.env.clone();
    env.extend(req.env.clone());
    spec.env = env;
    spec.port = spec.port.or(source.port);
    spec.termination_grace_period_seconds = source.termination_grace_period_seconds;
    let mut tags: BTreeMap<String, String> = source.tags.clone();
    tags.extend(req.tags.clone());
    spec.tags = tags;
    spec.cpu = spec.cpu.clone().or(source.cpu.clone());
    spec.memory = spec.memory.clone().or(source.memory.clone());
    let mut copied = Vec::new();
    for m in &source.data {
        spec.data.push(DataMount {
            volume: forkr_crds::fork_volume_name(&req.name, &m.volume)?,
            mount_path: m.mount_path.clone(),
            read_only: m.read_only,
        });
        copied.push(m.volume.clone());
    }
    spec.fork = Some(ForkSource {
        box_name: src.to_owned(),
        project: (src_project != project).then(|| src_project.to_owned()),
    });
    Ok(copied)
}

/// The Box object of a create, validated; an ephemeral box is marked for 4kr's cleanup.
pub fn new_box(project: &str, req: &CreateBox, spec: BoxSpec) -> ApiResult<BoxResource> {
    let mut b = BoxResource::new(&req.name, spec);
    b.metadata.namespace = Some(project.to_owned());
    if req.ephemeral {
        b.metadata.annotations =
            Some([(labels::ANNOTATION_EPHEMERAL.to_owned(), "true".to_owned())].into());
    }
    b.validate()?;
    Ok(b)
}

/// The host a publish or unpublish names, as 001 says: `host` wins, otherwise
/// `{subdomain}.{domain}` (`@` is the bare domain), the domain defaulting to `default_domain`.
pub fn publish_target(
    subdomain: Option<&str>,
    host: Option<&str>,
    domain: Option<&str>,
    default_domain: &str,
) -> ApiResult<String> {
    if host.is_some() && domain.is_some() {
        return Err(ApiError::bad_request(
            "invalid_publish",
            "--domain cannot be used with --host",
        ));
    }
    let domain = domain.unwrap_or(default_domain);
    if domain.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_publish_config",
            "no publish domain is configured",
        ));
    }
    Ok(publish_host(subdomain, host, domain)?)
}

/// A mount of a volume the box's project does not have: both backends say it this way.
pub fn volume_not_found(project: &str, volume: &str) -> ApiError {
    ApiError::bad_request(
        "volume_not_found",
        format!(
            "data volume {volume:?} not found in project {project:?}: a data volume must be in the box's project"
        ),
    )
}

/// The DataVolume a create asks for, validated.
pub fn new_volume(
    project: &str,
    name: &str,
    limit: Option<String>,
) -> ApiResult<forkr_crds::DataVolume> {
    let mut obj = forkr_crds::DataVolume::new(
        name,
        forkr_crds::DataVolumeSpec {
            size: limit.map(Quantity),
            ..Default::default()
        },
    );
    obj.metadata.namespace = Some(project.to_owned());
    obj.validate()?;
    Ok(obj)
}
