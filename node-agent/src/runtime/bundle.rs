//! The runc bundle of a box: the shared runner rootfs and each box's `config.json`.
//!
//! The container mirrors the Kubernetes `fork` container: privileged (every capability, every
//! device, no seccomp or AppArmor, no masked paths), the box root bound at `/volumes`, the host
//! `/dev`, and the system and data volumes bound where the runner configuration says.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};

/// Where the runner binary sits in its rootfs.
pub const RUNNER_PATH: &str = "/forkr-runner";
/// resolv.conf and hosts inside the runner container.
pub const ETC_DIR: &str = "/forkr-etc";
// The paths the operator's Pod shares with this bundle (per-box dir, system and data volumes).
pub use forkr_agent_proto::layout::{BOX_DIR, DATA_DIR, SYSTEM_DIR};

/// Every capability Linux 6.x knows; runc skips those the kernel lacks.
const CAPS: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The agent's capability bounding set: a privileged container gets all of it, and no more
/// (runc refuses to grant a capability the caller lacks).
fn bounding_set() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(u64::MAX)
}

/// One bind mount of a host path into the runner container.
#[derive(Debug, Clone)]
pub struct Bind {
    pub source: PathBuf,
    pub destination: String,
    pub read_only: bool,
}

/// What differs between boxes' config.json files.
#[derive(Debug, Clone)]
pub struct BundleSpec {
    pub rootfs: PathBuf,
    pub cgroups_path: String,
    pub env: Vec<(String, String)>,
    pub binds: Vec<Bind>,
    pub memory_bytes: Option<u64>,
    pub cpu_shares: Option<u64>,
}

/// CPU shares for a request in millicores, as Kubernetes computes them (1000m = 1024 shares).
pub fn cpu_shares(millis: u64) -> u64 {
    (millis * 1024 / 1000).max(2)
}

fn mount(dest: &str, kind: &str, source: &str, options: &[&str]) -> Value {
    json!({"destination": dest, "type": kind, "source": source, "options": options})
}

/// The OCI config of a box's runner container.
pub fn config_json(spec: &BundleSpec) -> Value {
    let bounding = bounding_set();
    let caps: Vec<String> = CAPS
        .iter()
        .enumerate()
        .filter(|(i, _)| bounding & (1u64 << i) != 0)
        .map(|(_, c)| format!("CAP_{c}"))
        .collect();
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev"]),
        mount("/dev", "bind", "/dev", &["rbind", "rw"]),
    ];
    for b in &spec.binds {
        let mode = if b.read_only { "ro" } else { "rw" };
        mounts.push(mount(
            &b.destination,
            "bind",
            &b.source.to_string_lossy(),
            &["rbind", mode],
        ));
    }
    let mut resources = json!({"devices": [{"allow": true, "access": "rwm"}]});
    if let Some(m) = spec.memory_bytes {
        resources["memory"] = json!({"limit": m});
    }
    if let Some(s) = spec.cpu_shares {
        // Shares only: a request, never a quota (002, "Resource limits").
        resources["cpu"] = json!({"shares": s});
    }
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": [RUNNER_PATH, "--config", format!("{BOX_DIR}/runner.json")],
            "env": spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "inheritable": caps,
                "permitted": caps, "ambient": caps,
            },
            "noNewPrivileges": false,
        },
        "root": {"path": spec.rootfs, "readonly": true},
        "mounts": mounts,
        "linux": {
            "namespaces": [
                {"type": "pid"}, {"type": "ipc"}, {"type": "uts"},
                {"type": "mount"}, {"type": "network"},
            ],
            "resources": resources,
            "cgroupsPath": spec.cgroups_path,
            "rootfsPropagation": "rprivate",
        },
    })
}

/// Builds (once per runner binary) the read-only rootfs every box's runner container shares:
/// the runner, the libraries it links, and the mount points. Returns its path.
pub fn ensure_runner_rootfs(state_dir: &Path, runner_bin: &Path) -> Result<PathBuf> {
    let bin = std::fs::read(runner_bin).ctx("read", runner_bin)?;
    let key = hex::encode(&Sha256::digest(&bin)[..8]);
    let dir = state_dir.join(format!("rootfs-{key}"));
    if dir.join("ready").exists() {
        return Ok(dir);
    }
    let staging = state_dir.join(format!(".rootfs-{key}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    for d in [
        "proc",
        "sys",
        "dev",
        "volumes",
        "forkr",
        "forkr-data",
        "tmp",
    ] {
        let p = staging.join(d);
        std::fs::create_dir_all(&p).ctx("create", &p)?;
    }
    for (name, _) in crate::runtime::runner::SYSTEM_MOUNTS {
        let p = staging.join(SYSTEM_DIR.trim_start_matches('/')).join(name);
        std::fs::create_dir_all(&p).ctx("create", &p)?;
    }
    let etc = staging.join(ETC_DIR.trim_start_matches('/'));
    std::fs::create_dir_all(&etc).ctx("create", &etc)?;
    for f in ["resolv.conf", "hosts"] {
        std::fs::write(etc.join(f), "").ctx("create", &etc.join(f))?;
    }
    let dst = staging.join(RUNNER_PATH.trim_start_matches('/'));
    std::fs::copy(runner_bin, &dst).ctx("copy", runner_bin)?;
    for lib in shared_libraries(runner_bin)? {
        let dst = staging.join(lib.strip_prefix("/").unwrap_or(&lib));
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent).ctx("create", parent)?;
        }
        std::fs::copy(&lib, &dst).ctx("copy", &lib)?;
    }
    std::fs::write(staging.join("ready"), "").ctx("write", &staging)?;
    match std::fs::rename(&staging, &dir) {
        Ok(()) => Ok(dir),
        // Another runtime built it first.
        Err(_) if dir.join("ready").exists() => {
            let _ = std::fs::remove_dir_all(&staging);
            Ok(dir)
        }
        Err(e) => Err(Error::Io {
            context: format!("publish {}", dir.display()),
            source: e,
        }),
    }
}

/// The absolute paths of the shared libraries (and loader) `bin` needs, from `ldd`.
fn shared_libraries(bin: &Path) -> Result<BTreeSet<PathBuf>> {
    let out = crate::sys::cmd::host_command(crate::sys::cmd::HostBin::Ldd)?
        .arg(bin)
        .output()
        .ctx("run ldd on", bin)?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut libs = BTreeSet::new();
    for line in text.lines() {
        for word in line.split_whitespace() {
            if word.starts_with('/') {
                libs.insert(PathBuf::from(word));
            }
        }
    }
    Ok(libs)
}
