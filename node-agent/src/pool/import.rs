//! Base import: a streamed rootfs `.tar.gz`, extracted into a fresh subvolume or on top of a
//! snapshot of a parent base, checked and frozen read-only.

use std::fs;
use std::io::Read;
use std::path::{Component, Path};

use tar::EntryType;

use super::{names, tree};
use crate::error::{Error, Result};
use crate::pool::bases::BaseOrigin;
use crate::pool::{Intent, Pool};
use crate::sys;

/// What an import records about its base version besides the tarball.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    pub parent: Option<String>,
    pub tag: Option<String>,
    pub builder: Option<String>,
    pub request_id: Option<String>,
    /// The project on whose behalf forkr-api imports (after its ownership check); `None` for
    /// an admin's import. Unlike `builder`, which is the uploader's free text, only the agent's
    /// authenticated callers set it.
    pub owner: Option<String>,
}

/// An io error with its causes, since tar wraps the useful part (e.g. EPERM) in a source.
fn describe(e: &std::io::Error) -> String {
    let mut msg = e.to_string();
    let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(c) = cur {
        msg.push_str(": ");
        msg.push_str(&c.to_string());
        cur = c.source();
    }
    msg
}

fn bad_entry(path: &Path, why: &str) -> Error {
    Error::InvalidArgument(format!("refusing tar entry {}: {why}", path.display()))
}

/// Rejects entry names that are absolute or climb with `..`.
fn check_entry_path(path: &Path) -> Result<()> {
    for c in path.components() {
        match c {
            Component::RootDir | Component::Prefix(_) => {
                return Err(bad_entry(path, "absolute path"));
            }
            Component::ParentDir => return Err(bad_entry(path, "path contains ..")),
            _ => {}
        }
    }
    Ok(())
}

/// Rejects link targets that leave the root: hard links must stay inside; a relative symlink
/// must not climb above the root from where it sits. Absolute symlinks are normal in a rootfs and
/// resolve inside the box, and extraction never follows them (tar checks every parent).
fn check_link(path: &Path, kind: EntryType, target: &Path) -> Result<()> {
    if kind == EntryType::Link {
        return check_entry_path(target)
            .map_err(|_| bad_entry(path, "hard link target leaves the root"));
    }
    if target.is_absolute() {
        return Ok(());
    }
    let mut depth: i64 = path
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count() as i64
        - 1;
    for c in target.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return Err(bad_entry(path, "symlink resolves outside the root"));
        }
    }
    Ok(())
}

/// Extracts a gzipped tar stream into `dst`, keeping modes, owners, xattrs, times and hard links.
pub fn extract(reader: impl Read, dst: &Path) -> Result<()> {
    let tar_err = |e: std::io::Error| Error::InvalidArgument(format!("bad tar.gz stream: {e}"));
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(reader));
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_unpack_xattrs(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    let mut dirs = Vec::new();
    for entry in archive.entries().map_err(tar_err)? {
        let mut entry = entry.map_err(tar_err)?;
        let path = entry.path().map_err(tar_err)?.into_owned();
        check_entry_path(&path)?;
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::Symlink | EntryType::Link) {
            let target = entry
                .link_name()
                .map_err(tar_err)?
                .ok_or_else(|| bad_entry(&path, "link without target"))?
                .into_owned();
            check_link(&path, kind, &target)?;
        }
        if kind == EntryType::Directory {
            // Applied last, like tar does, so read-only directories do not block their children.
            dirs.push(entry);
            continue;
        }
        if path.components().all(|c| matches!(c, Component::CurDir)) {
            continue;
        }
        if matches!(
            kind,
            EntryType::Link | EntryType::Char | EntryType::Block | EntryType::Fifo
        ) {
            remove_existing(dst, &path)?;
        }
        if matches!(kind, EntryType::Char | EntryType::Block | EntryType::Fifo) {
            make_special(&entry, dst, &path)?;
            continue;
        }
        let unpacked = entry.unpack_in(dst).map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Other => {
                bad_entry(&path, &describe(&e))
            }
            // The upload ended or was corrupt in the middle of this entry's data.
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData => {
                Error::InvalidArgument(format!(
                    "bad tar.gz stream at {}: {}",
                    path.display(),
                    describe(&e)
                ))
            }
            _ => Error::Io {
                context: format!("extract {}", path.display()),
                source: e,
            },
        })?;
        if !unpacked {
            return Err(bad_entry(&path, "it escapes the root"));
        }
    }
    for mut dir in dirs {
        let path = dir.path().map_err(tar_err)?.into_owned();
        dir.unpack_in(dst)
            .map_err(|e| bad_entry(&path, &describe(&e)))?;
    }
    Ok(())
}

/// Removes a non-directory that a new entry replaces (hard links and nodes cannot overwrite).
/// The parent is resolved inside the tree, never through a symlink to the host.
fn remove_existing(dst: &Path, path: &Path) -> Result<()> {
    let parent = Path::new("/").join(path.parent().unwrap_or(Path::new("")));
    let (Some(host_parent), Some(name)) = (tree::resolve(dst, &parent, true)?, path.file_name())
    else {
        return Ok(());
    };
    let host = host_parent.join(name);
    match fs::symlink_metadata(&host) {
        Ok(md) if !md.is_dir() => {
            fs::remove_file(&host).map_err(|e| bad_entry(path, &e.to_string()))
        }
        _ => Ok(()),
    }
}

fn make_special<R: Read>(entry: &tar::Entry<'_, R>, dst: &Path, path: &Path) -> Result<()> {
    let h = entry.header();
    let parent = path.parent().unwrap_or(Path::new(""));
    // The parent must already resolve inside the root, as tar checks for its own entries.
    let host_parent = tree::ensure_dir(dst, parent)?;
    let Some(file_name) = path.file_name() else {
        return Err(bad_entry(path, "no file name"));
    };
    let num = |v: std::io::Result<Option<u32>>| v.ok().flatten().unwrap_or(0);
    let mode = h.mode().unwrap_or(0o644) & 0o7777;
    let kind = match h.entry_type() {
        EntryType::Char => libc::S_IFCHR,
        EntryType::Block => libc::S_IFBLK,
        _ => libc::S_IFIFO,
    };
    sys::make_node(
        &host_parent.join(file_name),
        kind | mode,
        num(h.device_major()),
        num(h.device_minor()),
        h.uid().unwrap_or(0) as u32,
        h.gid().unwrap_or(0) as u32,
    )
}

impl Pool {
    /// Imports a rootfs `.tar.gz` as the next version of base `name`, optionally on top of a
    /// parent base. Hostile entries and non-amd64 userlands are refused and leave nothing behind.
    pub fn import_base(
        &self,
        name: &str,
        reader: impl Read,
        opts: &ImportOptions,
    ) -> Result<String> {
        names::component("base", name)?;
        if let Some(p) = &opts.parent {
            names::component("base", p)?;
        }
        if let Some(v) = self.find_request(opts.request_id.as_deref())? {
            return Ok(v);
        }
        self.run(
            Intent::new("import-base", Path::new("bases").join(name)),
            |work| {
                self.step("import: begin")?;
                let (staged, parent) = self.stage_base(work, opts.parent.as_deref())?;
                self.step("import: staged")?;
                extract(reader, &staged)?;
                self.step("import: extracted")?;
                tree::verify_amd64(&staged)?;
                sys::set_read_only(&staged, true)?;
                self.step("import: sealed")?;
                let origin = BaseOrigin {
                    kind: "import".into(),
                    tag: opts.tag.clone(),
                    builder: opts.builder.clone(),
                    owner: opts.owner.clone(),
                    parent,
                    request_id: opts.request_id.clone(),
                    created: None,
                    source_uuid: None,
                };
                let _g = self.lock();
                if let Some(v) = self.find_request(opts.request_id.as_deref())? {
                    return Ok(v);
                }
                self.publish_base(name, &origin, |rel| self.publish(&staged, rel))
            },
        )
    }

    fn find_request(&self, request_id: Option<&str>) -> Result<Option<String>> {
        self.base_by_request_id(request_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths() {
        assert!(check_entry_path(Path::new("./etc/passwd")).is_ok());
        assert!(check_entry_path(Path::new("/etc/passwd")).is_err());
        assert!(check_entry_path(Path::new("etc/../../x")).is_err());
    }

    #[test]
    fn link_targets() {
        let sym = EntryType::Symlink;
        assert!(
            check_link(
                Path::new("etc/localtime"),
                sym,
                Path::new("/usr/share/zoneinfo/UTC")
            )
            .is_ok()
        );
        assert!(check_link(Path::new("usr/lib/x"), sym, Path::new("../../bin/sh")).is_ok());
        assert!(check_link(Path::new("usr/lib/x"), sym, Path::new("../../../etc")).is_err());
        assert!(check_link(Path::new("a"), EntryType::Link, Path::new("../b")).is_err());
        assert!(check_link(Path::new("a"), EntryType::Link, Path::new("/b")).is_err());
    }
}
