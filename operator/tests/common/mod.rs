//! The mocked API server of the reconcile tests (the controller-rs `ApiServerVerifier` idea,
//! over `tower_test::mock::pair`), a real node agent on a loopback btrfs pool, and helpers.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use forkr_agent_proto::client::{Agents, Discovery, GrpcAgents};
use forkr_crds::{BoxResource, ForkGrant};
use forkr_node_agent::metrics::Metrics as AgentMetrics;
use forkr_node_agent::pool::loopback::Loopback;
use forkr_node_agent::{Pool, pool::import::ImportOptions};
use forkr_operator::config::Settings;
use forkr_operator::context::{Context, Stores};
use forkr_operator::metrics::Metrics;
use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::client::Body;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher;
use serde_json::{Value, json};

pub const TOKEN: &str = "operator-test-token";
pub const NODE: &str = "node-a";

/// One request the operator made.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub body: Value,
}

impl Call {
    /// `PATCH deployments/web`-style summary.
    pub fn summary(&self) -> String {
        let mut parts: Vec<&str> = self.path.split('/').collect();
        let n = parts.len();
        let tail = if parts.last() == Some(&"status") {
            format!("{}/{}/status", parts[n - 3], parts[n - 2])
        } else if n >= 2 && self.method != Method::POST {
            format!("{}/{}", parts[n - 2], parts[n - 1])
        } else {
            parts.pop().unwrap_or_default().to_owned()
        };
        format!("{} {tail}", self.method)
    }
}

/// A small in-memory API server: objects by path, every call recorded. Answers what the
/// controllers ask (get, list, apply patch, JSON patch, delete, events) and 404 otherwise.
#[derive(Default)]
pub struct FakeApi {
    pub objects: Mutex<BTreeMap<String, Value>>,
    pub calls: Mutex<Vec<Call>>,
    /// Paths whose writes fail with 500 (an error path).
    pub failing: Mutex<Vec<String>>,
}

fn merge_status(obj: &mut Value, status: &Value) {
    obj["status"] = status.clone();
}

impl FakeApi {
    pub fn put(&self, path: &str, obj: Value) {
        self.objects.lock().unwrap().insert(path.to_owned(), obj);
    }

    pub fn get(&self, path: &str) -> Option<Value> {
        self.objects.lock().unwrap().get(path).cloned()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn writes(&self) -> Vec<String> {
        self.calls()
            .iter()
            .filter(|c| c.method != Method::GET)
            .map(Call::summary)
            .collect()
    }

    pub fn clear_calls(&self) {
        self.calls.lock().unwrap().clear();
    }

    fn handle(&self, method: &Method, path: &str, query: &str, body: Value) -> (StatusCode, Value) {
        if self
            .failing
            .lock()
            .unwrap()
            .iter()
            .any(|p| path.starts_with(p.as_str()))
            && method != Method::GET
        {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                status_body(500, "injected failure"),
            );
        }
        let mut objects = self.objects.lock().unwrap();
        let base = path.trim_end_matches("/status");
        match *method {
            Method::GET => {
                if let Some(o) = objects.get(path) {
                    return (StatusCode::OK, o.clone());
                }
                // A list: every object under the collection path that matches the selector.
                let selector = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("labelSelector="))
                    .map(|s| s.replace("%3D", "=").replace("%2F", "/"));
                let items: Vec<Value> = objects
                    .iter()
                    .filter(|(p, _)| {
                        p.starts_with(&format!("{path}/")) && !p[path.len() + 1..].contains('/')
                    })
                    .filter(|(_, o)| match &selector {
                        Some(sel) => sel.split(',').all(|kv| match kv.split_once('=') {
                            Some((k, v)) => o["metadata"]["labels"][k] == json!(v),
                            None => !o["metadata"]["labels"][kv].is_null(),
                        }),
                        None => true,
                    })
                    .map(|(_, o)| o.clone())
                    .collect();
                let looks_like_collection = path.rsplit('/').next().is_some_and(|last| {
                    [
                        "pods",
                        "boxes",
                        "snapshots",
                        "datavolumes",
                        "bases",
                        "forkgrants",
                        "deployments",
                        "nodes",
                    ]
                    .contains(&last)
                });
                if looks_like_collection {
                    return (
                        StatusCode::OK,
                        json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items}),
                    );
                }
                (StatusCode::NOT_FOUND, status_body(404, "not found"))
            }
            Method::PATCH => {
                let is_status = path.ends_with("/status");
                let entry = objects.get(base).cloned();
                let mut obj = match (entry, body.get("op").is_none() && body.is_object()) {
                    (Some(o), _) => o,
                    (None, true) => body.clone(),
                    (None, false) => return (StatusCode::NOT_FOUND, status_body(404, "not found")),
                };
                if body.is_array() {
                    // A JSON patch: the finalizer helper's add/remove.
                    let patch: json_patch_ops::Patch =
                        serde_json::from_value(body.clone()).unwrap();
                    json_patch_ops::apply(&mut obj, &patch);
                } else if is_status {
                    merge_status(&mut obj, &body["status"]);
                } else {
                    let mut fresh = body.clone();
                    if let Some(st) = obj.get("status") {
                        fresh["status"] = st.clone();
                    }
                    fresh["metadata"]["resourceVersion"] = json!("2");
                    obj = fresh;
                }
                objects.insert(base.to_owned(), obj.clone());
                (StatusCode::OK, obj)
            }
            Method::POST => {
                let name = body["metadata"]["name"]
                    .as_str()
                    .unwrap_or("event")
                    .to_owned();
                objects.insert(format!("{path}/{name}"), body.clone());
                (StatusCode::CREATED, body)
            }
            Method::DELETE => {
                let removed: Vec<String> = objects
                    .keys()
                    .filter(|p| {
                        *p == path
                            || (query.contains("labelSelector")
                                && p.starts_with(&format!("{path}/")))
                    })
                    .cloned()
                    .collect();
                if removed.is_empty() {
                    return (StatusCode::NOT_FOUND, status_body(404, "not found"));
                }
                for p in removed {
                    objects.remove(&p);
                }
                (StatusCode::OK, status_body(200, "deleted"))
            }
            _ => (StatusCode::METHOD_NOT_ALLOWED, status_body(405, "no")),
        }
    }
}

fn status_body(code: u16, msg: &str) -> Value {
    let reason = match code {
        404 => "NotFound",
        500 => "InternalError",
        _ => "",
    };
    json!({"apiVersion": "v1", "kind": "Status", "status": if code < 300 {"Success"} else {"Failure"}, "message": msg, "reason": reason, "code": code})
}

/// Tiny JSON patch (add/remove/test) for the finalizer helper's patches.
pub mod json_patch_ops {
    use serde::Deserialize;
    use serde_json::Value;

    #[derive(Deserialize)]
    pub struct Op {
        pub op: String,
        pub path: String,
        #[serde(default)]
        pub value: Value,
    }
    pub type Patch = Vec<Op>;

    pub fn apply(doc: &mut Value, patch: &Patch) {
        for op in patch {
            let parts: Vec<&str> = op.path.trim_start_matches('/').split('/').collect();
            let (last, parents) = parts.split_last().unwrap();
            let mut cur = &mut *doc;
            for p in parents {
                cur = &mut cur[*p];
            }
            match op.op.as_str() {
                "add" if *last == "-" => cur.as_array_mut().unwrap().push(op.value.clone()),
                "add" => cur[*last] = op.value.clone(),
                "remove" => match cur {
                    Value::Array(a) => {
                        a.remove(last.parse::<usize>().unwrap());
                    }
                    Value::Object(m) => {
                        m.remove(*last);
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
}

/// Serves `api` on a mock client until the test ends.
pub fn client(api: Arc<FakeApi>) -> kube::Client {
    let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        while let Some((req, send)) = handle.next_request().await {
            let method = req.method().clone();
            let path = req.uri().path().to_owned();
            let query = req.uri().query().unwrap_or_default().to_owned();
            let bytes = req.into_body().collect_bytes().await.unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            api.calls.lock().unwrap().push(Call {
                method: method.clone(),
                path: path.clone(),
                query: query.clone(),
                body: body.clone(),
            });
            let (code, out) = api.handle(&method, &path, &query, body);
            let resp = Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&out).unwrap()))
                .unwrap();
            send.send_response(resp);
        }
    });
    kube::Client::new(svc, "default")
}

/// Writers of the test's caches, to show the controller what "the cluster" holds.
pub struct Caches {
    pub deployments: Writer<Deployment>,
    pub services: Writer<Service>,
    pub ingresses: Writer<Ingress>,
    pub pods: Writer<Pod>,
    pub boxes: Writer<DeserializeGuard<BoxResource>>,
    pub grants: Writer<DeserializeGuard<ForkGrant>>,
    pub namespaces: Writer<Namespace>,
}

impl Caches {
    pub fn new() -> (Caches, Stores) {
        let (d, dw) = reflector::store();
        let (s, sw) = reflector::store();
        let (i, iw) = reflector::store();
        let (p, pw) = reflector::store();
        let (b, bw) = reflector::store();
        let (g, gw) = reflector::store();
        let (n, nw) = reflector::store();
        (
            Caches {
                deployments: dw,
                services: sw,
                ingresses: iw,
                pods: pw,
                boxes: bw,
                grants: gw,
                namespaces: nw,
            },
            Stores {
                deployments: d,
                services: s,
                ingresses: i,
                pods: p,
                boxes: b,
                grants: g,
                namespaces: n,
            },
        )
    }

    /// Copies what the fake API holds into the caches (as the watches would).
    pub fn sync(&mut self, api: &FakeApi) {
        fn fill<K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned>(
            w: &mut Writer<K>,
            api: &FakeApi,
            kind: &str,
        ) {
            let objs: Vec<K> = api
                .objects
                .lock()
                .unwrap()
                .iter()
                .filter(|(p, _)| p.split('/').rev().nth(1) == Some(kind))
                .map(|(_, o)| serde_json::from_value(o.clone()).unwrap())
                .collect();
            w.apply_watcher_event(&watcher::Event::Init);
            for o in objs {
                w.apply_watcher_event(&watcher::Event::InitApply(o));
            }
            w.apply_watcher_event(&watcher::Event::InitDone);
        }
        fill(&mut self.deployments, api, "deployments");
        fill(&mut self.services, api, "services");
        fill(&mut self.ingresses, api, "ingresses");
        fill(&mut self.pods, api, "pods");
        fill(&mut self.boxes, api, "boxes");
        fill(&mut self.grants, api, "forkgrants");
        fill(&mut self.namespaces, api, "namespaces");
    }
}

/// A real node agent on a scratch loopback btrfs pool with the tiny base as `box-base`.
pub struct RealAgent {
    pub pool: Arc<Pool>,
    pub addr: String,
    _lb: Loopback,
}

impl RealAgent {
    pub async fn start() -> RealAgent {
        RealAgent::start_with(true).await
    }

    /// An agent whose pool has `box-base` only when `with_base`.
    pub async fn start_with(with_base: bool) -> RealAgent {
        let lb = Loopback::scratch(1 << 30).expect("loopback btrfs (needs root)");
        let pool = Arc::new(Pool::open(lb.path()).unwrap());
        if with_base {
            let cache = std::path::Path::new("/var/cache/forkr/testbase");
            let tar = forkr_node_agent::minibase::tarball(cache).unwrap();
            let f = std::fs::File::open(tar).unwrap();
            pool.import_base("box-base", f, &ImportOptions::default())
                .unwrap();
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let p = pool.clone();
        tokio::spawn(async move {
            forkr_node_agent::rpc::serve::serve_tcp_listener(
                p,
                Arc::new(AgentMetrics::default()),
                None,
                TOKEN,
                listener,
                std::future::pending(),
            )
            .await
        });
        RealAgent {
            pool,
            addr,
            _lb: lb,
        }
    }

    pub fn agents(&self) -> Arc<dyn Agents> {
        GrpcAgents::new(
            Discovery::Static(BTreeMap::from([(NODE.to_owned(), self.addr.clone())])),
            None,
            TOKEN,
        )
        .unwrap()
    }
}

/// A Context over the fake API and the given agents.
pub fn context(api: Arc<FakeApi>, agents: Arc<dyn Agents>, stores: Stores) -> Arc<Context> {
    Arc::new(Context::new(
        client(api),
        Settings::example(),
        agents,
        Arc::new(Metrics::default()),
        stores,
        Some("test".into()),
    ))
}

/// Waits a little for fire-and-forget work.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(20)).await;
}
