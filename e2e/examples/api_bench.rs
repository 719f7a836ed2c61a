//! The gateway's figures, through the API of a real `forkr-api --local` (release build):
//!
//!     cargo build --release -p forkr-api -p forkr-node-agent --bins
//!     cargo run --release -p forkr-e2e --example api_bench [-- BOXES]
//!
//! Prints one table: create to exec-ready, `true` over the WebSocket exec, listing BOXES boxes
//! (default 1000), and 100 WebSocket exec sessions at once.

#![allow(clippy::unwrap_used)]

use std::time::Instant;

use forkr_e2e::bench::{ms, pct};
use forkr_e2e::{LocalOptions, Target, Tok};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::main]
async fn main() {
    let boxes: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let t = Target::local(LocalOptions::default()).await;
    let mut rows: Vec<(String, String, String, String)> = Vec::new();

    // Create → exec-ready: the create call, then the first `true` that succeeds.
    let mut create = Vec::new();
    for i in 0..30 {
        let name = format!("ready{i}");
        let start = Instant::now();
        t.create_box("bench", json!({"name": name})).await;
        let (code, _) = t.ws_exec("bench", &name, &["true"]).await;
        assert_eq!(code, 0);
        create.push(start.elapsed());
    }
    rows.push((
        "create → exec-ready (30)".into(),
        ms(pct(&mut create, 0.5)),
        ms(pct(&mut create, 0.9)),
        "≤ 150 ms".into(),
    ));

    // `true` over the WebSocket exec, connect to exit code.
    let mut exec = Vec::new();
    for _ in 0..100 {
        let start = Instant::now();
        let (code, _) = t.ws_exec("bench", "ready0", &["true"]).await;
        assert_eq!(code, 0);
        exec.push(start.elapsed());
    }
    rows.push((
        "WebSocket exec `true` round trip (100)".into(),
        ms(pct(&mut exec, 0.5)),
        ms(pct(&mut exec, 0.9)),
        "≤ 25 ms".into(),
    ));

    // 100 sessions at once, each `true`; per-session latency and the wall time of all.
    let start = Instant::now();
    let sessions = (0..100).map(|i| {
        let t = &t;
        async move {
            let name = format!("ready{}", i % 30);
            let s = Instant::now();
            let (code, _) = t.ws_exec("bench", &name, &["true"]).await;
            assert_eq!(code, 0);
            s.elapsed()
        }
    });
    let mut each = futures::future::join_all(sessions).await;
    let wall = start.elapsed();
    rows.push((
        "100 concurrent WebSocket execs, per session".into(),
        ms(pct(&mut each, 0.5)),
        ms(pct(&mut each, 0.99)),
        format!("all done in {}", ms(wall)),
    ));

    // Listing many boxes: make them (30 running, the rest stopped), then time the list.
    let made = Instant::now();
    let names: Vec<String> = (0..boxes.saturating_sub(30))
        .map(|i| format!("b{i}"))
        .collect();
    for chunk in names.chunks(8) {
        let creates = chunk.iter().map(|n| {
            let t = &t;
            async move {
                let (s, v) = t
                    .call(
                        Method::POST,
                        "/v1/projects/bench/boxes",
                        Tok::Admin,
                        Some(json!({"name": n})),
                    )
                    .await;
                assert_eq!(s, StatusCode::CREATED, "{v}");
                // A local /24 holds 253 running boxes; the rest of the list is stopped boxes.
                let (s, v) = t
                    .call(
                        Method::POST,
                        &format!("/v1/projects/bench/boxes/{n}/stop"),
                        Tok::Admin,
                        None,
                    )
                    .await;
                assert_eq!(s, StatusCode::OK, "{v}");
            }
        });
        futures::future::join_all(creates).await;
    }
    eprintln!(
        "made {boxes} boxes in {:.1} s",
        made.elapsed().as_secs_f64()
    );
    let mut list = Vec::new();
    for _ in 0..20 {
        let start = Instant::now();
        let (s, v) = t
            .call(Method::GET, "/v1/projects/bench/boxes", Tok::Admin, None)
            .await;
        list.push(start.elapsed());
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v.as_array().unwrap().len(), boxes);
    }
    rows.push((
        format!("list {boxes} boxes (20)"),
        ms(pct(&mut list, 0.5)),
        ms(pct(&mut list, 0.9)),
        "≤ 50 ms".into(),
    ));

    println!("| measure | p50 | p90 / p99 | target |");
    println!("| --- | --- | --- | --- |");
    for (what, p50, p90, target) in rows {
        println!("| {what} | {p50} | {p90} | {target} |");
    }
}
