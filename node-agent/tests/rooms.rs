//! The crate's rooms, checked on its source (issue 13): `sys/` is the one seam to the kernel and
//! the host, so no other module may hold `unsafe` or start a process with `Command::new` (every
//! host program goes through `sys::cmd`); and the module cycles that were closed stay closed.
//! A plain text check, like `grep -rn 'Command::new\|unsafe' node-agent/src`, so it also catches
//! comments that would mislead the next reader.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `(path relative to src/, text)` of every Rust file of the crate.
fn sources() -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    assert!(files.len() > 20, "found only {} files", files.len());
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(src())
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (rel, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

#[test]
fn unsafe_and_command_new_only_in_sys() {
    let mut offenders = Vec::new();
    for (rel, text) in sources() {
        if rel.starts_with("sys/") {
            continue;
        }
        for (i, line) in text.lines().enumerate() {
            if line.contains("unsafe") || line.contains("Command::new") {
                offenders.push(format!("src/{rel}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "outside sys/, no `unsafe` and no `Command::new` (start host programs with \
         sys::cmd::host_command):\n{}",
        offenders.join("\n")
    );
}

#[test]
fn sys_is_where_host_programs_start() {
    let all = sources();
    let cmd = &all.iter().find(|(rel, _)| rel == "sys/cmd.rs").unwrap().1;
    assert!(
        cmd.contains("Command::new"),
        "sys::cmd starts host programs"
    );
    assert!(cmd.contains("env_clear"), "with a cleared environment");
}

/// A module's code without comments and without its unit tests.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn closed_cycles_stay_closed() {
    let all = sources();
    let file = |rel: &str| code(&all.iter().find(|(r, _)| r == rel).unwrap().1);
    // pool <-> bases <-> names: the pool's core and the name checks use none of the objects.
    let names = file("pool/names.rs");
    assert!(!names.contains("crate::pool") && !names.contains("super::"));
    let core = file("pool/mod.rs");
    for object in [
        "bases::",
        "roots::",
        "volumes::",
        "import::",
        "receive::",
        "diff::",
    ] {
        assert!(!core.contains(object), "pool/mod.rs uses {object}");
    }
    // Storage <-> Runtime: the Storage service knows nothing of rpc's other modules.
    let storage = file("rpc/storage.rs");
    assert!(!storage.contains("crate::rpc") && !storage.contains("super::"));
    let runtime = file("rpc/mod.rs");
    assert!(
        !runtime.contains("serve::"),
        "the Runtime service does not use serve"
    );
}
