//! The kube backend's command paths on a real cluster: the node agent against the Kubernetes
//! exec fallback, through two forkr-api servers of the same cluster (scripts/k8s-e2e.sh starts
//! them; `scripts/k8s-e2e.sh --api-bench` runs this with their addresses in the environment).
//!
//! Prints one table: create to exec-ready, POST exec `true` and WebSocket exec `true` on each
//! path, and a 1 MiB `4kr cp` in on each path.

#![allow(clippy::unwrap_used)]

use std::time::Instant;

use forkr_e2e::Target;
use forkr_e2e::bench::{ms, pct};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// p50 and p90 of `n` runs of `f`.
async fn measure<F, Fut>(n: usize, mut f: F) -> (String, String)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let s = Instant::now();
        f().await;
        v.push(s.elapsed());
    }
    (ms(pct(&mut v, 0.5)), ms(pct(&mut v, 0.9)))
}

#[tokio::main]
async fn main() {
    let agent = Target::start_external_only().await;
    let fallback = Target::fallback().await;
    let project = "kbench";
    agent
        .delete_boxes(project, &agent.box_names(project).await)
        .await;
    let mut rows: Vec<(String, String, String)> = Vec::new();

    let mut i = 0;
    let (p50, p90) = measure(5, || {
        i += 1;
        let name = format!("r{i}");
        let t = &agent;
        async move {
            t.create_box(project, json!({"name": name})).await;
            let (code, _) = t.ws_exec(project, &name, &["true"]).await;
            assert_eq!(code, 0);
        }
    })
    .await;
    rows.push(("create → exec-ready (5)".into(), p50, p90));

    let mb: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    for (label, t) in [("agent", &agent), ("Kubernetes exec", &fallback)] {
        let exec = format!("/v1/projects/{project}/boxes/r1/exec");
        let (p50, p90) = measure(30, || async {
            let v = t
                .expect(
                    StatusCode::OK,
                    Method::POST,
                    &exec,
                    Some(json!({"command": ["true"]})),
                )
                .await;
            assert_eq!(v["exit_code"], 0);
        })
        .await;
        rows.push((format!("POST exec `true`, {label} (30)"), p50, p90));
        let (p50, p90) = measure(30, || async {
            let (code, _) = t.ws_exec(project, "r1", &["true"]).await;
            assert_eq!(code, 0);
        })
        .await;
        rows.push((format!("WebSocket exec `true`, {label} (30)"), p50, p90));
        let files = format!(
            "{}/v1/projects/{project}/boxes/r1/files?path=/tmp/blob",
            t.url
        );
        let (p50, p90) = measure(5, || async {
            let r = t
                .http
                .put(&files)
                .bearer_auth(&t.admin)
                .body(mb.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::CREATED);
        })
        .await;
        rows.push((format!("cp 1 MiB in, {label} (5)"), p50, p90));
    }
    agent
        .delete_boxes(project, &agent.box_names(project).await)
        .await;

    println!("| measure | p50 | p90 |");
    println!("| --- | --- | --- |");
    for (m, a, b) in rows {
        println!("| {m} | {a} | {b} |");
    }
}
