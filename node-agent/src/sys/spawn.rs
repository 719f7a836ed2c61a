//! Starting an exec's host process (nsenter): what its child does between fork and exec (join
//! the box's cgroups, keep the environment descriptor, start a session with or without a
//! terminal), and handing the command to tokio. The `pre_exec` hook is unsafe, so it lives
//! here, behind the `sys` seam.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::sys;

/// The session the child starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Session {
    /// A new session without a terminal: the caller's hang-up never reaches it, and its
    /// process group is the exec's own, for signals.
    Detached,
    /// A new session whose controlling terminal is the child's stdin (a PTY slave).
    Terminal,
}

/// Sets up `cmd`'s child: it joins the cgroups whose `cgroup.procs` files are open as
/// `cgroup_fds` (best effort, as before), keeps `keep` open across exec under its number, and
/// starts `session`. `keep` is moved into the hook so it stays open until the spawn.
pub fn child_setup(cmd: &mut Command, cgroup_fds: Vec<i32>, keep: OwnedFd, session: Session) {
    // SAFETY: the closure only makes async-signal-safe syscalls (signal, write, fcntl, lseek,
    // setsid, ioctl) and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            sys::child_default_signals();
            let _ = sys::child_join_cgroups(&cgroup_fds);
            sys::child_keep_fd(keep.as_raw_fd())?;
            match session {
                Session::Detached => sys::child_detach(),
                Session::Terminal => sys::child_take_tty(0),
            }
        });
    }
}

/// Spawns `cmd` as a tokio child, so its exit and pipes can be awaited.
pub fn spawn_async(cmd: Command) -> std::io::Result<tokio::process::Child> {
    tokio::process::Command::from(cmd).spawn()
}
