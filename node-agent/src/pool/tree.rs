//! Looking at files inside a box or base tree as the box sees them: absolute symlinks resolve
//! against the tree's root, never against the host's. Import and diff use it on trees in the
//! pool (a running box's files go through `sys::open_in_root` instead).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, IoContext, Result};

const MAX_SYMLINK_HOPS: usize = 40;

/// Resolves absolute `path` inside `root` with chroot semantics. Intermediate symlinks are
/// followed; the last one only with `follow_last`. `None` when something on the way is missing.
pub fn resolve(root: &Path, path: &Path, follow_last: bool) -> Result<Option<PathBuf>> {
    let mut pending: VecDeque<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect();
    let mut cur = PathBuf::new();
    let mut hops = 0;
    while let Some(part) = pending.pop_front() {
        if part == ".." {
            cur.pop();
            continue;
        }
        let candidate = cur.join(&part);
        let host = root.join(&candidate);
        let Ok(md) = fs::symlink_metadata(&host) else {
            return Ok(None);
        };
        if md.file_type().is_symlink() && (follow_last || !pending.is_empty()) {
            hops += 1;
            if hops > MAX_SYMLINK_HOPS {
                return Err(Error::InvalidArgument(format!(
                    "too many levels of symbolic links at {}",
                    path.display()
                )));
            }
            let target = fs::read_link(&host).ctx("read link", &host)?;
            if target.is_absolute() {
                cur = PathBuf::new();
            }
            for c in target.components().rev() {
                match c {
                    Component::Normal(n) => pending.push_front(n.to_os_string()),
                    Component::ParentDir => pending.push_front(OsString::from("..")),
                    _ => {}
                }
            }
            continue;
        }
        cur = candidate;
    }
    Ok(Some(root.join(cur)))
}

/// The architecture of an ELF file, from its header: (64-bit, machine name).
fn elf_arch(head: &[u8]) -> Option<String> {
    if head.len() < 20 || &head[..4] != b"\x7fELF" {
        return None;
    }
    let bits = match head[4] {
        1 => 32,
        2 => 64,
        _ => return None,
    };
    let machine = match head[5] {
        2 => u16::from_be_bytes([head[18], head[19]]),
        _ => u16::from_le_bytes([head[18], head[19]]),
    };
    let name = match (machine, bits) {
        (62, 64) => "amd64".to_string(),
        (62, _) => "x32".to_string(),
        (3, _) => "386".to_string(),
        (183, _) => "arm64".to_string(),
        (40, _) => "arm".to_string(),
        (243, 64) => "riscv64".to_string(),
        (21, _) => "ppc64".to_string(),
        (22, _) => "s390x".to_string(),
        (8, _) => "mips".to_string(),
        (m, b) => format!("ELF machine {m} ({b}-bit)"),
    };
    Some(name)
}

/// Binaries that every usable root has; the first present one decides the architecture.
const PROBES: [&str; 3] = ["/bin/sh", "/usr/bin/env", "/bin/busybox"];

/// Checks that the tree at `root` is an amd64 userland, naming what was found otherwise.
pub fn verify_amd64(root: &Path) -> Result<()> {
    for probe in PROBES {
        let Some(host) = resolve(root, Path::new(probe), true)? else {
            continue;
        };
        if !host.is_file() {
            continue;
        }
        let mut head = [0u8; 20];
        let n = fs::File::open(&host)
            .and_then(|mut f| f.read(&mut head))
            .ctx("read", &host)?;
        return match elf_arch(&head[..n]) {
            Some(arch) if arch == "amd64" => Ok(()),
            Some(arch) => Err(Error::InvalidArgument(format!(
                "base architecture mismatch: expected amd64, found {arch} ({probe})"
            ))),
            None => Err(Error::InvalidArgument(format!(
                "base architecture mismatch: expected amd64, {probe} is not an ELF binary"
            ))),
        };
    }
    Err(Error::InvalidArgument(format!(
        "cannot verify the base architecture: the image has none of {}",
        PROBES.join(", ")
    )))
}

/// Makes sure the directory `rel` exists inside `root`, creating missing parts with chroot
/// semantics (symlinks on the way resolve inside the root), and returns its host path.
pub fn ensure_dir(root: &Path, rel: &Path) -> Result<PathBuf> {
    let mut host = root.to_path_buf();
    let mut so_far = PathBuf::from("/");
    for c in rel.components() {
        let Component::Normal(name) = c else { continue };
        so_far.push(name);
        host = match resolve(root, &so_far, true)? {
            Some(p) => p,
            None => {
                let p = host.join(name);
                fs::create_dir(&p).ctx("create", &p)?;
                p
            }
        };
        if !host.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "{} is not a directory",
                so_far.display()
            )));
        }
    }
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(class: u8, machine: u16) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = class;
        h[5] = 1;
        h[18..20].copy_from_slice(&machine.to_le_bytes());
        h
    }

    #[test]
    fn elf_machines() {
        assert_eq!(elf_arch(&header(2, 62)).as_deref(), Some("amd64"));
        assert_eq!(elf_arch(&header(2, 183)).as_deref(), Some("arm64"));
        assert_eq!(elf_arch(b"#!/bin/sh\n echo hi there"), None);
    }

    #[test]
    fn resolves_with_chroot_semantics() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        fs::write(root.join("usr/bin/dash"), header(2, 62)).unwrap();
        std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
        std::os::unix::fs::symlink("/usr/bin/dash", root.join("usr/bin/sh")).unwrap();
        std::os::unix::fs::symlink("../../../../../../etc", root.join("usr/escape")).unwrap();
        let sh = resolve(root, Path::new("/bin/sh"), true).unwrap().unwrap();
        assert_eq!(sh, root.join("usr/bin/dash"));
        let link = resolve(root, Path::new("/bin/sh"), false).unwrap().unwrap();
        assert_eq!(link, root.join("usr/bin/sh"));
        // `..` cannot climb out of the root.
        let esc = resolve(root, Path::new("/usr/escape"), true).unwrap();
        assert_eq!(esc, None);
        verify_amd64(root).unwrap();
    }
}
