//! `forkr-runner`'s boot sequence (000, "The mental model"; 002, "Filesystem layout").
//!
//! The runner runs as a privileged container's entrypoint: a runc container in local mode, the
//! `fork` container of the box's Pod in Kubernetes. It sees the box root at `root` (normally
//! `/volumes`), mounts the kernel and scratch surfaces and the volumes into it, writes the
//! environment, and becomes `tini` inside it. Its configuration is one JSON document
//! (`forkr_agent_proto::runner::RunnerConfig`), read from a file or from the
//! `FORKR_RUNNER_CONFIG` variable, so both modes configure it identically.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::sys;
// The configuration is the contract with whoever writes it (the operator, the local runtime):
// it lives in forkr-agent-proto; this module is the boot that reads it.
pub use forkr_agent_proto::runner::{
    CONFIG_ENV, DataMount, Injected, NODE_IP_ENV, RunnerConfig, SHARED_MOUNTS, SYSTEM_MOUNTS,
    default_init, env,
};

/// Reads the configuration from `path`, or else from `FORKR_RUNNER_CONFIG`, and validates it.
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
    validate(&cfg)?;
    Ok(cfg)
}

/// Applies the shared validation to everything in `cfg` that came from a user.
pub fn validate(cfg: &RunnerConfig) -> Result<()> {
    use forkr_crds::validation as v;
    let bad = |e: v::ValidationError| Error::InvalidArgument(e.to_string());
    v::validate_box_name(&cfg.injected.box_name).map_err(bad)?;
    v::validate_project_name(&cfg.injected.project).map_err(bad)?;
    v::validate_env(&cfg.env).map_err(|e| {
        Error::InvalidArgument(e.first().map_or("invalid env".into(), |f| f.to_string()))
    })?;
    for m in &cfg.data_volumes {
        v::validate_mount_path(&m.target).map_err(bad)?;
    }
    for name in cfg.system_volumes.keys() {
        if !SYSTEM_MOUNTS.iter().any(|(n, _)| n == name) {
            return Err(Error::InvalidArgument(format!(
                "unknown system volume {name:?}"
            )));
        }
    }
    if cfg.init.is_empty() {
        return Err(Error::InvalidArgument("init command is empty".into()));
    }
    if cfg.init.iter().any(|a| a.contains('\0')) {
        return Err(Error::InvalidArgument(
            "init arguments must not contain NUL".into(),
        ));
    }
    Ok(())
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
