//! btrfs: subvolumes, snapshots, read-only flags, ids and generations through libbtrfsutil;
//! `send` is a raw ioctl because libbtrfsutil does not wrap it; `mkfs.btrfs` for loopback pools.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use libbtrfsutil::{CreateSnapshotOptions, DeleteSubvolumeOptions, IterateSubvolume};

use super::cmd::{HostBin, host_command, run};
use super::{c_path, io_err};
use crate::error::{Error, Result};

const BTRFS_SUPER_MAGIC: i64 = 0x9123_683E;

fn btrfs_err(what: &str, path: &Path) -> impl FnOnce(libbtrfsutil::Error) -> Error {
    let context = format!("{what} {}", path.display());
    move |source| Error::Btrfs { context, source }
}

/// True when `path` lives on a btrfs filesystem.
pub fn is_btrfs(path: &Path) -> Result<bool> {
    let cpath = c_path(path)?;
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: cpath is a valid NUL-terminated string and buf a properly sized out-parameter.
    let rc = unsafe { libc::statfs(cpath.as_ptr(), &mut buf) };
    if rc != 0 {
        return Err(io_err("statfs", path)(io::Error::last_os_error()));
    }
    #[allow(clippy::unnecessary_cast)]
    Ok(buf.f_type as i64 == BTRFS_SUPER_MAGIC)
}

/// True when `path` is the top directory of a subvolume; false when missing or a plain dir.
pub fn is_subvolume(path: &Path) -> Result<bool> {
    if path.symlink_metadata().is_err() {
        return Ok(false);
    }
    libbtrfsutil::is_subvolume(path).map_err(btrfs_err("inspect", path))
}

/// Creates an empty subvolume.
pub fn create_subvolume(path: &Path) -> Result<()> {
    libbtrfsutil::create_subvolume(path).map_err(btrfs_err("create subvolume", path))
}

/// Snapshots `src` (and every nested subvolume, as Incus does) into `dst`.
///
/// libbtrfsutil cannot create nested snapshots inside a read-only one, so a read-only recursive
/// snapshot is taken writable and frozen bottom-up afterwards; `dst` is not visible to users until
/// the caller renames it into place, so the brief writable window is harmless.
pub fn snapshot(src: &Path, dst: &Path, read_only: bool) -> Result<()> {
    let nested = !nested_subvolumes(src)?.is_empty();
    CreateSnapshotOptions::new()
        .recursive(nested)
        .readonly(read_only && !nested)
        .create(src, dst)
        .map_err(btrfs_err("snapshot", src))?;
    if read_only && nested {
        for child in nested_subvolumes(dst)?.iter().rev() {
            set_read_only(&dst.join(child), true)?;
        }
        set_read_only(dst, true)?;
    }
    Ok(())
}

/// Snapshots `src` alone (nested subvolumes become empty directories), e.g. to freeze a live root
/// for a diff, which never looks into nested subvolumes.
pub fn snapshot_flat(src: &Path, dst: &Path, read_only: bool) -> Result<()> {
    CreateSnapshotOptions::new()
        .readonly(read_only)
        .create(src, dst)
        .map_err(btrfs_err("snapshot", src))
}

/// Paths (relative to `subvol`) of the subvolumes nested below it, parents before children.
pub fn nested_subvolumes(subvol: &Path) -> Result<Vec<PathBuf>> {
    let id = subvolume_id(subvol)?;
    let iter = IterateSubvolume::new(subvol)
        .top(id)
        .iter_with_id()
        .map_err(btrfs_err("list nested subvolumes of", subvol))?;
    let mut out = Vec::new();
    for item in iter {
        let (path, _) = item.map_err(btrfs_err("list nested subvolumes of", subvol))?;
        out.push(path);
    }
    Ok(out)
}

/// Marks a subvolume read-only or writable.
pub fn set_read_only(path: &Path, read_only: bool) -> Result<()> {
    libbtrfsutil::set_subvolume_read_only(path, read_only).map_err(btrfs_err("set read-only", path))
}

/// Whether a subvolume is read-only.
pub fn is_read_only(path: &Path) -> Result<bool> {
    libbtrfsutil::subvolume_read_only(path).map_err(btrfs_err("read flags of", path))
}

/// The subvolume id of the subvolume containing `path`.
pub fn subvolume_id(path: &Path) -> Result<u64> {
    libbtrfsutil::subvolume_id(path).map_err(btrfs_err("read id of", path))
}

/// The transaction id of the last change inside a subvolume; it moves whenever content changes,
/// which makes it a cheap key for cached sizes.
pub fn change_generation(path: &Path) -> Result<u64> {
    let info = libbtrfsutil::subvolume_info(path).map_err(btrfs_err("read info of", path))?;
    Ok(info.generation())
}

/// When a subvolume was created, as (seconds, nanoseconds) since the epoch; finer than the
/// RFC3339 seconds kept in sidecars, so it orders snapshots taken within one second.
pub fn creation_time(path: &Path) -> Result<(i64, i64)> {
    let info = libbtrfsutil::subvolume_info(path).map_err(btrfs_err("read info of", path))?;
    Ok((info.otime(), info.otime_nsec()))
}

/// The btrfs UUID of a subvolume, as lowercase hex.
pub fn subvolume_uuid(path: &Path) -> Result<String> {
    let info = libbtrfsutil::subvolume_info(path).map_err(btrfs_err("read info of", path))?;
    Ok(hex::encode(info.uuid().as_bytes()))
}

/// Deletes a subvolume and everything nested in it. Missing is success, so retries are free.
/// Returns as soon as the subvolumes are unlinked; the kernel's cleaner frees space later.
pub fn delete_subvolume_tree(path: &Path) -> Result<()> {
    if !is_subvolume(path)? {
        return match path.symlink_metadata() {
            Err(_) => Ok(()),
            Ok(_) => Err(Error::FailedPrecondition(format!(
                "{} is not a subvolume",
                path.display()
            ))),
        };
    }
    // A nested subvolume cannot be unlinked from a read-only parent, so thaw top-down first.
    if is_read_only(path)? {
        set_read_only(path, false)?;
    }
    for child in nested_subvolumes(path)? {
        let child = path.join(child);
        if is_read_only(&child)? {
            set_read_only(&child, false)?;
        }
    }
    DeleteSubvolumeOptions::new()
        .recursive(true)
        .delete(path)
        .map_err(btrfs_err("delete subvolume", path))
}

/// Flags of `BTRFS_IOC_SEND`.
const SEND_FLAG_NO_FILE_DATA: u64 = 0x1;

/// `_IOW(0x94, 38, struct btrfs_ioctl_send_args)`, the struct being 72 bytes.
const BTRFS_IOC_SEND: libc::c_ulong = 0x4048_9426;

#[repr(C)]
struct SendArgs {
    send_fd: i64,
    clone_sources_count: u64,
    clone_sources: *mut u64,
    parent_root: u64,
    flags: u64,
    version: u32,
    reserved: [u8; 28],
}

/// A kernel send stream being produced by a background thread; read it to the end.
pub struct SendStream {
    pipe: File,
    worker: Option<JoinHandle<io::Result<()>>>,
}

impl Read for SendStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.pipe.read(buf)?;
        if n == 0
            && !buf.is_empty()
            && let Some(worker) = self.worker.take()
        {
            worker
                .join()
                .map_err(|_| io::Error::other("send worker panicked"))??;
        }
        Ok(n)
    }
}

/// Starts a send of the read-only subvolume `subvol`, incremental against `parent` when given.
/// With `metadata_only` the kernel leaves file data out (as snapper does for diffs), so the
/// stream's size follows the number of changed inodes, not their bytes.
pub fn send(subvol: &Path, parent: Option<&Path>, metadata_only: bool) -> Result<SendStream> {
    let source = File::open(subvol).map_err(io_err("open", subvol))?;
    let parent_root = match parent {
        Some(p) => subvolume_id(p)?,
        None => 0,
    };
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io_err("pipe for send of", subvol)(
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    let (read_end, write_end) =
        unsafe { (File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let flags = if metadata_only {
        SEND_FLAG_NO_FILE_DATA
    } else {
        0
    };
    let worker = std::thread::spawn(move || {
        let mut clone_sources = [parent_root];
        let mut args = SendArgs {
            send_fd: i64::from(write_end.as_raw_fd()),
            clone_sources_count: u64::from(parent_root != 0),
            clone_sources: clone_sources.as_mut_ptr(),
            parent_root,
            flags,
            version: 0,
            reserved: [0; 28],
        };
        // SAFETY: source is an open directory fd, args is a valid btrfs_ioctl_send_args that
        // outlives the call, and clone_sources holds clone_sources_count ids.
        let rc = unsafe { libc::ioctl(source.as_raw_fd(), BTRFS_IOC_SEND, &mut args) };
        // Closing the write end is what tells the reader the stream ended.
        drop(write_end);
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    });
    Ok(SendStream {
        pipe: read_end,
        worker: Some(worker),
    })
}

/// Formats `image` as btrfs.
pub fn mkfs_btrfs(image: &Path) -> Result<()> {
    run(host_command(HostBin::MkfsBtrfs)?
        .arg("-q")
        .arg("-f")
        .arg(image))
}
