//! `forkr-runner`'s boot sequence (000, "The mental model"; 002, "Filesystem layout").
//!
//! The runner runs as a privileged container's entrypoint: a runc container in local mode, the
//! `fork` container of the box's Pod in Kubernetes. It sees the box root at `root` (normally
//! `/volumes`), mounts the kernel and scratch surfaces and the volumes into it, writes the
//! environment, and becomes `tini` inside it. Its configuration is one JSON document, read from
//! a file or from the `FORKR_RUNNER_CONFIG` variable, so both modes configure it identically.

pub mod env;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::sys;
pub use env::Injected;

/// The variable that may carry the whole configuration as JSON.
pub const CONFIG_ENV: &str = "FORKR_RUNNER_CONFIG";
/// The node IP, when the configuration leaves it empty (Kubernetes: from `status.hostIP`).
pub const NODE_IP_ENV: &str = "FORKR_NODE_IP";

/// Where each system volume appears inside the box.
pub const SYSTEM_MOUNTS: [(&str, &str); 4] = [
    ("box-bin", "/box/bin"),
    ("box-all", "/box/all"),
    ("box-proj", "/box/proj"),
    ("home", "/home"),
];

/// The system volumes every box of every project sees (`box-bin`, `box-all`). A box mounts them
/// read-only: what one tenant could write there would run in every other tenant's box
/// (`/box/bin` is on the login PATH before /usr/bin). An admin changes them from outside the
/// boxes, with `4kr cp` and an admin token (`files::BoxFiles::allow_shared_writes`).
pub const SHARED_MOUNTS: [&str; 2] = ["/box/bin", "/box/all"];

/// A data volume mount: `source` as the runner sees it, at `target` inside the box.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataMount {
    pub source: PathBuf,
    pub target: String,
    #[serde(default)]
    pub read_only: bool,
}

/// Everything the runner needs. Paths are as the runner sees them (inside its container).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerConfig {
    #[serde(flatten)]
    pub injected: Injected,
    /// The box root; `/volumes` in both modes.
    #[serde(default = "default_root")]
    pub root: PathBuf,
    /// Ephemeral host directory behind /tmp and /run; emptied on every start.
    pub scratch: PathBuf,
    /// Files bound over /etc/resolv.conf and /etc/hosts; `None` keeps the root's own.
    #[serde(default)]
    pub resolv_conf: Option<PathBuf>,
    #[serde(default)]
    pub hosts: Option<PathBuf>,
    /// System volume name (`box-bin`, `box-all`, `box-proj`, `home`) to its source directory.
    #[serde(default)]
    pub system_volumes: BTreeMap<String, PathBuf>,
    #[serde(default)]
    pub data_volumes: Vec<DataMount>,
    /// The user's `-e KEY=VALUE` pairs.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// PID 1's command line inside the box.
    #[serde(default = "default_init")]
    pub init: Vec<String>,
}

fn default_root() -> PathBuf {
    PathBuf::from("/volumes")
}

/// `tini -s -- /bin/bash -lc "sleep infinity"`, as 000 shows.
pub fn default_init() -> Vec<String> {
    [
        "/usr/bin/tini",
        "-s",
        "--",
        "/bin/bash",
        "-lc",
        "sleep infinity",
    ]
    .map(String::from)
    .to_vec()
}

impl RunnerConfig {
    /// Reads the configuration from `path`, or else from `FORKR_RUNNER_CONFIG`.
    pub fn load(path: Option<&Path>) -> Result<RunnerConfig> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p).ctx("read", p)?,
            None => std::env::var(CONFIG_ENV).map_err(|_| {
                Error::InvalidArgument(format!("no --config file and no {CONFIG_ENV} variable"))
            })?,
        };
        let mut cfg: RunnerConfig = serde_json::from_str(&text)
            .map_err(|e| Error::InvalidArgument(format!("runner configuration: {e}")))?;
        cfg.fill_node_ip(std::env::var(NODE_IP_ENV).ok());
        cfg.validate()?;
        Ok(cfg)
    }

    /// In Kubernetes the operator cannot know the node IP when it writes the configuration: it
    /// leaves `node_ip` empty and the pod gets FORKR_NODE_IP from `status.hostIP`.
    pub fn fill_node_ip(&mut self, from_env: Option<String>) {
        if self.injected.node_ip.is_empty()
            && let Some(ip) = from_env.filter(|ip| !ip.is_empty())
        {
            self.injected.node_ip = ip;
        }
    }

    /// Applies the shared validation to everything that came from a user.
    pub fn validate(&self) -> Result<()> {
        use forkr_crds::validation as v;
        let bad = |e: v::ValidationError| Error::InvalidArgument(e.to_string());
        v::validate_box_name(&self.injected.box_name).map_err(bad)?;
        v::validate_project_name(&self.injected.project).map_err(bad)?;
        v::validate_env(&self.env).map_err(|e| {
            Error::InvalidArgument(e.first().map_or("invalid env".into(), |f| f.to_string()))
        })?;
        for m in &self.data_volumes {
            v::validate_mount_path(&m.target).map_err(bad)?;
        }
        for name in self.system_volumes.keys() {
            if !SYSTEM_MOUNTS.iter().any(|(n, _)| n == name) {
                return Err(Error::InvalidArgument(format!(
                    "unknown system volume {name:?}"
                )));
            }
        }
        if self.init.is_empty() {
            return Err(Error::InvalidArgument("init command is empty".into()));
        }
        if self.init.iter().any(|a| a.contains('\0')) {
            return Err(Error::InvalidArgument(
                "init arguments must not contain NUL".into(),
            ));
        }
        Ok(())
    }

    /// `<box>.<project>`.
    pub fn hostname(&self) -> String {
        format!("{}.{}", self.injected.box_name, self.injected.project)
    }

    /// The full environment of PID 1: a bare PATH and HOME, then the box's variables.
    pub fn process_env(&self) -> Vec<(String, String)> {
        let mut out = vec![
            ("PATH".to_string(), env::BASE_PATH.to_string()),
            ("HOME".to_string(), "/root".to_string()),
        ];
        out.extend(env::box_env(&self.injected, &self.env));
        out
    }
}

/// Performs every step up to the exec of PID 1, in the order of the documents.
pub fn prepare(cfg: &RunnerConfig) -> Result<()> {
    let root = sys::open_dir(&cfg.root)?;
    mount_kernel_surfaces(&root)?;
    mount_scratch(cfg, &root)?;
    bind_etc_files(cfg, &root)?;
    mount_volumes(cfg, &root)?;
    sys::set_hostname(&cfg.hostname())?;
    write_env(cfg, &root)
}

/// Runs the boot sequence and becomes PID 1's program inside the root. Returns only on failure.
pub fn boot(cfg: &RunnerConfig) -> Error {
    if let Err(e) = prepare(cfg) {
        return e;
    }
    if let Err(e) = sys::chroot(&cfg.root) {
        return e;
    }
    sys::execve(Path::new(&cfg.init[0]), &cfg.init, &cfg.process_env())
}

fn mount_kernel_surfaces(root: &OwnedFd) -> Result<()> {
    sys::mount_fs("proc", &sys::mkdir_all_in_root(root, Path::new("/proc"))?)?;
    sys::mount_fs("sysfs", &sys::mkdir_all_in_root(root, Path::new("/sys"))?)?;
    sys::bind(
        Path::new("/dev"),
        &sys::mkdir_all_in_root(root, Path::new("/dev"))?,
        true,
    )
}

/// Empties the scratch directory and binds its `tmp` (1777) and `run` (755) into the box.
fn mount_scratch(cfg: &RunnerConfig, root: &OwnedFd) -> Result<()> {
    std::fs::create_dir_all(&cfg.scratch).ctx("create", &cfg.scratch)?;
    sys::wipe_dir(&cfg.scratch)?;
    for (name, mode) in [("tmp", 0o1777), ("run", 0o755)] {
        let src = cfg.scratch.join(name);
        std::fs::create_dir(&src).ctx("create", &src)?;
        std::fs::set_permissions(&src, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .ctx("chmod", &src)?;
        let target = sys::mkdir_all_in_root(root, &Path::new("/").join(name))?;
        sys::bind(&src, &target, false)?;
    }
    Ok(())
}

/// Binds the given resolv.conf and hosts. A symlink in their place (Ubuntu's resolv.conf points
/// into /run) is replaced by a plain file, so the bind lands on the box's own path.
fn bind_etc_files(cfg: &RunnerConfig, root: &OwnedFd) -> Result<()> {
    let etc = sys::mkdir_all_in_root(root, Path::new("/etc"))?;
    for (src, name) in [(&cfg.resolv_conf, "resolv.conf"), (&cfg.hosts, "hosts")] {
        let Some(src) = src else { continue };
        let target = plain_file_at(root, &etc, name)?;
        sys::bind(src, &target, false)?;
    }
    Ok(())
}

/// An O_PATH fd on a regular file `/etc/<name>` in the root, replacing a symlink or creating it.
fn plain_file_at(root: &OwnedFd, etc: &OwnedFd, name: &str) -> Result<OwnedFd> {
    let path = Path::new("/etc").join(name);
    let etc_path = sys::fd_path(etc).join(name);
    if etc_path
        .symlink_metadata()
        .is_ok_and(|m| !m.file_type().is_file())
    {
        std::fs::remove_file(&etc_path).ctx("replace", &path)?;
    }
    drop(sys::open_in_root(
        root,
        &path,
        libc::O_WRONLY | libc::O_CREAT | libc::O_NOFOLLOW,
        0o644,
    )?);
    sys::open_in_root(root, &path, libc::O_PATH | libc::O_NOFOLLOW, 0)
}

/// System volumes first, then data volumes parents before children, so /home/x lands on /home.
fn mount_volumes(cfg: &RunnerConfig, root: &OwnedFd) -> Result<()> {
    for (name, target) in SYSTEM_MOUNTS {
        if let Some(src) = cfg.system_volumes.get(name) {
            sys::bind(
                src,
                &sys::mkdir_all_in_root(root, Path::new(target))?,
                false,
            )?;
            if SHARED_MOUNTS.contains(&target) {
                sys::remount_read_only(root, Path::new(target))?;
            }
        }
    }
    let mut data: Vec<&DataMount> = cfg.data_volumes.iter().collect();
    data.sort_by_key(|m| m.target.matches('/').count());
    for m in data {
        let target = Path::new(&m.target);
        sys::bind(&m.source, &sys::mkdir_all_in_root(root, target)?, true)?;
        if m.read_only {
            sys::remount_read_only(root, target)?;
        }
    }
    Ok(())
}

/// Writes /etc/boxes-env (atomically) and adds its source line to /etc/bash.bashrc once.
fn write_env(cfg: &RunnerConfig, root: &OwnedFd) -> Result<()> {
    let etc = sys::mkdir_all_in_root(root, Path::new("/etc"))?;
    let etc_dir = sys::fd_path(&etc);
    let vars = env::box_env(&cfg.injected, &cfg.env);
    let file = Path::new("/etc/boxes-env");
    // Opened inside the root, so a symlink planted at the temporary name cannot lead out; the
    // rename replaces whatever sits at the final name without following it.
    let tmp = sys::open_in_root(
        root,
        Path::new("/etc/.boxes-env.forkr-new"),
        libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
        0o644,
    )?;
    std::fs::File::from(tmp)
        .write_all(env::env_file(&vars).as_bytes())
        .ctx("write", file)?;
    std::fs::rename(
        etc_dir.join(".boxes-env.forkr-new"),
        etc_dir.join("boxes-env"),
    )
    .ctx("write", file)?;

    let bashrc = Path::new("/etc/bash.bashrc");
    let mut text = String::new();
    match sys::open_in_root(root, bashrc, libc::O_RDONLY, 0) {
        Ok(fd) => {
            std::fs::File::from(fd)
                .read_to_string(&mut text)
                .ctx("read", bashrc)?;
        }
        Err(e) if sys::is_enoent(&e) => {}
        Err(e) => return Err(e),
    }
    if let Some(updated) = env::with_source_line(&text) {
        let fd = sys::open_in_root(
            root,
            bashrc,
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
            0o644,
        )?;
        std::fs::File::from(fd)
            .write_all(updated.as_bytes())
            .ctx("write", bashrc)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_node_ip_comes_from_the_environment_only() {
        let mut cfg = RunnerConfig {
            injected: Injected::default(),
            root: default_root(),
            scratch: PathBuf::from("/s"),
            resolv_conf: None,
            hosts: None,
            system_volumes: BTreeMap::new(),
            data_volumes: Vec::new(),
            env: BTreeMap::new(),
            init: default_init(),
        };
        cfg.fill_node_ip(Some("10.1.2.3".into()));
        assert_eq!(cfg.injected.node_ip, "10.1.2.3");
        cfg.fill_node_ip(Some("10.9.9.9".into()));
        assert_eq!(cfg.injected.node_ip, "10.1.2.3");
    }
}
