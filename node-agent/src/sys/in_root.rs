//! Paths confined to a root: openat2 with RESOLVE_IN_ROOT, so `..` and symlinks (absolute or
//! relative) inside a box can never lead out of it. How `exec`, `files` and the runner touch a
//! box's files.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::{check, cstr, os_err};
use crate::error::{Error, Result};

/// Opens a directory on the host (no confinement), for use as the root of later calls.
pub fn open_dir(path: &Path) -> Result<OwnedFd> {
    let c = cstr(path.as_os_str())?;
    // SAFETY: c is a valid NUL-terminated string.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    check(fd, "open", path)?;
    // SAFETY: fd was just returned by open and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The path relative to a root: leading `/` dropped, `.` ignored. `..` is kept: openat2 clamps it
/// at the root.
fn rel(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => out.push(".."),
            _ => {}
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// `struct open_how` of openat2(2); libc's is non-exhaustive.
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Opens `path` as if `root` were `/`: `..` and symlinks (absolute or relative) can never leave
/// it (openat2 RESOLVE_IN_ROOT), and magic links under /proc are refused.
pub fn open_in_root(root: &OwnedFd, path: &Path, flags: i32, mode: u32) -> Result<OwnedFd> {
    let r = rel(path);
    let c = cstr(r.as_os_str())?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: if flags & (libc::O_CREAT | libc::O_TMPFILE) != 0 {
            mode as u64
        } else {
            0
        },
        resolve: libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: valid pointers for the duration of the call; size matches the struct.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            c.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    } as libc::c_int;
    if fd < 0 {
        return Err(Error::Io {
            context: format!("open {} in box root", path.display()),
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: fresh fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// True when the error is "no such file or directory".
pub fn is_enoent(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.raw_os_error() == Some(libc::ENOENT))
}

/// Opens directory `path` inside `root`, creating missing components (mode 0755) on the way.
/// Every step resolves inside the root, so a symlinked component cannot lead out.
pub fn mkdir_all_in_root(root: &OwnedFd, path: &Path) -> Result<OwnedFd> {
    let flags = libc::O_PATH | libc::O_DIRECTORY;
    match open_in_root(root, path, flags, 0) {
        Ok(fd) => return Ok(fd),
        Err(e) if is_enoent(&e) => {}
        Err(e) => return Err(e),
    }
    let mut cur = PathBuf::from("/");
    let mut parent = open_in_root(root, &cur, flags, 0)?;
    for c in rel(path).components() {
        cur.push(c);
        match open_in_root(root, &cur, flags, 0) {
            Ok(fd) => parent = fd,
            Err(e) if is_enoent(&e) => {
                let name = cstr(c.as_os_str())?;
                // SAFETY: parent is an open directory fd; name is a valid C string.
                let rc = unsafe { libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), 0o755) };
                if rc < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST) {
                    return Err(os_err("mkdir", &cur));
                }
                parent = open_in_root(root, &cur, flags, 0)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(parent)
}

/// `/proc/self/fd/N`: the way to hand an fd resolved safely to calls that only take paths
/// (mount, chown of a path). The kernel follows it to exactly that file.
pub fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// The target of the symlink `path` inside `root` (its last component is not followed), or
/// `None` when it is not a symlink or does not exist. Used to walk a box path the way the box
/// would, across its system volumes.
pub fn symlink_in_root(root: &OwnedFd, path: &Path) -> Result<Option<PathBuf>> {
    let fd = match open_in_root(root, path, libc::O_PATH | libc::O_NOFOLLOW, 0) {
        Ok(fd) => fd,
        Err(e) if is_enoent(&e) => return Ok(None),
        Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::ENOTDIR) => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: fd is an O_PATH descriptor; an empty path reads the link it names, into buf.
    let n = unsafe {
        libc::readlinkat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        // EINVAL: not a symlink.
        if e.raw_os_error() == Some(libc::EINVAL) || e.raw_os_error() == Some(libc::ENOENT) {
            return Ok(None);
        }
        return Err(Error::Io {
            context: format!("readlink {} in box root", path.display()),
            source: e,
        });
    }
    buf.truncate(n as usize);
    Ok(Some(PathBuf::from(OsStr::from_bytes(&buf))))
}

/// Removes `name` from the directory `dir` (never following a symlink); best effort.
pub fn unlink_at(dir: &OwnedFd, name: &str) {
    if let Ok(c) = CString::new(name) {
        // SAFETY: valid directory fd and C string.
        unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) };
    }
}
