//! The rules that keep the operator from acting as a confused deputy. Anyone whom RBAC lets
//! write a Box in one namespace writes it directly (kubectl, Argo CD), never through forkr-api,
//! and the operator holds far more rights than they do. So before it acts on a field that
//! reaches beyond the object's own namespace or beyond an ordinary box, it checks:
//!
//! - a copy from another namespace (Box fork, Base save, DataVolume clone) needs a
//!   [`ForkGrant`] in the source namespace;
//! - a host is owned cluster-wide: the first claim wins, and `*.{ns}.{domain}` belongs to `ns`;
//! - `spec.runnerImage` is honoured only in namespaces labelled `forkr.dev/trusted: "true"`;
//! - a Base save outside a trusted namespace writes only a base that namespace made: never
//!   `box-base`, never a name with versions imported or saved from another namespace's box.
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
use forkr_agent_proto::client::BaseVersionInfo;

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
pub const REASON_BASE_NOT_OWNED: &str = "BaseNotOwned";

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

/// References to the boxes of the cache that `keep` selects: the boxes a change wakes.
fn refs_where(
    boxes: &Store<DeserializeGuard<BoxResource>>,
    keep: impl Fn(&BoxResource) -> bool,
) -> Vec<ObjectRef<DeserializeGuard<BoxResource>>> {
    boxes
        .state()
        .iter()
        .filter_map(|g| g.0.as_ref().ok())
        .filter(|b| keep(b))
        .map(|b| ObjectRef::new(&b.name_any()).within(&b.namespace().unwrap_or_default()))
        .collect()
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
    refs_where(boxes, |o| {
        (o.namespace().unwrap_or_default(), o.name_any()) != me
            && claimed_hosts(o, s).iter().any(|h| hosts.contains(h))
    })
}

/// Boxes a grant in namespace `ns` may unblock: those forking from `ns` in another namespace.
pub fn boxes_forking_from(
    ns: &str,
    boxes: &Store<DeserializeGuard<BoxResource>>,
) -> Vec<ObjectRef<DeserializeGuard<BoxResource>>> {
    refs_where(boxes, |b| {
        b.spec
            .fork
            .as_ref()
            .and_then(|f| f.project.as_deref())
            .is_some_and(|p| p == ns && b.namespace().as_deref() != Some(ns))
    })
}

/// Boxes whose trust a namespace's labels decide: those in it that use a widening field.
pub fn boxes_needing_trust(
    ns: &str,
    boxes: &Store<DeserializeGuard<BoxResource>>,
) -> Vec<ObjectRef<DeserializeGuard<BoxResource>>> {
    refs_where(boxes, |b| {
        b.namespace().as_deref() == Some(ns) && !privileged_fields(b).is_empty()
    })
}

/// The family a base name belongs to (`forkr_crds::base::family`, the rule forkr-api uses too).
pub use forkr_crds::base::family as base_family;

/// The namespace a version was made for, as the agent records it: its `owner` (a save's box
/// project, or the project forkr-api imported it for), else, for versions recorded before
/// owners were, `kind` save (which only the agent's own save sets) with builder
/// `box <project>/<box>`. `None` for an admin's import and for builds, whose builder is the
/// uploader's free text and proves nothing.
pub fn saved_from(v: &BaseVersionInfo) -> Option<&str> {
    if !v.owner.is_empty() {
        return Some(&v.owner);
    }
    if v.kind != "save" {
        return None;
    }
    v.builder
        .strip_prefix("box ")
        .and_then(|rest| rest.split_once('/'))
        .map(|(project, _)| project)
}

/// Whether a Base in namespace `ns` may save a new version of `alias`, given every version of
/// the alias's family on every node, and the versions that `ns`'s own Base of that family lists
/// in its status (`recorded`). A new version of a base is what the next box of everyone who
/// names it boots, so outside a trusted namespace a CR writes only a base its namespace made:
/// never `box-base` (the default of every box), and otherwise a name each of whose versions
/// was saved from a box of `ns` (the agent's record) or is recorded in `ns`'s Base status.
/// Status is written only by the operator (its saves for that Base) and forkr-api (imports it
/// authorized), never by users, who get no `*/status` rights. An import recorded nowhere (the
/// pool does not say who imported it) or a version saved from another namespace's box is
/// someone else's; an import forkr-api made for project `ns` (the agent records the owner) is
/// `ns`'s. A trusted namespace writes any base, as an admin token does.
pub fn base_write_refusal(
    ns: &str,
    alias: &str,
    trusted: bool,
    versions: &[BaseVersionInfo],
    recorded: &[String],
) -> Option<Refusal> {
    if trusted {
        return None;
    }
    let family = base_family(alias);
    let shared = [alias, family].contains(&labels::DEFAULT_BASE);
    let ours = |v: &BaseVersionInfo| saved_from(v) == Some(ns) || recorded.contains(&v.version);
    if !shared && versions.iter().all(ours) {
        return None;
    }
    let why = if shared {
        format!("base {family} is shared by every namespace")
    } else {
        format!(
            "base {family} has versions that namespace {ns} did not make (imported, or saved from another namespace)"
        )
    };
    Some(Refusal {
        reason: REASON_BASE_NOT_OWNED,
        message: format!(
            "{why}: outside namespaces an admin labels {}=true, a Base saves only to a new name or to one whose every version this namespace made",
            labels::LABEL_TRUSTED
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(kind: &str, builder: &str) -> BaseVersionInfo {
        BaseVersionInfo {
            version: "x".into(),
            kind: kind.into(),
            builder: builder.into(),
            owner: String::new(),
        }
    }

    #[test]
    fn an_import_forkr_api_made_for_a_project_is_that_projects() {
        let import = |owner: &str| BaseVersionInfo {
            owner: owner.into(),
            ..v("import", "box other/x")
        };
        assert_eq!(saved_from(&import("shop")), Some("shop"));
        // An admin's import has no owner; its free-text builder proves nothing.
        assert_eq!(saved_from(&import("")), None);
        assert!(base_write_refusal("shop", "shopbase", false, &[import("shop")], &[]).is_none());
        assert!(base_write_refusal("other", "shopbase", false, &[import("shop")], &[]).is_some());
        assert!(base_write_refusal("shop", "shopbase", false, &[import("")], &[]).is_some());
        // box-base stays shared whoever imported it.
        assert!(base_write_refusal("shop", "box-base", false, &[import("shop")], &[]).is_some());
    }

    #[test]
    fn versions_belong_to_their_alias() {
        assert_eq!(base_family("box-base"), "box-base");
        assert_eq!(base_family("box-base-v20261123150000"), "box-base");
        assert_eq!(
            base_family("my-very-long-base-name"),
            "my-very-long-base-name"
        );
        assert_eq!(base_family("-v20261123150000"), "-v20261123150000");
        assert_eq!(
            base_family("box-base-v2026112315000x"),
            "box-base-v2026112315000x"
        );
    }

    #[test]
    fn only_the_agents_own_save_record_names_a_namespace() {
        assert_eq!(saved_from(&v("save", "box shop/web")), Some("shop"));
        assert_eq!(saved_from(&v("import", "box shop/web")), None);
        assert_eq!(saved_from(&v("build", "box shop/web")), None);
        assert_eq!(saved_from(&v("save", "docker")), None);
    }

    #[test]
    fn an_untrusted_namespace_writes_only_what_it_saved() {
        let mine = v("save", "box shop/web");
        let refused = |alias: &str, versions: &[BaseVersionInfo]| {
            base_write_refusal("shop", alias, false, versions, &[]).map(|r| r.reason)
        };
        assert_eq!(refused("fresh", &[]), None);
        assert_eq!(refused("mine", std::slice::from_ref(&mine)), None);
        for (alias, versions) in [
            ("box-base", vec![]),
            ("box-base-v20260101000000", vec![]),
            ("theirs", vec![v("save", "box other/web")]),
            ("imported", vec![v("import", "box shop/web")]),
            ("mixed", vec![mine.clone(), v("import", "")]),
        ] {
            assert_eq!(
                refused(alias, &versions),
                Some(REASON_BASE_NOT_OWNED),
                "{alias}"
            );
        }
        let other = [v("save", "box other/web")];
        assert_eq!(
            base_write_refusal("shop", "box-base", true, &other, &[]),
            None
        );
        assert_eq!(
            base_write_refusal("shop", "theirs", true, &other, &[]),
            None
        );
    }

    #[test]
    fn versions_recorded_in_the_namespaces_own_base_are_its() {
        let mut import = v("import", "docker");
        import.version = "shopbase".into();
        let recorded = vec!["shopbase".to_string()];
        assert_eq!(
            base_write_refusal(
                "shop",
                "shopbase",
                false,
                std::slice::from_ref(&import),
                &recorded
            ),
            None
        );
        let mut other = v("import", "docker");
        other.version = "shopbase-v20260101000000".into();
        assert!(
            base_write_refusal("shop", "shopbase", false, &[import, other], &recorded).is_some()
        );
        // box-base stays shared whatever a status says.
        let mut bb = v("import", "");
        bb.version = "box-base".into();
        assert!(
            base_write_refusal("shop", "box-base", false, &[bb], &["box-base".into()]).is_some()
        );
    }
}
