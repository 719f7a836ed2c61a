//! The exec engine, shared by local mode and Kubernetes mode: find the box's PID 1, then run a
//! command in its namespaces, cgroups and root, the way `4kr exec`, `console`, `ps` and `logs`
//! need (001, "exec"; 002, "Project users").
//!
//! Entering is done by `nsenter` (util-linux): joining a PID namespace takes a fork after
//! setns, which nsenter does for us, and it keeps this crate free of fork-after-setns code in a
//! multi-threaded process. The child runs `bash -lc` so /etc/profile.d applies.
//!
//! nsenter is a host process running as root, so it runs by absolute path with the fixed host
//! environment (`sys::host_command`). The box's and the request's variables never touch it:
//! they travel in an anonymous memory file that the first process inside the box, a bare bash
//! (`ENTER_PRELUDE`), reads, exports and closes before it execs the real `bash -l`. A PATH,
//! LD_PRELOAD or LD_DEBUG of a box or a request therefore reaches only programs in the box.

pub mod files;
pub mod grace;
pub mod logs;
pub mod pid1;
pub mod script;
pub mod session;
pub mod stream;
pub mod users;

pub use pid1::NodeBoxes;

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};
use crate::runtime::runner::env::BASE_PATH;
use crate::sys;
use crate::sys::cmd::{HostBin, host_command};
use crate::sys::spawn::{self as spawn_sys, Session};
use script::{ENTER_PRELUDE, dedup_env, env_blob, is_env_name, quote};

/// Where background execs write their output inside the box.
pub const EXEC_LOG_DIR: &str = "/tmp/boxes/exec";

/// A running box, by the host PID of its PID 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub pid1: i32,
}

/// A project user to run as: UID = GID, from the project's allocation (20000 and up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
}

/// One exec as the API describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecRequest {
    /// The command. Empty means an interactive login shell (console).
    pub args: Vec<String>,
    /// `--sh`: the args, joined by spaces, are one shell string.
    pub sh: bool,
    /// `--env KEY=VALUE`, applied last.
    pub env: Vec<(String, String)>,
    /// `--wd`.
    pub wd: Option<String>,
    /// `--user`.
    pub user: Option<User>,
}

impl Target {
    /// The box whose PID 1 is `pid1` on this host (from runc's state in local mode).
    pub fn new(pid1: i32) -> Target {
        Target { pid1 }
    }

    /// The box's root directory as its PID 1 sees it (mounts included).
    pub fn root(&self) -> Result<OwnedFd> {
        sys::open_dir(Path::new(&format!("/proc/{}/root", self.pid1)))
            .map_err(|_| Error::FailedPrecondition("the box is not running".into()))
    }

    /// PID 1's environment: the injected variables and the user's, as the runner set them.
    /// Only names a shell can export are kept (the runner writes no others).
    pub fn box_env(&self) -> Vec<(String, String)> {
        let raw = std::fs::read(format!("/proc/{}/environ", self.pid1)).unwrap_or_default();
        raw.split(|b| *b == 0)
            .filter_map(|kv| {
                let s = String::from_utf8_lossy(kv);
                let (k, v) = s.split_once('=')?;
                is_env_name(k).then(|| (k.to_string(), v.to_string()))
            })
            .collect()
    }

    /// Open `cgroup.procs` files of PID 1's cgroups, so an exec can join them (and count
    /// against the box's memory limit) before it starts.
    fn cgroup_procs(&self) -> Vec<std::fs::File> {
        let text =
            std::fs::read_to_string(format!("/proc/{}/cgroup", self.pid1)).unwrap_or_default();
        let mut out = Vec::new();
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (_, ctrl, path) = (parts.next(), parts.next(), parts.next());
            let (Some(ctrl), Some(path)) = (ctrl, path) else {
                continue;
            };
            let base = match ctrl {
                "" if Path::new("/sys/fs/cgroup/unified").exists() => {
                    PathBuf::from("/sys/fs/cgroup/unified")
                }
                "" => PathBuf::from("/sys/fs/cgroup"),
                c => PathBuf::from("/sys/fs/cgroup").join(c.trim_start_matches("name=")),
            };
            let procs = base.join(path.trim_start_matches('/')).join("cgroup.procs");
            if let Ok(f) = std::fs::OpenOptions::new().write(true).open(procs) {
                out.push(f);
            }
        }
        out
    }
}

/// The shell string of a request (see [`script::body`]).
pub fn script(req: &ExecRequest) -> String {
    script::body(req)
}

/// How the child's stdio is wired.
pub enum Stdio3 {
    /// Three pipes: stdin in, stdout and stderr apart.
    Pipes,
    /// A PTY slave as stdin, stdout and stderr, and as controlling terminal.
    Pty(OwnedFd),
    /// Nothing (stdin /dev/null), stdout piped: for background launches.
    Detached,
}

/// A command ready to spawn, with the cgroup files its child joins before exec. Drop it after
/// the spawn.
pub struct Prepared {
    pub cmd: Command,
    _cgroups: Vec<std::fs::File>,
}

impl Prepared {
    /// Spawns the command as a tokio child; the cgroup files close after the fork.
    pub fn spawn_async(self) -> Result<tokio::process::Child> {
        spawn_sys::spawn_async(self.cmd).map_err(|source| Error::Io {
            context: "start nsenter".into(),
            source,
        })
    }
}

/// Builds the host command that runs `req` inside the box. Synthesizes the user's passwd and
/// group lines first when `--user` is given.
pub fn command(target: &Target, req: &ExecRequest, stdio: Stdio3) -> Result<Prepared> {
    script::check(req)?;
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), BASE_PATH.into()),
        ("HOME".into(), "/root".into()),
    ];
    env.extend(target.box_env());
    let mut cmd = host_command(HostBin::Nsenter)?;
    cmd.arg("-t").arg(target.pid1.to_string());
    cmd.args(["-m", "-u", "-i", "-n", "-p", "-r", "-w"]);
    if let Some(u) = &req.user {
        users::ensure_user(&target.root()?, u)?;
        cmd.arg("-S").arg(u.uid.to_string());
        cmd.arg("-G").arg(u.uid.to_string());
        env.push(("HOME".into(), format!("/home/{}", u.name)));
        env.push(("USER".into(), u.name.clone()));
        env.push(("LOGNAME".into(), u.name.clone()));
    }
    env.extend(req.env.iter().cloned());
    let env_fd = sys::memfd_with(c"forkr-exec-env", &env_blob(&dedup_env(env)))?;
    let env_raw: RawFd = env_fd.as_raw_fd();
    cmd.arg("--")
        .args(["/bin/bash", "--noprofile", "--norc", "-c", ENTER_PRELUDE])
        .arg("forkr-enter")
        .arg(env_raw.to_string());
    cmd.arg("/bin/bash");
    if req.args.is_empty() && !req.sh {
        // Console: an interactive login shell (its .bashrc takes it to /work).
        cmd.arg("-l");
        if let Some(wd) = &req.wd {
            cmd.arg("-c")
                .arg(format!("cd -- {} && exec bash -l", quote(wd)));
        }
    } else {
        cmd.arg("-lc").arg(script(req));
    }
    let cgroups = target.cgroup_procs();
    let fds: Vec<i32> = cgroups.iter().map(|f| f.as_raw_fd()).collect();
    let session = match stdio {
        Stdio3::Pipes => {
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            Session::Detached
        }
        Stdio3::Pty(slave) => {
            let out = slave.try_clone().map_err(|source| Error::Io {
                context: "dup pty".into(),
                source,
            })?;
            let err = slave.try_clone().map_err(|source| Error::Io {
                context: "dup pty".into(),
                source,
            })?;
            cmd.stdin(Stdio::from(slave))
                .stdout(Stdio::from(out))
                .stderr(Stdio::from(err));
            Session::Terminal
        }
        Stdio3::Detached => {
            cmd.stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            Session::Detached
        }
    };
    spawn_sys::child_setup(&mut cmd, fds, env_fd, session);
    Ok(Prepared {
        cmd,
        _cgroups: cgroups,
    })
}

/// Forwards `sig` to the exec's processes inside the box, as a terminal would to its
/// foreground group: every descendant of the host-side `nsenter` that shares the process group
/// of nsenter's child (nsenter itself forwards nothing, and must not die first, or the exit
/// code is lost).
pub fn signal_exec(nsenter_pid: u32, sig: i32) -> Result<()> {
    let nsenter = nsenter_pid as i32;
    let tree = descendants(nsenter);
    let Some(&first) = tree.first() else {
        return sys::kill(nsenter, sig);
    };
    let group = pgrp_of(first);
    for pid in tree {
        if pgrp_of(pid) == group {
            sys::kill(pid, sig)?;
        }
    }
    Ok(())
}

fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let text = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        out.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok()),
        );
    }
    out
}

/// Every descendant of `pid`, breadth first.
fn descendants(pid: i32) -> Vec<i32> {
    let mut out = children_of(pid);
    let mut i = 0;
    while i < out.len() {
        let more = children_of(out[i]);
        out.extend(more);
        i += 1;
    }
    out
}

fn pgrp_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or(-1)
}

/// Exit code as a shell reports it: the code, or 128 + the signal.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(255)
}

/// Starts `req` in the background inside the box: detached from the caller (new session, no
/// terminal, reparented to tini), output to `/tmp/boxes/exec/<pid>.log`. Returns the pid as the
/// box sees it.
pub fn spawn_background(target: &Target, req: &ExecRequest) -> Result<u32> {
    logs::ensure_log_dir(target)?;
    // The wrapper the Kubernetes fallback uses too: detached, logged to EXEC_LOG_DIR/<pid>.log.
    let wrapper = ExecRequest {
        args: vec![script::background(&script(req))],
        sh: true,
        env: req.env.clone(),
        wd: None,
        user: req.user.clone(),
    };
    let mut prepared = command(target, &wrapper, Stdio3::Detached)?;
    let out = prepared.cmd.output().map_err(|source| Error::Io {
        context: "run nsenter".into(),
        source,
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().parse().map_err(|_| {
        Error::FailedPrecondition(format!(
            "background exec did not start: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    })
}

/// `ps` inside the box, with the caller's extra args.
pub fn ps_request(extra: &[String]) -> ExecRequest {
    let mut args = vec!["ps".to_string()];
    args.extend(extra.iter().cloned());
    ExecRequest {
        args,
        ..Default::default()
    }
}
