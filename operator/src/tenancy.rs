//! The rules that keep the operator from acting as a confused deputy. Anyone whom RBAC lets
//! write a Box in one namespace writes it directly (kubectl, Argo CD), never through forkr-api,
//! and the operator holds far more rights than they do. So before it acts on a field that
//! reaches beyond the object's own namespace or beyond an ordinary box, it checks:
//!
//! - a copy from another namespace (Box fork, Base save, DataVolume clone) needs a
//!   [`ForkGrant`] in the source namespace;
//! - a host is owned cluster-wide: the first claim wins, and `*.{ns}.{domain}` belongs to `ns`;
//! - `spec.runnerImage` is honoured only in namespaces labelled `forkr.dev/trusted: "true"`.
//!
//! Everything here is a pure function of the watch caches, so a reconcile costs no API call
//! and two operators (or a restarted one) reach the same answer.

use std::collections::BTreeSet;

use forkr_crds::fork_grant::{self, GrantKind};
use forkr_crds::{BoxResource, ForkGrant, labels};
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::config::Settings;

/// Why the operator will not act on an object; lands in the `Stalled` condition, the status
/// message and a Warning event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The condition's and the event's reason (CamelCase).
    pub reason: &'static str,
    pub message: String,
}

pub const REASON_FORK_NOT_GRANTED: &str = "ForkNotGranted";
pub const REASON_UNTRUSTED_NAMESPACE: &str = "UntrustedNamespace";
pub const REASON_HOST_TAKEN: &str = "HostTaken";

/// The grants in the cache that could be read; a malformed one grants nothing.
fn grants(store: &Store<DeserializeGuard<ForkGrant>>) -> Vec<ForkGrant> {
    store
        .state()
        .iter()
        .filter_map(|g| g.0.as_ref().ok().cloned())
        .collect()
}

/// Namespace `from` may copy `kind`/`name` of `source_ns`: the same namespace always may;
/// another one needs a grant there.
pub fn copy_refusal(
    grants_store: &Store<DeserializeGuard<ForkGrant>>,
    what: &str,
    from: &str,
    source_ns: &str,
    kind: GrantKind,
    name: &str,
) -> Option<Refusal> {
    if source_ns == from {
        return None;
    }
    let all = grants(grants_store);
    if fork_grant::granted(&all, source_ns, from, kind, name) {
        return None;
    }
    Some(Refusal {
        reason: REASON_FORK_NOT_GRANTED,
        message: format!(
            "{what} {source_ns}/{name} is in another namespace: a ForkGrant in namespace {source_ns} must allow namespace {from} to copy {kind} {name}"
        ),
    })
}

/// A Box's fork source in another namespace needs a grant, until the copy is made.
pub fn fork_refusal(
    b: &BoxResource,
    grants_store: &Store<DeserializeGuard<ForkGrant>>,
) -> Option<Refusal> {
    let fork = b.spec.fork.as_ref()?;
    let own = b.namespace().unwrap_or_default();
    let source_ns = fork.project.as_deref().unwrap_or(&own);
    copy_refusal(
        grants_store,
        "fork source box",
        &own,
        source_ns,
        GrantKind::Box,
        &fork.box_name,
    )
}

/// Whether an admin has labelled namespace `ns` as trusted.
pub fn trusted(namespaces: &Store<Namespace>, ns: &str) -> bool {
    namespaces
        .get(&ObjectRef::new(ns))
        .is_some_and(|n| n.labels().get(labels::LABEL_TRUSTED).map(String::as_str) == Some("true"))
}

/// Fields that widen what a box may do. `spec.runnerImage` is the only one today: the runner
/// container is privileged and mounts the node's pool, so its image is root on the node. (The
/// rest of the spec is bounded: data mounts name volumes of the box's own namespace at checked
/// paths, resources are requests and limits, and nothing sets host paths, node selectors or
/// security settings.) A field added later that widens a box belongs here.
pub fn privileged_fields(b: &BoxResource) -> Vec<&'static str> {
    let mut out = Vec::new();
    if b.spec.runner_image.is_some() {
        out.push("spec.runnerImage");
    }
    out
}

/// A box that uses a widening field outside a trusted namespace is refused, not downgraded:
/// running it with the default image would be a box its author did not ask for.
pub fn privilege_refusal(b: &BoxResource, namespaces: &Store<Namespace>) -> Option<Refusal> {
    let fields = privileged_fields(b);
    if fields.is_empty() {
        return None;
    }
    let ns = b.namespace().unwrap_or_default();
    if trusted(namespaces, &ns) {
        return None;
    }
    Some(Refusal {
        reason: REASON_UNTRUSTED_NAMESPACE,
        message: format!(
            "{} is honoured only in namespaces an admin labels {}=true; namespace {ns} is not",
            fields.join(", "),
            labels::LABEL_TRUSTED
        ),
    })
}

/// Every host a box claims: its own URL (reserved from its creation, port or not) and its
/// published hosts.
pub fn claimed_hosts(b: &BoxResource, s: &Settings) -> Vec<String> {
    let own = s.box_host(&b.namespace().unwrap_or_default(), &b.name_any());
    let mut out = vec![own];
    for p in &b.spec.publish {
        if !out.contains(&p.host) {
            out.push(p.host.clone());
        }
    }
    out
}

/// Whether a box of namespace `ns` may claim `host` at all: `*.{ns}.{domain}` (and the same
/// under the publish domain) belongs to `ns` alone, and `forks.{domain}` to forkr-api.
pub fn may_claim(host: &str, ns: &str, s: &Settings) -> bool {
    // forkr-api's own host is the platform's, never a box's.
    host != s.api_host()
        && [s.domain.as_str(), s.publish_domain.as_str()]
            .iter()
            .all(|d| {
                forkr_crds::validation::host_namespace(host, d).is_none_or(|owner| owner == ns)
            })
}

/// Whether `b` holds `host` already: the ingress serves it for `b` (status says so). A holder
/// keeps its host while it claims it, so an older box cannot take a host by publishing it late.
fn holds(b: &BoxResource, host: &str, s: &Settings) -> bool {
    let Some(st) = &b.status else {
        return false;
    };
    if st.published_hosts.iter().any(|h| h == host) {
        return true;
    }
    let own = s.box_host(&b.namespace().unwrap_or_default(), &b.name_any());
    host == own
        && st.url.as_deref() == Some(format!("https://{own}").as_str())
        && !st.taken_hosts.iter().any(|h| h == host)
}

/// The order of claims: the oldest box first, then namespace and name, so every replica and
/// every restart picks the same owner.
fn claim_key(b: &BoxResource) -> (Option<k8s_openapi::jiff::Timestamp>, String, String) {
    (
        b.metadata.creation_timestamp.as_ref().map(|t| t.0),
        b.namespace().unwrap_or_default(),
        b.name_any(),
    )
}

/// The hosts `b` claims but does not own, given every box in the cache. A host's owner is,
/// among the boxes that claim it and may claim it (and are not being deleted): the one that
/// holds it now, else the oldest. `b` itself is taken as given, not as cached, since the cache
/// may lag the object being reconciled.
pub fn taken_hosts(
    b: &BoxResource,
    boxes: &Store<DeserializeGuard<BoxResource>>,
    s: &Settings,
) -> Vec<String> {
    let me = (b.namespace().unwrap_or_default(), b.name_any());
    let mut everyone: Vec<BoxResource> = boxes
        .state()
        .iter()
        .filter_map(|g| g.0.as_ref().ok())
        .filter(|o| (o.namespace().unwrap_or_default(), o.name_any()) != me)
        .filter(|o| o.metadata.deletion_timestamp.is_none())
        .cloned()
        .collect();
    everyone.push(b.clone());
    let mut taken = Vec::new();
    for host in claimed_hosts(b, s) {
        if !may_claim(&host, &me.0, s) {
            taken.push(host);
            continue;
        }
        let claimants: Vec<&BoxResource> = everyone
            .iter()
            .filter(|o| may_claim(&host, &o.namespace().unwrap_or_default(), s))
            .filter(|o| claimed_hosts(o, s).contains(&host))
            .collect();
        let holders: Vec<&BoxResource> = claimants
            .iter()
            .copied()
            .filter(|o| holds(o, &host, s))
            .collect();
        let pool = if holders.is_empty() {
            &claimants
        } else {
            &holders
        };
        let owner = pool.iter().min_by_key(|o| claim_key(o));
        if owner.is_some_and(|o| (o.namespace().unwrap_or_default(), o.name_any()) != me) {
            taken.push(host);
        }
    }
    taken
}

/// The message for taken hosts; it does not name the other box, which may be another tenant's.
pub fn host_refusal(taken: &[String]) -> Option<Refusal> {
    (!taken.is_empty()).then(|| Refusal {
        reason: REASON_HOST_TAKEN,
        message: format!(
            "host {} is owned by another box or belongs to another namespace; it is not served",
            taken.join(", ")
        ),
    })
}

/// Boxes to look at again when `changed` moves: every box that claims one of the hosts
/// `changed` claims or held, so a loser gets the host as soon as its owner lets go.
pub fn boxes_sharing_hosts(
    changed: &BoxResource,
    boxes: &Store<DeserializeGuard<BoxResource>>,
    s: &Settings,
) -> Vec<ObjectRef<DeserializeGuard<BoxResource>>> {
    let mut hosts: BTreeSet<String> = claimed_hosts(changed, s).into_iter().collect();
    if let Some(st) = &changed.status {
        hosts.extend(st.published_hosts.iter().cloned());
        hosts.extend(st.taken_hosts.iter().cloned());
    }
    let me = (changed.namespace().unwrap_or_default(), changed.name_any());
    boxes
        .state()
        .iter()
        .filter_map(|g| g.0.as_ref().ok())
        .filter(|o| (o.namespace().unwrap_or_default(), o.name_any()) != me)
        .filter(|o| claimed_hosts(o, s).iter().any(|h| hosts.contains(h)))
        .map(|o| ObjectRef::new(&o.name_any()).within(&o.namespace().unwrap_or_default()))
        .collect()
}

/// Boxes a grant in namespace `ns` may unblock: those forking from `ns` in another namespace.
pub fn boxes_forking_from(
    ns: &str,
    boxes: &Store<DeserializeGuard<BoxResource>>,
) -> Vec<ObjectRef<DeserializeGuard<BoxResource>>> {
    boxes
        .state()
        .iter()
        .filter_map(|g| g.0.as_ref().ok())
        .filter(|b| {
            b.spec
                .fork
                .as_ref()
                .and_then(|f| f.project.as_deref())
                .is_some_and(|p| p == ns && b.namespace().as_deref() != Some(ns))
        })
        .map(|b| ObjectRef::new(&b.name_any()).within(&b.namespace().unwrap_or_default()))
        .collect()
}

/// Boxes whose trust a namespace's labels decide: those in it that use a widening field.
pub fn boxes_needing_trust(
    ns: &str,
    boxes: &Store<DeserializeGuard<BoxResource>>,
) -> Vec<ObjectRef<DeserializeGuard<BoxResource>>> {
    boxes
        .state()
        .iter()
        .filter_map(|g| g.0.as_ref().ok())
        .filter(|b| b.namespace().as_deref() == Some(ns) && !privileged_fields(b).is_empty())
        .map(|b| ObjectRef::new(&b.name_any()).within(ns))
        .collect()
}
