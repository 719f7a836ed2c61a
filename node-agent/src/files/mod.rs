//! `4kr cp`, `get` and `put` on the node (001, "cp"): one regular file at a time, its mode kept,
//! its owner kept when the caller is root.
//!
//! Paths resolve inside the box with openat2 RESOLVE_IN_ROOT, so neither `..` nor a symlink
//! (absolute or relative) can reach outside. Files are read and written in the box's root
//! subvolume and its system volumes on the host, not through the running box's mounts: that is
//! why a path under a data-volume mount lands in the root, shadowed by the live mount (001's
//! gotcha), and why copying works whether the box runs or not.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, IoContext, Result};
use crate::oskit;
use crate::pool::Pool;
use crate::runner::SYSTEM_MOUNTS;

/// The documented refusal for anything but a regular file.
pub const ONLY_FILES: &str = "only files are supported (directories require -r, not yet supported)";

/// A box's file tree on the host: its root, with the system volumes over their mount points.
#[derive(Debug, Clone)]
pub struct BoxFiles {
    root: PathBuf,
    /// (mount point inside the box, host directory), e.g. ("/home", .../home).
    system: Vec<(String, PathBuf)>,
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
        BoxFiles { root, system }
    }

    /// The directory to resolve in and the path inside it: the system volume whose mount point
    /// contains `path`, else the root.
    fn locate(&self, path: &str) -> Result<(OwnedFd, PathBuf)> {
        let norm = forkr_crds::validation::normalize_box_path(path)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        for (at, dir) in &self.system {
            if let Some(rest) = norm.strip_prefix(at.as_str())
                && (rest.is_empty() || rest.starts_with('/'))
            {
                let rest = if rest.is_empty() { "/" } else { rest };
                return Ok((oskit::open_dir(dir)?, PathBuf::from(rest)));
            }
        }
        Ok((oskit::open_dir(&self.root)?, PathBuf::from(norm)))
    }

    /// Opens a regular file for reading. Directories get the documented error; devices, FIFOs
    /// and sockets are refused without being opened.
    pub fn get(&self, path: &str) -> Result<FileRead> {
        let (dir, rel) = self.locate(path)?;
        let probe =
            oskit::open_in_root(&dir, &rel, libc::O_PATH, 0).map_err(|e| missing(e, path))?;
        let md = std::fs::metadata(oskit::fd_path(&probe)).ctx("stat", Path::new(path))?;
        if md.is_dir() {
            return Err(Error::InvalidArgument(ONLY_FILES.into()));
        }
        if !md.is_file() {
            return Err(Error::InvalidArgument(format!(
                "{path} is not a regular file; {ONLY_FILES}"
            )));
        }
        let file = std::fs::File::open(oskit::fd_path(&probe)).ctx("open", Path::new(path))?;
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
    pub fn put(&self, path: &str, mode: u32, owner: Option<(u32, u32)>) -> Result<PendingPut> {
        let (dir, rel) = self.locate(path)?;
        let name = rel
            .file_name()
            .ok_or_else(|| Error::InvalidArgument(ONLY_FILES.into()))?
            .to_os_string();
        match oskit::open_in_root(&dir, &rel, libc::O_PATH, 0) {
            Ok(fd) => {
                let md = std::fs::metadata(oskit::fd_path(&fd)).ctx("stat", Path::new(path))?;
                if md.is_dir() {
                    return Err(Error::InvalidArgument(ONLY_FILES.into()));
                }
            }
            Err(e) if oskit::is_enoent(&e) => {}
            Err(e) => return Err(e),
        }
        let parent_rel = rel.parent().unwrap_or(Path::new("/")).to_path_buf();
        let parent = oskit::mkdir_all_in_root(&dir, &parent_rel)?;
        let tmp_name = format!(
            ".forkr-put-{}-{}",
            std::process::id(),
            PUT_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let tmp = oskit::open_in_root(
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
    if oskit::is_enoent(&e) {
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
        let dir = oskit::fd_path(&self.parent);
        std::fs::rename(dir.join(&self.tmp_name), dir.join(&self.name)).ctx("rename", p)?;
        Ok(self.written)
    }
}

impl Drop for PendingPut {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            oskit::unlink_at(&self.parent, &self.tmp_name);
        }
    }
}
