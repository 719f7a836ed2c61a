//! Operator figures on a real cluster (run by `scripts/k8s-e2e.sh --bench`, which starts the
//! cluster, the agent and the operator and exports FORKR_E2E_*):
//!
//! 1. Create → Ready of running boxes, one at a time, split into root creation (the Box's
//!    RootReady condition appears), scheduling (the pod is bound to the node) and container
//!    start (the runner container runs), as a client polling every 20 ms sees them.
//! 2. 1,000 stopped boxes: time until all are reconciled, operator RSS, API writes in steady
//!    state, then the operator is restarted with the same command line and the time until it
//!    has reconciled all of them again (and how many writes that took) is measured.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use forkr_crds::{BoxPhase, BoxResource};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run scripts/k8s-e2e.sh --bench"))
}

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

/// Sum of a counter family (optionally only lines containing `filter`).
async fn counter(name: &str, filter: &str) -> u64 {
    http_get(&env("FORKR_E2E_METRICS"), "/metrics")
        .await
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn rss_mib(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn p50(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

async fn apply(api: &Api<BoxResource>, name: &str, spec: serde_json::Value) {
    let body = json!({"apiVersion": "forkr.dev/v1alpha1", "kind": "Box", "metadata": {"name": name}, "spec": spec});
    api.patch(
        name,
        &PatchParams::apply("bench").force(),
        &Patch::Apply(&body),
    )
    .await
    .unwrap();
}

async fn create_to_ready(client: &kube::Client, ns: &str, n: usize) {
    let boxes: Api<BoxResource> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let (mut total, mut root, mut sched, mut start) = (vec![], vec![], vec![], vec![]);
    for i in 0..n {
        let name = format!("ready-{i}");
        let t0 = Instant::now();
        apply(&boxes, &name, json!({"memory": "64Mi"})).await;
        let (mut t_root, mut t_sched, mut t_start) = (None, None, None);
        loop {
            let b = boxes.get(&name).await.unwrap();
            let st = b.status.clone().unwrap_or_default();
            if t_root.is_none()
                && st
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "RootReady" && c.status == "True")
            {
                t_root = Some(t0.elapsed());
            }
            let p = pods
                .list(&ListParams::default().labels(&format!("forkr.dev/box={name}")))
                .await
                .unwrap();
            if let Some(p) = p.items.first() {
                if t_sched.is_none() && p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()
                {
                    t_sched = Some(t0.elapsed());
                }
                let running = p
                    .status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .is_some_and(|c| {
                        c.iter()
                            .any(|c| c.state.as_ref().and_then(|s| s.running.as_ref()).is_some())
                    });
                if t_start.is_none() && running {
                    t_start = Some(t0.elapsed());
                }
            }
            if st.phase == Some(BoxPhase::Running) {
                let done = t0.elapsed();
                let r = t_root.unwrap_or(done);
                let s = t_sched.unwrap_or(done).max(r);
                let c = t_start.unwrap_or(done).max(s);
                total.push(done.as_secs_f64());
                root.push(r.as_secs_f64());
                sched.push((s - r).as_secs_f64());
                start.push((c - s).as_secs_f64());
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "{name} not Running: {:?}",
                st
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        boxes.delete(&name, &DeleteParams::default()).await.unwrap();
    }
    println!(
        "bench create->ready over {n} boxes: p50 {:.2}s = root creation p50 {:.2}s + scheduling p50 {:.2}s + container start p50 {:.2}s",
        p50(&mut total),
        p50(&mut root),
        p50(&mut sched),
        p50(&mut start)
    );
}

async fn count_phase(api: &Api<BoxResource>, phase: BoxPhase) -> usize {
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|b| b.status.as_ref().and_then(|s| s.phase) == Some(phase))
        .count()
}

/// Restarts the operator with its own command line and environment; returns the new child.
fn restart_operator(pid: u32) -> std::process::Child {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let envs: Vec<(String, String)> = environ
        .split(|b| *b == 0)
        .filter_map(|kv| {
            String::from_utf8_lossy(kv)
                .split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect();
    // std cannot signal another process; kill(1) sends SIGTERM, as a rollout would.
    std::process::Command::new("kill")
        .arg(pid.to_string())
        .status()
        .unwrap();
    while std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = std::fs::File::create("/var/lib/forkr-e2e/logs/operator-restarted.log").unwrap();
    std::process::Command::new(&args[0])
        .args(&args[1..])
        .env_clear()
        .envs(envs)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// The tiny real base as `box-base` in the agent's pool (idempotent by request id).
async fn import_base() {
    use forkr_agent_proto::storage as agent;
    let token = std::fs::read_to_string(env("FORKR_E2E_TOKEN_FILE")).unwrap();
    let ch = tonic::transport::Channel::from_shared(env("FORKR_E2E_AGENT"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut c = agent::storage_client::StorageClient::with_interceptor(
        ch,
        forkr_agent_proto::auth::BearerToken::new(token.trim()).unwrap(),
    );
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
    c.import_base(futures::stream::iter(msgs)).await.unwrap();
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    import_base().await;
    let client = kube::Client::try_default().await.unwrap();
    let n_ready: usize = std::env::var("FORKR_BENCH_READY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let n_many: usize = std::env::var("FORKR_BENCH_BOXES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let pid: u32 = env("FORKR_E2E_OPERATOR_PID").parse().unwrap();
    let ns = format!("bench-{}", std::process::id());
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
    )
    .await
    .unwrap();

    create_to_ready(&client, &ns, n_ready).await;

    let boxes: Api<BoxResource> = Api::namespaced(client.clone(), &ns);
    let rss0 = rss_mib(pid);
    let t0 = Instant::now();
    let names: Vec<String> = (0..n_many).map(|i| format!("many-{i}")).collect();
    for chunk in names.chunks(32) {
        futures::future::join_all(
            chunk
                .iter()
                .map(|n| apply(&boxes, n, json!({"running": false}))),
        )
        .await;
    }
    let applied = t0.elapsed();
    loop {
        let done = count_phase(&boxes, BoxPhase::Stopped).await;
        if done >= n_many {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(1800),
            "only {done}/{n_many} boxes reconciled"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    println!(
        "bench {n_many} stopped boxes: applied in {:.1}s, all reconciled (root + Deployment + Service + status) {:.1}s after the first apply",
        applied.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    let w0 = counter("forkr_operator_api_writes_total", "").await;
    let r0 = counter("forkr_operator_reconciles_total", "").await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let w1 = counter("forkr_operator_api_writes_total", "").await;
    let r1 = counter("forkr_operator_reconciles_total", "").await;
    println!(
        "bench steady state over 60 s: {} API writes, {} reconciles; operator RSS {:.1} MiB (was {rss0:.1} MiB before the boxes)",
        w1 - w0,
        r1 - r0,
        rss_mib(pid)
    );

    let t1 = Instant::now();
    let mut child = restart_operator(pid);
    let want = u64::try_from(n_many).unwrap();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(2), async {
            Ok::<u64, ()>(counter("forkr_operator_reconciles_total", "controller=\"box\"").await)
        })
        .await
        else {
            continue;
        };
        if r >= want {
            break;
        }
        assert!(
            t1.elapsed() < Duration::from_secs(900),
            "restarted operator reconciled {r}/{want}"
        );
    }
    let took = t1.elapsed();
    tokio::time::sleep(Duration::from_secs(5)).await;
    println!(
        "bench restart: the new operator reconciled all {n_many} boxes {:.1}s after the restart (process start, lease, caches included), with {} API writes; RSS {:.1} MiB",
        took.as_secs_f64(),
        counter("forkr_operator_api_writes_total", "").await,
        rss_mib(child.id())
    );

    let _ = nss.delete(&ns, &DeleteParams::default()).await;
    let t2 = Instant::now();
    while nss.get_opt(&ns).await.ok().flatten().is_some() && t2.elapsed() < Duration::from_secs(900)
    {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    println!(
        "bench cleanup: namespace with {n_many} boxes deleted in {:.1}s",
        t2.elapsed().as_secs_f64()
    );
    let _ = std::process::Command::new("kill")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
}
