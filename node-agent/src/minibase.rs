//! A tiny real base built from the host's own binaries: busybox-static, tini and bash with its
//! libraries. Boxes made from it boot exactly like boxes of `box-base` (tini as PID 1, a login
//! bash, /etc/profile.d), in a few megabytes and with no download, so tests of every crate and
//! quick local trials can use it. The tarball is cached by a hash of its inputs.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};

/// Bump when the layout below changes, so that cached tarballs are rebuilt.
const LAYOUT_VERSION: &str = "forkr-minibase-1";

/// Host files the base is made of (Debian packages busybox-static, bash, tini).
const BUSYBOX: &str = "/usr/bin/busybox";
const BASH: &str = "/usr/bin/bash";
const TINI: &str = "/usr/bin/tini-static";

fn libs_of(bin: &str) -> Result<Vec<PathBuf>> {
    let out = crate::sys::cmd::host_command(crate::sys::cmd::HostBin::Ldd)?
        .arg(bin)
        .output()
        .ctx("run ldd on", Path::new(bin))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(PathBuf::from)
        .collect())
}

fn read(p: &Path) -> Result<Vec<u8>> {
    std::fs::read(p).ctx("read", p)
}

/// The tiny base as a `.tar.gz` under `cache_dir`, built on first use. Safe to call from
/// several processes at once: each builds under its own temporary name and renames into place.
pub fn tarball(cache_dir: &Path) -> Result<PathBuf> {
    let libs = libs_of(BASH)?;
    let mut h = Sha256::new();
    h.update(LAYOUT_VERSION);
    for p in [BUSYBOX, BASH, TINI]
        .iter()
        .map(Path::new)
        .chain(libs.iter().map(PathBuf::as_path))
    {
        h.update(p.to_string_lossy().as_bytes());
        h.update(read(p)?);
    }
    let key = hex::encode(&h.finalize()[..8]);
    let out = cache_dir.join(format!("minibase-{key}.tar.gz"));
    if out.exists() {
        return Ok(out);
    }
    std::fs::create_dir_all(cache_dir).ctx("create", cache_dir)?;
    let tmp = cache_dir.join(format!(".minibase-{key}-{}.tmp", std::process::id()));
    build(&tmp, &libs)?;
    std::fs::rename(&tmp, &out).ctx("rename", &out)?;
    Ok(out)
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h
}

struct Tar(tar::Builder<flate2::write::GzEncoder<std::fs::File>>);

fn tar_err(e: std::io::Error) -> Error {
    Error::Io {
        context: "write the minibase tarball".into(),
        source: e,
    }
}

impl Tar {
    fn dir(&mut self, p: &str, mode: u32) -> Result<()> {
        let mut h = header(tar::EntryType::Directory, mode, 0);
        self.0.append_data(&mut h, p, &[][..]).map_err(tar_err)
    }
    fn file(&mut self, p: &str, data: &[u8], mode: u32) -> Result<()> {
        let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
        self.0.append_data(&mut h, p, data).map_err(tar_err)
    }
    fn symlink(&mut self, p: &str, target: &str) -> Result<()> {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        self.0.append_link(&mut h, p, target).map_err(tar_err)
    }
}

const DIRS: &[&str] = &[
    "usr",
    "usr/bin",
    "usr/sbin",
    "usr/lib",
    "usr/lib64",
    "etc",
    "etc/profile.d",
    "root",
    "home",
    "work",
    "proc",
    "sys",
    "dev",
    "run",
    "box",
];

const FILES: &[(&str, &str)] = &[
    (
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n",
    ),
    ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
    (
        "etc/nsswitch.conf",
        "passwd: files\ngroup: files\nhosts: files dns\n",
    ),
    (
        "etc/profile",
        "for f in /etc/profile.d/*.sh; do [ -r \"$f\" ] && . \"$f\"; done\nunset f\n",
    ),
    (
        "etc/profile.d/forks-path.sh",
        "export PATH=\"$HOME/.local/bin:/box/proj/bin:/box/bin:$PATH\"\nexport FORKR_PROFILE_RAN=1\n",
    ),
    ("etc/bash.bashrc", "# base bashrc\n"),
    ("etc/hostname", "base\n"),
];

fn build(out: &Path, libs: &[PathBuf]) -> Result<()> {
    let f = std::fs::File::create(out).ctx("create", out)?;
    let mut t = Tar(tar::Builder::new(flate2::write::GzEncoder::new(
        f,
        flate2::Compression::fast(),
    )));
    for d in DIRS {
        t.dir(d, 0o755)?;
    }
    t.dir("tmp", 0o1777)?;
    // usr-merged, as Ubuntu 24.04 is.
    for (l, target) in [
        ("bin", "usr/bin"),
        ("sbin", "usr/sbin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
    ] {
        t.symlink(l, target)?;
    }
    t.file("usr/bin/busybox", &read(Path::new(BUSYBOX))?, 0o755)?;
    t.file("usr/bin/bash", &read(Path::new(BASH))?, 0o755)?;
    t.file("usr/bin/tini", &read(Path::new(TINI))?, 0o755)?;
    let list = crate::sys::cmd::host_command(crate::sys::cmd::HostBin::Busybox)?
        .arg("--list")
        .output()
        .ctx("run", Path::new(BUSYBOX))?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if ["bash", "busybox", "sh"].contains(&applet) || applet.contains('/') {
            continue;
        }
        t.symlink(&format!("usr/bin/{applet}"), "busybox")?;
    }
    t.symlink("usr/bin/sh", "bash")?;
    let mut dirs = std::collections::BTreeSet::new();
    for lib in libs {
        let rel = lib
            .strip_prefix("/")
            .unwrap_or(lib)
            .to_string_lossy()
            .into_owned();
        let rel = if rel.starts_with("usr/") {
            rel
        } else {
            format!("usr/{rel}")
        };
        let parent = Path::new(&rel)
            .parent()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        if dirs.insert(parent.clone()) && parent != "usr/lib64" && parent != "usr/lib" {
            t.dir(&parent, 0o755)?;
        }
        t.file(&rel, &read(lib)?, 0o755)?;
    }
    for (p, body) in FILES {
        t.file(p, body.as_bytes(), 0o644)?;
    }
    let enc = t.0.into_inner().map_err(tar_err)?;
    enc.finish().map_err(tar_err)?.flush().ctx("flush", out)
}
