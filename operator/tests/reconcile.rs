//! Reconcile scenarios against a mocked API server and a real node agent on a loopback btrfs
//! pool: create, steady state (zero writes), update, stop, resume, restore, fork, delete, and
//! the error paths.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{Caches, FakeApi, NODE, RealAgent, context};
use forkr_crds::{BoxPhase, BoxResource, BoxSpec, ForkSource, RestoreRequest, conditions};
use forkr_operator::error::Error;
use forkr_operator::reconcile::boxes::reconcile;
use k8s_openapi::api::apps::v1::Deployment;
use kube::core::DeserializeGuard;
use serde_json::{Value, json};

const P: &str = "team";

fn box_path(name: &str) -> String {
    format!("/apis/forkr.dev/v1alpha1/namespaces/{P}/boxes/{name}")
}

fn deploy_path(name: &str) -> String {
    format!("/apis/apps/v1/namespaces/{P}/deployments/{name}")
}

fn new_box(name: &str, spec: BoxSpec) -> Value {
    let mut b = BoxResource::new(name, spec);
    b.metadata.namespace = Some(P.into());
    b.metadata.uid = Some(format!("uid-{name}"));
    b.metadata.generation = Some(1);
    b.metadata.resource_version = Some("1".into());
    serde_json::to_value(b).unwrap()
}

fn current(api: &FakeApi, name: &str) -> BoxResource {
    serde_json::from_value(api.get(&box_path(name)).unwrap()).unwrap()
}

async fn run(
    api: &FakeApi,
    cx: &Arc<forkr_operator::context::Context>,
    name: &str,
) -> Result<(), Error> {
    let b = current(api, name);
    reconcile(Arc::new(DeserializeGuard(Ok(b))), cx.clone())
        .await
        .map(drop)
}

fn pod(name: &str, running: bool) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("{name}-abc"), "namespace": P, "labels": {"forkr.dev/box": name, "forkr.dev/project": P}},
        "spec": {"nodeName": NODE, "containers": [{"name": "fork"}]},
        "status": {"phase": "Running", "podIP": "10.244.0.9", "containerStatuses": [{
            "name": "fork", "ready": running, "restartCount": 0, "image": "i", "imageID": "",
            "state": if running { json!({"running": {"startedAt": "2026-11-23T10:00:00Z"}}) } else { json!({"waiting": {"reason": "ContainerCreating"}}) }
        }]}
    })
}

fn pod_path(name: &str) -> String {
    format!("/api/v1/namespaces/{P}/pods/{name}-abc")
}

fn replicas(api: &FakeApi, name: &str) -> i64 {
    api.get(&deploy_path(name)).unwrap()["spec"]["replicas"]
        .as_i64()
        .unwrap()
}

struct World {
    api: Arc<FakeApi>,
    caches: Caches,
    cx: Arc<forkr_operator::context::Context>,
    agent: RealAgent,
}

async fn world() -> World {
    let api = Arc::new(FakeApi::default());
    let (caches, stores) = Caches::new();
    let agent = RealAgent::start().await;
    let cx = context(api.clone(), agent.agents(), stores);
    World {
        api,
        caches,
        cx,
        agent,
    }
}

/// Creates box `name` through the finalizer step and the first full reconcile.
async fn create(w: &mut World, name: &str, spec: BoxSpec) {
    w.api.put(&box_path(name), new_box(name, spec));
    run(&w.api, &w.cx, name).await.unwrap();
    assert_eq!(
        current(&w.api, name).metadata.finalizers.unwrap(),
        vec!["forkr.dev/box-root"]
    );
    run(&w.api, &w.cx, name).await.unwrap();
    w.caches.sync(&w.api);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_then_steady_state_writes_nothing() {
    let mut w = world().await;
    create(
        &mut w,
        "web",
        BoxSpec {
            port: Some(8080),
            ..BoxSpec::default()
        },
    )
    .await;
    let writes = w.api.writes();
    for want in [
        "PATCH boxes/web",
        "PATCH boxes/web/status",
        "PATCH deployments/web",
        "PATCH services/web",
        "PATCH ingresses/web",
    ] {
        assert!(
            writes.contains(&want.to_string()),
            "{want} missing from {writes:?}"
        );
    }
    assert!(
        w.agent.pool.root_path(P, "web").is_ok(),
        "root created by the agent"
    );
    let b = current(&w.api, "web");
    let st = b.status.unwrap();
    assert_eq!(st.node.as_deref(), Some(NODE));
    assert_eq!(st.phase, Some(BoxPhase::Creating));
    assert_eq!(
        st.url.as_deref(),
        Some("https://web.team.forkr.example.com")
    );
    assert!(st.base_version.is_some());
    assert_eq!(replicas(&w.api, "web"), 1);

    // The pod starts: one status write, Running.
    w.api.put(&pod_path("web"), pod("web", true));
    w.caches.sync(&w.api);
    w.api.clear_calls();
    run(&w.api, &w.cx, "web").await.unwrap();
    assert_eq!(w.api.writes(), vec!["PATCH boxes/web/status"]);
    let st = current(&w.api, "web").status.unwrap();
    assert_eq!(st.phase, Some(BoxPhase::Running));
    assert_eq!(st.pod_ip.as_deref(), Some("10.244.0.9"));
    assert!(
        st.conditions
            .iter()
            .any(|c| c.type_ == conditions::READY && c.status == "True")
    );

    // Nothing changed: no write at all.
    w.api.clear_calls();
    run(&w.api, &w.cx, "web").await.unwrap();
    assert_eq!(w.api.writes(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_stop_and_resume_go_through_the_children() {
    let mut w = world().await;
    create(
        &mut w,
        "app",
        BoxSpec {
            port: Some(3000),
            ..BoxSpec::default()
        },
    )
    .await;

    // Update: new port and memory reach Deployment, Service and Ingress.
    let mut b = w.api.get(&box_path("app")).unwrap();
    b["spec"]["port"] = json!(4000);
    b["spec"]["memory"] = json!("1Gi");
    w.api.put(&box_path("app"), b);
    w.api.clear_calls();
    run(&w.api, &w.cx, "app").await.unwrap();
    let writes = w.api.writes();
    assert!(
        writes.contains(&"PATCH deployments/app".into()),
        "{writes:?}"
    );
    assert!(writes.contains(&"PATCH services/app".into()));
    assert!(writes.contains(&"PATCH ingresses/app".into()));
    let d: Deployment = serde_json::from_value(w.api.get(&deploy_path("app")).unwrap()).unwrap();
    let c = &d.spec.template.spec.unwrap().containers[0];
    assert_eq!(
        c.resources.as_ref().unwrap().limits.as_ref().unwrap()["memory"].0,
        "1Gi"
    );
    w.caches.sync(&w.api);

    // Stop: zero replicas; Stopped once the pod is gone.
    let mut b = w.api.get(&box_path("app")).unwrap();
    b["spec"]["running"] = json!(false);
    w.api.put(&box_path("app"), b);
    run(&w.api, &w.cx, "app").await.unwrap();
    assert_eq!(replicas(&w.api, "app"), 0);
    assert_eq!(
        current(&w.api, "app").status.unwrap().phase,
        Some(BoxPhase::Stopped)
    );
    w.caches.sync(&w.api);

    // Resume.
    let mut b = w.api.get(&box_path("app")).unwrap();
    b["spec"]["running"] = json!(true);
    w.api.put(&box_path("app"), b);
    run(&w.api, &w.cx, "app").await.unwrap();
    assert_eq!(replicas(&w.api, "app"), 1);
    assert_eq!(
        current(&w.api, "app").status.unwrap().phase,
        Some(BoxPhase::Creating)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_scales_down_swaps_the_root_and_scales_back() {
    let mut w = world().await;
    create(&mut w, "db", BoxSpec::default()).await;
    let root = w.agent.pool.root_path(P, "db").unwrap();
    std::fs::write(root.join("marker"), "before").unwrap();
    w.agent
        .pool
        .create_checkpoint(
            forkr_node_agent::Subject::Root {
                project: P,
                name: "db",
            },
            forkr_node_agent::Shelf::Checkpoints,
            Some("v0"),
            None,
            None,
        )
        .unwrap();
    std::fs::write(root.join("marker"), "after").unwrap();
    w.api.put(
        &format!("/apis/forkr.dev/v1alpha1/namespaces/{P}/snapshots/db.v0"),
        json!({"apiVersion": "forkr.dev/v1alpha1", "kind": "Snapshot", "metadata": {"name": "db.v0", "namespace": P}, "spec": {"box": "db", "name": "v0"}}),
    );
    w.api.put(&pod_path("db"), pod("db", true));
    w.caches.sync(&w.api);
    let mut b = w.api.get(&box_path("db")).unwrap();
    b["spec"]["restore"] = serde_json::to_value(RestoreRequest {
        snapshot: "v0".into(),
        request_id: "r1".into(),
    })
    .unwrap();
    w.api.put(&box_path("db"), b);

    // The pod still runs: scale to zero and wait.
    let e = run(&w.api, &w.cx, "db").await.unwrap_err();
    assert_eq!(e.label(), "waiting");
    assert_eq!(replicas(&w.api, "db"), 0);
    assert_eq!(
        current(&w.api, "db").status.unwrap().phase,
        Some(BoxPhase::Restoring)
    );
    assert_eq!(
        std::fs::read_to_string(root.join("marker")).unwrap(),
        "after"
    );

    // The pod is gone: swap the root, scale back up, report.
    w.api.objects.lock().unwrap().remove(&pod_path("db"));
    w.caches.sync(&w.api);
    run(&w.api, &w.cx, "db").await.unwrap();
    let root = w.agent.pool.root_path(P, "db").unwrap();
    assert_eq!(
        std::fs::read_to_string(root.join("marker")).unwrap(),
        "before"
    );
    assert_eq!(replicas(&w.api, "db"), 1);
    let st = current(&w.api, "db").status.unwrap();
    assert_eq!(st.restore.unwrap().state, "Succeeded");

    // Applied once per request id.
    std::fs::write(root.join("marker"), "later").unwrap();
    w.caches.sync(&w.api);
    run(&w.api, &w.cx, "db").await.unwrap();
    assert_eq!(
        std::fs::read_to_string(root.join("marker")).unwrap(),
        "later"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fork_clones_the_source_root_on_its_node() {
    let mut w = world().await;
    create(&mut w, "src", BoxSpec::default()).await;
    std::fs::write(w.agent.pool.root_path(P, "src").unwrap().join("f"), "x").unwrap();
    create(
        &mut w,
        "copy",
        BoxSpec {
            fork: Some(ForkSource {
                box_name: "src".into(),
                project: None,
            }),
            ..BoxSpec::default()
        },
    )
    .await;
    let root = w.agent.pool.root_path(P, "copy").unwrap();
    assert_eq!(std::fs::read_to_string(root.join("f")).unwrap(), "x");
    assert_eq!(
        current(&w.api, "copy").status.unwrap().node.as_deref(),
        Some(NODE)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_waits_for_the_pod_then_removes_the_root() {
    let mut w = world().await;
    create(&mut w, "gone", BoxSpec::default()).await;
    w.api.put(&pod_path("gone"), pod("gone", true));
    let mut b = w.api.get(&box_path("gone")).unwrap();
    b["metadata"]["deletionTimestamp"] = json!("2026-11-23T12:00:00Z");
    w.api.put(&box_path("gone"), b);

    let e = run(&w.api, &w.cx, "gone").await.unwrap_err();
    assert_eq!(e.label(), "waiting");
    assert!(
        w.api.get(&deploy_path("gone")).is_none(),
        "deployment deleted first"
    );
    assert!(
        w.agent.pool.root_path(P, "gone").is_ok(),
        "root kept while the pod runs"
    );

    w.api.objects.lock().unwrap().remove(&pod_path("gone"));
    run(&w.api, &w.cx, "gone").await.unwrap();
    assert!(w.agent.pool.root_path(P, "gone").is_err(), "root deleted");
    let fins = current(&w.api, "gone")
        .metadata
        .finalizers
        .unwrap_or_default();
    assert!(fins.is_empty(), "finalizer released: {fins:?}");
    // Idempotent: a second cleanup pass after a partial failure succeeds too.
    let mut b = w.api.get(&box_path("gone")).unwrap();
    b["metadata"]["finalizers"] = json!(["forkr.dev/box-root"]);
    w.api.put(&box_path("gone"), b);
    run(&w.api, &w.cx, "gone").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_paths_have_stable_labels() {
    let mut w = world().await;

    // Invalid spec: Failed status, a Warning event, no requeue loop, no root.
    let mut bad = new_box(
        "bad",
        BoxSpec {
            port: Some(70000),
            ..BoxSpec::default()
        },
    );
    bad["metadata"]["finalizers"] = json!(["forkr.dev/box-root"]);
    w.api.put(&box_path("bad"), bad);
    let e = run(&w.api, &w.cx, "bad").await.unwrap_err();
    assert_eq!(e.label(), "invalid");
    assert_eq!(
        current(&w.api, "bad").status.unwrap().phase,
        Some(BoxPhase::Failed)
    );
    assert!(
        w.api.writes().contains(&"POST events".to_string()),
        "{:?}",
        w.api.writes()
    );
    assert!(w.agent.pool.root_path(P, "bad").is_err());
    // Failing again writes nothing new.
    w.api.clear_calls();
    let _ = run(&w.api, &w.cx, "bad").await;
    assert_eq!(w.api.writes(), Vec::<String>::new());

    // A malformed object never reaches the controller's logic.
    let guard: DeserializeGuard<BoxResource> = serde_json::from_value(json!({
        "apiVersion": "forkr.dev/v1alpha1", "kind": "Box",
        "metadata": {"name": "weird", "namespace": P}, "spec": {"port": "not a number"}
    }))
    .unwrap();
    let e = reconcile(Arc::new(guard), w.cx.clone()).await.unwrap_err();
    assert_eq!(e.label(), "invalid");

    // Fork of a missing box: missing_dependency.
    w.api.put(&box_path("orphan"), {
        let mut b = new_box(
            "orphan",
            BoxSpec {
                fork: Some(ForkSource {
                    box_name: "nope".into(),
                    project: None,
                }),
                ..BoxSpec::default()
            },
        );
        b["metadata"]["finalizers"] = json!(["forkr.dev/box-root"]);
        b
    });
    let e = run(&w.api, &w.cx, "orphan").await.unwrap_err();
    assert_eq!(e.label(), "missing_dependency");

    // The API failing a write: kube_api, and the root is not created twice on retry.
    create(&mut w, "flaky", BoxSpec::default()).await;
    w.api.failing.lock().unwrap().push(deploy_path("flaky2"));
    let mut b = new_box("flaky2", BoxSpec::default());
    b["metadata"]["finalizers"] = json!(["forkr.dev/box-root"]);
    w.api.put(&box_path("flaky2"), b);
    let e = run(&w.api, &w.cx, "flaky2").await.unwrap_err();
    assert_eq!(e.label(), "kube_api");
    w.api.failing.lock().unwrap().clear();
    run(&w.api, &w.cx, "flaky2").await.unwrap();

    // No agent reachable: agent_unavailable.
    let (_c, stores) = Caches::new();
    let dead = forkr_agent_proto::client::GrpcAgents::new(
        forkr_agent_proto::client::Discovery::Static(
            [(NODE.to_string(), "http://127.0.0.1:1".to_string())].into(),
        ),
        None,
        common::TOKEN,
    )
    .unwrap();
    let cx = context(w.api.clone(), dead, stores);
    let mut b = new_box("lonely", BoxSpec::default());
    b["metadata"]["finalizers"] = json!(["forkr.dev/box-root"]);
    w.api.put(&box_path("lonely"), b);
    let e = run(&w.api, &cx, "lonely").await.unwrap_err();
    assert_eq!(e.label(), "agent_unavailable", "{e}");
}
