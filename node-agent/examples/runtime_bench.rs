//! Box runtime figures (issue 4): start to PID 1 ready, exec round trip over the gRPC stream,
//! stdout throughput, idle box memory, and many boxes started at once. Prints a table; it
//! asserts nothing.
//!
//! ```text
//! cargo build --release -p forkr-node-agent --bin forkr-runner --example runtime_bench
//! target/release/examples/runtime_bench [--boxes 200] [--samples 40]
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

#[path = "../tests/rtkit/mod.rs"]
mod rtkit;

use std::time::{Duration, Instant};

use forkr_node_agent::exec::{ExecRequest, Stdio3, Target};
use forkr_node_agent::rpc::proto::{self, exec_input, exec_output};
use forkr_node_agent::runtime::{BoxSpec, Phase};
use rtkit::{Client, Rt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn row(what: &str, value: &str, target: &str) {
    println!("| {what} | {value} | {target} |");
}

fn kib(path: &str, key: &str) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Host PIDs of every process in the box whose PID 1 is `pid1`.
fn box_pids(pid1: i32) -> Vec<i32> {
    let mut out = vec![pid1];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        for t in std::fs::read_dir(format!("/proc/{p}/task"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let c = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            out.extend(c.split_whitespace().filter_map(|x| x.parse::<i32>().ok()));
        }
        i += 1;
    }
    out
}

/// (RSS, PSS) in KiB of a box's processes.
fn box_memory(pid1: i32) -> (u64, u64) {
    box_pids(pid1).iter().fold((0, 0), |(r, p), pid| {
        (
            r + kib(&format!("/proc/{pid}/status"), "VmRSS:"),
            p + kib(&format!("/proc/{pid}/smaps_rollup"), "Pss:"),
        )
    })
}

async fn grpc_exec(c: &mut Client, name: &str, script: &str) -> (usize, i32) {
    let (tx, rx) = mpsc::channel(4);
    tx.send(proto::ExecInput {
        msg: Some(exec_input::Msg::Start(proto::ExecStart {
            r#box: Some(proto::BoxRef {
                project: "bench".into(),
                name: name.into(),
            }),
            args: vec![script.into()],
            sh: true,
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let mut s = c.exec(ReceiverStream::new(rx)).await.unwrap().into_inner();
    let mut bytes = 0;
    let mut code = -1;
    while let Some(m) = s.message().await.unwrap() {
        match m.msg.unwrap() {
            exec_output::Msg::Stdout(b) => bytes += b.len(),
            exec_output::Msg::ExitCode(c) => code = c,
            _ => {}
        }
    }
    drop(tx);
    (bytes, code)
}

fn start_latency(rt: &Rt, name: &str, samples: usize) -> (Vec<Duration>, Vec<Duration>) {
    rt.pool.create_root("bench", name, &rt.base).unwrap();
    let spec = BoxSpec::new("bench", name);
    let (mut starts, mut stops) = (Vec::new(), Vec::new());
    for _ in 0..samples {
        let t = Instant::now();
        let st = rt.rt.start(&spec).unwrap();
        starts.push(t.elapsed());
        assert_eq!(st.phase, Phase::Running);
        let t = Instant::now();
        rt.rt.stop("bench", name).unwrap();
        stops.push(t.elapsed());
    }
    (starts, stops)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let boxes = arg("--boxes", 200);
    let samples = arg("--samples", 40);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("# forkr box runtime benchmark");
    println!();
    println!(
        "{} CPUs, load average {}, runc {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        String::from_utf8_lossy(
            &std::process::Command::new("runc")
                .arg("--version")
                .output()
                .unwrap()
                .stdout
        )
        .lines()
        .next()
        .unwrap_or("")
    );
    println!();
    println!("| measure | result | issue 4 target |");
    println!("| --- | --- | --- |");

    let rt = Rt::with_network();
    let (mut starts, mut stops) =
        tokio::task::block_in_place(|| start_latency(&rt, "start", samples));
    row(
        "box start to PID 1 ready, own netns (p50 / p90)",
        &format!(
            "{} / {}",
            ms(pct(&mut starts, 0.5)),
            ms(pct(&mut starts, 0.9))
        ),
        "p50 ≤ 100 ms",
    );
    row(
        "box stop, PID 1 obeys SIGTERM (p50)",
        &ms(pct(&mut stops, 0.5)),
        "",
    );
    {
        let plain = Rt::new();
        let (mut s, _) = tokio::task::block_in_place(|| start_latency(&plain, "plain", samples));
        row(
            "box start to PID 1 ready, host network (p50)",
            &ms(pct(&mut s, 0.5)),
            "",
        );
    }

    // Exec round trips.
    rt.pool.create_root("bench", "ex", &rt.base).unwrap();
    let pid1 = rt
        .rt
        .start(&BoxSpec::new("bench", "ex"))
        .unwrap()
        .pid
        .unwrap();
    let (mut c, _) = rt.grpc(Duration::from_secs(15)).await;
    for _ in 0..5 {
        grpc_exec(&mut c, "ex", "true").await;
    }
    let mut rtts = Vec::new();
    for _ in 0..samples * 5 {
        let t = Instant::now();
        let (_, code) = grpc_exec(&mut c, "ex", "true").await;
        rtts.push(t.elapsed());
        assert_eq!(code, 0);
    }
    row(
        "exec `true` over the gRPC stream (p50 / p90)",
        &format!("{} / {}", ms(pct(&mut rtts, 0.5)), ms(pct(&mut rtts, 0.9))),
        "p50 ≤ 15 ms",
    );
    let mut direct = Vec::new();
    for _ in 0..samples * 2 {
        let req = ExecRequest {
            args: vec!["true".into()],
            ..Default::default()
        };
        let t = Instant::now();
        let mut p =
            forkr_node_agent::exec::command(&Target::new(pid1), &req, Stdio3::Pipes).unwrap();
        let st = p.cmd.stdin(std::process::Stdio::null()).output().unwrap();
        direct.push(t.elapsed());
        assert!(st.status.success());
    }
    row(
        "exec `true`, engine only (nsenter + bash -lc) (p50)",
        &ms(pct(&mut direct, 0.5)),
        "",
    );

    // Throughput.
    let size: usize = 2 << 30;
    let t = Instant::now();
    let (bytes, code) = grpc_exec(
        &mut c,
        "ex",
        &format!("dd if=/dev/zero bs=1M count={} 2>/dev/null", size >> 20),
    )
    .await;
    let secs = t.elapsed().as_secs_f64();
    assert_eq!((bytes, code), (size, 0));
    row(
        "stdout throughput over the gRPC stream (2 GiB)",
        &format!("{:.0} MB/s", size as f64 / secs / 1e6),
        "≥ 500 MB/s",
    );

    // Idle overhead.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss, pss) = box_memory(pid1);
    row(
        "idle box: tini + sleep (runner exec'd into tini), RSS / PSS",
        &format!(
            "{:.2} MiB / {:.2} MiB",
            rss as f64 / 1024.0,
            pss as f64 / 1024.0
        ),
        "≤ 3 MiB RSS",
    );
    drop(c);

    // Many boxes at once.
    let t = Instant::now();
    for i in 0..boxes {
        rt.pool
            .create_root("many", &format!("b{i}"), &rt.base)
            .unwrap();
    }
    let roots = t.elapsed();
    let avail_before = kib("/proc/meminfo", "MemAvailable:");
    let t = Instant::now();
    let rt_arc = rt.rt.clone();
    let pids: Vec<i32> = tokio::task::block_in_place(|| {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..boxes)
                .map(|i| {
                    let rt = rt_arc.clone();
                    s.spawn(move || {
                        rt.start(&BoxSpec::new("many", &format!("b{i}")))
                            .unwrap()
                            .pid
                            .unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    });
    let all_up = t.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let avail_after = kib("/proc/meminfo", "MemAvailable:");
    let (rss, pss) = pids.iter().fold((0, 0), |(r, p), pid| {
        let (a, b) = box_memory(*pid);
        (r + a, p + b)
    });
    row(
        &format!("{boxes} roots created (sequential)"),
        &format!("{:.2} s", roots.as_secs_f64()),
        "",
    );
    row(
        &format!("{boxes} idle boxes started at once, all PID 1 ready"),
        &format!("{:.2} s", all_up.as_secs_f64()),
        "report",
    );
    row(
        &format!("{boxes} idle boxes: RSS / PSS of their processes"),
        &format!(
            "{:.0} MiB / {:.0} MiB",
            rss as f64 / 1024.0,
            pss as f64 / 1024.0
        ),
        "report",
    );
    row(
        &format!("{boxes} idle boxes: host MemAvailable drop"),
        &format!(
            "{:.0} MiB",
            (avail_before.saturating_sub(avail_after)) as f64 / 1024.0
        ),
        "report",
    );
    let t = Instant::now();
    tokio::task::block_in_place(|| {
        std::thread::scope(|s| {
            for i in 0..boxes {
                let rt = rt_arc.clone();
                s.spawn(move || rt.stop("many", &format!("b{i}")).unwrap());
            }
        })
    });
    row(
        &format!("{boxes} boxes stopped at once"),
        &format!("{:.2} s", t.elapsed().as_secs_f64()),
        "",
    );
}
