//! Snapshot and DataVolume reconciles against the mocked API server and a real agent on a
//! loopback pool, and a Box that mounts a data volume.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{Caches, FakeApi, NODE, RealAgent, context};
use forkr_crds::{BoxResource, BoxSpec, DataMount, DataVolume, Snapshot};
use forkr_node_agent::{Shelf, Subject};
use forkr_operator::context::Context;
use forkr_operator::error::Error;
use kube::core::DeserializeGuard;
use serde_json::{Value, json};

const P: &str = "store";

fn path(kind: &str, name: &str) -> String {
    format!("/apis/forkr.dev/v1alpha1/namespaces/{P}/{kind}/{name}")
}

fn obj(kind: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "forkr.dev/v1alpha1", "kind": kind,
        "metadata": {"name": name, "namespace": P, "uid": format!("uid-{name}"), "generation": 1, "resourceVersion": "1"},
        "spec": spec})
}

async fn box_once(api: &FakeApi, cx: &Arc<Context>, name: &str) -> Result<(), Error> {
    let b: BoxResource = serde_json::from_value(api.get(&path("boxes", name)).unwrap()).unwrap();
    forkr_operator::reconcile::boxes::reconcile(Arc::new(DeserializeGuard(Ok(b))), cx.clone())
        .await
        .map(drop)
}

async fn snap_once(api: &FakeApi, cx: &Arc<Context>, name: &str) -> Result<(), Error> {
    let s: Snapshot = serde_json::from_value(api.get(&path("snapshots", name)).unwrap()).unwrap();
    forkr_operator::reconcile::snapshot::reconcile(Arc::new(DeserializeGuard(Ok(s))), cx.clone())
        .await
        .map(drop)
}

async fn vol_once(api: &FakeApi, cx: &Arc<Context>, name: &str) -> Result<(), Error> {
    let v: DataVolume =
        serde_json::from_value(api.get(&path("datavolumes", name)).unwrap()).unwrap();
    forkr_operator::reconcile::volume::reconcile(Arc::new(DeserializeGuard(Ok(v))), cx.clone())
        .await
        .map(drop)
}

fn set(api: &FakeApi, p: &str, pointer: &str, value: Value) {
    let mut o = api.get(p).unwrap();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    o.pointer_mut(parent).unwrap()[key] = value;
    api.put(p, o);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_taken_once_and_deleted_with_their_object() {
    let api = Arc::new(FakeApi::default());
    let (_caches, stores) = Caches::new();
    let agent = RealAgent::start().await;
    let cx = context(api.clone(), agent.agents(), stores);

    // A snapshot of a box that has no root yet waits.
    api.put(
        &path("snapshots", "db.v0"),
        obj("Snapshot", "db.v0", json!({"box": "db", "name": "v0"})),
    );
    snap_once(&api, &cx, "db.v0").await.unwrap(); // adds the finalizer
    let e = snap_once(&api, &cx, "db.v0").await.unwrap_err();
    assert_eq!(e.label(), "missing_dependency");

    api.put(&path("boxes", "db"), obj("Box", "db", json!({})));
    box_once(&api, &cx, "db").await.unwrap();
    box_once(&api, &cx, "db").await.unwrap();
    snap_once(&api, &cx, "db.v0").await.unwrap();
    let s: Snapshot =
        serde_json::from_value(api.get(&path("snapshots", "db.v0")).unwrap()).unwrap();
    let st = s.status.unwrap();
    assert_eq!(st.phase, Some(forkr_crds::snapshot::SnapshotPhase::Ready));
    assert_eq!(st.node.as_deref(), Some(NODE));
    let subject = Subject::Root {
        project: P,
        name: "db",
    };
    assert!(
        agent
            .pool
            .checkpoint_info(subject, Shelf::Checkpoints, "v0")
            .is_ok()
    );

    // Taken: nothing more to write.
    api.clear_calls();
    snap_once(&api, &cx, "db.v0").await.unwrap();
    assert_eq!(api.writes(), Vec::<String>::new());

    // Deleted: the checkpoint goes, the finalizer is released.
    set(
        &api,
        &path("snapshots", "db.v0"),
        "/metadata/deletionTimestamp",
        json!("2026-11-23T12:00:00Z"),
    );
    snap_once(&api, &cx, "db.v0").await.unwrap();
    assert!(
        agent
            .pool
            .checkpoint_info(subject, Shelf::Checkpoints, "v0")
            .is_err()
    );
    let s = api.get(&path("snapshots", "db.v0")).unwrap();
    assert_eq!(s["metadata"]["finalizers"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_volumes_checkpoints_restore_and_mounts() {
    let api = Arc::new(FakeApi::default());
    let (mut caches, stores) = Caches::new();
    let agent = RealAgent::start().await;
    let cx = context(api.clone(), agent.agents(), stores);
    let vp = path("datavolumes", "cache");

    api.put(&vp, obj("DataVolume", "cache", json!({})));
    vol_once(&api, &cx, "cache").await.unwrap();
    vol_once(&api, &cx, "cache").await.unwrap();
    let dir = agent.pool.volume_path(P, "cache").unwrap();
    let v: DataVolume = serde_json::from_value(api.get(&vp).unwrap()).unwrap();
    assert_eq!(v.status.unwrap().node.as_deref(), Some(NODE));

    // A declared checkpoint is taken; a restore request rolls back to it once.
    std::fs::write(dir.join("f"), "one").unwrap();
    set(&api, &vp, "/spec", json!({"checkpoints": [{"name": "c1"}]}));
    vol_once(&api, &cx, "cache").await.unwrap();
    let subject = Subject::Volume {
        project: P,
        name: "cache",
    };
    assert!(
        agent
            .pool
            .checkpoint_info(subject, Shelf::Checkpoints, "c1")
            .is_ok()
    );
    std::fs::write(dir.join("f"), "two").unwrap();
    set(
        &api,
        &vp,
        "/spec",
        json!({"checkpoints": [{"name": "c1"}], "restore": {"checkpoint": "c1", "requestId": "r1"}}),
    );
    vol_once(&api, &cx, "cache").await.unwrap();
    let dir = agent.pool.volume_path(P, "cache").unwrap();
    assert_eq!(std::fs::read_to_string(dir.join("f")).unwrap(), "one");
    std::fs::write(dir.join("f"), "three").unwrap();
    vol_once(&api, &cx, "cache").await.unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("f")).unwrap(),
        "three",
        "once per request id"
    );

    // Undeclared checkpoints are deleted.
    set(&api, &vp, "/spec", json!({}));
    vol_once(&api, &cx, "cache").await.unwrap();
    assert!(
        agent
            .pool
            .checkpoint_info(subject, Shelf::Checkpoints, "c1")
            .is_err()
    );

    // A box that mounts it goes to its node and gets the hostPath.
    let spec = BoxSpec {
        data: vec![DataMount {
            volume: "cache".into(),
            mount_path: "/cache".into(),
            read_only: true,
        }],
        ..BoxSpec::default()
    };
    api.put(
        &path("boxes", "app"),
        obj("Box", "app", serde_json::to_value(&spec).unwrap()),
    );
    box_once(&api, &cx, "app").await.unwrap();
    box_once(&api, &cx, "app").await.unwrap();
    caches.sync(&api);
    let d = api
        .get(&format!("/apis/apps/v1/namespaces/{P}/deployments/app"))
        .unwrap();
    let vols = d["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
    assert!(
        vols.iter()
            .any(|v| v["hostPath"]["path"] == json!(format!("/var/lib/forkr/volumes/{P}/cache")))
    );

    // A clone waits for the fork that makes it instead of creating an empty volume.
    api.put(
        &path("datavolumes", "box-copy-cache"),
        obj(
            "DataVolume",
            "box-copy-cache",
            json!({"cloneFrom": {"volume": "cache"}}),
        ),
    );
    vol_once(&api, &cx, "box-copy-cache").await.unwrap();
    let e = vol_once(&api, &cx, "box-copy-cache").await.unwrap_err();
    assert_eq!(e.label(), "missing_dependency");
    assert!(agent.pool.volume_path(P, "box-copy-cache").is_err());

    // Deleting the volume removes it from the pool.
    set(
        &api,
        &vp,
        "/metadata/deletionTimestamp",
        json!("2026-11-23T12:00:00Z"),
    );
    vol_once(&api, &cx, "cache").await.unwrap();
    assert!(agent.pool.volume_path(P, "cache").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_missing_on_the_chosen_node_is_pulled_from_a_peer() {
    use std::collections::BTreeMap;
    let api = Arc::new(FakeApi::default());
    let (_caches, stores) = Caches::new();
    let has = RealAgent::start_with(true).await;
    let lacks = RealAgent::start_with(false).await;
    // node-b lacks the base but has far more free memory: placement prefers base holders, so
    // pin the box there through a data volume that lives on node-b.
    let agents = forkr_agent_proto::client::GrpcAgents::new(
        forkr_agent_proto::client::Discovery::Static(BTreeMap::from([
            ("node-a".to_owned(), has.addr.clone()),
            ("node-b".to_owned(), lacks.addr.clone()),
        ])),
        None,
        common::TOKEN,
    )
    .unwrap();
    let cx = context(api.clone(), agents, stores);
    api.put(&path("datavolumes", "v"), {
        let mut v = obj("DataVolume", "v", json!({}));
        v["status"] = json!({"node": "node-b", "phase": "Ready"});
        v
    });
    lacks.pool.create_volume(P, "v").unwrap();
    let spec = BoxSpec {
        data: vec![DataMount {
            volume: "v".into(),
            mount_path: "/v".into(),
            read_only: false,
        }],
        ..BoxSpec::default()
    };
    api.put(
        &path("boxes", "far"),
        obj("Box", "far", serde_json::to_value(&spec).unwrap()),
    );
    box_once(&api, &cx, "far").await.unwrap();
    box_once(&api, &cx, "far").await.unwrap();
    assert!(
        lacks.pool.root_path(P, "far").is_ok(),
        "root created on node-b"
    );
    assert!(
        lacks.pool.resolve_base("box-base").is_ok(),
        "base replicated to node-b"
    );
    let b: BoxResource = serde_json::from_value(api.get(&path("boxes", "far")).unwrap()).unwrap();
    assert_eq!(b.status.unwrap().node.as_deref(), Some("node-b"));
}
