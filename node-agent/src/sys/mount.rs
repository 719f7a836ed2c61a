//! Mounts: proc and sysfs, bind mounts and their read-only remount (the runner's boot), loop
//! mounts of pool images, and the one unmount.

use std::ffi::{CStr, OsStr};
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

use super::cmd::{HostBin, host_command, run};
use super::in_root::{fd_path, open_in_root};
use super::{check, cstr};
use crate::error::{Error, Result};

/// Mounts a btrfs image through a loop device; the device is released on unmount (autoclear).
pub fn mount_loop(image: &Path, target: &Path) -> Result<()> {
    run(host_command(HostBin::Mount)?
        .args(["-t", "btrfs", "-o", "loop"])
        .arg(image)
        .arg(target))
}

/// Unmounts `target`, detaching it lazily when something still holds it open (a loop device
/// is then freed once the last user goes). Not mounted is not an error, so callers can retry.
/// The only unmount in the crate: a syscall, not the `umount` program.
pub fn unmount(target: &Path) -> Result<()> {
    let c = cstr(target.as_os_str())?;
    for flags in [0, libc::MNT_DETACH] {
        // SAFETY: c is a valid NUL-terminated string.
        if unsafe { libc::umount2(c.as_ptr(), flags) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINVAL | libc::ENOENT) => return Ok(()),
            Some(libc::EBUSY) if flags == 0 => continue,
            _ => {
                return Err(Error::Io {
                    context: format!("umount {}", target.display()),
                    source: e,
                });
            }
        }
    }
    Ok(())
}

fn mount_raw(
    src: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
) -> Result<()> {
    let src_c = match src {
        Some(s) => Some(cstr(s.as_os_str())?),
        None => None,
    };
    let fs_c = match fstype {
        Some(f) => Some(cstr(OsStr::new(f))?),
        None => None,
    };
    let tgt = cstr(target.as_os_str())?;
    let none = c"none";
    // SAFETY: every pointer is a valid C string or NULL; data is NULL.
    let rc = unsafe {
        libc::mount(
            src_c.as_deref().map_or(none.as_ptr(), CStr::as_ptr),
            tgt.as_ptr(),
            fs_c.as_deref().map_or(std::ptr::null(), CStr::as_ptr),
            flags,
            std::ptr::null(),
        )
    };
    check(rc, "mount on", target)
}

/// Mounts a fresh filesystem of `fstype` (proc, sysfs) on the directory behind `target`.
pub fn mount_fs(fstype: &str, target: &OwnedFd) -> Result<()> {
    mount_raw(
        Some(Path::new(fstype)),
        &fd_path(target),
        Some(fstype),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
    )
}

/// Bind-mounts host `src` onto the file or directory behind `target` (recursively when asked).
pub fn bind(src: &Path, target: &OwnedFd, recursive: bool) -> Result<()> {
    let mut flags = libc::MS_BIND;
    if recursive {
        flags |= libc::MS_REC;
    }
    mount_raw(Some(src), &fd_path(target), None, flags)
}

/// Makes the bind mount at `path` inside `root` read-only. A bind ignores MS_RDONLY, so this is
/// a remount of the mount now sitting there (found by resolving the path again, which crosses
/// into the new mount).
pub fn remount_read_only(root: &OwnedFd, path: &Path) -> Result<()> {
    let top = open_in_root(root, path, libc::O_PATH, 0)?;
    mount_raw(
        None,
        &fd_path(&top),
        None,
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
    )
}
