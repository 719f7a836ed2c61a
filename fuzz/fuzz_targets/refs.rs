//! `cargo fuzz run refs`: the box ref grammar never panics, and what it accepts prints back to
//! the same ref.
#![no_main]

use forkr_crds::validation::parse_ref;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(r) = parse_ref(s) {
        assert_eq!(parse_ref(&r.to_string()), Ok(r.clone()));
        let _ = r.resolve("default", |_| Some(s.to_owned()));
    }
});
