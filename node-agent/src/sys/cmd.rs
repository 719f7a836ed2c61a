//! Host programs: the only way the agent starts one (nsenter, runc, ip, iptables, mount,
//! mkfs.btrfs, ldd, busybox), by absolute path from root-owned directories and with a fixed
//! environment, so nothing a box or a request controls can choose the program or reach it.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

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
    MkfsBtrfs,
    Ldd,
    Busybox,
}

impl HostBin {
    const ALL: [HostBin; 8] = [
        HostBin::Nsenter,
        HostBin::Runc,
        HostBin::Ip,
        HostBin::Iptables,
        HostBin::Mount,
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

/// Runs a host program to completion; its stderr becomes the error.
pub(super) fn run(cmd: &mut Command) -> Result<()> {
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
