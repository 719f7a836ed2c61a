//! File calls the pool needs beyond std: directory sync, device nodes, xattrs, owners and times
//! without following symlinks, reflink copies, and wiping a directory without crossing mounts.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use super::{c_path, io_err};
use crate::error::{Error, Result};

/// Flushes a directory's entries (after a rename) so the rename survives a power cut.
pub fn sync_dir(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io_err("sync", path))
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

/// Removes everything inside `dir` (not `dir` itself), never following symlinks and never
/// crossing into another mount.
pub fn wipe_dir(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let p = entry.path();
        let Ok(ft) = entry.file_type() else { continue };
        let res = if ft.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        res.map_err(|source| Error::Io {
            context: format!("remove {}", p.display()),
            source,
        })?;
    }
    Ok(())
}
