//! How long `4kr list` takes, process start included, against a real local forkr-api (SQLite, a
//! loopback btrfs pool, runc) holding N running boxes. Prints figures; asserts nothing.
//!
//! ```sh
//! cargo build --release -p forkr-cli --bin 4kr --example list_bench
//! cargo build --release -p forkr-node-agent --bin forkr-runner
//! target/release/examples/list_bench            # --boxes 20 --runs 50
//! ```
//! Runs as root (the pool is a loopback btrfs and boxes run under runc).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use forkr_api::testkit::{TestServer, workspace_bin};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let boxes = arg("--boxes", 20);
    let runs = arg("--runs", 50);
    let bin = workspace_bin("forkr-cli", "4kr");
    let server = TestServer::start().await;
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&bin)
            .args(args)
            .env_clear()
            .env("HOME", home.path())
            .env("FORKR_SETUP_DIR", home.path())
            .env("FORKR_URL", &server.url)
            .env("FORKR_TOKEN", &server.admin)
            .current_dir(home.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "4kr {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    for i in 0..boxes {
        run(&["create", &format!("bench-{i}")]);
    }
    let lines = String::from_utf8_lossy(&run(&["list"])).lines().count();
    assert_eq!(lines, boxes + 1, "a header and one line per box");
    // Warm the page cache and the server's connection paths once.
    run(&["list"]);
    let time = |args: &[&str]| {
        let mut samples: Vec<Duration> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                run(args);
                t.elapsed()
            })
            .collect();
        samples.sort();
        samples
    };
    let list = time(&["list"]);
    let json = time(&["list", "-j"]);
    let version = time(&["--version"]);
    println!("4kr list against a local forkr-api with {boxes} running boxes, {runs} runs each");
    println!("| command | p50 | p90 | max |");
    println!("| --- | --- | --- | --- |");
    for (name, s) in [
        ("4kr list", &list),
        ("4kr list -j", &json),
        ("4kr --version (process start only)", &version),
    ] {
        println!(
            "| `{name}` | {} | {} | {} |",
            ms(percentile(s, 0.5)),
            ms(percentile(s, 0.9)),
            ms(*s.last().unwrap())
        );
    }
    for i in 0..boxes {
        run(&["delete", "-f", &format!("bench-{i}")]);
    }
}
