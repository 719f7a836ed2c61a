//! Receiving a btrfs send stream into a new base version: the other half of base replication.
//!
//! The stream is applied by this crate (as `btrfs receive` would) into a staged subvolume: empty
//! for a full stream, a snapshot of the local parent version for an incremental one. Every path
//! in the stream must be relative without `..`, and its parent directories must be real
//! directories inside the staged tree, so a hostile peer cannot write outside it.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use super::names;
use crate::error::{Error, IoContext, Result};
use crate::pool::bases::BaseOrigin;
use crate::pool::sendstream::{self, Command, attr, cmd};
use crate::pool::{Intent, Pool};
use crate::sys;

fn bad(what: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("bad replication stream: {what}"))
}

/// Where a received stream lands and what it may clone from.
struct Target {
    root: PathBuf,
    /// The local parent version, the only other subvolume a clone may read from.
    parent: Option<(Vec<u8>, PathBuf)>,
}

impl Target {
    /// Host path for a stream path, after checking it stays inside and its parents are
    /// directories (not symlinks).
    fn host(&self, rel: &Path) -> Result<PathBuf> {
        // An empty path is the subvolume's top directory (its owner, mode and times).
        let mut host = self.root.clone();
        let mut parts = rel.components().peekable();
        while let Some(c) = parts.next() {
            let Component::Normal(name) = c else {
                return Err(bad(format!("path {} leaves the tree", rel.display())));
            };
            host.push(name);
            if parts.peek().is_some() {
                let md = fs::symlink_metadata(&host).ctx("stat", &host)?;
                if !md.is_dir() {
                    return Err(bad(format!("{} is not a directory", rel.display())));
                }
            }
        }
        Ok(host)
    }

    fn path_attr(&self, c: &Command, ty: u16) -> Result<PathBuf> {
        let p = c
            .path(ty)
            .ok_or_else(|| bad(format!("command {} without path", c.kind)))?;
        self.host(&p)
    }

    /// Like `path_attr` for commands that open or chmod their target, which would follow a
    /// symlink the stream planted there. Only this receive writes to the staged tree, so the
    /// check cannot be raced.
    fn no_symlink_attr(&self, c: &Command, ty: u16) -> Result<PathBuf> {
        let p = self.path_attr(c, ty)?;
        if fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(bad(format!(
                "command {} goes through symlink {}",
                c.kind,
                p.display()
            )));
        }
        Ok(p)
    }
}

fn io_bad(e: std::io::Error) -> Error {
    bad(e)
}

/// Applies one command to the staged tree. Commands this reader does not know would change the
/// tree in ways it cannot reproduce, so they fail the receive rather than being skipped.
fn apply(t: &Target, c: &Command) -> Result<()> {
    match c.kind {
        cmd::MKFILE | cmd::MKDIR | cmd::MKNOD | cmd::MKFIFO | cmd::MKSOCK | cmd::SYMLINK => {
            create(t, c)
        }
        cmd::RENAME | cmd::LINK | cmd::UNLINK | cmd::RMDIR => relink(t, c),
        cmd::WRITE | cmd::CLONE | cmd::TRUNCATE => data(t, c),
        cmd::SET_XATTR | cmd::REMOVE_XATTR | cmd::CHMOD | cmd::CHOWN | cmd::UTIMES => {
            attributes(t, c)
        }
        cmd::UPDATE_EXTENT => Err(bad("metadata-only stream cannot be received")),
        other => Err(bad(format!("unsupported command {other}"))),
    }
}

fn create(t: &Target, c: &Command) -> Result<()> {
    let p = t.path_attr(c, attr::PATH)?;
    match c.kind {
        cmd::MKFILE => File::create_new(&p).map(drop).ctx("create", &p),
        cmd::MKDIR => fs::create_dir(&p).ctx("create", &p),
        cmd::SYMLINK => {
            let target = c
                .path(attr::PATH_LINK)
                .ok_or_else(|| bad("symlink without target"))?;
            std::os::unix::fs::symlink(&target, &p).ctx("symlink", &p)
        }
        _ => {
            let mode = c.u64(attr::MODE).map_err(io_bad)? as u32;
            let rdev = c.u64(attr::RDEV).unwrap_or(0);
            sys::make_node(&p, mode, libc::major(rdev), libc::minor(rdev), 0, 0)
        }
    }
}

fn relink(t: &Target, c: &Command) -> Result<()> {
    let p = t.path_attr(c, attr::PATH)?;
    match c.kind {
        cmd::RENAME => {
            let to = t.path_attr(c, attr::PATH_TO)?;
            fs::rename(&p, &to).ctx("rename", &p)
        }
        cmd::LINK => {
            let existing = t.path_attr(c, attr::PATH_LINK)?;
            fs::hard_link(&existing, &p).ctx("link", &p)
        }
        cmd::UNLINK => fs::remove_file(&p).ctx("unlink", &p),
        _ => fs::remove_dir(&p).ctx("rmdir", &p),
    }
}

fn data(t: &Target, c: &Command) -> Result<()> {
    if c.kind == cmd::CLONE {
        return clone(t, c);
    }
    let p = t.no_symlink_attr(c, attr::PATH)?;
    let f = OpenOptions::new().write(true).open(&p).ctx("open", &p)?;
    if c.kind == cmd::TRUNCATE {
        let size = c.u64(attr::SIZE).map_err(io_bad)?;
        return f.set_len(size).ctx("truncate", &p);
    }
    let off = c.u64(attr::FILE_OFFSET).map_err(io_bad)?;
    f.write_all_at(c.attr(attr::DATA).unwrap_or_default(), off)
        .ctx("write", &p)
}

fn attributes(t: &Target, c: &Command) -> Result<()> {
    let xattr_name = || -> Result<&str> {
        let name = c
            .attr(attr::XATTR_NAME)
            .ok_or_else(|| bad("xattr without name"))?;
        std::str::from_utf8(name).map_err(|_| bad("xattr name is not UTF-8"))
    };
    match c.kind {
        cmd::SET_XATTR => {
            let p = t.path_attr(c, attr::PATH)?;
            sys::set_xattr(
                &p,
                xattr_name()?,
                c.attr(attr::XATTR_DATA).unwrap_or_default(),
            )
        }
        cmd::REMOVE_XATTR => sys::remove_xattr(&t.path_attr(c, attr::PATH)?, xattr_name()?),
        cmd::CHMOD => {
            let p = t.no_symlink_attr(c, attr::PATH)?;
            let mode = c.u64(attr::MODE).map_err(io_bad)? as u32;
            fs::set_permissions(&p, fs::Permissions::from_mode(mode & 0o7777)).ctx("chmod", &p)
        }
        cmd::CHOWN => {
            let (uid, gid) = (
                c.u64(attr::UID).map_err(io_bad)?,
                c.u64(attr::GID).map_err(io_bad)?,
            );
            sys::lchown(&t.path_attr(c, attr::PATH)?, uid as u32, gid as u32)
        }
        _ => {
            let (atime, mtime) = (
                c.time(attr::ATIME).map_err(io_bad)?,
                c.time(attr::MTIME).map_err(io_bad)?,
            );
            sys::set_times(&t.path_attr(c, attr::PATH)?, atime, mtime)
        }
    }
}

/// A clone reads from the tree being received or from the local parent.
fn clone(t: &Target, c: &Command) -> Result<()> {
    let dst = t.no_symlink_attr(c, attr::PATH)?;
    let off = c.u64(attr::FILE_OFFSET).map_err(io_bad)?;
    let len = c.u64(attr::CLONE_LEN).map_err(io_bad)?;
    let src_off = c.u64(attr::CLONE_OFFSET).map_err(io_bad)?;
    let src_rel = c
        .path(attr::CLONE_PATH)
        .ok_or_else(|| bad("clone without source"))?;
    let uuid = c.attr(attr::CLONE_UUID).unwrap_or_default();
    let src = match &t.parent {
        Some((parent_uuid, parent_root)) if parent_uuid.as_slice() == uuid => Target {
            root: parent_root.clone(),
            parent: None,
        }
        .host(&src_rel)?,
        _ => t.host(&src_rel)?,
    };
    if fs::symlink_metadata(&src).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(bad(format!(
            "clone source {} is a symlink",
            src_rel.display()
        )));
    }
    let s = File::open(&src).ctx("open", &src)?;
    let d = OpenOptions::new()
        .write(true)
        .open(&dst)
        .ctx("open", &dst)?;
    sys::copy_range(&s, src_off, &d, off, len).ctx("clone into", &dst)
}

/// Provenance of a received version, as the sending node recorded it.
#[derive(Debug, Clone, Default)]
pub struct ReceivedVersion {
    /// Exact version name, kept identical across nodes so pinned boxes resolve everywhere.
    pub version: String,
    pub name: String,
    pub kind: String,
    pub tag: Option<String>,
    pub builder: Option<String>,
    pub owner: Option<String>,
    pub parent: Option<String>,
    pub created: Option<String>,
}

impl Pool {
    /// Receives a send stream as base version `info.version`, incrementally onto the local
    /// version `incremental_from` when given. Receiving a version that exists is a no-op.
    pub fn receive_base(
        &self,
        info: &ReceivedVersion,
        incremental_from: Option<&str>,
        stream: impl Read,
    ) -> Result<String> {
        names::component("base", &info.version)?;
        names::component("base", &info.name)?;
        let rel = Path::new("bases").join(&info.version);
        if sys::is_subvolume(&self.abs(&rel))? {
            return Ok(info.version.clone());
        }
        self.run(Intent::new("receive-base", &rel), |work| {
            self.step("receive: begin")?;
            let staged = work.stage(&rel, "new")?;
            let mut r = BufReader::with_capacity(1 << 20, stream);
            sendstream::read_header(&mut r).map_err(io_bad)?;
            let first = sendstream::read_command(&mut r)
                .map_err(io_bad)?
                .ok_or_else(|| bad("empty stream"))?;
            let parent = match (first.kind, incremental_from) {
                (cmd::SUBVOL, None) => {
                    sys::create_subvolume(&staged)?;
                    None
                }
                (cmd::SNAPSHOT, Some(local)) => {
                    let uuid = first.attr(attr::CLONE_UUID).unwrap_or_default().to_vec();
                    if self.base_identity(local)? != hex::encode(&uuid) {
                        return Err(Error::FailedPrecondition(format!(
                            "local base {local:?} is not the tree the stream was computed against; pull it in full"
                        )));
                    }
                    let local = self.base_path(local)?;
                    sys::snapshot_flat(&local, &staged, false)?;
                    Some((uuid, local))
                }
                (cmd::SNAPSHOT, None) => {
                    return Err(bad("incremental stream but no local parent was named"));
                }
                _ => return Err(bad("stream does not start with a subvolume")),
            };
            let sent_uuid = hex::encode(first.attr(attr::UUID).unwrap_or_default());
            let target = Target {
                root: staged.clone(),
                parent,
            };
            self.step("receive: staged")?;
            while let Some(c) = sendstream::read_command(&mut r).map_err(io_bad)? {
                if c.kind == cmd::END {
                    break;
                }
                apply(&target, &c)?;
            }
            sys::set_read_only(&staged, true)?;
            self.step("receive: sealed")?;
            let origin = BaseOrigin {
                kind: info.kind.clone(),
                tag: info.tag.clone(),
                builder: info.builder.clone(),
                owner: info.owner.clone(),
                parent: info.parent.clone(),
                request_id: None,
                created: info.created.clone(),
                source_uuid: Some(sent_uuid),
            };
            let _g = self.lock();
            self.publish_base_as(&info.name, &info.version, &origin, |rel| {
                self.publish(&staged, rel)
            })
        })
    }
}
