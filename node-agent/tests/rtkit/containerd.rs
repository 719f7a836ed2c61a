//! What the agent reads in Kubernetes mode, made by the test: a containerd state directory with
//! CRI task bundles (`config.json`, `init.pid`) for real processes, and real cgroups to put
//! those processes in.

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use forkr_node_agent::exec::pid1::CRI_TASKS;

/// A containerd state directory with bundles of our making.
pub struct Containerd {
    pub dir: tempfile::TempDir,
}

impl Containerd {
    pub fn new() -> Containerd {
        Containerd {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    fn bundle(&self, id: &str) -> PathBuf {
        self.path().join(CRI_TASKS).join(id)
    }

    /// The bundle of CRI container `container` of a Pod in `namespace`, as containerd writes it:
    /// the CRI annotations, the process environment and the cgroup in `config.json`, the
    /// init's host pid in `init.pid`.
    pub fn container(
        &self,
        id: &str,
        namespace: &str,
        container: &str,
        env: &[String],
        cgroups_path: &str,
        init_pid: i32,
    ) {
        let dir = self.bundle(id);
        std::fs::create_dir_all(&dir).unwrap();
        let spec = serde_json::json!({
            "ociVersion": "1.0.2-dev",
            "process": {"args": ["/usr/bin/forkr-runner"], "env": env, "cwd": "/"},
            "annotations": {
                "io.kubernetes.cri.container-type": "container",
                "io.kubernetes.cri.container-name": container,
                "io.kubernetes.cri.sandbox-id": "0".repeat(64),
                "io.kubernetes.cri.sandbox-name": format!("{container}-5d8f7c9b6d-x2k4p"),
                "io.kubernetes.cri.sandbox-namespace": namespace,
            },
            "linux": {"cgroupsPath": cgroups_path, "namespaces": [{"type": "pid"}]},
        });
        std::fs::write(dir.join("config.json"), spec.to_string()).unwrap();
        std::fs::write(dir.join("init.pid"), init_pid.to_string()).unwrap();
    }

    /// The runner (`fork`) container of box `name` of `project`, configured as the operator
    /// does it.
    pub fn runner(&self, id: &str, project: &str, name: &str, cgroups_path: &str, init_pid: i32) {
        let config = serde_json::json!({"project": project, "box_name": name});
        let env = vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
            format!("FORKR_RUNNER_CONFIG={config}"),
            "FORKR_NODE_IP=10.1.2.3".to_owned(),
        ];
        self.container(id, project, "fork", &env, cgroups_path, init_pid);
    }

    /// Rewrites a bundle's `init.pid`.
    pub fn set_init_pid(&self, id: &str, pid: i32) {
        std::fs::write(self.bundle(id).join("init.pid"), pid.to_string()).unwrap();
    }

    /// The task is gone (containerd deletes the bundle).
    pub fn remove(&self, id: &str) {
        std::fs::remove_dir_all(self.bundle(id)).unwrap();
    }
}

fn cgroup_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The hierarchies a test cgroup is made in: those the agent checks.
fn hierarchies() -> Vec<PathBuf> {
    if cgroup_v2() {
        vec![PathBuf::from("/sys/fs/cgroup")]
    } else {
        ["memory", "pids", "devices"]
            .iter()
            .map(|c| Path::new("/sys/fs/cgroup").join(c))
            .filter(|p| p.exists())
            .collect()
    }
}

/// A cgroup of our own, as a container runtime makes one; removed on drop (kill its
/// processes first).
pub struct Cgroup {
    /// The path as `/proc/<pid>/cgroup` and a spec's `cgroupsPath` write it.
    pub path: String,
    dirs: Vec<PathBuf>,
}

impl Cgroup {
    pub fn new() -> Cgroup {
        let path = format!("/{}", super::unique("forkr-test-pid1-"));
        let dirs: Vec<PathBuf> = hierarchies()
            .into_iter()
            .map(|h| h.join(path.trim_start_matches('/')))
            .collect();
        assert!(!dirs.is_empty(), "no cgroup hierarchy to test with");
        for d in &dirs {
            std::fs::create_dir(d).unwrap();
        }
        Cgroup { path, dirs }
    }

    /// Moves `pid` in.
    pub fn add(&self, pid: i32) {
        for d in &self.dirs {
            std::fs::write(d.join("cgroup.procs"), pid.to_string()).unwrap();
        }
    }

    /// Makes `cmd`'s child join this cgroup before it execs, so it and all it starts are in.
    pub fn join_on_spawn(&self, cmd: &mut Command) {
        let files: Vec<std::fs::File> = self
            .dirs
            .iter()
            .map(|d| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(d.join("cgroup.procs"))
                    .unwrap()
            })
            .collect();
        // SAFETY: the closure only calls write(2), which is async-signal-safe; the files stay
        // open in the closure, which the command owns.
        unsafe {
            cmd.pre_exec(move || {
                for f in &files {
                    if libc::write(f.as_raw_fd(), b"0".as_ptr().cast(), 1) != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for d in &self.dirs {
            // A process may take a moment to leave after it was reaped.
            for _ in 0..100 {
                if std::fs::remove_dir(d).is_ok() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
}

/// The cgroup `pid` is in, as the agent compares it (the memory hierarchy on v1).
pub fn cgroup_of(pid: i32) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    text.lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
            let hit = if cgroup_v2() {
                controllers.is_empty()
            } else {
                controllers.split(',').any(|c| c == "memory")
            };
            hit.then(|| path.to_owned())
        })
        .unwrap()
}

/// The children of `pid`.
pub fn children(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}
