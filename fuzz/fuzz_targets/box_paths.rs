//! `cargo fuzz run box_paths`: box paths and copy arguments never panic, and a normalized path
//! never climbs out of the box root.
#![no_main]

use forkr_crds::validation::{Location, normalize_box_path, parse_copy, parse_location};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(Location::Box(p)) = parse_location(s) {
        assert!(p.path.starts_with('/'));
        assert!(!p.path.split('/').any(|c| c == ".." || c == "."));
    }
    if let Some((a, b)) = s.split_once('\n') {
        let _ = parse_copy(a, b);
    }
    if let Ok(n) = normalize_box_path(s) {
        assert_eq!(normalize_box_path(&n), Ok(n.clone()), "normalizing is idempotent");
    }
});
