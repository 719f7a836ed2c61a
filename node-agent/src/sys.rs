//! The one seam to the kernel: every btrfs call, ioctl and mount goes through here, so the rest
//! of the crate reads as logic. Subvolume calls use libbtrfsutil; `send` is a raw ioctl because
//! libbtrfsutil does not wrap it.

pub mod pty;
pub mod random;
pub mod spawn;

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::JoinHandle;

use libbtrfsutil::{CreateSnapshotOptions, DeleteSubvolumeOptions, IterateSubvolume};

use crate::error::{Error, Result};

const BTRFS_SUPER_MAGIC: i64 = 0x9123_683E;

fn btrfs_err(what: &str, path: &Path) -> impl FnOnce(libbtrfsutil::Error) -> Error {
    let context = format!("{what} {}", path.display());
    move |source| Error::Btrfs { context, source }
}

fn io_err(what: &str, path: &Path) -> impl FnOnce(io::Error) -> Error {
    let context = format!("{what} {}", path.display());
    move |source| Error::Io { context, source }
}

fn c_path(path: &Path) -> Result<std::ffi::CString> {
    std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::InvalidArgument(format!("path {} contains NUL", path.display())))
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

/// Flushes a directory's entries (after a rename) so the rename survives a power cut.
pub fn sync_dir(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io_err("sync", path))
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

/// The directories host programs are taken from, in order. Only root-owned system directories:
/// a host program is never looked up through an environment a box or a request can influence.
pub const HOST_BIN_DIRS: [&str; 6] = [
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
    "/usr/local/sbin",
    "/usr/local/bin",
];

/// The whole environment of every host program the agent or the gateway starts: a fixed PATH
/// (for programs that are scripts, like ldd, or that start helpers) and the C locale, so that
/// output the agent parses is stable. Nothing else: no variable of a box or a request (PATH,
/// LD_PRELOAD, LD_DEBUG...) ever reaches a host process.
pub const HOST_ENV: [(&str, &str); 2] = [
    (
        "PATH",
        "/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/sbin:/usr/local/bin",
    ),
    ("LC_ALL", "C"),
];

/// Every host program the agent (and forkr-api in local mode) runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostBin {
    /// util-linux: enters a box's namespaces for exec.
    Nsenter,
    Runc,
    /// iproute2.
    Ip,
    Iptables,
    Mount,
    Umount,
    MkfsBtrfs,
    Ldd,
    Busybox,
}

impl HostBin {
    const ALL: [HostBin; 9] = [
        HostBin::Nsenter,
        HostBin::Runc,
        HostBin::Ip,
        HostBin::Iptables,
        HostBin::Mount,
        HostBin::Umount,
        HostBin::MkfsBtrfs,
        HostBin::Ldd,
        HostBin::Busybox,
    ];

    /// The program's file name.
    pub fn name(self) -> &'static str {
        match self {
            HostBin::Nsenter => "nsenter",
            HostBin::Runc => "runc",
            HostBin::Ip => "ip",
            HostBin::Iptables => "iptables",
            HostBin::Mount => "mount",
            HostBin::Umount => "umount",
            HostBin::MkfsBtrfs => "mkfs.btrfs",
            HostBin::Ldd => "ldd",
            HostBin::Busybox => "busybox",
        }
    }

    fn index(self) -> usize {
        HostBin::ALL.iter().position(|b| *b == self).unwrap_or(0)
    }

    /// The absolute path of the program: the first executable regular file of that name in
    /// [`HOST_BIN_DIRS`]. Found once per process; a missing program is looked up again on the
    /// next call, so installing it needs no restart.
    pub fn path(self) -> Result<PathBuf> {
        static FOUND: [std::sync::OnceLock<PathBuf>; HostBin::ALL.len()] =
            [const { std::sync::OnceLock::new() }; HostBin::ALL.len()];
        let slot = &FOUND[self.index()];
        if let Some(p) = slot.get() {
            return Ok(p.clone());
        }
        let found = HOST_BIN_DIRS
            .iter()
            .map(|d| Path::new(d).join(self.name()))
            .find(|p| is_executable_file(p))
            .ok_or_else(|| {
                Error::FailedPrecondition(format!(
                    "host program {} not found in {} (is it installed?)",
                    self.name(),
                    HOST_BIN_DIRS.join(":")
                ))
            })?;
        Ok(slot.get_or_init(|| found).clone())
    }
}

fn is_executable_file(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The one way to start a host program: by absolute path, with the environment cleared and set
/// to [`HOST_ENV`]. Callers add arguments, stdio and (for exec) what must reach a box, which
/// never travels in this process's environment.
pub fn host_command(bin: HostBin) -> Result<Command> {
    let mut cmd = Command::new(bin.path()?);
    cmd.env_clear();
    cmd.envs(HOST_ENV);
    Ok(cmd)
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().map_err(|source| Error::Io {
        context: format!("run {cmd:?}"),
        source,
    })?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::Io {
        context: format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        source: io::Error::other("command failed"),
    })
}

/// Formats `image` as btrfs.
pub fn mkfs_btrfs(image: &Path) -> Result<()> {
    run(host_command(HostBin::MkfsBtrfs)?
        .arg("-q")
        .arg("-f")
        .arg(image))
}

/// Mounts a btrfs image through a loop device; the device is released on unmount (autoclear).
pub fn mount_loop(image: &Path, target: &Path) -> Result<()> {
    run(host_command(HostBin::Mount)?
        .args(["-t", "btrfs", "-o", "loop"])
        .arg(image)
        .arg(target))
}

/// Unmounts `target`, falling back to a lazy unmount when something still holds it open.
pub fn unmount(target: &Path) -> Result<()> {
    run(host_command(HostBin::Umount)?.arg(target))
        .or_else(|_| run(host_command(HostBin::Umount)?.arg("-l").arg(target)))
}

/// Creates a device node or fifo owned by `uid:gid`; used when extracting a rootfs.
pub fn make_node(path: &Path, mode: u32, major: u32, minor: u32, uid: u32, gid: u32) -> Result<()> {
    let cpath = c_path(path)?;
    let dev = libc::makedev(major, minor);
    // SAFETY: cpath is a valid NUL-terminated path.
    if unsafe { libc::mknod(cpath.as_ptr(), mode as libc::mode_t, dev) } != 0 {
        return Err(io_err("mknod", path)(io::Error::last_os_error()));
    }
    // SAFETY: as above; lchown never follows a symlink.
    if unsafe { libc::lchown(cpath.as_ptr(), uid, gid) } != 0 {
        return Err(io_err("chown", path)(io::Error::last_os_error()));
    }
    // mknod applies the umask, so set the exact mode afterwards.
    std::fs::set_permissions(
        path,
        std::os::unix::fs::PermissionsExt::from_mode(mode & 0o7777),
    )
    .map_err(io_err("chmod", path))
}

/// Snapshots `src` alone (nested subvolumes become empty directories), e.g. to freeze a live root
/// for a diff, which never looks into nested subvolumes.
pub fn snapshot_flat(src: &Path, dst: &Path, read_only: bool) -> Result<()> {
    CreateSnapshotOptions::new()
        .readonly(read_only)
        .create(src, dst)
        .map_err(btrfs_err("snapshot", src))
}

/// Sets an extended attribute on `path` (not following symlinks).
pub fn set_xattr(path: &Path, name: &str, value: &[u8]) -> Result<()> {
    let cpath = c_path(path)?;
    let cname = std::ffi::CString::new(name)
        .map_err(|_| Error::InvalidArgument(format!("xattr name {name:?}")))?;
    // SAFETY: valid C strings; value points to value.len() readable bytes.
    let rc = unsafe {
        libc::lsetxattr(
            cpath.as_ptr(),
            cname.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc != 0 {
        return Err(io_err("set xattr on", path)(io::Error::last_os_error()));
    }
    Ok(())
}

/// Reads an extended attribute; `None` when the file or the attribute is missing.
pub fn get_xattr(path: &Path, name: &str) -> Result<Option<Vec<u8>>> {
    let cpath = c_path(path)?;
    let cname = std::ffi::CString::new(name)
        .map_err(|_| Error::InvalidArgument(format!("xattr name {name:?}")))?;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: valid C strings; buf has buf.len() writable bytes.
    let n = unsafe {
        libc::lgetxattr(
            cpath.as_ptr(),
            cname.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENODATA) => Ok(None),
            _ => Err(io_err("get xattr of", path)(e)),
        };
    }
    buf.truncate(n as usize);
    Ok(Some(buf))
}

/// Removes an extended attribute (not following symlinks).
pub fn remove_xattr(path: &Path, name: &str) -> Result<()> {
    let cpath = c_path(path)?;
    let cname = std::ffi::CString::new(name)
        .map_err(|_| Error::InvalidArgument(format!("xattr name {name:?}")))?;
    // SAFETY: valid C strings.
    if unsafe { libc::lremovexattr(cpath.as_ptr(), cname.as_ptr()) } != 0 {
        return Err(io_err("remove xattr of", path)(io::Error::last_os_error()));
    }
    Ok(())
}

/// Sets owner without following a symlink.
pub fn lchown(path: &Path, uid: u32, gid: u32) -> Result<()> {
    let cpath = c_path(path)?;
    // SAFETY: valid C string.
    if unsafe { libc::lchown(cpath.as_ptr(), uid, gid) } != 0 {
        return Err(io_err("chown", path)(io::Error::last_os_error()));
    }
    Ok(())
}

/// Sets access and modification times without following a symlink.
pub fn set_times(path: &Path, atime: (i64, i64), mtime: (i64, i64)) -> Result<()> {
    let cpath = c_path(path)?;
    let ts = [
        libc::timespec {
            tv_sec: atime.0,
            tv_nsec: atime.1,
        },
        libc::timespec {
            tv_sec: mtime.0,
            tv_nsec: mtime.1,
        },
    ];
    // SAFETY: valid C string and a two-element timespec array.
    if unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            cpath.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    } != 0
    {
        return Err(io_err("set times of", path)(io::Error::last_os_error()));
    }
    Ok(())
}

/// Copies `len` bytes between files at the given offsets; on btrfs the kernel shares the extents
/// (a reflink) instead of copying data.
pub fn copy_range(src: &File, src_off: u64, dst: &File, dst_off: u64, len: u64) -> io::Result<()> {
    let (mut so, mut dof) = (src_off as i64, dst_off as i64);
    let mut left = len as usize;
    while left > 0 {
        // SAFETY: both descriptors are open; the offset pointers are valid for the call.
        let n = unsafe {
            libc::copy_file_range(src.as_raw_fd(), &mut so, dst.as_raw_fd(), &mut dof, left, 0)
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "clone source too short",
            ));
        }
        left -= n as usize;
    }
    Ok(())
}

/// The btrfs UUID of a subvolume, as lowercase hex.
pub fn subvolume_uuid(path: &Path) -> Result<String> {
    let info = libbtrfsutil::subvolume_info(path).map_err(btrfs_err("read info of", path))?;
    Ok(hex::encode(info.uuid().as_bytes()))
}
