//! The box runtime's kernel calls, in one place: openat2 confined to a root, mounts, chroot,
//! hostname, PTYs, signals, and rtnetlink (`netlink`). Everything else in `runner`, `runtime`, `exec` and `files` reads
//! as logic on top of these. (The btrfs calls live in `sys`; the two seams merge later.)

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

fn cstr(p: &OsStr) -> Result<CString> {
    CString::new(p.as_bytes())
        .map_err(|_| Error::InvalidArgument(format!("path {:?} contains a NUL byte", p)))
}

fn os_err(what: &str, path: &Path) -> Error {
    Error::Io {
        context: format!("{what} {}", path.display()),
        source: io::Error::last_os_error(),
    }
}

fn check(rc: libc::c_int, what: &str, path: &Path) -> Result<()> {
    if rc < 0 {
        return Err(os_err(what, path));
    }
    Ok(())
}

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

/// Sets the UTS hostname of the calling process's namespace.
pub fn set_hostname(name: &str) -> Result<()> {
    // SAFETY: pointer and length describe name's bytes.
    let rc = unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) };
    check(rc, "sethostname", Path::new(name))
}

/// chroot into `root` and move there.
pub fn chroot(root: &Path) -> Result<()> {
    let c = cstr(root.as_os_str())?;
    // SAFETY: valid C strings.
    check(unsafe { libc::chroot(c.as_ptr()) }, "chroot", root)?;
    check(
        unsafe { libc::chdir(c"/".as_ptr()) },
        "chdir",
        Path::new("/"),
    )
}

/// Replaces the process image; returns only on failure.
pub fn execve(prog: &Path, args: &[String], env: &[(String, String)]) -> Error {
    let to_c = |s: &str| CString::new(s).unwrap_or_default();
    let Ok(p) = cstr(prog.as_os_str()) else {
        return Error::InvalidArgument(format!("bad program {}", prog.display()));
    };
    let argv: Vec<CString> = args.iter().map(|a| to_c(a)).collect();
    let envp: Vec<CString> = env.iter().map(|(k, v)| to_c(&format!("{k}={v}"))).collect();
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    // SAFETY: NULL-terminated arrays of valid C strings that outlive the call.
    unsafe { libc::execve(p.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr()) };
    os_err("exec", prog)
}

/// Sends `sig` to `pid`. A process already gone is not an error.
pub fn kill(pid: i32, sig: i32) -> Result<()> {
    // SAFETY: plain syscall.
    if unsafe { libc::kill(pid, sig) } < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ESRCH) {
            return Ok(());
        }
        return Err(Error::Io {
            context: format!("kill {pid}"),
            source: e,
        });
    }
    Ok(())
}

/// True while `pid` exists (a zombie counts).
pub fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// A new pseudo-terminal: (master, slave).
pub fn openpty(rows: u16, cols: u16) -> Result<(OwnedFd, OwnedFd)> {
    let mut master = -1;
    let mut slave = -1;
    let ws = winsize(rows, cols);
    // SAFETY: out-pointers are valid; name and termios may be NULL.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &ws,
        )
    };
    check(rc, "openpty", Path::new("/dev/ptmx"))?;
    // SAFETY: fresh fds from openpty.
    let (m, s) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    for fd in [&m, &s] {
        // SAFETY: valid fd.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok((m, s))
}

fn winsize(rows: u16, cols: u16) -> libc::winsize {
    libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// Resizes the terminal behind a PTY master; the foreground group gets SIGWINCH.
pub fn set_winsize(master: &OwnedFd, rows: u16, cols: u16) -> Result<()> {
    let ws = winsize(rows, cols);
    // SAFETY: valid fd and pointer to a winsize.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    check(rc, "resize", Path::new("pty"))
}

/// In a freshly forked child: new session with `fd` (a PTY slave) as controlling terminal.
/// Only async-signal-safe calls.
pub fn child_take_tty(fd: i32) -> io::Result<()> {
    // SAFETY: plain syscalls in the child between fork and exec.
    unsafe {
        if libc::setsid() < 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::ioctl(fd, libc::TIOCSCTTY, 0) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// In a freshly forked child: start a new session without a terminal, so the caller's hang-up
/// never reaches it. Only async-signal-safe calls.
pub fn child_detach() -> io::Result<()> {
    // SAFETY: plain syscall in the child.
    if unsafe { libc::setsid() } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// In a freshly forked child: joins the cgroups whose `cgroup.procs` files are open as `fds`
/// (writing "0" moves the writer). Only async-signal-safe calls.
pub fn child_join_cgroups(fds: &[i32]) -> io::Result<()> {
    for &fd in fds {
        // SAFETY: writes one byte from a static buffer to an open fd.
        if unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) } < 0 {
            return Err(io::Error::last_os_error());
        }
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

/// Unmounts `target` lazily (detaching it even when busy); not mounted is not an error.
pub fn umount_lazy(target: &Path) -> Result<()> {
    let c = cstr(target.as_os_str())?;
    // SAFETY: valid C string.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } < 0 {
        let e = io::Error::last_os_error();
        if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) {
            return Ok(());
        }
        return Err(Error::Io {
            context: format!("umount {}", target.display()),
            source: e,
        });
    }
    Ok(())
}

/// Removes `name` from the directory `dir` (never following a symlink); best effort.
pub fn unlink_at(dir: &OwnedFd, name: &str) {
    if let Ok(c) = CString::new(name) {
        // SAFETY: valid directory fd and C string.
        unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) };
    }
}

/// Grows a pipe's buffer (best effort; the kernel caps it at /proc/sys/fs/pipe-max-size), so a
/// fast writer is not paced by 64 KiB round trips.
pub fn set_pipe_size(fd: &impl AsRawFd, bytes: i32) {
    // SAFETY: plain fcntl on an open fd.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, bytes) };
}

/// The foreground process group of the terminal behind a PTY master (host PID namespace).
pub fn foreground_group(master: &OwnedFd) -> Result<i32> {
    // SAFETY: plain ioctl wrapper on an open fd.
    let pgrp = unsafe { libc::tcgetpgrp(master.as_raw_fd()) };
    if pgrp <= 0 {
        return Err(Error::FailedPrecondition(
            "the terminal has no foreground process".into(),
        ));
    }
    Ok(pgrp)
}

/// An anonymous in-memory file (close-on-exec) holding `data`, positioned at its start: how
/// the exec engine hands an environment to a process inside a box without putting it in any
/// host process's environment.
pub fn memfd_with(name: &CStr, data: &[u8]) -> Result<OwnedFd> {
    // SAFETY: name is a valid C string; flags are plain constants.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(os_err("memfd_create", Path::new("memfd")));
    }
    // SAFETY: memfd_create returned a fresh descriptor that nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = std::fs::File::from(fd);
    io::Write::write_all(&mut file, data).map_err(|source| Error::Io {
        context: "write memfd".into(),
        source,
    })?;
    Ok(OwnedFd::from(file))
}

/// In a freshly forked child: keeps `fd` open across exec, under the same number, read from
/// its start. The number is kept rather than moved to a fixed one, because a fixed target may
/// be a descriptor the spawn itself still needs (std's exec-error pipe). Only async-signal-safe
/// calls.
pub fn child_keep_fd(fd: i32) -> io::Result<()> {
    // SAFETY: plain syscalls on a descriptor the child owns.
    unsafe {
        if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
            return Err(io::Error::last_os_error());
        }
        // The offset is shared with the parent's descriptor; rewind for this child.
        if libc::lseek(fd, 0, libc::SEEK_SET) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
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
