//! Processes and terminals: hostname, chroot, execve, signals, PTYs, the async-signal-safe steps
//! of a forked child (session, terminal, cgroups, kept fds), pipe sizes and memfds.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::{check, cstr, os_err};
use crate::error::{Error, Result};

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

/// In a freshly forked child: every signal back to its default action. An ignored signal stays
/// ignored across exec, so a command would otherwise inherit whatever the agent was started
/// with: under `nohup`, SIGHUP ignored, and a client's hang-up (the exec grace's SIGHUP) would
/// never end it. Handlers are reset by exec anyway; this undoes `SIG_IGN`. Only
/// async-signal-safe calls.
pub fn child_default_signals() {
    for sig in 1..libc::SIGRTMIN() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: signal(2) is async-signal-safe; an invalid number only fails.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
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

/// Grows a pipe's buffer (best effort; the kernel caps it at /proc/sys/fs/pipe-max-size), so a
/// fast writer is not paced by 64 KiB round trips.
pub fn set_pipe_size(fd: &impl AsRawFd, bytes: i32) {
    // SAFETY: plain fcntl on an open fd.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, bytes) };
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
