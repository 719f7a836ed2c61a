//! Logs of background execs: `/tmp/boxes/exec/<pid>.log` inside the box (001, "logs").

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::exec::{EXEC_LOG_DIR, Target};
use crate::sys;

/// Creates the log directory, world-writable and sticky like /tmp, so execs as project users
/// can write their logs too.
pub fn ensure_log_dir(target: &Target) -> Result<()> {
    let root = target.root()?;
    for dir in ["/tmp/boxes", EXEC_LOG_DIR] {
        let fd = sys::mkdir_all_in_root(&root, Path::new(dir))?;
        std::fs::set_permissions(
            sys::fd_path(&fd),
            std::os::unix::fs::PermissionsExt::from_mode(0o1777),
        )
        .ctx("chmod", Path::new(dir))?;
    }
    Ok(())
}

/// The in-box path of a background process's log.
pub fn log_path(pid: u32) -> PathBuf {
    Path::new(EXEC_LOG_DIR).join(format!("{pid}.log"))
}

/// Reads a background process's log from byte `offset`. A missing pid and a pid without a log
/// are errors that say what to do.
pub fn read_log(target: &Target, pid: Option<u32>, offset: u64) -> Result<Vec<u8>> {
    let pid = pid.ok_or_else(|| {
        Error::InvalidArgument("--pid is required: logs reads the log of one background process (start one with exec --bg)".into())
    })?;
    let root = target.root()?;
    let fd = sys::open_in_root(&root, &log_path(pid), libc::O_RDONLY, 0).map_err(|e| {
        if sys::is_enoent(&e) {
            Error::NotFound(format!(
                "no log for pid {pid}: only processes started with exec --bg have one, and /tmp is wiped when the box stops"
            ))
        } else {
            e
        }
    })?;
    let mut f = std::fs::File::from(fd);
    f.seek(SeekFrom::Start(offset))
        .ctx("seek", &log_path(pid))?;
    let mut out = Vec::new();
    f.read_to_end(&mut out).ctx("read", &log_path(pid))?;
    Ok(out)
}
