//! `forkr-runner` as Kubernetes runs it: configured by FORKR_RUNNER_CONFIG, started by a
//! container runtime we do not control (here `unshare`), and found by the exec engine among
//! the node's processes. Also its refusals of bad configuration.
#![allow(clippy::unwrap_used)]

mod rtkit;

use std::process::{Child, Command, Stdio};

use forkr_node_agent::exec::{NodeBoxes, Target};
use rtkit::containerd::{Cgroup, Containerd, children};
use rtkit::{Rt, runner_bin, sh, unique, wait_until};

/// Kills the pod-like process tree even when the test fails. Like the kubelet's containerd,
/// it records the runner container (`containerd`), in a cgroup of its own.
struct Pod {
    child: Child,
    project: String,
    containerd: Containerd,
    _cgroup: Cgroup,
}

impl Pod {
    /// The box's PID 1, as the agent finds it in Kubernetes mode.
    fn find(&self) -> forkr_node_agent::Result<Target> {
        NodeBoxes::new(self.containerd.path()).find(&self.project, "pod")
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        if let Ok(t) = self.find() {
            let _ = forkr_node_agent::sys::kill(t.pid1, libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the runner of box `pod` in a new project the way a Pod would (config in the
/// environment, mount/UTS/IPC/PID namespaces from `unshare`), and waits for its PID 1.
fn start_pod(rt: &Rt) -> (Pod, Target, std::path::PathBuf, tempfile::TempDir) {
    let project = unique("k");
    rt.pool.create_root(&project, "pod", &rt.base).unwrap();
    let root = rt.root(&project, "pod");
    let scratch = tempfile::tempdir().unwrap();
    std::fs::write(scratch.path().join("stale"), "from a previous pod").unwrap();
    let home = rt.pool.ensure_project(&project).unwrap()[1].clone();
    let cfg = serde_json::json!({
        "project": project, "box_name": "pod",
        "api_url": "https://forks.example.test", "api_host": "forks.example.test",
        "node_ip": "10.1.2.3", "insecure": true,
        "root": root, "scratch": scratch.path(),
        "system_volumes": {"home": home},
        "env": {"QUOTED": "a \"b\" $c"},
    });
    let cgroup = Cgroup::new();
    let mut cmd = Command::new("unshare");
    cgroup.join_on_spawn(&mut cmd);
    let child = cmd
        .args([
            "--mount",
            "--uts",
            "--ipc",
            "--pid",
            "--fork",
            "--propagation",
            "private",
        ])
        .arg(runner_bin())
        .env_clear()
        .env("FORKR_RUNNER_CONFIG", cfg.to_string())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    // The container's init: unshare's child, the runner, which becomes tini.
    let unshare = child.id() as i32;
    let mut init = 0;
    assert!(wait_until(10, || {
        init = children(unshare).first().copied().unwrap_or(0);
        init > 0
    }));
    let containerd = Containerd::new();
    containerd.runner("f0rk", &project, "pod", &cgroup.path, init);
    let pod = Pod {
        child,
        project: project.clone(),
        containerd,
        _cgroup: cgroup,
    };
    assert!(wait_until(10, || pod.find().is_ok()));
    let t = pod.find().unwrap();
    assert_eq!(t, Target::new(init));
    (pod, t, home, scratch)
}

#[test]
fn runner_configured_by_env_boots_like_in_a_pod() {
    let rt = Rt::new();
    let (pod, t, home, scratch) = start_pod(&rt);
    let project = pod.project.clone();
    let out = sh(
        t.pid1,
        "cat /proc/1/comm; hostname; grep -E 'INSECURE|QUOTED' /etc/boxes-env; ls -A /tmp; echo $FORKR_API_IP",
    );
    assert_eq!(
        out.stdout,
        format!(
            "tini\npod.{project}\nexport FORKR_INSECURE=\"true\"\nexport QUOTED=\"a \\\"b\\\" \\$c\"\n10.1.2.3\n"
        ),
        "{out:?}"
    );
    // The runner's own configuration does not leak into the box.
    let out = sh(
        t.pid1,
        "tr '\\0' '\\n' < /proc/1/environ | grep -c FORKR_RUNNER_CONFIG",
    );
    assert_eq!(out.stdout, "0\n");
    // The home volume is mounted; the scratch directory was wiped at start.
    assert_eq!(
        sh(t.pid1, "echo hi > /home/f && cat /home/f").stdout,
        "hi\n"
    );
    assert!(home.join("f").exists());
    assert!(!scratch.path().join("stale").exists());
}

/// Kubernetes mode of the agent: no local runtime, yet exec, ps and files reach the Pod's box.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_without_local_runtime_serves_exec_and_files_for_pods() {
    use forkr_node_agent::rpc::proto::{self, exec_input, exec_output};
    let rt = Rt::new();
    let (pod, _t, _home, _scratch) = tokio::task::block_in_place(|| start_pod(&rt));
    let project = pod.project.clone();
    let sock = rt.state.path().join("kube.sock");
    let svc = forkr_node_agent::rpc::service_on_node(
        rt.pool.clone(),
        None,
        rtkit::TOKEN,
        std::time::Duration::from_secs(15),
        std::sync::Arc::new(NodeBoxes::new(pod.containerd.path())),
    );
    let path = sock.clone();
    tokio::spawn(async move {
        forkr_node_agent::rpc::serve::serve_runtime_unix(svc, &path, std::future::pending()).await
    });
    let mut c = rtkit::connect(&sock).await;
    let bref = Some(proto::BoxRef {
        project: project.clone(),
        name: "pod".into(),
    });
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tx.send(proto::ExecInput {
        msg: Some(exec_input::Msg::Start(proto::ExecStart {
            r#box: bref.clone(),
            args: vec!["hostname".into()],
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let mut s = c
        .exec(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let (mut stdout, mut code) = (Vec::new(), None);
    while let Some(m) = s.message().await.unwrap() {
        match m.msg.unwrap() {
            exec_output::Msg::Stdout(b) => stdout.extend(b),
            exec_output::Msg::ExitCode(x) => code = Some(x),
            _ => {}
        }
    }
    assert_eq!(String::from_utf8_lossy(&stdout), format!("pod.{project}\n"));
    assert_eq!(code, Some(0));
    let ps = c
        .ps(proto::PsRequest {
            r#box: bref.clone(),
            args: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(String::from_utf8_lossy(&ps.stdout).contains("tini"));
    let mut f = c
        .get_file(proto::GetFileRequest {
            r#box: bref.clone(),
            path: "/etc/boxes-env".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut text = Vec::new();
    while let Some(m) = f.message().await.unwrap() {
        if let Some(proto::get_file_chunk::Msg::Data(d)) = m.msg {
            text.extend(d);
        }
    }
    assert!(String::from_utf8_lossy(&text).contains("export BOX_NAME=\"pod\""));
    let err = c
        .start_box(proto::StartBoxRequest {
            r#box: bref,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    drop(pod);
}

#[test]
fn bad_configuration_is_refused_before_anything_is_mounted() {
    let run = |cfg: Option<String>| {
        let mut c = Command::new(runner_bin());
        c.env_clear();
        if let Some(cfg) = cfg {
            c.env("FORKR_RUNNER_CONFIG", cfg);
        }
        let out = c.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(None);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("no --config file and no FORKR_RUNNER_CONFIG"),
        "{err}"
    );
    let base = serde_json::json!({
        "project": "p", "box_name": "b", "api_url": "", "api_host": "", "node_ip": "",
        "scratch": "/nonexistent-scratch",
    });
    for (field, value) in [
        ("box_name", serde_json::json!("Bad_Name")),
        ("project", serde_json::json!("kube-system")),
        ("env", serde_json::json!({"TERM": "vt100"})),
        (
            "data_volumes",
            serde_json::json!([{"source": "/x", "target": "/proc/x"}]),
        ),
        ("system_volumes", serde_json::json!({"box-evil": "/x"})),
        ("init", serde_json::json!([])),
    ] {
        let mut cfg = base.clone();
        cfg[field] = value;
        let (code, err) = run(Some(cfg.to_string()));
        assert_eq!(code, Some(2), "{field}: {err}");
    }
    let (code, _) = run(Some("{not json".into()));
    assert_eq!(code, Some(2));
}
