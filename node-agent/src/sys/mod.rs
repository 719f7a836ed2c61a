//! The one seam to the kernel and the host: every btrfs call, ioctl, mount, confined path walk,
//! process call and host program goes through here, so the rest of the crate reads as logic.
//! It is the only module allowed `unsafe` and `std::process::Command::new`; `tests/rooms.rs`
//! checks that on the source, as `grep -rn 'Command::new\|unsafe' node-agent/src` would.
//!
//! The submodules are named for what they touch; callers use the flat `sys::` names below, and
//! `sys::netlink` and `sys::cmd` as namespaces of their own.

mod btrfs;
pub mod cmd;
mod fs;
mod in_root;
mod mount;
pub mod netlink;
mod process;
pub mod pty;
pub mod random;
pub mod spawn;

pub use btrfs::*;
pub use fs::*;
pub use in_root::*;
pub use mount::*;
pub use process::*;

use std::ffi::{CString, OsStr};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::error::{Error, Result};

fn io_err(what: &str, path: &Path) -> impl FnOnce(io::Error) -> Error {
    let context = format!("{what} {}", path.display());
    move |source| Error::Io { context, source }
}

fn c_path(path: &Path) -> Result<CString> {
    cstr(path.as_os_str())
}

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
