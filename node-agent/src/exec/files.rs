//! `4kr cp`, `get` and `put` on the node (001, "cp"): one regular file at a time, its mode kept,
//! its owner kept when the caller is root.
//!
//! Paths resolve inside the box with openat2 RESOLVE_IN_ROOT, so neither `..` nor a symlink
//! (absolute or relative) can reach outside. Files are read and written in the box's root
//! subvolume and its system volumes on the host, not through the running box's mounts: that is
//! why a path under a data-volume mount lands in the root, shadowed by the live mount (001's
//! gotcha), and why copying works whether the box runs or not.
//!
//! A path is walked the way the box would see it: symlinks are followed component by component,
//! each resolved in the root or in the system volume its mount point covers, so a link to
//! `/box/bin` leads into the box-bin volume. That walk is what decides which volume a write
//! lands in, and so where the shared volumes (`/box/bin`, `/box/all`) are refused to a caller
//! without [`BoxFiles::allow_shared_writes`]. Each step still opens with RESOLVE_IN_ROOT, so a
//! symlink swapped during the walk lands in the root at worst, never outside or in a shared
//! volume the walk did not choose.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, IoContext, Result};
use crate::pool::Pool;
use crate::runtime::runner::{SHARED_MOUNTS, SYSTEM_MOUNTS};
use crate::sys;

/// The documented refusal for anything but a regular file (forkr-api's fallback repeats it).
pub use forkr_agent_proto::files::ONLY_FILES;

/// A box's file tree on the host: its root, with the system volumes over their mount points.
#[derive(Debug, Clone)]
pub struct BoxFiles {
    root: PathBuf,
    /// (mount point inside the box, host directory), e.g. ("/home", .../home).
    system: Vec<(String, PathBuf)>,
    /// Whether `put` may write the volumes shared by every project (admin callers only).
    shared_writes: bool,
}

/// How many symlinks one path may pass through, as Linux allows (ELOOP beyond).
const MAX_SYMLINKS: usize = 40;

/// Where a box path lands after the walk.
struct Located {
    dir: OwnedFd,
    rel: PathBuf,
    /// The mount point of the system volume it lands in, `None` for the root.
    volume: Option<String>,
}

/// A file opened for reading, with what `get` reports about it.
pub struct FileRead {
    pub file: std::fs::File,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
}

static PUT_COUNTER: AtomicU64 = AtomicU64::new(0);

impl BoxFiles {
    /// The tree of box `project/name` in `pool`.
    pub fn for_box(pool: &Pool, project: &str, name: &str) -> Result<BoxFiles> {
        let root = pool.root_path(project, name)?;
        let mut vols: Vec<PathBuf> = pool.global_system_volumes();
        vols.extend(pool.ensure_project(project)?);
        let names = crate::pool::GLOBAL_SYSTEM_VOLUMES
            .iter()
            .chain(crate::pool::PROJECT_SYSTEM_VOLUMES.iter());
        let mut system = Vec::new();
        for (vol, path) in names.zip(vols) {
            if let Some((_, at)) = SYSTEM_MOUNTS.iter().find(|(n, _)| n == vol) {
                system.push((at.to_string(), path));
            }
        }
        Ok(BoxFiles::new(root, system))
    }

    /// A tree from explicit parts (Kubernetes mode passes the hostPath directories).
    pub fn new(root: PathBuf, system: Vec<(String, PathBuf)>) -> BoxFiles {
        BoxFiles {
            root,
            system,
            shared_writes: false,
        }
    }

    /// Lets `put` write `/box/bin` and `/box/all`, which every box of every project sees.
    /// forkr-api sets it for admin tokens only; a box itself has them read-only.
    pub fn allow_shared_writes(mut self, yes: bool) -> BoxFiles {
        self.shared_writes = yes;
        self
    }

    /// The directory to resolve in and the path inside it, for a normalized box path with no
    /// symlink left in it: the system volume whose mount point contains it, else the root.
    fn place(&self, parts: &[String]) -> Result<Located> {
        let norm = format!("/{}", parts.join("/"));
        for (at, dir) in &self.system {
            if let Some(rest) = norm.strip_prefix(at.as_str())
                && (rest.is_empty() || rest.starts_with('/'))
            {
                let rest = if rest.is_empty() { "/" } else { rest };
                return Ok(Located {
                    dir: sys::open_dir(dir)?,
                    rel: PathBuf::from(rest),
                    volume: Some(at.clone()),
                });
            }
        }
        Ok(Located {
            dir: sys::open_dir(&self.root)?,
            rel: PathBuf::from(norm),
            volume: None,
        })
    }

    /// Walks `path` as the box sees it: every symlink among its components (the last one too
    /// when `follow_last`) is read and followed, an absolute target from the box's `/`, across
    /// the system volumes' mount points. Missing components end the following; the rest is
    /// taken as written.
    fn locate(&self, path: &str, follow_last: bool) -> Result<Located> {
        let norm = forkr_crds::validation::normalize_box_path(path)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let mut pending: std::collections::VecDeque<String> = norm
            .split('/')
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect();
        let mut done: Vec<String> = Vec::new();
        let mut links = 0;
        while let Some(c) = pending.pop_front() {
            match c.as_str() {
                "" | "." => continue,
                ".." => {
                    done.pop();
                    continue;
                }
                _ => done.push(c),
            }
            if pending.is_empty() && !follow_last {
                break;
            }
            let here = self.place(&done)?;
            let Some(target) = sys::symlink_in_root(&here.dir, &here.rel)? else {
                continue;
            };
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(Error::InvalidArgument(format!(
                    "{path}: too many levels of symbolic links"
                )));
            }
            done.pop();
            let target = target.to_string_lossy().into_owned();
            if target.starts_with('/') {
                done.clear();
            }
            for part in target.split('/').rev() {
                pending.push_front(part.to_owned());
            }
        }
        self.place(&done)
    }

    /// Opens a regular file for reading. Directories get the documented error; devices, FIFOs
    /// and sockets are refused without being opened.
    pub fn get(&self, path: &str) -> Result<FileRead> {
        let Located { dir, rel, .. } = self.locate(path, true)?;
        let probe = sys::open_in_root(&dir, &rel, libc::O_PATH, 0).map_err(|e| missing(e, path))?;
        let md = std::fs::metadata(sys::fd_path(&probe)).ctx("stat", Path::new(path))?;
        if md.is_dir() {
            return Err(Error::InvalidArgument(ONLY_FILES.into()));
        }
        if !md.is_file() {
            return Err(Error::InvalidArgument(format!(
                "{path} is not a regular file; {ONLY_FILES}"
            )));
        }
        let file = std::fs::File::open(sys::fd_path(&probe)).ctx("open", Path::new(path))?;
        Ok(FileRead {
            file,
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            size: md.len(),
        })
    }

    /// Starts writing `path`: the data goes to a temporary file next to it, which `commit`
    /// renames into place (so readers never see half a file). Missing parent directories are
    /// created. `owner` is applied only when given (callers pass it when the user is root).
    ///
    /// Intermediate symlinks are followed as the box would; a symlink at the last component is
    /// replaced by the file, not written through. A path that lands in `/box/bin` or `/box/all`
    /// is refused unless [`BoxFiles::allow_shared_writes`] was given.
    pub fn put(&self, path: &str, mode: u32, owner: Option<(u32, u32)>) -> Result<PendingPut> {
        let Located { dir, rel, volume } = self.locate(path, false)?;
        if let Some(at) = volume.as_deref().filter(|at| SHARED_MOUNTS.contains(at))
            && !self.shared_writes
        {
            return Err(Error::PermissionDenied(format!(
                "{path}: {at} is shared by every project and read-only in boxes; only an admin token may write it (4kr cp with an admin token)"
            )));
        }
        let name = rel
            .file_name()
            .ok_or_else(|| Error::InvalidArgument(ONLY_FILES.into()))?
            .to_os_string();
        match sys::open_in_root(&dir, &rel, libc::O_PATH, 0) {
            Ok(fd) => {
                let md = std::fs::metadata(sys::fd_path(&fd)).ctx("stat", Path::new(path))?;
                if md.is_dir() {
                    return Err(Error::InvalidArgument(ONLY_FILES.into()));
                }
            }
            Err(e) if sys::is_enoent(&e) => {}
            Err(e) => return Err(e),
        }
        let parent_rel = rel.parent().unwrap_or(Path::new("/")).to_path_buf();
        let parent = sys::mkdir_all_in_root(&dir, &parent_rel)?;
        let tmp_name = format!(
            ".forkr-put-{}-{}",
            std::process::id(),
            PUT_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let tmp = sys::open_in_root(
            &dir,
            &parent_rel.join(&tmp_name),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
            0o600,
        )?;
        Ok(PendingPut {
            file: Some(std::fs::File::from(tmp)),
            parent,
            tmp_name,
            name: name.to_string_lossy().into_owned(),
            mode: mode & 0o7777,
            owner,
            written: 0,
            display: path.to_string(),
        })
    }

    /// Writes all of `data` to `path` in one go.
    pub fn put_all(
        &self,
        path: &str,
        mut data: impl Read,
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> Result<u64> {
        let mut p = self.put(path, mode, owner)?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = data.read(&mut buf).ctx("read", Path::new("input"))?;
            if n == 0 {
                break;
            }
            p.write(&buf[..n])?;
        }
        p.commit()
    }
}

fn missing(e: Error, path: &str) -> Error {
    if sys::is_enoent(&e) {
        Error::NotFound(format!("{path}: no such file in the box"))
    } else {
        e
    }
}

/// A file being written by `put`; dropped without `commit`, it leaves nothing behind.
pub struct PendingPut {
    file: Option<std::fs::File>,
    parent: OwnedFd,
    tmp_name: String,
    name: String,
    mode: u32,
    owner: Option<(u32, u32)>,
    written: u64,
    display: String,
}

impl PendingPut {
    /// Appends data.
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        if let Some(f) = &mut self.file {
            f.write_all(data).ctx("write", Path::new(&self.display))?;
            self.written += data.len() as u64;
        }
        Ok(())
    }

    /// Applies mode and owner, then moves the file into place. Returns the bytes written.
    pub fn commit(mut self) -> Result<u64> {
        let Some(f) = self.file.take() else {
            return Ok(self.written);
        };
        let p = Path::new(&self.display);
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::fchown(&f, Some(uid), Some(gid)).ctx("chown", p)?;
        }
        // After chown, which clears setuid bits.
        f.set_permissions(std::fs::Permissions::from_mode(self.mode))
            .ctx("chmod", p)?;
        drop(f);
        let dir = sys::fd_path(&self.parent);
        std::fs::rename(dir.join(&self.tmp_name), dir.join(&self.name)).ctx("rename", p)?;
        Ok(self.written)
    }
}

impl Drop for PendingPut {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            sys::unlink_at(&self.parent, &self.tmp_name);
        }
    }
}
