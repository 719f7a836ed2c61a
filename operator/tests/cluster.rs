//! The real-cluster suite: boxes as real Pods on a real Kubernetes (1.20 on the harness), with
//! forkr-operator and forkr-node-agent running on the host. scripts/k8s-e2e.sh prepares
//! everything and exports FORKR_E2E_*; without them this suite fails, it never skips.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use forkr_agent_proto::auth::BearerToken;
use forkr_agent_proto::runtime as rt;
use forkr_agent_proto::storage as agent;
use forkr_crds::{BoxPhase, BoxResource, Snapshot};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run this suite through scripts/k8s-e2e.sh, which starts the cluster, the agent and the operator")
    })
}

struct Harness {
    client: kube::Client,
    ns: String,
    agent: String,
    token: String,
    pool: String,
}

/// Deletes the test's namespace (and so its boxes) even when the test fails.
impl Drop for Harness {
    fn drop(&mut self) {
        let ns = self.ns.clone();
        let client = self.client.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                // The operator must still run: the boxes' finalizers need it to release them.
                let api: Api<Namespace> = Api::all(client);
                let _ = api.delete(&ns, &DeleteParams::default()).await;
                let deadline = Instant::now() + Duration::from_secs(90);
                while Instant::now() < deadline && api.get_opt(&ns).await.ok().flatten().is_some() {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            });
        })
        .join();
    }
}

type Auth = InterceptedService<Channel, BearerToken>;

impl Harness {
    async fn storage(&self) -> agent::storage_client::StorageClient<Auth> {
        let ch = Channel::from_shared(self.agent.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        agent::storage_client::StorageClient::with_interceptor(
            ch,
            BearerToken::new(&self.token).unwrap(),
        )
    }

    async fn runtime(&self) -> rt::runtime_client::RuntimeClient<Auth> {
        let ch = Channel::from_shared(self.agent.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        rt::runtime_client::RuntimeClient::with_interceptor(
            ch,
            BearerToken::new(&self.token).unwrap(),
        )
    }

    fn boxes(&self) -> Api<BoxResource> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Runs `sh -c script` in the box through the agent (the container-runtime path of 000).
    async fn exec(&self, name: &str, script: &str) -> (i32, String) {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.send(rt::ExecInput {
            msg: Some(rt::exec_input::Msg::Start(rt::ExecStart {
                r#box: Some(rt::BoxRef {
                    project: self.ns.clone(),
                    name: name.into(),
                }),
                args: vec![script.into()],
                sh: true,
                ..Default::default()
            })),
        })
        .await
        .unwrap();
        drop(tx);
        let mut s = self
            .runtime()
            .await
            .exec(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        let (mut out, mut code) = (Vec::new(), -1);
        while let Some(m) = s.message().await.unwrap() {
            match m.msg {
                Some(rt::exec_output::Msg::Stdout(b)) => out.extend(b),
                Some(rt::exec_output::Msg::ExitCode(c)) => code = c,
                _ => {}
            }
        }
        (code, String::from_utf8_lossy(&out).into_owned())
    }

    async fn apply_box(&self, name: &str, spec: serde_json::Value) {
        let body = json!({"apiVersion": "forkr.dev/v1alpha1", "kind": "Box", "metadata": {"name": name}, "spec": spec});
        self.boxes()
            .patch(
                name,
                &PatchParams::apply("e2e-user").force(),
                &Patch::Apply(&body),
            )
            .await
            .unwrap();
    }

    /// Polls the Box until `ok`, failing with its last status after `secs`.
    async fn wait_box(
        &self,
        name: &str,
        secs: u64,
        what: &str,
        ok: impl Fn(&BoxResource) -> bool,
    ) -> BoxResource {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let b = self.boxes().get_opt(name).await.unwrap();
            if let Some(b) = &b
                && ok(b)
            {
                return b.clone();
            }
            assert!(
                Instant::now() < deadline,
                "box {name}: {what} not reached in {secs}s; last: {:?}",
                b.map(|b| b.status)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn wait_phase(&self, name: &str, phase: BoxPhase, secs: u64) -> BoxResource {
        self.wait_box(name, secs, &format!("{phase:?}"), |b| {
            b.status.as_ref().and_then(|s| s.phase) == Some(phase)
                && b.status.as_ref().and_then(|s| s.observed_generation) == b.metadata.generation
        })
        .await
    }

    async fn pods(&self, name: &str) -> Vec<Pod> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.ns);
        pods.list(&ListParams::default().labels(&format!("forkr.dev/box={name}")))
            .await
            .unwrap()
            .items
    }

    async fn wait_no_pods(&self, name: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !self.pods(name).await.is_empty() {
            assert!(
                Instant::now() < deadline,
                "pods of {name} still exist after {secs}s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn has_root(&self, name: &str) -> bool {
        let roots = self
            .storage()
            .await
            .list_roots(agent::ListRootsRequest {
                project: self.ns.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .roots;
        roots.iter().any(|r| r.r#box == name)
    }
}

async fn harness() -> Harness {
    let agent = env("FORKR_E2E_AGENT");
    let token = std::fs::read_to_string(env("FORKR_E2E_TOKEN_FILE"))
        .unwrap()
        .trim()
        .to_owned();
    let pool = env("FORKR_E2E_POOL");
    let client = kube::Client::try_default()
        .await
        .expect("a kubeconfig (KUBECONFIG)");
    let ns = format!("e2e-{}", std::process::id());
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
    )
    .await
    .unwrap();
    let h = Harness {
        client,
        ns,
        agent,
        token,
        pool,
    };
    import_base(&h).await;
    h
}

/// The tiny real base as `box-base` in the agent's pool (idempotent by request id).
async fn import_base(h: &Harness) {
    let tar =
        forkr_node_agent::minibase::tarball(std::path::Path::new("/var/cache/forkr/testbase"))
            .unwrap();
    let bytes = std::fs::read(tar).unwrap();
    let mut msgs = vec![agent::ImportBaseChunk {
        part: Some(agent::import_base_chunk::Part::Header(
            agent::ImportBaseHeader {
                name: "box-base".into(),
                request_id: "e2e-minibase".into(),
                ..Default::default()
            },
        )),
    }];
    for chunk in bytes.chunks(1 << 20) {
        msgs.push(agent::ImportBaseChunk {
            part: Some(agent::import_base_chunk::Part::Data(chunk.to_vec())),
        });
    }
    h.storage()
        .await
        .import_base(futures::stream::iter(msgs))
        .await
        .unwrap();
}

fn secs_between(
    a: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
    b: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
) -> f64 {
    (b.0.as_millisecond() - a.0.as_millisecond()) as f64 / 1000.0
}

/// Create → Ready, split into root creation, scheduling and container start, from the
/// timestamps the cluster recorded.
async fn report_timings(h: &Harness, b: &BoxResource) {
    let created = b.metadata.creation_timestamp.clone().unwrap();
    let st = b.status.clone().unwrap();
    let root = st
        .conditions
        .iter()
        .find(|c| c.type_ == "RootReady")
        .unwrap()
        .last_transition_time
        .clone();
    let ready = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap()
        .last_transition_time
        .clone();
    let pod = h
        .pods(b.metadata.name.as_deref().unwrap())
        .await
        .pop()
        .unwrap();
    let pst = pod.status.clone().unwrap();
    let scheduled = pst
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "PodScheduled")
        .and_then(|c| c.last_transition_time)
        .unwrap();
    let started = pst.container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .running
        .unwrap()
        .started_at
        .unwrap();
    println!(
        "e2e timing {}: create->ready {:.1}s = root {:.1}s + scheduling {:.1}s + container start {:.1}s (+ status {:.1}s); timestamps have 1 s resolution",
        b.metadata.name.as_deref().unwrap(),
        secs_between(&created, &ready),
        secs_between(&created, &root),
        secs_between(&root, &scheduled),
        secs_between(&scheduled, &started),
        secs_between(&started, &ready),
    );
}

/// A second operator replica started with the leader's own command line and environment, but
/// its own identity and metrics port. Killed when dropped.
struct Follower {
    child: std::process::Child,
    metrics: String,
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_follower(leader: u32) -> Follower {
    let read = |f: &str| std::fs::read(format!("/proc/{leader}/{f}")).unwrap();
    let split = |b: Vec<u8>| -> Vec<String> {
        b.split(|c| *c == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    };
    let mut args = split(read("cmdline"));
    let addr = "127.0.0.1:19191";
    for i in 0..args.len().saturating_sub(1) {
        match args[i].as_str() {
            "--listen" => args[i + 1] = addr.into(),
            "--identity" => args[i + 1] = format!("follower-{}", std::process::id()),
            _ => {}
        }
    }
    let envs: Vec<(String, String)> = split(read("environ"))
        .into_iter()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect();
    let log = std::fs::File::create("/var/lib/forkr-e2e/logs/operator-follower.log").unwrap();
    let child = std::process::Command::new(&args[0])
        .args(&args[1..])
        .env_clear()
        .envs(envs)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    Follower {
        child,
        metrics: format!("http://{addr}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boxes_live_as_real_pods() {
    // Declared first, dropped last: the namespace cleanup needs an operator.
    let leader: u32 = env("FORKR_E2E_OPERATOR_PID").parse().unwrap();
    let follower = spawn_follower(leader);
    let h = harness().await;
    let ns = h.ns.clone();

    // Create: kubectl-apply shape, as a user or Argo CD would write it.
    let t0 = Instant::now();
    h.apply_box(
        "web",
        json!({"port": 8080, "memory": "256Mi", "cpu": "100m", "env": {"GREETING": "hi"}}),
    )
    .await;
    let b = h.wait_phase("web", BoxPhase::Running, 180).await;
    println!(
        "e2e: web Running after {:.1}s (wall clock)",
        t0.elapsed().as_secs_f64()
    );
    report_timings(&h, &b).await;
    let st = b.status.clone().unwrap();
    assert_eq!(st.node.as_deref(), Some(env("FORKR_E2E_NODE").as_str()));
    assert_eq!(
        st.url.as_deref(),
        Some(format!("https://web.{ns}.e2e.forkr.test").as_str())
    );
    assert!(st.pod_ip.is_some());
    let deploy: Api<Deployment> = Api::namespaced(h.client.clone(), &ns);
    let d = deploy.get("web").await.unwrap();
    assert_eq!(d.spec.replicas, Some(1));
    // The box's env is never the privileged runner's own environment (a box's LD_PRELOAD would
    // load there, as root on the node): it travels in the runner configuration only.
    let runner_env: Vec<String> = d.spec.template.spec.as_ref().unwrap().containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| e.name.clone())
        .collect();
    assert!(
        !runner_env.iter().any(|n| n == "GREETING"),
        "{runner_env:?}"
    );
    let svc: Api<Service> = Api::namespaced(h.client.clone(), &ns);
    assert_eq!(
        svc.get("web")
            .await
            .unwrap()
            .spec
            .unwrap()
            .cluster_ip
            .as_deref(),
        Some("None")
    );
    assert!(
        std::path::Path::new(&h.pool)
            .join("roots")
            .join(&ns)
            .join("web")
            .exists()
    );

    // Exec through the agent: hostname, injected env, the node IP from status.hostIP.
    let (code, out) = h
        .exec(
            "web",
            "hostname; echo $GREETING; echo $FORKR_NODE_IP; cat /proc/1/comm",
        )
        .await;
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("web.{ns}"));
    assert_eq!(lines[1], "hi");
    assert!(!lines[2].is_empty(), "FORKR_NODE_IP set from status.hostIP");
    assert_eq!(lines[3], "tini");
    // And through Kubernetes exec (the fallback path), into the box root.
    let pods: Api<Pod> = Api::namespaced(h.client.clone(), &ns);
    let pod = h.pods("web").await.pop().unwrap();
    let mut att = pods
        .exec(
            pod.metadata.name.as_deref().unwrap(),
            [
                "/bin/busybox",
                "chroot",
                "/volumes",
                "/bin/sh",
                "-c",
                "cat /etc/boxes-env | grep -c BOX_NAME; . /etc/boxes-env && echo \"$GREETING\"",
            ],
            &kube::api::AttachParams::default()
                .container("fork")
                .stderr(false),
        )
        .await
        .unwrap();
    let mut stdout = att.stdout().unwrap();
    let mut text = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut text)
        .await
        .unwrap();
    att.join().await.unwrap();
    assert_eq!(
        text.trim(),
        "1\nhi",
        "the fallback's env comes from /etc/boxes-env"
    );
    // The runner container's own environment (what a Kubernetes exec starts with) has none of
    // the box's variables.
    let mut att = pods
        .exec(
            pod.metadata.name.as_deref().unwrap(),
            ["/bin/busybox", "env"],
            &kube::api::AttachParams::default()
                .container("fork")
                .stderr(false),
        )
        .await
        .unwrap();
    let mut stdout = att.stdout().unwrap();
    let mut text = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut text)
        .await
        .unwrap();
    att.join().await.unwrap();
    assert!(text.contains("FORKR_NODE_IP="), "{text}");
    assert!(
        !text.lines().any(|l| l.starts_with("GREETING=")),
        "the runner's env holds the box's: {text}"
    );

    // Snapshot, change, restore.
    assert_eq!(h.exec("web", "echo one > /root/marker").await.0, 0);
    let snaps: Api<Snapshot> = Api::namespaced(h.client.clone(), &ns);
    let snap = json!({"apiVersion": "forkr.dev/v1alpha1", "kind": "Snapshot",
        "metadata": {"name": "web.v0", "labels": {"forkr.dev/snapshot-of": "web"}}, "spec": {"box": "web", "name": "v0"}});
    snaps
        .patch(
            "web.v0",
            &PatchParams::apply("e2e-user").force(),
            &Patch::Apply(&snap),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = snaps.get("web.v0").await.unwrap();
        if s.status.as_ref().and_then(|s| s.phase)
            == Some(forkr_crds::snapshot::SnapshotPhase::Ready)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "snapshot not ready: {:?}",
            s.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(h.exec("web", "echo two > /root/marker").await.0, 0);
    let t = Instant::now();
    h.apply_box(
        "web",
        json!({"port": 8080, "memory": "256Mi", "cpu": "100m", "env": {"GREETING": "hi"},
        "restore": {"snapshot": "v0", "requestId": "r1"}}),
    )
    .await;
    h.wait_box("web", 180, "restore Succeeded and Running", |b| {
        let s = b.status.clone().unwrap_or_default();
        s.restore
            .is_some_and(|r| r.request_id == "r1" && r.state == "Succeeded")
            && s.phase == Some(BoxPhase::Running)
    })
    .await;
    println!("e2e: restore round trip {:.1}s", t.elapsed().as_secs_f64());
    let (_, out) = h.exec("web", "cat /root/marker").await;
    assert_eq!(out.trim(), "one", "the root was rolled back");

    // Stop and resume keep the root.
    h.apply_box("web", json!({"port": 8080, "memory": "256Mi", "cpu": "100m", "env": {"GREETING": "hi"}, "running": false,
        "restore": {"snapshot": "v0", "requestId": "r1"}})).await;
    h.wait_phase("web", BoxPhase::Stopped, 120).await;
    h.wait_no_pods("web", 60).await;
    assert_eq!(deploy.get("web").await.unwrap().spec.replicas, Some(0));
    h.apply_box("web", json!({"port": 8080, "memory": "256Mi", "cpu": "100m", "env": {"GREETING": "hi"}, "running": true,
        "restore": {"snapshot": "v0", "requestId": "r1"}})).await;
    h.wait_phase("web", BoxPhase::Running, 120).await;
    let (_, out) = h.exec("web", "cat /root/marker").await;
    assert_eq!(out.trim(), "one", "the root survived stop and resume");

    // Fork: a new box from web's root, on the same node.
    h.apply_box("copy", json!({"fork": {"box": "web"}})).await;
    h.wait_phase("copy", BoxPhase::Running, 180).await;
    let (_, out) = h.exec("copy", "hostname; cat /root/marker").await;
    assert_eq!(out, format!("copy.{ns}\none\n"));

    // A data volume mounted into a box: a real hostPath from the pool, shared by two boxes.
    let vols: Api<forkr_crds::DataVolume> = Api::namespaced(h.client.clone(), &ns);
    let vol = json!({"apiVersion": "forkr.dev/v1alpha1", "kind": "DataVolume", "metadata": {"name": "shared"}, "spec": {}});
    vols.patch(
        "shared",
        &PatchParams::apply("e2e-user").force(),
        &Patch::Apply(&vol),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while vols
        .get("shared")
        .await
        .unwrap()
        .status
        .and_then(|s| s.node)
        .is_none()
    {
        assert!(Instant::now() < deadline, "data volume not placed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    h.apply_box(
        "writer",
        json!({"data": [{"volume": "shared", "mountPath": "/data"}]}),
    )
    .await;
    h.wait_phase("writer", BoxPhase::Running, 180).await;
    assert_eq!(h.exec("writer", "echo hello > /data/greeting").await.0, 0);
    h.apply_box(
        "reader",
        json!({"data": [{"volume": "shared", "mountPath": "/data", "readOnly": true}]}),
    )
    .await;
    h.wait_phase("reader", BoxPhase::Running, 180).await;
    let (_, out) = h
        .exec(
            "reader",
            "cat /data/greeting; touch /data/x 2>/dev/null && echo writable || echo read-only",
        )
        .await;
    assert_eq!(out, "hello\nread-only\n");

    // Base save: the copy's root becomes a new version of a Base, and a box starts from it.
    let bases: Api<forkr_crds::Base> = Api::namespaced(h.client.clone(), &ns);
    // The pool outlives runs, and request ids are pool-wide: a name and an id of this run's own,
    // or an earlier run's version would come back.
    let alias = format!(
        "saved-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let base = json!({"apiVersion": "forkr.dev/v1alpha1", "kind": "Base", "metadata": {"name": alias},
        "spec": {"source": {"requestId": format!("r-{alias}"), "save": {"box": "copy"}}}});
    bases
        .patch(
            &alias,
            &PatchParams::apply("e2e-user").force(),
            &Patch::Apply(&base),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let version = loop {
        let b = bases.get(&alias).await.unwrap();
        if let Some(v) = b.status.and_then(|s| s.current_version) {
            break v;
        }
        assert!(Instant::now() < deadline, "base not saved");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    h.apply_box("child", json!({"base": version})).await;
    h.wait_phase("child", BoxPhase::Running, 180).await;
    let (_, out) = h.exec("child", "cat /root/marker").await;
    assert_eq!(
        out.trim(),
        "one",
        "a box of the saved base has the saved root"
    );

    // Delete: the finalizer removes the root and checkpoints; GC removes the children.
    h.boxes()
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while h.boxes().get_opt("web").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "box web not deleted");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(!h.has_root("web").await, "root deleted");
    assert!(h.has_root("copy").await, "the fork keeps its own root");
    let deadline = Instant::now() + Duration::from_secs(60);
    while deploy.get_opt("web").await.unwrap().is_some()
        || svc.get_opt("web").await.unwrap().is_some()
    {
        assert!(
            Instant::now() < deadline,
            "children of web not garbage-collected"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    h.wait_no_pods("web", 60).await;
    assert!(
        snaps.get_opt("web.v0").await.unwrap().is_none(),
        "snapshots go with the box"
    );

    // The leader's metrics saw it all.
    let metrics = http_get(&env("FORKR_E2E_METRICS"), "/metrics").await;
    assert!(
        metrics.contains("forkr_operator_reconciles_total{controller=\"box\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("forkr_operator_api_writes_total{"),
        "{metrics}"
    );

    // Two replicas are safe: the follower serves /healthz but reconciles nothing...
    let fm = http_get(&follower.metrics, "/healthz").await;
    assert!(fm.contains(" 200 "), "{fm}");
    let fm = http_get(&follower.metrics, "/metrics").await;
    assert!(
        !fm.contains("forkr_operator_reconciles_total{"),
        "the follower reconciled: {fm}"
    );
    // ...until the leader stops: then it takes the Lease over and runs the controllers.
    std::process::Command::new("kill")
        .arg(leader.to_string())
        .status()
        .unwrap();
    let t = Instant::now();
    h.apply_box("after", json!({})).await;
    h.wait_phase("after", BoxPhase::Running, 90).await;
    println!(
        "e2e: the follower took over and ran a new box {:.1}s after the leader stopped",
        t.elapsed().as_secs_f64()
    );
    let fm = http_get(&follower.metrics, "/metrics").await;
    assert!(
        fm.contains("forkr_operator_reconciles_total{controller=\"box\"}"),
        "{fm}"
    );
}

/// A plain HTTP/1.0 GET, enough for /metrics.
async fn http_get(base: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

/// A namespace of its own, deleted (with everything in it) when the test ends, pass or fail.
struct OwnNamespace {
    client: kube::Client,
    name: String,
}

impl OwnNamespace {
    async fn create(client: &kube::Client, name: String) -> OwnNamespace {
        let nss: Api<Namespace> = Api::all(client.clone());
        nss.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
        )
        .await
        .unwrap();
        OwnNamespace {
            client: client.clone(),
            name,
        }
    }
}

impl Drop for OwnNamespace {
    fn drop(&mut self) {
        let (ns, client) = (self.name.clone(), self.client.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                let api: Api<Namespace> = Api::all(client);
                let _ = api.delete(&ns, &DeleteParams::default()).await;
                let deadline = Instant::now() + Duration::from_secs(90);
                while Instant::now() < deadline && api.get_opt(&ns).await.ok().flatten().is_some() {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            });
        })
        .join();
    }
}

/// A client that acts as ServiceAccount `tenant` of `ns`, whose Role allows Forkr objects in
/// `ns` only: what a user with `kubectl` (or Argo CD) confined to one namespace holds. On 1.20
/// the account's token is in its auto-created Secret.
async fn tenant_client(admin: &kube::Client, ns: &str) -> kube::Client {
    use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    let pp = PostParams::default();
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), ns);
    sas.create(
        &pp,
        &serde_json::from_value(json!({"metadata": {"name": "tenant"}})).unwrap(),
    )
    .await
    .unwrap();
    let roles: Api<Role> = Api::namespaced(admin.clone(), ns);
    roles
        .create(
            &pp,
            &serde_json::from_value(json!({
                "metadata": {"name": "forkr-user"},
                "rules": [{"apiGroups": ["forkr.dev"],
                           "resources": ["boxes", "bases", "snapshots", "datavolumes"],
                           "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]}]
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), ns);
    bindings
        .create(
            &pp,
            &serde_json::from_value(json!({
                "metadata": {"name": "forkr-user"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "forkr-user"},
                "subjects": [{"kind": "ServiceAccount", "name": "tenant", "namespace": ns}]
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let secret_name = loop {
        let sa = sas.get("tenant").await.unwrap();
        if let Some(s) = sa.secrets.and_then(|s| s.into_iter().next()) {
            break s.name;
        }
        assert!(
            Instant::now() < deadline,
            "no token Secret for the ServiceAccount"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), ns);
    let secret = secrets.get(secret_name.as_deref().unwrap()).await.unwrap();
    let token = String::from_utf8(secret.data.unwrap()["token"].0.clone()).unwrap();
    // The admin kubeconfig's cluster, with the tenant's token as the only credential.
    let text = std::fs::read_to_string(env("KUBECONFIG")).unwrap();
    let mut kc: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
    for user in kc["users"].as_array_mut().unwrap() {
        user["user"] = json!({"token": token});
    }
    let kc = kube::config::Kubeconfig::from_yaml(&serde_yaml_ng::to_string(&kc).unwrap()).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

fn stalled_reason(b: &BoxResource) -> Option<String> {
    b.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled" && c.status == "True")
        .map(|c| c.reason.clone())
}

/// Waits for a Warning event with `reason` about object `name` in `ns` (events.k8s.io/v1, as
/// the operator's recorder writes them).
async fn wait_event(admin: &kube::Client, ns: &str, name: &str, reason: &str) {
    use k8s_openapi::api::events::v1::Event;
    let events: Api<Event> = Api::namespaced(admin.clone(), ns);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = events.list(&ListParams::default()).await.unwrap();
        if list.items.iter().any(|e| {
            e.reason.as_deref() == Some(reason)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
        }) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {reason} event about {ns}/{name}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The operator's tenancy rules on the real cluster, against a user whom RBAC confines to
/// namespace A: a fork of B's box waits for B's grant, a Base of A never writes box-base, B's
/// hosts are never served for A, and a runner image runs only once an admin trusts A. Nothing
/// happens in B meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenancy_a_user_confined_to_one_namespace_reaches_nothing_else() {
    use k8s_openapi::api::networking::v1::Ingress;
    // B is the harness's namespace (with the base imported); A is the tenant's.
    let h = harness().await;
    let b_ns = h.ns.clone();
    let a = OwnNamespace::create(&h.client, format!("e2e-tenant-{}", std::process::id())).await;
    let a_ns = a.name.clone();
    let tenant = tenant_client(&h.client, &a_ns).await;
    let tenant_boxes: Api<BoxResource> = Api::namespaced(tenant.clone(), &a_ns);
    let apply = |name: &str, spec: serde_json::Value| {
        let body = json!({"apiVersion": "forkr.dev/v1alpha1", "kind": "Box", "metadata": {"name": name}, "spec": spec});
        let (api, name) = (tenant_boxes.clone(), name.to_owned());
        async move {
            api.patch(
                &name,
                &PatchParams::apply("tenant").force(),
                &Patch::Apply(&body),
            )
            .await
            .unwrap();
        }
    };
    let a_boxes: Api<BoxResource> = Api::namespaced(h.client.clone(), &a_ns);
    let wait_a = |name: &'static str, what: &'static str, ok: fn(&BoxResource) -> bool| {
        let api = a_boxes.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let b = api.get_opt(name).await.unwrap();
                if let Some(b) = &b
                    && ok(b)
                {
                    return b.clone();
                }
                assert!(
                    Instant::now() < deadline,
                    "{name}: {what} not reached; last: {:?}",
                    b.map(|b| b.status)
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };

    // The confinement is real: the tenant cannot write in B, nor label its own namespace.
    let in_b: Api<BoxResource> = Api::namespaced(tenant.clone(), &b_ns);
    let body = json!({"apiVersion": "forkr.dev/v1alpha1", "kind": "Box", "metadata": {"name": "x"}, "spec": {}});
    match in_b
        .patch("x", &PatchParams::apply("tenant"), &Patch::Apply(&body))
        .await
    {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403),
        other => panic!("the tenant wrote in {b_ns}: {other:?}"),
    }
    let tenant_nss: Api<Namespace> = Api::all(tenant.clone());
    let label = json!({"metadata": {"labels": {"forkr.dev/trusted": "true"}}});
    match tenant_nss
        .patch(&a_ns, &PatchParams::default(), &Patch::Merge(&label))
        .await
    {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403),
        other => panic!("the tenant labelled its namespace: {other:?}"),
    }

    // B's own box, and a host it publishes first.
    h.apply_box(
        "src",
        json!({"port": 80, "publish": [{"host": "shared.e2e.forkr.test"}]}),
    )
    .await;
    h.wait_phase("src", BoxPhase::Running, 180).await;

    // 1. A fork of B's box from A, with no grant: refused, nothing copied, B untouched.
    apply("stolen", json!({"fork": {"box": "src", "project": b_ns}})).await;
    let b = wait_a("stolen", "Stalled", |b| {
        stalled_reason(b).as_deref() == Some("ForkNotGranted")
    })
    .await;
    assert_eq!(b.status.unwrap().phase, Some(BoxPhase::Pending));
    wait_event(&h.client, &a_ns, "stolen", "ForkNotGranted").await;
    let roots_a = h
        .storage()
        .await
        .list_roots(agent::ListRootsRequest {
            project: a_ns.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .roots;
    assert!(
        roots_a.is_empty(),
        "nothing copied into {a_ns}: {roots_a:?}"
    );
    let deploy_a: Api<Deployment> = Api::namespaced(h.client.clone(), &a_ns);
    assert!(deploy_a.get_opt("stolen").await.unwrap().is_none());
    // A base saved from B's box, from A: refused the same way, no version made.
    let tenant_bases: Api<forkr_crds::Base> = Api::namespaced(tenant.clone(), &a_ns);
    let base = json!({"apiVersion": "forkr.dev/v1alpha1", "kind": "Base", "metadata": {"name": "loot"},
        "spec": {"source": {"requestId": format!("loot-{}", std::process::id()), "save": {"box": "src", "project": b_ns}}}});
    tenant_bases
        .patch(
            "loot",
            &PatchParams::apply("tenant").force(),
            &Patch::Apply(&base),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = tenant_bases.get("loot").await.unwrap();
        let st = got.status.unwrap_or_default();
        if st
            .conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.status == "True" && c.reason == "ForkNotGranted")
        {
            assert!(
                st.versions.is_empty(),
                "a version was saved: {:?}",
                st.versions
            );
            break;
        }
        assert!(Instant::now() < deadline, "base loot not refused: {st:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // B's owner grants that one box to A: the waiting fork proceeds (the grant watch wakes it).
    let grants: Api<forkr_crds::ForkGrant> = Api::namespaced(h.client.clone(), &b_ns);
    let grant = json!({"apiVersion": "forkr.dev/v1alpha1", "kind": "ForkGrant", "metadata": {"name": "a-may-fork-src"},
        "spec": {"from": [{"namespace": a_ns}], "to": [{"kind": "Box", "name": "src"}]}});
    grants
        .patch(
            "a-may-fork-src",
            &PatchParams::apply("owner").force(),
            &Patch::Apply(&grant),
        )
        .await
        .unwrap();
    let b = wait_a("stolen", "RootReady", |b| {
        b.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "RootReady" && c.status == "True")
        })
    })
    .await;
    assert_eq!(stalled_reason(&b), None);
    // Revoking it now changes nothing for the copy already made.
    grants
        .delete("a-may-fork-src", &DeleteParams::default())
        .await
        .unwrap();

    // A Base in A that saves A's own box as a new version of box-base, which every tenant's
    // next box boots: refused (only a trusted namespace writes box-base), and box-base keeps
    // exactly the versions it had.
    let box_base_versions = || async {
        let mut versions: Vec<String> = h
            .storage()
            .await
            .show_base(agent::ShowBaseRequest {
                name: "box-base".into(),
                tag: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .versions
            .into_iter()
            .map(|v| v.version)
            .collect();
        versions.sort();
        versions
    };
    let before = box_base_versions().await;
    let hijack = json!({"apiVersion": "forkr.dev/v1alpha1", "kind": "Base", "metadata": {"name": "box-base"},
        "spec": {"source": {"requestId": format!("hijack-{}", std::process::id()), "save": {"box": "stolen"}}}});
    tenant_bases
        .patch(
            "box-base",
            &PatchParams::apply("tenant").force(),
            &Patch::Apply(&hijack),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = tenant_bases
            .get("box-base")
            .await
            .unwrap()
            .status
            .unwrap_or_default();
        if st
            .conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.status == "True" && c.reason == "BaseNotOwned")
        {
            assert_eq!(st.last_request_id, None, "the save request stays unhandled");
            assert!(
                st.versions.is_empty(),
                "a version was saved: {:?}",
                st.versions
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Base box-base not refused: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    wait_event(&h.client, &a_ns, "box-base", "BaseNotOwned").await;
    assert_eq!(
        box_base_versions().await,
        before,
        "box-base's versions changed"
    );
    // Gone before A is trusted below, or the retried save would then write box-base.
    tenant_bases
        .delete("box-base", &DeleteParams::default())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while tenant_bases.get_opt("box-base").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "Base box-base not deleted");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // 2. B's hosts: one B published first, and one under B's namespace.
    let b_url = format!("web.{b_ns}.e2e.forkr.test");
    apply(
        "squat",
        json!({"port": 80, "publish": [{"host": "shared.e2e.forkr.test"}, {"host": b_url}]}),
    )
    .await;
    let b = wait_a("squat", "HostTaken", |b| {
        stalled_reason(b).as_deref() == Some("HostTaken")
    })
    .await;
    let st = b.status.unwrap();
    assert_eq!(
        st.taken_hosts,
        ["shared.e2e.forkr.test".to_owned(), b_url.clone()]
    );
    assert!(st.published_hosts.is_empty());
    wait_event(&h.client, &a_ns, "squat", "HostTaken").await;
    let ing_a: Api<Ingress> = Api::namespaced(h.client.clone(), &a_ns);
    let hosts = |i: Ingress| -> Vec<String> {
        i.spec
            .and_then(|s| s.rules)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| r.host)
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let squat_hosts = loop {
        if let Some(i) = ing_a.get_opt("squat").await.unwrap() {
            break hosts(i);
        }
        assert!(Instant::now() < deadline, "no Ingress for squat");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(squat_hosts, [format!("squat.{a_ns}.e2e.forkr.test")]);
    let ing_b: Api<Ingress> = Api::namespaced(h.client.clone(), &b_ns);
    let src_hosts = hosts(ing_b.get("src").await.unwrap());
    assert!(
        src_hosts.contains(&"shared.e2e.forkr.test".to_owned()),
        "{src_hosts:?}"
    );

    // 3. A runner image in an untrusted namespace: refused, no Deployment; trusted: it runs.
    apply("evil", json!({"runnerImage": "local/busybox:1.36"})).await;
    let b = wait_a("evil", "UntrustedNamespace", |b| {
        stalled_reason(b).as_deref() == Some("UntrustedNamespace")
    })
    .await;
    assert_eq!(b.status.unwrap().phase, Some(BoxPhase::Pending));
    wait_event(&h.client, &a_ns, "evil", "UntrustedNamespace").await;
    assert!(
        deploy_a.get_opt("evil").await.unwrap().is_none(),
        "no Deployment for evil"
    );
    let nss: Api<Namespace> = Api::all(h.client.clone());
    nss.patch(&a_ns, &PatchParams::default(), &Patch::Merge(&label))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let d = loop {
        if let Some(d) = deploy_a.get_opt("evil").await.unwrap() {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "no Deployment for evil once trusted"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let image = d.spec.template.spec.unwrap().containers[0].image.clone();
    assert_eq!(image.as_deref(), Some("local/busybox:1.36"));

    // Nothing of A's reached B: B's Deployments are its own box's only.
    let deploy_b: Api<Deployment> = Api::namespaced(h.client.clone(), &b_ns);
    let names: Vec<String> = deploy_b
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|d| d.metadata.name)
        .collect();
    assert_eq!(names, ["src"]);
    // A's boxes go before B's namespace, so the fork's volumes never pin B's source.
    drop(a);
}
