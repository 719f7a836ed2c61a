//! Kubernetes mode: the agent finds a box's PID 1 through containerd's records of the box's
//! runner container and that container's cgroup, never by a process's name or environment,
//! which any box can forge (issue 12). Real processes in real cgroups; the containerd state
//! directory is written by the test the way containerd writes it.
#![allow(clippy::unwrap_used)]

mod rtkit;

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};

use forkr_node_agent::Error;
use forkr_node_agent::exec::{NodeBoxes, Target};
use forkr_node_agent::runtime::BoxSpec;
use rtkit::containerd::{Cgroup, Containerd, cgroup_of};
use rtkit::{Rt, unique, wait_until};

/// A program named `tini` (a copy of sleep), so that its comm is what a box's PID 1 shows.
fn fake_tini(dir: &std::path::Path) -> std::path::PathBuf {
    let bin = dir.join("tini");
    if !bin.exists() {
        std::fs::copy("/bin/sleep", &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

/// Kills its process when the test ends, pass or fail.
struct Proc(Child);

impl Proc {
    fn pid(&self) -> i32 {
        self.0.id() as i32
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `tini` with the environment the runner gives a box's PID 1, in `cgroup` when given.
fn start_tini(bin: &std::path::Path, project: &str, name: &str, cgroup: Option<&Cgroup>) -> Proc {
    let mut cmd = Command::new(bin);
    cmd.arg("1000")
        .env_clear()
        .env("BOX_NAME", name)
        .env("FORKR_PROJECT", project)
        .stdin(Stdio::null());
    if let Some(cg) = cgroup {
        cg.join_on_spawn(&mut cmd);
    }
    let p = Proc(cmd.spawn().unwrap());
    // The comm is `tini` once it has exec'd.
    assert!(wait_until(10, || std::fs::read_to_string(format!(
        "/proc/{}/comm",
        p.pid()
    ))
    .is_ok_and(|c| c.trim() == "tini")));
    p
}

/// What the agent used to take for a box's PID 1 (before issue 12): `tini`, with the box's
/// name and project in its environment, under a parent without them. The forgeries below
/// pass it, so the old rule saw several candidates (or the wrong one).
fn looks_like_pid1(pid: i32, project: &str, name: &str) -> bool {
    let carries = |pid: i32| {
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        [
            format!("BOX_NAME={name}"),
            format!("FORKR_PROJECT={project}"),
        ]
        .iter()
        .all(|w| env.split(|b| *b == 0).any(|kv| kv == w.as_bytes()))
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let parent: i32 = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok())
        .unwrap();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    comm.trim() == "tini" && carries(pid) && !carries(parent)
}

fn not_found(r: forkr_node_agent::Result<Target>) -> bool {
    matches!(r, Err(Error::NotFound(_)))
}

#[test]
fn the_true_pid_1_is_found_and_a_forged_tini_is_not() {
    let bins = tempfile::tempdir().unwrap();
    let tini = fake_tini(bins.path());
    let (project, name) = (unique("p"), "web");
    let state = Containerd::new();
    // The box's runner container, its cgroup, and its init: tini.
    let container = Cgroup::new();
    let real = start_tini(&tini, &project, name, Some(&container));
    state.runner("c0ffee01", &project, name, &container.path, real.pid());
    // Another tenant's box: a container of its own (project `evil`), whose process poses as
    // the victim's PID 1, with the same name, the same environment, under a parent (us) that
    // carries neither: everything the old rule looked at.
    let evil_cg = Cgroup::new();
    let evil_init = start_tini(&tini, "evil", "x", Some(&evil_cg));
    state.runner("badc0de1", "evil", "x", &evil_cg.path, evil_init.pid());
    let forged = start_tini(&tini, &project, name, Some(&evil_cg));
    // And one outside any container.
    let forged_host = start_tini(&tini, &project, name, None);

    for p in [&real, &forged, &forged_host] {
        assert!(looks_like_pid1(p.pid(), &project, name));
    }

    let boxes = NodeBoxes::new(state.path());
    assert_eq!(boxes.find(&project, name).unwrap(), Target::new(real.pid()));
    // The cache hit is checked with the same rule, and still the real one.
    assert_eq!(boxes.find(&project, name).unwrap(), Target::new(real.pid()));
    assert!(not_found(boxes.find(&project, "absent")));
    assert!(not_found(boxes.find("evil", name)));

    // A stale or rewritten init.pid naming another box's process (a reused pid) is not
    // trusted: that process is not in this container's cgroup. Neither from the cache nor on
    // a fresh look.
    for pid in [forged.pid(), forged_host.pid(), evil_init.pid()] {
        state.set_init_pid("c0ffee01", pid);
        assert!(not_found(boxes.find(&project, name)), "accepted pid {pid}");
        assert!(not_found(NodeBoxes::new(state.path()).find(&project, name)));
    }
    state.set_init_pid("c0ffee01", real.pid());
    assert_eq!(boxes.find(&project, name).unwrap(), Target::new(real.pid()));

    // A container is only the box's runner if containerd says so: a Pod in another namespace
    // that claims the box in its runner configuration, and a container of another name in
    // the right namespace, are not.
    state.remove("c0ffee01");
    assert!(not_found(boxes.find(&project, name)));
    let claim = format!(
        "FORKR_RUNNER_CONFIG={}",
        serde_json::json!({"project": project, "box_name": name})
    );
    state.container(
        "e1",
        "evil",
        "fork",
        std::slice::from_ref(&claim),
        &evil_cg.path,
        forged.pid(),
    );
    state.container(
        "e2",
        &project,
        "sidecar",
        &[claim],
        &container.path,
        real.pid(),
    );
    assert!(not_found(boxes.find(&project, name)));
    state.runner("c0ffee02", &project, name, &container.path, real.pid());
    assert_eq!(boxes.find(&project, name).unwrap(), Target::new(real.pid()));
}

#[test]
fn a_runner_container_that_has_not_exec_d_tini_yet_is_not_running() {
    let (project, name) = (unique("p"), "boot");
    let state = Containerd::new();
    let container = Cgroup::new();
    // Still the runner (here: sleep under its own name), booting.
    let mut cmd = Command::new("/bin/sleep");
    cmd.arg("1000");
    container.join_on_spawn(&mut cmd);
    let runner = Proc(cmd.spawn().unwrap());
    state.runner("b007", &project, name, &container.path, runner.pid());
    assert!(not_found(NodeBoxes::new(state.path()).find(&project, name)));
}

#[test]
fn boxes_booted_by_runc_are_found_through_their_containers() {
    let rt = Rt::new();
    // Other tests' boxes run on this node too: use names of our own.
    let (p, q) = (unique("kp"), unique("kq"));
    let pid = rt.boot(&BoxSpec::new(&p, "kube")).pid.unwrap();
    let other = rt.boot(&BoxSpec::new(&q, "kube")).pid.unwrap();
    let state = Containerd::new();
    state.runner("a1", &p, "kube", &cgroup_of(pid), pid);
    state.runner("a2", &q, "kube", &cgroup_of(other), other);
    let boxes = NodeBoxes::new(state.path());
    assert_eq!(boxes.find(&p, "kube").unwrap(), Target::new(pid));
    assert_eq!(boxes.find(&q, "kube").unwrap(), Target::new(other));
    assert!(not_found(boxes.find(&p, "absent")));

    // A restart is a new container with a new init: the cache follows, and never names the
    // old pid once the container is gone.
    rt.rt.stop(&p, "kube").unwrap();
    state.remove("a1");
    assert!(not_found(boxes.find(&p, "kube")));
    let second = rt.rt.resume(&p, "kube").unwrap().pid.unwrap();
    assert_ne!(pid, second);
    state.runner("a3", &p, "kube", &cgroup_of(second), second);
    assert_eq!(boxes.find(&p, "kube").unwrap(), Target::new(second));
    assert_eq!(boxes.find(&p, "kube").unwrap(), Target::new(second));
}

#[test]
fn an_agent_without_containerd_state_finds_no_box() {
    let boxes = NodeBoxes::new("/nonexistent/containerd-state");
    assert!(not_found(boxes.find("p", "b")));
}
