//! Issue 12, "Exec runs host binaries by the request's PATH": the box's and the request's
//! environment reach only the processes inside the box. nsenter (root, in the host's mount
//! namespace) runs by absolute path with a fixed environment, so neither a PATH pointing into
//! the box's root on the host, nor LD_PRELOAD / LD_DEBUG, steer what the host runs or loads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod rtkit;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use forkr_node_agent::exec::ExecRequest;
use forkr_node_agent::runtime::BoxSpec;
use rtkit::{Rt, exec_req};

/// A host directory for markers; it does not exist inside any box (the box's /tmp is its own).
fn host_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("forkr-hostenv-")
        .tempdir()
        .unwrap()
}

/// Plants `<root>/opt/x/nsenter`, a script that would leave `marker` on the host if the host
/// ever ran it. Returns the host directory that holds it (for a PATH).
fn plant_fake_nsenter(root: &Path, marker: &Path) -> PathBuf {
    let dir = root.join("opt/x");
    std::fs::create_dir_all(&dir).unwrap();
    let fake = dir.join("nsenter");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\necho pwned > {}\nexit 0\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// A shared library that leaves `marker` on the host when any process loads it.
fn build_preload(dir: &Path, marker: &Path) -> PathBuf {
    let src = dir.join("preload.c");
    let so = dir.join("preload.so");
    std::fs::write(
        &src,
        format!(
            "#include <fcntl.h>\n#include <unistd.h>\n\
             __attribute__((constructor)) static void mark(void) {{\n\
             int fd = open(\"{}\", O_WRONLY | O_CREAT, 0644); if (fd >= 0) close(fd); }}\n",
            marker.display()
        ),
    )
    .unwrap();
    let st = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&so)
        .arg(&src)
        .status()
        .expect("a C compiler (cc) to build the preload library");
    assert!(st.success(), "cc failed");
    so
}

fn loader_traces(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ld."))
        .collect()
}

#[test]
fn a_request_path_into_the_box_root_never_picks_the_host_nsenter() {
    let rt = Rt::new();
    let pid = rt.boot(&BoxSpec::new("p", "path")).pid.unwrap();
    let host = host_dir();
    let marker = host.path().join("ran-on-host");
    let fake_dir = plant_fake_nsenter(&rt.root("p", "path"), &marker);
    let out = exec_req(
        pid,
        &ExecRequest {
            args: vec!["echo".into(), "inside".into()],
            env: vec![("PATH".into(), format!("{}:/usr/bin", fake_dir.display()))],
            ..Default::default()
        },
        b"",
    );
    assert!(
        !marker.exists(),
        "the box's nsenter ran on the host as root"
    );
    assert_eq!((out.code, out.stdout.as_str()), (0, "inside\n"), "{out:?}");
}

#[test]
fn loader_variables_reach_the_box_and_not_the_host() {
    let rt = Rt::new();
    let pid = rt.boot(&BoxSpec::new("p", "ld")).pid.unwrap();
    let host = host_dir();
    let marker = host.path().join("preloaded-on-host");
    let so = build_preload(host.path(), &marker);
    let trace = host.path().join("ld");
    let out = exec_req(
        pid,
        &ExecRequest {
            // Builtins only, into a file: the box's own loader traces (LD_DEBUG) go to stdout.
            args: vec!["echo \"$LD_DEBUG|$LD_PRELOAD\" > /seen".into()],
            sh: true,
            env: vec![
                ("LD_PRELOAD".into(), so.display().to_string()),
                ("LD_DEBUG".into(), "libs".into()),
                ("LD_DEBUG_OUTPUT".into(), trace.display().to_string()),
            ],
            ..Default::default()
        },
        b"",
    );
    assert!(
        !marker.exists(),
        "a host process loaded the request's LD_PRELOAD"
    );
    assert_eq!(
        loader_traces(host.path()),
        Vec::<String>::new(),
        "the host loader obeyed the request's LD_DEBUG"
    );
    assert_eq!(out.code, 0, "{out:?}");
    // Inside the box both variables are set, as asked.
    assert_eq!(
        std::fs::read_to_string(rt.root("p", "ld").join("seen")).unwrap(),
        format!("libs|{}\n", so.display())
    );
}

#[test]
fn a_box_created_with_path_and_preload_does_not_steer_later_execs() {
    let rt = Rt::new();
    let host = host_dir();
    let marker = host.path().join("ran-on-host");
    let preload_marker = host.path().join("preloaded-on-host");
    let so = build_preload(host.path(), &preload_marker);
    // The root exists before the box starts, so its host path can go into the box's env.
    rt.pool.create_root("p", "boxenv", &rt.base).unwrap();
    let fake_dir = plant_fake_nsenter(&rt.root("p", "boxenv"), &marker);
    let mut spec = BoxSpec::new("p", "boxenv");
    spec.env = BTreeMap::from([
        (
            "PATH".to_string(),
            format!("{}:/usr/bin", fake_dir.display()),
        ),
        ("LD_PRELOAD".to_string(), so.display().to_string()),
        ("LD_DEBUG".to_string(), "libs".to_string()),
        (
            "LD_DEBUG_OUTPUT".to_string(),
            host.path().join("ld").display().to_string(),
        ),
    ]);
    let pid = rt.rt.start(&spec).expect("start box").pid.unwrap();
    let seen = rt.root("p", "boxenv").join("seen");
    for env in [
        // A plain exec, as the box's owner would run it.
        vec![],
        // A request that sets its own variable still gets the box's.
        vec![("OTHER".to_string(), "1".to_string())],
    ] {
        let _ = std::fs::remove_file(&seen);
        let req = ExecRequest {
            args: vec!["echo \"$LD_DEBUG|$PATH\" > /seen".into()],
            sh: true,
            env,
            ..Default::default()
        };
        let out = exec_req(pid, &req, b"");
        assert!(!marker.exists(), "the box's nsenter ran on the host");
        assert!(
            !preload_marker.exists(),
            "a host process loaded the box's LD_PRELOAD"
        );
        assert_eq!(out.code, 0, "{out:?}");
        let inside = std::fs::read_to_string(&seen).unwrap();
        assert!(inside.starts_with("libs|"), "{inside:?}");
    }
    assert!(!marker.exists(), "the box's nsenter ran on the host");
    assert!(
        !preload_marker.exists(),
        "a host process (nsenter or the runner) loaded the box's LD_PRELOAD"
    );
    assert_eq!(loader_traces(host.path()), Vec::<String>::new());
}

#[test]
fn env_names_a_shell_cannot_export_are_refused() {
    let rt = Rt::new();
    let pid = rt.boot(&BoxSpec::new("p", "names")).pid.unwrap();
    for bad in ["A B", "1X", "X-Y", ""] {
        let r = forkr_node_agent::exec::command(
            &forkr_node_agent::exec::Target::new(pid),
            &ExecRequest {
                args: vec!["true".into()],
                env: vec![(bad.into(), "v".into())],
                ..Default::default()
            },
            forkr_node_agent::exec::Stdio3::Pipes,
        );
        assert!(
            matches!(r, Err(forkr_node_agent::Error::InvalidArgument(_))),
            "{bad:?} accepted"
        );
    }
}

#[test]
fn exact_values_cross_into_the_box_unchanged() {
    let rt = Rt::new();
    let pid = rt.boot(&BoxSpec::new("p", "vals")).pid.unwrap();
    let nasty = "a b\n'q' \"d\" $HOME `id` \\ = ;|&";
    let out = exec_req(
        pid,
        &ExecRequest {
            args: vec!["printf %s \"$V\"; printf '|%s' \"$EMPTY\" \"${LC_ALL-unset}\"".into()],
            sh: true,
            env: vec![("V".into(), nasty.into()), ("EMPTY".into(), String::new())],
            ..Default::default()
        },
        b"",
    );
    // LC_ALL=C of the host helper environment does not leak into the box either.
    assert_eq!(out.stdout, format!("{nasty}||unset"), "{out:?}");
}
