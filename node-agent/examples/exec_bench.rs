//! Latency of the exec engine alone (`exec::command` + spawn + wait of `true`), with and
//! without a box environment and request variables, on one box of the tiny base. Prints p50 /
//! p90; it asserts nothing. The gRPC and HTTP figures are in runtime_bench and the API bench.
//!
//! ```text
//! cargo build --release -p forkr-node-agent --bin forkr-runner --example exec_bench
//! target/release/examples/exec_bench [--samples 200]
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

#[path = "../tests/rtkit/mod.rs"]
mod rtkit;

use std::time::{Duration, Instant};

use forkr_node_agent::exec::{self, ExecRequest, Stdio3, Target};
use forkr_node_agent::runtime::BoxSpec;
use rtkit::Rt;

fn samples() -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--samples")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

fn pct(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn measure(pid1: i32, req: &ExecRequest, n: usize) -> (Duration, Duration) {
    let mut times = Vec::with_capacity(n);
    for i in 0..n + 10 {
        let t = Instant::now();
        let mut p = exec::command(&Target::new(pid1), req, Stdio3::Pipes).unwrap();
        let out = p.cmd.stdin(std::process::Stdio::null()).output().unwrap();
        let d = t.elapsed();
        assert!(out.status.success(), "{out:?}");
        if i >= 10 {
            times.push(d);
        }
    }
    (pct(&mut times, 0.5), pct(&mut times, 0.9))
}

fn main() {
    let n = samples();
    let rt = Rt::new();
    let mut spec = BoxSpec::new("bench", "ex");
    spec.env = (0..20)
        .map(|i| (format!("BOX_VAR_{i}"), format!("value {i} with some text")))
        .collect();
    let pid1 = rt.boot(&spec).pid.unwrap();
    let plain = ExecRequest {
        args: vec!["true".into()],
        ..Default::default()
    };
    let with_env = ExecRequest {
        env: (0..10)
            .map(|i| (format!("REQ_VAR_{i}"), format!("request value {i}")))
            .collect(),
        ..plain.clone()
    };
    println!("| exec engine, `true` ({n} samples) | p50 | p90 |");
    println!("|---|---|---|");
    let (p50, p90) = measure(pid1, &plain, n);
    println!("| box with 20 variables | {} | {} |", ms(p50), ms(p90));
    let (p50, p90) = measure(pid1, &with_env, n);
    println!("| + 10 request variables | {} | {} |", ms(p50), ms(p90));
}
