//! The `runc` command line, the only way the local runtime touches containers.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

use crate::error::{Error, Result};

/// runc with its own state root, so separate runtimes (and tests) never see each other's
/// containers.
#[derive(Debug, Clone)]
pub struct Runc {
    root: PathBuf,
}

/// What `runc state` reports.
#[derive(Debug, Clone, Deserialize)]
pub struct State {
    pub pid: i32,
    /// created, running, paused or stopped.
    pub status: String,
}

impl Runc {
    /// runc keeping its state under `root`.
    pub fn new(root: &Path) -> Runc {
        Runc {
            root: root.to_path_buf(),
        }
    }

    /// runc by absolute path with the fixed host environment: it runs as root on the host, so
    /// nothing of a box or a request may steer which binary runs or how it loads.
    fn cmd(&self) -> Result<Command> {
        let mut c = crate::sys::cmd::host_command(crate::sys::cmd::HostBin::Runc)?;
        c.arg("--root").arg(&self.root);
        Ok(c)
    }

    fn run(&self, args: &[&str]) -> Result<Vec<u8>> {
        let out = self
            .cmd()?
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| Error::Io {
                context: "run runc (is it installed?)".into(),
                source,
            })?;
        if !out.status.success() {
            return Err(Error::FailedPrecondition(format!(
                "runc {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(out.stdout)
    }

    /// Creates and starts the container from `bundle` in one runc invocation (`run --detach`),
    /// returning its init's PID. The init's stdout and stderr go to `log`.
    pub fn run_detached(&self, id: &str, bundle: &Path, log: &Path) -> Result<i32> {
        let pid_file = bundle.join("pid");
        let logf = std::fs::File::create(log).map_err(|source| Error::Io {
            context: format!("create {}", log.display()),
            source,
        })?;
        let out = self
            .cmd()?
            .arg("run")
            .arg("--detach")
            .arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(&pid_file)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(logf.try_clone().map_err(|source| Error::Io {
                context: "dup log".into(),
                source,
            })?)
            .stderr(logf)
            .status()
            .map_err(|source| Error::Io {
                context: "run runc (is it installed?)".into(),
                source,
            })?;
        if !out.success() {
            let log_text = std::fs::read_to_string(log).unwrap_or_default();
            return Err(Error::FailedPrecondition(format!(
                "runc run {id} failed: {}",
                log_text.trim()
            )));
        }
        let pid = std::fs::read_to_string(&pid_file).unwrap_or_default();
        pid.trim()
            .parse()
            .map_err(|_| Error::FailedPrecondition(format!("runc wrote no pid for {id}")))
    }

    /// PID of the container's init while it runs, read from runc's state file without running
    /// runc (an exec looks this up every time). Checked against the process's start time, as
    /// runc does, so a reused PID is never mistaken for the box.
    pub fn running_init(&self, id: &str) -> Option<i32> {
        #[derive(Deserialize)]
        struct Saved {
            init_process_pid: i32,
            init_process_start: u64,
        }
        let text = std::fs::read(self.root.join(id).join("state.json")).ok()?;
        let saved: Saved = serde_json::from_slice(&text).ok()?;
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", saved.init_process_pid)).ok()?;
        let (_, rest) = stat.rsplit_once(") ")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let running = !matches!(fields.first(), Some(&"Z") | Some(&"X"));
        let start: u64 = fields.get(19)?.parse().ok()?;
        (running && start == saved.init_process_start).then_some(saved.init_process_pid)
    }

    /// The container's state; `None` when runc does not know it.
    pub fn state(&self, id: &str) -> Result<Option<State>> {
        if !self.root.join(id).exists() {
            // runc keeps a directory per container; without it there is nothing to ask.
            return Ok(None);
        }
        let out = self
            .cmd()?
            .args(["state", id])
            .stdin(Stdio::null())
            .output()
            .map_err(|source| Error::Io {
                context: "run runc".into(),
                source,
            })?;
        if !out.status.success() {
            return Ok(None);
        }
        serde_json::from_slice(&out.stdout)
            .map(Some)
            .map_err(|e| Error::FailedPrecondition(format!("runc state {id}: {e}")))
    }

    /// Sends `signal` (a name like TERM or KILL) to every process of the container.
    pub fn kill_all(&self, id: &str, signal: &str) -> Result<()> {
        // A container that already stopped refuses the kill; that is what we wanted anyway.
        let _ = self.run(&["kill", "--all", id, signal]);
        Ok(())
    }

    /// Removes the container, killing it first if it still runs. Unknown is success.
    pub fn delete(&self, id: &str) -> Result<()> {
        if self.state(id)?.is_none() {
            return Ok(());
        }
        self.run(&["delete", "--force", id]).map(drop)
    }

    /// Ids of every container under this root.
    pub fn list(&self) -> Result<Vec<String>> {
        let out = self.run(&["list", "-q"])?;
        Ok(String::from_utf8_lossy(&out)
            .lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect())
    }
}
