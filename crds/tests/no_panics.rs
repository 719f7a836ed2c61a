//! No input, however malformed, makes a parser or validator panic.

// Helpers outside #[test] functions panic on broken fixtures too; that is a test failure.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use forkr_crds::validation::*;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parsers_never_panic(s in any::<String>()) {
        let _ = parse_ref(&s);
        let _ = parse_location(&s);
        let _ = parse_copy(&s, "x:/y");
        let _ = parse_data_mount(&s);
        let _ = parse_env_assignment(&s);
        let _ = normalize_box_path(&s);
        let _ = validate_mount_path(&s);
        let _ = cpu_millis(&s);
        let _ = memory_bytes(&s);
        let _ = validate_port(&s);
        let _ = validate_grace(&s);
        let _ = validate_host(&s);
        let _ = publish_host(Some(&s), None, "example.com");
        let _ = validate_base_ref(&s);
        let _ = normalize_project_name(&s);
        let _ = forkr_crds::parse_snapshot_object_name(&s);
        for kind in [NameKind::Box, NameKind::Project, NameKind::Service, NameKind::User, NameKind::Snapshot, NameKind::DataVolume, NameKind::Base] {
            let _ = validate_name(kind, &s);
        }
    }

    #[test]
    fn grammar_shaped_input_never_panics(s in "[-a-zA-Z0-9_.:/~ ]{0,40}") {
        if let Ok(r) = parse_ref(&s) {
            let _ = r.resolve("default", |_| Some(s.clone()));
            // A parsed ref prints back to something that parses to the same ref.
            prop_assert_eq!(parse_ref(&r.to_string()), Ok(r));
        }
        let _ = parse_location(&s);
        let _ = parse_data_mount(&s);
    }

    #[test]
    fn quantities_never_panic(s in "[+-]?[0-9.]{0,45}([numkMGTPE]|[KMGTPE]i|[eE][+-]?[0-9]{1,4})?") {
        let _ = cpu_millis(&s);
        let _ = memory_bytes(&s);
    }

    #[test]
    fn normalized_paths_stay_inside(s in "(/|\\.\\.|\\.|[a-z]{1,3}){0,20}") {
        let p = format!("/{s}");
        let n = normalize_box_path(&p).unwrap();
        prop_assert!(n.starts_with('/'));
        prop_assert!(!n.split('/').any(|c| c == ".." || c == "."), "{}", n);
        prop_assert!(!n.contains("//"));
    }

    #[test]
    fn updates_never_panic(keys in proptest::collection::vec((any::<String>(), any::<String>()), 0..6)) {
        let map: BTreeMap<String, String> = keys.into_iter().collect();
        let _ = parse_box_update(&map, Some(&map));
        let _ = validate_env(&map);
    }
}
