//! The Runtime service's generated code is checked in (so the agent's build.rs stays as it is);
//! this test regenerates it and fails on drift. `FORKR_REGEN=1` rewrites the file instead.
#![allow(clippy::unwrap_used)]

use std::path::Path;

#[test]
fn generated_runtime_code_matches_the_proto() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let proto = "forkr/runtime/v1/runtime.proto";
    let fds = protox::compile([proto], [crate_dir.join("proto")]).unwrap();
    let out = tempfile::tempdir().unwrap();
    tonic_prost_build::configure()
        .out_dir(out.path())
        .compile_fds(fds)
        .unwrap();
    let fresh = std::fs::read_to_string(out.path().join("forkr.runtime.v1.rs")).unwrap();
    let checked_in = crate_dir.join("src/rpc/gen/forkr.runtime.v1.rs");
    if std::env::var_os("FORKR_REGEN").is_some() {
        std::fs::write(&checked_in, &fresh).unwrap();
    }
    let current = std::fs::read_to_string(&checked_in).unwrap_or_default();
    assert!(
        current == fresh,
        "src/rpc/gen/forkr.runtime.v1.rs is stale: run FORKR_REGEN=1 cargo nextest run -p forkr-node-agent --test runtime_proto"
    );
}
