//! Storage benchmark: prints a table of latencies measured on a fresh loopback btrfs pool.
//!
//! Run as root: `cargo run --release -p forkr-node-agent --example bench`
//! Options: `--quick` (smaller sizes, for a smoke run), `--iterations N` (default 15).
//! It is a measurement, not a test: nothing here asserts on time.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use forkr_node_agent::pool::diff::Strategy;
use forkr_node_agent::pool::import::ImportOptions;
use forkr_node_agent::pool::loopback::Loopback;
use forkr_node_agent::{Pool, Shelf, Subject};

const MIB: u64 = 1 << 20;

struct Config {
    iterations: usize,
    sizes: Vec<(&'static str, u64)>,
    diff_files: usize,
    tarball_bytes: u64,
}

fn config() -> Config {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let iterations = args
        .iter()
        .position(|a| a == "--iterations")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(15);
    if quick {
        return Config {
            iterations: 5,
            sizes: vec![("10 MiB", 10 * MIB), ("200 MiB", 200 * MIB)],
            diff_files: 10_000,
            tarball_bytes: 20 * MIB,
        };
    }
    Config {
        iterations,
        sizes: vec![("10 MiB", 10 * MIB), ("2 GiB", 2048 * MIB)],
        diff_files: 100_000,
        tarball_bytes: 200 * MIB,
    }
}

/// Cheap incompressible bytes (xorshift), so sizes on disk are real.
struct Noise(u64);

impl Noise {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            let b = self.0.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
    }
}

fn write_data(dir: &Path, bytes: u64, noise: &mut Noise) {
    fs::create_dir_all(dir).expect("data dir");
    let mut buf = vec![0u8; 4 * MIB as usize];
    let mut left = bytes;
    let mut i = 0;
    while left > 0 {
        let file_bytes = left.min(64 * MIB);
        let mut f = BufWriter::new(File::create(dir.join(format!("blob{i}"))).expect("blob"));
        let mut w = 0;
        while w < file_bytes {
            let n = (file_bytes - w).min(buf.len() as u64) as usize;
            noise.fill(&mut buf[..n]);
            f.write_all(&buf[..n]).expect("write");
            w += n as u64;
        }
        f.flush().expect("flush");
        left -= file_bytes;
        i += 1;
    }
}

fn sync(pool: &Pool) {
    libbtrfsutil::sync(pool.path()).expect("sync");
}

#[derive(Default)]
struct Samples(Vec<Duration>);

impl Samples {
    fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let v = f();
        self.0.push(start.elapsed());
        v
    }

    fn pct(&self, p: f64) -> f64 {
        let mut v: Vec<f64> = self.0.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return f64::NAN;
        }
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v[i]
    }
}

struct Row {
    what: String,
    size: String,
    mode: String,
    samples: Samples,
}

fn print_table(rows: &[Row]) {
    println!("\n| operation | root size | data | runs | p50 ms | p90 ms | max ms |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {:.2} | {:.2} | {:.2} |",
            r.what,
            r.size,
            r.mode,
            r.samples.0.len(),
            r.samples.pct(0.5),
            r.samples.pct(0.9),
            r.samples.pct(1.0)
        );
    }
}

fn header(mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h
}

/// Just enough of an x86-64 ELF header for the import's architecture check.
fn fake_sh() -> [u8; 64] {
    let mut elf = [0u8; 64];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2;
    elf[5] = 1;
    elf[18] = 62;
    elf
}

fn tiny_base() -> Vec<u8> {
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let elf = fake_sh();
    let mut h = header(0o755, elf.len() as u64);
    b.append_data(&mut h, "bin/sh", &elf[..]).expect("tar");
    b.into_inner().expect("tar").finish().expect("gz")
}

fn lifecycle(pool: &Pool, label: &str, bytes: u64, cfg: &Config, rows: &mut Vec<Row>) {
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15 ^ bytes);
    let seed = format!("seed-{}", bytes / MIB);
    pool.create_root("bench", &seed, "tiny").expect("seed root");
    write_data(
        &pool.root_path("bench", &seed).expect("seed").join("data"),
        bytes,
        &mut noise,
    );
    sync(pool);
    let base = pool
        .save_base(&format!("b{}", bytes / MIB), "bench", &seed, None)
        .expect("save base");
    pool.delete_root("bench", &seed).expect("drop seed");

    for synced in [true, false] {
        let mode = if synced { "synced" } else { "8 MiB dirty" };
        let mut create = Samples::default();
        let mut checkpoint = Samples::default();
        let mut fork = Samples::default();
        let mut restore = Samples::default();
        let mut delete = Samples::default();
        for i in 0..cfg.iterations {
            let (a, b) = (format!("r{i}"), format!("f{i}"));
            let subject = Subject::Root {
                project: "bench",
                name: &a,
            };
            let dirty = |name: &str, noise: &mut Noise| {
                if !synced {
                    write_data(
                        &pool
                            .root_path("bench", name)
                            .expect("root")
                            .join(format!("dirty{i}")),
                        8 * MIB,
                        noise,
                    );
                }
            };
            sync(pool);
            create.time(|| pool.create_root("bench", &a, &base).expect("create"));
            dirty(&a, &mut noise);
            if synced {
                sync(pool);
            }
            checkpoint.time(|| {
                pool.create_checkpoint(subject, Shelf::Checkpoints, Some("c"), None, None)
                    .expect("checkpoint")
            });
            dirty(&a, &mut noise);
            if synced {
                sync(pool);
            }
            fork.time(|| pool.fork_root("bench", &a, "bench", &b, &[]).expect("fork"));
            dirty(&a, &mut noise);
            if synced {
                sync(pool);
            }
            restore.time(|| {
                pool.restore_checkpoint(subject, Shelf::Checkpoints, "c")
                    .expect("restore")
            });
            dirty(&b, &mut noise);
            if synced {
                sync(pool);
            }
            delete.time(|| pool.delete_root("bench", &b).expect("delete"));
            pool.delete_root("bench", &a).expect("cleanup");
        }
        for (what, samples) in [
            ("create root", create),
            ("checkpoint", checkpoint),
            ("fork", fork),
            ("restore", restore),
            ("delete root", delete),
        ] {
            rows.push(Row {
                what: what.into(),
                size: label.into(),
                mode: mode.into(),
                samples,
            });
        }
    }
}

fn diff_bench(pool: &Pool, cfg: &Config, rows: &mut Vec<Row>) {
    pool.create_root("bench", "many", "tiny").expect("root");
    let root = pool.root_path("bench", "many").expect("root");
    let per_dir = 1000;
    let dirs = cfg.diff_files.div_ceil(per_dir);
    for d in 0..dirs {
        let dir = root.join(format!("d{d:03}"));
        fs::create_dir_all(&dir).expect("dir");
        for f in 0..per_dir.min(cfg.diff_files - d * per_dir) {
            fs::write(dir.join(format!("f{f:04}")), format!("file {d}/{f}\n")).expect("file");
        }
    }
    sync(pool);
    let subject = Subject::Root {
        project: "bench",
        name: "many",
    };
    pool.create_checkpoint(subject, Shelf::Checkpoints, Some("before"), None, None)
        .expect("checkpoint");
    for i in 0..10 {
        fs::write(
            root.join(format!("d{:03}/f{:04}", i * 7 % dirs, i * 37 % per_dir)),
            "changed\n",
        )
        .expect("change");
    }
    sync(pool);
    let label = format!("{} files", cfg.diff_files);
    let mut send = Samples::default();
    let mut walk = Samples::default();
    let mut changes = 0;
    for _ in 0..cfg.iterations {
        let r = send.time(|| {
            pool.diff_status("bench", "many", None, Strategy::Auto)
                .expect("diff")
        });
        changes = r.changes.len();
    }
    for _ in 0..cfg.iterations.min(5) {
        walk.time(|| {
            pool.diff_status("bench", "many", None, Strategy::WalkOnly)
                .expect("walk")
        });
    }
    let ratio = walk.pct(0.5) / send.pct(0.5);
    rows.push(Row {
        what: format!("diff status ({changes} changes, send stream)"),
        size: label.clone(),
        mode: "warm cache".into(),
        samples: send,
    });
    rows.push(Row {
        what: format!("diff status (full walk, {ratio:.0}x slower)"),
        size: label.clone(),
        mode: "warm cache".into(),
        samples: walk,
    });

    let mut send_cold = Samples::default();
    let mut walk_cold = Samples::default();
    for _ in 0..3 {
        drop_caches();
        send_cold.time(|| {
            pool.diff_status("bench", "many", None, Strategy::Auto)
                .expect("diff")
        });
        drop_caches();
        walk_cold.time(|| {
            pool.diff_status("bench", "many", None, Strategy::WalkOnly)
                .expect("walk")
        });
    }
    let ratio = walk_cold.pct(0.5) / send_cold.pct(0.5);
    rows.push(Row {
        what: "diff status (send stream)".into(),
        size: label.clone(),
        mode: "cold cache".into(),
        samples: send_cold,
    });
    rows.push(Row {
        what: format!("diff status (full walk, {ratio:.0}x slower)"),
        size: label,
        mode: "cold cache".into(),
        samples: walk_cold,
    });
}

fn drop_caches() {
    // Writes "3" so the next run reads metadata from disk; harmless if not permitted.
    let _ = fs::write("/proc/sys/vm/drop_caches", "3");
}

fn import_bench(pool: &Pool, cfg: &Config, scratch: &Path, rows: &mut Vec<Row>) {
    let tarball = scratch.join("rootfs.tar.gz");
    {
        let f = BufWriter::new(File::create(&tarball).expect("tarball"));
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
            f,
            flate2::Compression::fast(),
        ));
        let elf = fake_sh();
        let mut h = header(0o755, 64);
        b.append_data(&mut h, "bin/sh", &elf[..]).expect("tar");
        let mut noise = Noise(42);
        let mut buf = vec![0u8; MIB as usize];
        for i in 0..(cfg.tarball_bytes / MIB) {
            noise.fill(&mut buf);
            let mut h = header(0o644, buf.len() as u64);
            b.append_data(&mut h, format!("usr/share/blob/{i:04}"), &buf[..])
                .expect("tar");
        }
        b.into_inner()
            .expect("tar")
            .finish()
            .expect("gz")
            .flush()
            .expect("flush");
    }
    let size = fs::metadata(&tarball).expect("tarball").len();
    let mut import = Samples::default();
    for i in 0..3 {
        let f = File::open(&tarball).expect("tarball");
        import.time(|| {
            pool.import_base(
                &format!("imported{i}"),
                std::io::BufReader::new(f),
                &ImportOptions::default(),
            )
            .expect("import")
        });
    }
    rows.push(Row {
        what: "import .tar.gz".into(),
        size: format!("{} MB", size / 1_000_000),
        mode: "streamed".into(),
        samples: import,
    });
}

/// The same create and delete, through the gRPC API over the agent's Unix socket, to show what
/// the transport adds.
fn grpc_bench(pool: std::sync::Arc<Pool>, cfg: &Config, scratch: &Path, rows: &mut Vec<Row>) {
    use forkr_node_agent::rpc::storage::proto::storage_client::StorageClient;
    use forkr_node_agent::rpc::storage::{BearerToken, proto};
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let sock = scratch.join("agent.sock");
    let (create, delete) = rt.block_on(async {
        let serving = sock.clone();
        tokio::spawn(async move {
            forkr_node_agent::rpc::serve::serve_unix(
                pool,
                Default::default(),
                None,
                "bench",
                &serving,
                std::future::pending(),
            )
            .await
        });
        let mut channel = None;
        for _ in 0..100 {
            let endpoint =
                tonic::transport::Endpoint::try_from(format!("unix://{}", sock.display()))
                    .expect("uri");
            if let Ok(c) = endpoint.connect().await {
                channel = Some(c);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let token = BearerToken::new("bench").expect("token");
        let mut c = StorageClient::with_interceptor(channel.expect("agent socket"), token);
        let (mut create, mut delete) = (Samples::default(), Samples::default());
        for i in 0..cfg.iterations {
            let name = format!("g{i}");
            let req = proto::CreateRootRequest {
                project: "bench".into(),
                r#box: name.clone(),
                base: "tiny".into(),
            };
            let start = Instant::now();
            c.create_root(req).await.expect("create over grpc");
            create.0.push(start.elapsed());
            let start = Instant::now();
            c.delete_root(proto::RootRef {
                project: "bench".into(),
                r#box: name,
            })
            .await
            .expect("delete over grpc");
            delete.0.push(start.elapsed());
        }
        (create, delete)
    });
    rows.push(Row {
        what: "create root over gRPC (Unix socket)".into(),
        size: "tiny".into(),
        mode: "as served".into(),
        samples: create,
    });
    rows.push(Row {
        what: "delete root over gRPC (Unix socket)".into(),
        size: "tiny".into(),
        mode: "as served".into(),
        samples: delete,
    });
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let cfg = config();
    let load_before = load_average();
    let scratch = tempfile::Builder::new()
        .prefix("forkr-bench-")
        .tempdir()
        .expect("tempdir");
    let lb = Loopback::mount_image(
        &scratch.path().join("pool.img"),
        24 << 30,
        &scratch.path().join("mnt"),
    )
    .expect("loopback btrfs (run as root)");
    let pool = Pool::open(lb.path()).expect("pool");
    pool.import_base("tiny", &tiny_base()[..], &ImportOptions::default())
        .expect("tiny base");
    let mut rows = Vec::new();
    for (label, bytes) in &cfg.sizes {
        eprintln!("root lifecycle, {label}...");
        lifecycle(&pool, label, *bytes, &cfg, &mut rows);
    }
    eprintln!("diff status...");
    diff_bench(&pool, &cfg, &mut rows);
    eprintln!("import...");
    import_bench(&pool, &cfg, scratch.path(), &mut rows);
    eprintln!("grpc...");
    let pool = std::sync::Arc::new(pool);
    grpc_bench(pool.clone(), &cfg, scratch.path(), &mut rows);
    println!(
        "load average before: {load_before}, after: {}",
        load_average()
    );
    println!(
        "\nforkr-node-agent storage benchmark: {} cores, kernel {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel()
    );
    print_table(&rows);
    drop(pool);
    drop(lb);
}

fn kernel() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
