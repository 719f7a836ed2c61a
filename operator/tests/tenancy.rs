//! The tenancy rules against a mocked API server and a real node agent: a copy from another
//! namespace waits for a ForkGrant there; a host is owned cluster-wide by its first claim; a
//! runner image is honoured only in a trusted namespace. Each refusal is `Stalled` in status
//! and a Warning event, and nothing else happens for the object.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{Caches, FakeApi, NODE, RealAgent, context};
use forkr_crds::{
    Base, BoxPhase, BoxResource, BoxSpec, DataVolume, ForkSource, PublishedHost, conditions,
};
use forkr_operator::context::Context;
use forkr_operator::error::Error;
use forkr_operator::reconcile::boxes::reconcile;
use forkr_operator::tenancy;
use http::Method;
use kube::core::DeserializeGuard;
use serde_json::{Value, json};

fn box_path(ns: &str, name: &str) -> String {
    format!("/apis/forkr.dev/v1alpha1/namespaces/{ns}/boxes/{name}")
}

fn deploy_path(ns: &str, name: &str) -> String {
    format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}")
}

fn ingress_path(ns: &str, name: &str) -> String {
    format!("/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses/{name}")
}

fn grant_path(ns: &str, name: &str) -> String {
    format!("/apis/forkr.dev/v1alpha1/namespaces/{ns}/forkgrants/{name}")
}

fn new_box(ns: &str, name: &str, created: &str, spec: BoxSpec) -> Value {
    let mut b = BoxResource::new(name, spec);
    b.metadata.namespace = Some(ns.into());
    b.metadata.uid = Some(format!("uid-{ns}-{name}"));
    b.metadata.generation = Some(1);
    b.metadata.resource_version = Some("1".into());
    let mut v = serde_json::to_value(b).unwrap();
    v["metadata"]["creationTimestamp"] = json!(created);
    v
}

fn current(api: &FakeApi, ns: &str, name: &str) -> BoxResource {
    serde_json::from_value(api.get(&box_path(ns, name)).unwrap()).unwrap()
}

async fn run(api: &FakeApi, cx: &Arc<Context>, ns: &str, name: &str) -> Result<(), Error> {
    let b = current(api, ns, name);
    reconcile(Arc::new(DeserializeGuard(Ok(b))), cx.clone())
        .await
        .map(drop)
}

struct World {
    api: Arc<FakeApi>,
    caches: Caches,
    cx: Arc<Context>,
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

impl World {
    /// Puts the box, then reconciles it twice (finalizer, then the work) with fresh caches.
    async fn apply(
        &mut self,
        ns: &str,
        name: &str,
        created: &str,
        spec: BoxSpec,
    ) -> Result<(), Error> {
        self.api
            .put(&box_path(ns, name), new_box(ns, name, created, spec));
        self.caches.sync(&self.api);
        run(&self.api, &self.cx, ns, name).await?;
        self.caches.sync(&self.api);
        let r = run(&self.api, &self.cx, ns, name).await;
        self.caches.sync(&self.api);
        r
    }

    async fn again(&mut self, ns: &str, name: &str) -> Result<(), Error> {
        self.caches.sync(&self.api);
        let r = run(&self.api, &self.cx, ns, name).await;
        self.caches.sync(&self.api);
        r
    }

    /// Reasons of the Warning events published about `name`.
    fn events_about(&self, name: &str) -> Vec<String> {
        self.api
            .calls()
            .iter()
            .filter(|c| c.method == Method::POST && c.path.ends_with("/events"))
            .filter(|c| c.body["regarding"]["name"] == json!(name))
            .filter_map(|c| c.body["reason"].as_str().map(str::to_owned))
            .collect()
    }

    fn read_any_of(&self, ns: &str) -> bool {
        self.api
            .calls()
            .iter()
            .any(|c| c.path.contains(&format!("/namespaces/{ns}/")))
    }
}

fn stalled(b: &BoxResource) -> Option<(String, String)> {
    b.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == conditions::STALLED && c.status == "True")
        .map(|c| (c.reason.clone(), c.message.clone()))
}

fn grant(ns: &str, name: &str, from: &str, to: Value) -> Value {
    json!({
        "apiVersion": "forkr.dev/v1alpha1", "kind": "ForkGrant",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"from": [{"namespace": from}], "to": [to]}
    })
}

const T0: &str = "2026-01-01T00:00:00Z";
const T1: &str = "2026-01-02T00:00:00Z";
const T2: &str = "2026-01-03T00:00:00Z";

fn fork_of(project: &str, name: &str) -> BoxSpec {
    BoxSpec {
        fork: Some(ForkSource {
            box_name: name.into(),
            project: Some(project.into()),
        }),
        ..BoxSpec::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_from_another_namespace_waits_for_a_grant_there() {
    let mut w = world().await;
    w.apply("victim", "src", T0, BoxSpec::default())
        .await
        .unwrap();
    let src_root = w.agent.pool.root_path("victim", "src").unwrap();
    std::fs::write(src_root.join("secret"), "s3cr3t").unwrap();
    w.api.clear_calls();

    // A grant in the thief's own namespace is no consent: only the source's owner can give it.
    w.api.put(
        &grant_path("thief", "self-service"),
        grant("thief", "self-service", "thief", json!({"kind": "Box"})),
    );
    // Nor is one for another box of the source namespace, or for another namespace.
    w.api.put(
        &grant_path("victim", "other"),
        grant(
            "victim",
            "other",
            "thief",
            json!({"kind": "Box", "name": "web"}),
        ),
    );
    w.api.put(
        &grant_path("victim", "elsewhere"),
        grant("victim", "elsewhere", "friend", json!({"kind": "Box"})),
    );
    let e = w
        .apply("thief", "copy", T1, fork_of("victim", "src"))
        .await
        .unwrap_err();
    assert_eq!(e.label(), "refused", "{e}");
    let b = current(&w.api, "thief", "copy");
    let (reason, message) = stalled(&b).expect("Stalled");
    assert_eq!(reason, "ForkNotGranted");
    assert!(
        message.contains("ForkGrant in namespace victim"),
        "{message}"
    );
    let st = b.status.unwrap();
    assert_eq!(st.phase, Some(BoxPhase::Pending));
    assert_eq!(st.node, None, "not placed");
    assert_eq!(w.events_about("copy"), ["ForkNotGranted"]);
    assert!(w.api.get(&deploy_path("thief", "copy")).is_none());
    assert!(w.agent.pool.root_path("thief", "copy").is_err(), "no copy");
    assert!(!w.read_any_of("victim"), "nothing of victim was read");

    // Another reconcile of the same refusal writes nothing and says nothing again.
    w.api.clear_calls();
    assert_eq!(
        w.again("thief", "copy").await.unwrap_err().label(),
        "refused"
    );
    assert!(w.api.writes().is_empty(), "{:?}", w.api.writes());

    // The owner of victim grants it: the box proceeds, and the grant watch maps to it.
    let g = grant(
        "victim",
        "to-thief",
        "thief",
        json!({"kind": "Box", "name": "src"}),
    );
    w.api.put(&grant_path("victim", "to-thief"), g.clone());
    w.caches.sync(&w.api);
    let woken = tenancy::boxes_forking_from("victim", &w.cx.stores.boxes);
    assert_eq!(woken.len(), 1);
    assert_eq!(woken[0].name, "copy");
    w.again("thief", "copy").await.unwrap();
    let copy = w.agent.pool.root_path("thief", "copy").unwrap();
    assert_eq!(
        std::fs::read_to_string(copy.join("secret")).unwrap(),
        "s3cr3t"
    );
    assert!(w.api.get(&deploy_path("thief", "copy")).is_some());
    let b = current(&w.api, "thief", "copy");
    assert_eq!(stalled(&b), None);
    assert_eq!(b.status.unwrap().message, None);

    // Revoking the grant later does not touch a copy already made.
    w.api
        .objects
        .lock()
        .unwrap()
        .remove(&grant_path("victim", "to-thief"));
    w.again("thief", "copy").await.unwrap();
    assert_eq!(stalled(&current(&w.api, "thief", "copy")), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_saves_and_volume_clones_from_another_namespace_need_a_grant() {
    let w = world().await;
    let base: Base = serde_json::from_value(json!({
        "apiVersion": "forkr.dev/v1alpha1", "kind": "Base",
        "metadata": {"name": "stolen", "namespace": "thief", "generation": 1},
        "spec": {"source": {"requestId": "r1", "save": {"box": "src", "project": "victim"}}}
    }))
    .unwrap();
    w.api.put(
        "/apis/forkr.dev/v1alpha1/namespaces/thief/bases/stolen",
        serde_json::to_value(&base).unwrap(),
    );
    let e = forkr_operator::reconcile::base::reconcile(
        Arc::new(DeserializeGuard(Ok(base.clone()))),
        w.cx.clone(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.label(), "refused", "{e}");
    assert!(
        !w.read_any_of("victim"),
        "the box to save was not even read"
    );
    let saved: Base = serde_json::from_value(
        w.api
            .get("/apis/forkr.dev/v1alpha1/namespaces/thief/bases/stolen")
            .unwrap(),
    )
    .unwrap();
    let st = saved.status.unwrap();
    assert_eq!(st.last_request_id, None, "the request stays unhandled");
    assert!(
        st.conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.status == "True" && c.reason == "ForkNotGranted")
    );
    assert!(
        w.agent
            .pool
            .list_bases()
            .unwrap()
            .iter()
            .all(|b| b.name != "stolen")
    );

    let vol: DataVolume = serde_json::from_value(json!({
        "apiVersion": "forkr.dev/v1alpha1", "kind": "DataVolume",
        "metadata": {"name": "loot", "namespace": "thief", "generation": 1, "finalizers": ["forkr.dev/volume"]},
        "spec": {"cloneFrom": {"volume": "pgdata", "project": "victim"}}
    }))
    .unwrap();
    w.api.put(
        "/apis/forkr.dev/v1alpha1/namespaces/thief/datavolumes/loot",
        serde_json::to_value(&vol).unwrap(),
    );
    let e = forkr_operator::reconcile::volume::reconcile(
        Arc::new(DeserializeGuard(Ok(vol))),
        w.cx.clone(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.label(), "refused", "{e}");
    assert!(!w.read_any_of("victim"), "the source volume was not read");
    let got: DataVolume = serde_json::from_value(
        w.api
            .get("/apis/forkr.dev/v1alpha1/namespaces/thief/datavolumes/loot")
            .unwrap(),
    )
    .unwrap();
    let st = got.status.unwrap();
    assert_eq!(st.node, None);
    assert!(
        st.message
            .unwrap()
            .contains("ForkGrant in namespace victim")
    );
}

fn web(port: i32, publish: &[&str]) -> BoxSpec {
    BoxSpec {
        port: Some(port),
        publish: publish
            .iter()
            .map(|h| PublishedHost {
                host: (*h).into(),
                port: None,
                service: None,
            })
            .collect(),
        ..BoxSpec::default()
    }
}

fn ingress_hosts(api: &FakeApi, ns: &str, name: &str) -> Vec<String> {
    api.get(&ingress_path(ns, name))
        .map(|i| {
            i["spec"]["rules"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["host"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

const SHOP: &str = "shop.forkr.example.com";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_belongs_to_its_first_claim_and_passes_on_when_released() {
    let mut w = world().await;
    // The newer box is reconciled first: age decides, not who the operator saw first.
    w.api.put(
        &box_path("b", "late"),
        new_box("b", "late", T1, web(80, &[SHOP])),
    );
    w.apply("a", "early", T0, web(80, &[SHOP])).await.unwrap();
    w.again("b", "late").await.unwrap();
    w.again("b", "late").await.unwrap();

    assert!(ingress_hosts(&w.api, "a", "early").contains(&SHOP.to_owned()));
    let late_hosts = ingress_hosts(&w.api, "b", "late");
    assert!(!late_hosts.contains(&SHOP.to_owned()), "{late_hosts:?}");
    assert!(
        late_hosts.contains(&"late.b.forkr.example.com".to_owned()),
        "the loser keeps its own URL: {late_hosts:?}"
    );
    let late = current(&w.api, "b", "late");
    let (reason, message) = stalled(&late).expect("the loser is Stalled");
    assert_eq!(reason, "HostTaken");
    assert!(
        !message.contains("early"),
        "the owner is not named: {message}"
    );
    let st = late.status.unwrap();
    assert_eq!(st.taken_hosts, [SHOP]);
    assert!(st.published_hosts.is_empty());
    assert_eq!(st.phase, Some(BoxPhase::Creating), "the box itself runs");
    assert!(w.events_about("late").contains(&"HostTaken".to_owned()));
    assert_eq!(stalled(&current(&w.api, "a", "early")), None);

    // The owner lets go: its change wakes the loser, which now gets the host.
    let mut early = w.api.get(&box_path("a", "early")).unwrap();
    early["spec"]["publish"] = json!([]);
    w.api.put(&box_path("a", "early"), early);
    w.caches.sync(&w.api);
    let released = current(&w.api, "a", "early");
    let woken = tenancy::boxes_sharing_hosts(&released, &w.cx.stores.boxes, &w.cx.settings);
    assert!(woken.iter().any(|r| r.name == "late"), "{woken:?}");
    w.again("a", "early").await.unwrap();
    w.again("b", "late").await.unwrap();
    assert!(ingress_hosts(&w.api, "b", "late").contains(&SHOP.to_owned()));
    let late = current(&w.api, "b", "late");
    assert_eq!(stalled(&late), None);
    assert_eq!(late.status.unwrap().published_hosts, [SHOP]);

    // Now "late" holds it: an older box publishing it afterwards does not take it back.
    let mut early = w.api.get(&box_path("a", "early")).unwrap();
    early["spec"]["publish"] = json!([{"host": SHOP}]);
    w.api.put(&box_path("a", "early"), early);
    w.again("a", "early").await.unwrap();
    w.again("b", "late").await.unwrap();
    assert!(!ingress_hosts(&w.api, "a", "early").contains(&SHOP.to_owned()));
    assert!(ingress_hosts(&w.api, "b", "late").contains(&SHOP.to_owned()));
    assert_eq!(
        stalled(&current(&w.api, "a", "early"))
            .map(|s| s.0)
            .as_deref(),
        Some("HostTaken")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_namespaces_hosts_and_urls_are_never_served() {
    let mut w = world().await;
    // Namespace "a" has no box "web" yet; "b" tries its URL, a host under "a", and the API's.
    let hostile = [
        "web.a.forkr.example.com",
        "x.y.a.forkr.example.com",
        "forks.forkr.example.com",
    ];
    w.apply("b", "squat", T0, web(80, &hostile)).await.unwrap();
    let hosts = ingress_hosts(&w.api, "b", "squat");
    assert_eq!(hosts, ["squat.b.forkr.example.com"]);
    let st = current(&w.api, "b", "squat").status.unwrap();
    assert_eq!(st.taken_hosts, hostile);
    // The real "web" of "a", created later, gets its URL.
    w.apply("a", "web", T2, web(80, &[])).await.unwrap();
    assert_eq!(
        ingress_hosts(&w.api, "a", "web"),
        ["web.a.forkr.example.com"]
    );
    assert_eq!(stalled(&current(&w.api, "a", "web")), None);

    // A single label under the domain goes to the first claim: a later default-project box of
    // that name is told its URL is taken.
    w.apply("b", "claims", T0, web(80, &["docs.forkr.example.com"]))
        .await
        .unwrap();
    w.apply("default", "docs", T2, web(80, &[])).await.unwrap();
    assert!(ingress_hosts(&w.api, "default", "docs").is_empty());
    assert_eq!(
        current(&w.api, "default", "docs")
            .status
            .unwrap()
            .taken_hosts,
        ["docs.forkr.example.com"]
    );
}

fn custom_image() -> BoxSpec {
    BoxSpec {
        runner_image: Some("registry.example.com/evil:latest".into()),
        ..BoxSpec::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_image_runs_only_in_a_trusted_namespace() {
    let mut w = world().await;
    w.api.put(
        "/api/v1/namespaces/plain",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "plain", "labels": {"forkr.dev/trusted": "false"}}}),
    );
    let e = w
        .apply("plain", "evil", T0, custom_image())
        .await
        .unwrap_err();
    assert_eq!(e.label(), "refused", "{e}");
    let b = current(&w.api, "plain", "evil");
    let (reason, message) = stalled(&b).expect("Stalled");
    assert_eq!(reason, "UntrustedNamespace");
    assert!(message.contains("spec.runnerImage"), "{message}");
    assert_eq!(b.status.unwrap().phase, Some(BoxPhase::Pending));
    assert!(
        w.api.get(&deploy_path("plain", "evil")).is_none(),
        "no Deployment"
    );
    assert!(
        w.agent.pool.root_path("plain", "evil").is_err(),
        "no root either"
    );
    assert_eq!(w.events_about("evil"), ["UntrustedNamespace"]);

    // An admin trusts the namespace: the namespace watch wakes the box, which runs the image.
    w.api.put(
        "/api/v1/namespaces/plain",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "plain", "labels": {"forkr.dev/trusted": "true"}}}),
    );
    w.caches.sync(&w.api);
    let woken = tenancy::boxes_needing_trust("plain", &w.cx.stores.boxes);
    assert_eq!(woken.len(), 1);
    w.again("plain", "evil").await.unwrap();
    let d = w.api.get(&deploy_path("plain", "evil")).unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        json!("registry.example.com/evil:latest")
    );
    assert_eq!(stalled(&current(&w.api, "plain", "evil")), None);
    assert_eq!(
        current(&w.api, "plain", "evil")
            .status
            .unwrap()
            .node
            .as_deref(),
        Some(NODE)
    );
}

fn base_path(ns: &str, name: &str) -> String {
    format!("/apis/forkr.dev/v1alpha1/namespaces/{ns}/bases/{name}")
}

fn trust(api: &FakeApi, ns: &str, trusted: bool) {
    api.put(
        &format!("/api/v1/namespaces/{ns}"),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"forkr.dev/trusted": trusted.to_string()}}}),
    );
}

impl World {
    /// A box `ns/name` whose root is on the agent's pool, as the Box controller leaves it.
    fn rooted_box(&mut self, ns: &str, name: &str) {
        self.agent.pool.create_root(ns, name, "box-base").unwrap();
        let mut b = new_box(ns, name, T0, BoxSpec::default());
        b["status"] = json!({"node": NODE, "conditions": [{
            "type": conditions::ROOT_READY, "status": "True", "reason": "Created",
            "message": "", "lastTransitionTime": T0,
        }]});
        self.api.put(&box_path(ns, name), b);
        self.caches.sync(&self.api);
    }

    /// Writes Base `ns/alias` asking to save box `ns/from` (request `rid`) and reconciles it.
    async fn save(&mut self, ns: &str, alias: &str, from: &str, rid: &str) -> Result<Base, Error> {
        let mut base: Value = json!({
            "apiVersion": "forkr.dev/v1alpha1", "kind": "Base",
            "metadata": {"name": alias, "namespace": ns, "generation": 1},
            "spec": {"source": {"requestId": rid, "save": {"box": from}}}
        });
        if let Some(old) = self.api.get(&base_path(ns, alias)) {
            base["status"] = old["status"].clone();
        }
        self.api.put(&base_path(ns, alias), base.clone());
        self.caches.sync(&self.api);
        let r = forkr_operator::reconcile::base::reconcile(
            Arc::new(DeserializeGuard(Ok(serde_json::from_value(base).unwrap()))),
            self.cx.clone(),
        )
        .await;
        let got = serde_json::from_value(self.api.get(&base_path(ns, alias)).unwrap()).unwrap();
        r.map(|_| got)
    }

    fn versions_of(&self, name: &str) -> Vec<String> {
        match self.agent.pool.show_base(name, None) {
            Ok(d) => d.versions.into_iter().map(|v| v.version).collect(),
            Err(_) => Vec::new(),
        }
    }

    fn read_a_box(&self) -> bool {
        self.api
            .calls()
            .iter()
            .any(|c| c.method == Method::GET && c.path.contains("/boxes/"))
    }
}

fn base_stalled(api: &FakeApi, ns: &str, alias: &str) -> Option<(String, String)> {
    let b: Base = serde_json::from_value(api.get(&base_path(ns, alias))?).unwrap();
    b.status?
        .conditions
        .iter()
        .find(|c| c.type_ == conditions::STALLED && c.status == "True")
        .map(|c| (c.reason.clone(), c.message.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_saved_outside_a_trusted_namespace_never_writes_box_base() {
    let mut w = world().await;
    trust(&w.api, "tenant", false);
    w.rooted_box("tenant", "src");
    w.api.clear_calls();
    let before = w.versions_of("box-base");
    // The alias every box boots by default, and a name that would shadow one of its versions.
    for alias in ["box-base", "box-base-v20991231000000"] {
        let e = w.save("tenant", alias, "src", "r1").await.unwrap_err();
        assert_eq!(e.label(), "refused", "{e}");
        let (reason, message) = base_stalled(&w.api, "tenant", alias).expect("Stalled");
        assert_eq!(reason, "BaseNotOwned");
        assert!(message.contains("forkr.dev/trusted"), "{message}");
        assert_eq!(w.events_about(alias), ["BaseNotOwned"]);
        // The same refusal again publishes no second event.
        w.save("tenant", alias, "src", "r1").await.unwrap_err();
        assert_eq!(w.events_about(alias), ["BaseNotOwned"]);
    }
    assert!(!w.read_a_box(), "the box to save was not even read");
    assert_eq!(w.versions_of("box-base"), before, "no version was made");
    assert!(w.versions_of("box-base-v20991231000000").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_namespace_saves_new_names_and_its_own_bases_only() {
    let mut w = world().await;
    trust(&w.api, "tenant", false);
    w.rooted_box("tenant", "src");
    w.rooted_box("victim", "osrc");

    // A new name: saved, and the namespace writes it again.
    let got = w.save("tenant", "mine", "src", "r1").await.unwrap();
    let st = got.status.unwrap();
    assert_eq!(st.last_request_id.as_deref(), Some("r1"));
    assert_eq!(base_stalled(&w.api, "tenant", "mine"), None);
    assert_eq!(w.versions_of("mine").len(), 1);
    w.save("tenant", "mine", "src", "r2").await.unwrap();
    assert_eq!(w.versions_of("mine").len(), 2);

    // A name another namespace saved, and a name imported through forkr-api.
    w.agent
        .pool
        .save_base("theirs", "victim", "osrc", Some("o1"))
        .unwrap();
    let tar =
        forkr_node_agent::minibase::tarball(std::path::Path::new("/var/cache/forkr/testbase"))
            .unwrap();
    w.agent
        .pool
        .import_base(
            "imported",
            std::fs::File::open(tar).unwrap(),
            &forkr_node_agent::pool::import::ImportOptions::default(),
        )
        .unwrap();
    for alias in ["theirs", "imported"] {
        let before = w.versions_of(alias);
        let e = w.save("tenant", alias, "src", "r3").await.unwrap_err();
        assert_eq!(e.label(), "refused", "{alias}: {e}");
        let (reason, message) = base_stalled(&w.api, "tenant", alias).expect("Stalled");
        assert_eq!(reason, "BaseNotOwned");
        assert!(
            !message.contains("victim"),
            "names no other tenant: {message}"
        );
        assert_eq!(w.versions_of(alias), before, "{alias}: no version was made");
        assert_eq!(w.events_about(alias), ["BaseNotOwned"]);
    }

    // An import that forkr-api made for this namespace and recorded in the status of its Base
    // (status is never the user's to write) is the namespace's: saves go on from it.
    let path = base_path("tenant", "imported");
    let mut obj = w.api.get(&path).unwrap();
    obj["status"]["versions"] = json!([{"name": "imported", "kind": "import"}]);
    w.api.put(&path, obj);
    let before = w.versions_of("imported").len();
    w.save("tenant", "imported", "src", "r4").await.unwrap();
    assert_eq!(base_stalled(&w.api, "tenant", "imported"), None);
    assert_eq!(w.versions_of("imported").len(), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_namespace_writes_any_base() {
    let mut w = world().await;
    trust(&w.api, "platform", true);
    w.rooted_box("platform", "golden");
    w.rooted_box("other", "osrc");
    w.agent
        .pool
        .save_base("theirs", "other", "osrc", Some("o1"))
        .unwrap();
    for alias in ["box-base", "theirs"] {
        let before = w.versions_of(alias).len();
        w.save("platform", alias, "golden", &format!("p-{alias}"))
            .await
            .unwrap();
        assert_eq!(base_stalled(&w.api, "platform", alias), None);
        assert_eq!(w.versions_of(alias).len(), before + 1, "{alias}");
    }
}
