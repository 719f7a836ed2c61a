//! Snapshot object names, snapshot auto-names and base version names.

// Helpers outside #[test] functions panic on broken fixtures too; that is a test failure.
#![allow(clippy::unwrap_used)]

use forkr_crds::validation::{validate_base_version, validate_snapshot_name};
use forkr_crds::{
    next_snapshot_name, next_version_name, parse_snapshot_object_name, snapshot_object_name,
};
use proptest::prelude::*;

/// A DNS-1123 subdomain, as Kubernetes checks `metadata.name`.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

#[test]
fn snapshot_object_names_are_readable_when_they_can_be() {
    assert_eq!(
        snapshot_object_name("web-1", "before-upgrade"),
        "web-1.before-upgrade"
    );
    assert_eq!(snapshot_object_name("web-1", "v0"), "web-1.v0");
    // "V0" and "v0" differ, so they must not share an object.
    assert_eq!(snapshot_object_name("web-1", "V0"), "web-1.x.5630");
    assert_eq!(snapshot_object_name("web-1", "x"), "web-1.x");
    assert_eq!(snapshot_object_name("web-1", "a.b"), "web-1.x.612e62");
    let long = snapshot_object_name(&"b".repeat(63), &"_".repeat(63));
    assert!(is_dns_subdomain(&long), "{long}");
    assert_eq!(long.split('.').count(), 4);
}

#[test]
fn non_canonical_object_names_do_not_parse() {
    assert_eq!(
        parse_snapshot_object_name("web.x.7630"),
        None,
        "hex of a plain name is not canonical"
    );
    assert_eq!(parse_snapshot_object_name("web"), None);
    assert_eq!(parse_snapshot_object_name("web.a.b"), None);
    assert_eq!(parse_snapshot_object_name("web.x.zz"), None);
}

fn box_name() -> impl Strategy<Value = String> {
    "[a-z]([-a-z0-9]{0,61}[a-z0-9])?"
}

fn snap_name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_.-]{1,63}".prop_filter("not . or ..", |s| s != "." && s != "..")
}

proptest! {
    #[test]
    fn mapping_is_a_valid_name_and_round_trips(b in box_name(), s in snap_name()) {
        prop_assert!(validate_snapshot_name(&s).is_ok());
        let object = snapshot_object_name(&b, &s);
        prop_assert!(is_dns_subdomain(&object), "{}", object);
        prop_assert_eq!(parse_snapshot_object_name(&object), Some((b, s)));
    }

    #[test]
    fn mapping_never_collides(b1 in box_name(), s1 in snap_name(), b2 in box_name(), s2 in snap_name()) {
        // Round-tripping implies injectivity; this checks it head-on for random pairs too.
        if (b1.as_str(), s1.as_str()) != (b2.as_str(), s2.as_str()) {
            prop_assert_ne!(snapshot_object_name(&b1, &s1), snapshot_object_name(&b2, &s2));
        }
    }

    #[test]
    fn near_collisions_differ(b in box_name(), s in "[a-z0-9]{1,30}") {
        let upper = s.to_uppercase();
        if upper != s {
            prop_assert_ne!(snapshot_object_name(&b, &s), snapshot_object_name(&b, &upper));
        }
        prop_assert_ne!(snapshot_object_name(&b, &s), snapshot_object_name(&b, &format!("{s}_")));
    }
}

#[test]
fn snapshot_auto_names() {
    assert_eq!(next_snapshot_name([]), "v0");
    assert_eq!(next_snapshot_name(["v0"]), "v1");
    assert_eq!(next_snapshot_name(["v0", "v9", "v10", "before"]), "v11");
    assert_eq!(next_snapshot_name(["before", "vx", "v", "v-1"]), "v0");
    assert_eq!(next_snapshot_name(["v2", "v01"]), "v3");
}

#[test]
fn base_versions_follow_the_documents() {
    let now: jiff::Timestamp = "2026-01-01T12:00:00Z".parse().unwrap();
    assert_eq!(next_version_name("my-base", [], now), "my-base");
    let second = next_version_name("my-base", ["my-base"], now);
    assert_eq!(second, "my-base-v20260101120000");
    validate_base_version(&second).unwrap();
    // Two writes in one second still get distinct names.
    assert_eq!(
        next_version_name("my-base", ["my-base", "my-base-v20260101120000"], now),
        "my-base-v20260101120001"
    );
    let longest = next_version_name(&"b".repeat(47), ["x"], now);
    assert_eq!(longest.len(), 63);
    validate_base_version(&longest).unwrap();
}

#[test]
fn base_refs_resolve() {
    use forkr_crds::{BaseStatus, BaseVersion, BaseVersionKind};
    let version = |name: &str, tag: Option<&str>| BaseVersion {
        name: name.into(),
        kind: BaseVersionKind::Build,
        tag: tag.map(Into::into),
        builder: None,
        parent: None,
        size: None,
        created: None,
        nodes: vec![],
    };
    let status = BaseStatus {
        versions: vec![
            version("dev", Some("aaa111")),
            version("dev-v20260101120000", Some("bbb222")),
            version("dev-v20260201120000", Some("aaa111")),
        ],
        ..Default::default()
    };
    let name = |v: Option<&BaseVersion>| v.map(|v| v.name.clone());
    assert_eq!(
        name(status.resolve("dev", "dev", None)).as_deref(),
        Some("dev-v20260201120000")
    );
    assert_eq!(
        name(status.resolve("dev", "dev", Some("dev"))).as_deref(),
        Some("dev")
    );
    assert_eq!(
        name(status.resolve("dev", "dev-v20260101120000", None)).as_deref(),
        Some("dev-v20260101120000")
    );
    assert_eq!(
        name(status.resolve("dev", "dev:bbb", None)).as_deref(),
        Some("dev-v20260101120000")
    );
    assert_eq!(
        name(status.resolve("dev", "dev:aaa1", None)).as_deref(),
        Some("dev-v20260201120000")
    );
    assert_eq!(name(status.resolve("dev", "dev:ccc", None)), None);
    assert_eq!(name(status.resolve("dev", "other:aaa", None)), None);
    assert_eq!(name(status.resolve("dev", "dev-v1", None)), None);
    assert_eq!(forkr_crds::script_tag("FROM ubuntu:24.04\n").len(), 64);
}
