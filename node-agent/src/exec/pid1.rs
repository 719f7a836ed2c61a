//! Kubernetes mode: which host process is a box's PID 1, decided by what the box cannot forge.
//!
//! The kubelet runs a box as the `fork` container of its Pod (operator, `build::boxes`), in the
//! Pod's namespace, which is the box's project. The runner is that container's entrypoint and
//! execs `tini`, so the box's PID 1 is the container's init process. containerd keeps, for
//! every running task, a bundle directory on the host that no box can write:
//!
//! ```text
//! <state>/io.containerd.runtime.v2.task/k8s.io/<container id>/config.json   the OCI spec
//! <state>/io.containerd.runtime.v2.task/k8s.io/<container id>/init.pid      the init's host pid
//! ```
//!
//! A box's PID 1 is the `init.pid` of the one bundle whose spec the CRI plugin annotated as
//! container `fork` of a Pod in namespace `<project>`, and whose runner configuration (the
//! `FORKR_RUNNER_CONFIG` the operator put in the Pod spec) names box `<name>` of `<project>`;
//! that process must run `tini` and sit in exactly the container's cgroup (`linux.cgroupsPath`),
//! so a reused pid is never trusted. The process's own environment, name and parent are no
//! evidence: a process of another box can set all three (issue 12).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Deserialize;

use super::Target;
use crate::error::{Error, Result};

/// containerd's default state directory (`state` in its config.toml).
pub const DEFAULT_CONTAINERD_STATE: &str = "/run/containerd";

/// Where containerd's runc v2 shims keep the bundles of the CRI plugin's (`k8s.io`) tasks,
/// under the state directory.
pub const CRI_TASKS: &str = "io.containerd.runtime.v2.task/k8s.io";

/// The CRI plugin's annotations on a container's OCI spec.
const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
const CONTAINER_NAME: &str = "io.kubernetes.cri.container-name";
const SANDBOX_NAMESPACE: &str = "io.kubernetes.cri.sandbox-namespace";

/// What the box's PID 1 runs once the runner has booted it.
const INIT_COMM: &str = "tini";

/// The parts of an OCI spec (`config.json`) the check reads.
#[derive(Debug, Deserialize)]
struct Spec {
    #[serde(default)]
    annotations: HashMap<String, String>,
    #[serde(default)]
    process: Option<Process>,
    #[serde(default)]
    linux: Option<Linux>,
}

#[derive(Debug, Deserialize)]
struct Process {
    #[serde(default)]
    env: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Linux {
    #[serde(default, rename = "cgroupsPath")]
    cgroups_path: String,
}

/// The identity the operator gives the runner, from its `FORKR_RUNNER_CONFIG`.
#[derive(Debug, Deserialize)]
struct RunnerIdentity {
    project: String,
    box_name: String,
}

/// A runner container of this node: its bundle, and the cgroup its init must be in.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Runner {
    bundle: PathBuf,
    cgroup: String,
}

impl Spec {
    /// Whether this spec is the runner container of box `name` of `project`.
    fn is_runner_of(&self, project: &str, name: &str) -> bool {
        let a = |k: &str| self.annotations.get(k).map(String::as_str);
        if a(CONTAINER_TYPE) != Some("container")
            || a(CONTAINER_NAME) != Some(forkr_crds::labels::RUNNER_CONTAINER)
            || a(SANDBOX_NAMESPACE) != Some(project)
        {
            return false;
        }
        let prefix = format!("{}=", crate::runtime::runner::CONFIG_ENV);
        let Some(config) = self
            .process
            .iter()
            .flat_map(|p| &p.env)
            .find_map(|kv| kv.strip_prefix(&prefix))
        else {
            return false;
        };
        serde_json::from_str::<RunnerIdentity>(config)
            .is_ok_and(|id| id.project == project && id.box_name == name)
    }
}

/// The runner containers of box `name` of `project` among containerd's tasks under `state`.
fn runners(state: &Path, project: &str, name: &str) -> Vec<Runner> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(state.join(CRI_TASKS)) else {
        return out;
    };
    for entry in entries.flatten() {
        let bundle = entry.path();
        let Ok(text) = std::fs::read(bundle.join("config.json")) else {
            continue;
        };
        let Ok(spec) = serde_json::from_slice::<Spec>(&text) else {
            continue;
        };
        let cgroup = spec
            .linux
            .as_ref()
            .map(|l| cgroup_path(&l.cgroups_path))
            .unwrap_or_default();
        if !cgroup.is_empty() && spec.is_runner_of(project, name) {
            out.push(Runner { bundle, cgroup });
        }
    }
    out
}

/// The cgroup a spec's `cgroupsPath` names, as `/proc/<pid>/cgroup` shows it: a cgroupfs
/// path as is; systemd's `slice:prefix:name` expanded the way runc does
/// (`a-b.slice:cri-containerd:id` is `/a.slice/a-b.slice/cri-containerd-id.scope`). Empty
/// when it is neither.
pub fn cgroup_path(cgroups_path: &str) -> String {
    if cgroups_path.starts_with('/') {
        return cgroups_path.to_owned();
    }
    let mut parts = cgroups_path.split(':');
    let (Some(slice), Some(prefix), Some(name), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return String::new();
    };
    let mut path = String::new();
    if let Some(stem) = slice.strip_suffix(".slice")
        && !stem.is_empty()
        && stem != "-"
    {
        let mut acc = String::new();
        for part in stem.split('-') {
            if !acc.is_empty() {
                acc.push('-');
            }
            acc.push_str(part);
            path.push('/');
            path.push_str(&acc);
            path.push_str(".slice");
        }
    }
    if slice.is_empty() {
        path.push_str("/system.slice");
    }
    // runc's unit name: a scope unless a slice is asked for.
    if name.ends_with(".slice") {
        path.push('/');
        path.push_str(name);
    } else {
        path.push_str(&format!("/{prefix}-{name}.scope"));
    }
    path
}

/// Whether `pid` is in cgroup `want` (a path as `/proc/<pid>/cgroup` shows it): on cgroup v1,
/// in the hierarchies of the memory, pids and devices controllers (every one that is mounted
/// must agree, and at least one must be); on v2, in the unified hierarchy.
pub fn in_cgroup(pid: i32, want: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return false;
    };
    let mut v1 = Vec::new();
    let mut v2 = Vec::new();
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (f.next(), f.next(), f.next()) else {
            return false;
        };
        if controllers.is_empty() {
            v2.push(path);
        } else if controllers
            .split(',')
            .any(|c| matches!(c, "memory" | "pids" | "devices"))
        {
            v1.push(path);
        }
    }
    let checked = if v1.is_empty() { v2 } else { v1 };
    !checked.is_empty() && checked.iter().all(|p| *p == want)
}

/// The host pid a bundle's `init.pid` names.
fn init_pid(bundle: &Path) -> Option<i32> {
    std::fs::read_to_string(bundle.join("init.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 0)
}

/// The runner's init, if it is the booted box's PID 1: `tini`, in the container's cgroup.
fn pid1_of(runner: &Runner) -> Option<i32> {
    let pid = init_pid(&runner.bundle)?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (comm.trim_end() == INIT_COMM && in_cgroup(pid, &runner.cgroup)).then_some(pid)
}

/// Finds box `name` of `project` among the runner containers containerd runs on this node
/// (state directory `state`), and its PID 1.
fn find(state: &Path, project: &str, name: &str) -> Result<(Runner, Target)> {
    let found: Vec<(Runner, i32)> = runners(state, project, name)
        .into_iter()
        .filter_map(|r| pid1_of(&r).map(|pid| (r, pid)))
        .collect();
    match found.as_slice() {
        [(r, pid)] => Ok((r.clone(), Target::new(*pid))),
        [] => Err(Error::NotFound(format!(
            "box {project}/{name} is not running on this node"
        ))),
        _ => Err(Error::FailedPrecondition(format!(
            "box {project}/{name} has several runner containers on this node: {:?}",
            found.iter().map(|(_, p)| p).collect::<Vec<_>>()
        ))),
    }
}

/// Where each box's PID 1 was last found on this node, so that an exec does not read every
/// container's spec. A hit is checked again by the same rule (the container still runs, its
/// init is still `tini` in its cgroup), so neither a stopped container nor a reused pid is
/// trusted.
#[derive(Debug)]
pub struct NodeBoxes {
    state: PathBuf,
    seen: Mutex<HashMap<(String, String), Runner>>,
}

impl Default for NodeBoxes {
    fn default() -> NodeBoxes {
        NodeBoxes::new(DEFAULT_CONTAINERD_STATE)
    }
}

impl NodeBoxes {
    /// Boxes of the containerd whose state directory is `state`.
    pub fn new(state: impl Into<PathBuf>) -> NodeBoxes {
        NodeBoxes {
            state: state.into(),
            seen: Mutex::default(),
        }
    }

    /// The containerd state directory this looks in.
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// The running box's PID 1.
    pub fn find(&self, project: &str, name: &str) -> Result<Target> {
        let key = (project.to_owned(), name.to_owned());
        let cached = self
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        if let Some(pid) = cached.as_ref().and_then(pid1_of) {
            return Ok(Target::new(pid));
        }
        let found = find(&self.state, project, name);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        match found {
            Ok((runner, target)) => {
                seen.insert(key, runner);
                Ok(target)
            }
            Err(e) => {
                seen.remove(&key);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::cgroup_path;

    #[test]
    fn cgroups_paths_of_both_drivers() {
        assert_eq!(
            cgroup_path("/kubepods/besteffort/pod1/abc"),
            "/kubepods/besteffort/pod1/abc"
        );
        assert_eq!(
            cgroup_path("kubepods-besteffort-pod1.slice:cri-containerd:abc"),
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-abc.scope"
        );
        assert_eq!(
            cgroup_path("system.slice:docker:abc"),
            "/system.slice/docker-abc.scope"
        );
        assert_eq!(cgroup_path("relative/path"), "");
        assert_eq!(cgroup_path("a:b"), "");
    }
}
