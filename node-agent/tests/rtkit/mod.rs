//! Fixtures for the runtime tests: a tiny real base (busybox-static, tini, bash and its
//! libraries) built once and cached, and a runtime on a private loopback pool that stops its
//! boxes, removes its bridge and unmounts even when a test fails.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod containerd;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use forkr_node_agent::Pool;
use forkr_node_agent::pool::import::ImportOptions;
use forkr_node_agent::pool::loopback::Loopback;
use forkr_node_agent::runtime::net::{NetConfig, SubnetLease};
use forkr_node_agent::runtime::{ApiEndpoints, BoxSpec, BoxStatus, LocalRuntime, RuntimeConfig};

const CACHE: &str = "/var/cache/forkr/testbase";

/// The tiny base (`forkr_node_agent::minibase`) as a .tar.gz, built once and cached.
pub fn test_base_tar() -> PathBuf {
    forkr_node_agent::minibase::tarball(Path::new(CACHE)).expect("build the tiny base")
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The forkr-runner binary: cargo's for tests; next to the examples directory for the
/// benchmark (build it with `--bin forkr-runner`).
pub fn runner_bin() -> PathBuf {
    if let Some(p) = option_env!("CARGO_BIN_EXE_forkr-runner") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("forkr-runner");
    assert!(
        bin.exists(),
        "{} is missing: build it with cargo build -p forkr-node-agent --bin forkr-runner",
        bin.display()
    );
    bin
}

/// A name unique to this process and call, usable as a project or bridge suffix.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id() % 100_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A runtime on its own loopback pool. Field order matters: the runtime (and its boxes) go
/// before the pool, the pool before the unmount.
pub struct Rt {
    pub rt: Arc<LocalRuntime>,
    pub pool: Arc<Pool>,
    pub base: String,
    pub recovered: Vec<BoxStatus>,
    pub cfg: RuntimeConfig,
    pub state: tempfile::TempDir,
    _subnet: Option<SubnetLease>,
    pub lb: Loopback,
}

impl Rt {
    /// Without a network: boxes share the host's.
    pub fn new() -> Rt {
        Rt::build(false)
    }

    /// With a bridge, a /24 and names of their own.
    pub fn with_network() -> Rt {
        Rt::build(true)
    }

    fn build(network: bool) -> Rt {
        let lb = Loopback::scratch(1 << 30).expect("loopback btrfs (needs root)");
        let pool = Arc::new(Pool::open(lb.path()).expect("open pool"));
        let base = pool
            .import_base(
                "tiny",
                std::fs::File::open(test_base_tar()).unwrap(),
                &ImportOptions::default(),
            )
            .expect("import test base");
        let state = tempfile::Builder::new()
            .prefix("forkr-rt-")
            .tempdir()
            .unwrap();
        let subnet = network.then(|| SubnetLease::take().expect("a test subnet"));
        let network = subnet.as_ref().map(|s| NetConfig {
            bridge: format!("fkt{}", unique("")).chars().take(15).collect(),
            subnet: s.subnet,
            upstream_dns: vec![],
            extra_hosts: Vec::new(),
        });
        let cfg = RuntimeConfig {
            state_dir: state.path().to_path_buf(),
            runner_bin: runner_bin(),
            network,
            api: ApiEndpoints {
                api_url: "https://forks.example.test".into(),
                api_host: "forks.example.test".into(),
                node_ip: "192.0.2.10".into(),
                insecure: false,
            },
        };
        let (rt, recovered) = LocalRuntime::open(cfg.clone(), pool.clone()).expect("runtime");
        let rt = Arc::new(rt);
        Rt {
            rt,
            pool,
            base,
            recovered,
            cfg,
            state,
            _subnet: subnet,
            lb,
        }
    }

    /// Creates a root from the tiny base and starts a box on it.
    pub fn boot(&self, spec: &BoxSpec) -> BoxStatus {
        self.pool
            .create_root(&spec.project, &spec.name, &self.base)
            .expect("create root");
        self.rt.start(spec).expect("start box")
    }

    /// Simulates an agent restart: a new runtime over the same state directory.
    pub fn restart(&mut self) {
        let (rt, recovered) =
            LocalRuntime::open(self.cfg.clone(), self.pool.clone()).expect("reopen runtime");
        self.rt = Arc::new(rt);
        self.recovered = recovered;
    }

    /// Host path of a box's root.
    pub fn root(&self, project: &str, name: &str) -> PathBuf {
        self.pool.root_path(project, name).unwrap()
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        if let Ok(all) = self.rt.list() {
            for b in all {
                let _ = Command::new("runc")
                    .arg("--root")
                    .arg(self.state.path().join("runc"))
                    .args(["delete", "--force", &format!("{}.{}", b.project, b.name)])
                    .output();
            }
        }
        if let Some(net) = self.rt.network() {
            net.teardown();
        }
        // runc removes each box's cgroup (once its last process is reaped, which can lag);
        // the runtime's parent directory is ours to remove.
        let parents: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .map(|c| c.path().join(self.rt.cgroup_parent()))
            .collect();
        for _ in 0..100 {
            for p in &parents {
                let _ = std::fs::remove_dir(p);
            }
            if parents.iter().all(|p| !p.exists()) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// Output of a finished exec.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `req` in the box whose PID 1 is `pid1`, feeding `stdin`, and waits.
pub fn exec_req(pid1: i32, req: &forkr_node_agent::exec::ExecRequest, stdin: &[u8]) -> Out {
    use forkr_node_agent::exec::{self, Stdio3, Target};
    let mut p = exec::command(&Target::new(pid1), req, Stdio3::Pipes).expect("exec command");
    let mut child = p.cmd.spawn().expect("spawn exec");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    Out {
        code: exec::exit_code(out.status),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs a shell string (`--sh`) in the box.
pub fn sh(pid1: i32, script: &str) -> Out {
    exec_req(
        pid1,
        &forkr_node_agent::exec::ExecRequest {
            args: vec![script.to_string()],
            sh: true,
            ..Default::default()
        },
        b"",
    )
}

/// Runs `req` and returns (exit code, raw stdout, raw stderr).
pub fn exec_raw(
    pid1: i32,
    req: &forkr_node_agent::exec::ExecRequest,
    stdin: &[u8],
) -> (i32, Vec<u8>, Vec<u8>) {
    use forkr_node_agent::exec::{self, Stdio3, Target};
    let mut p = exec::command(&Target::new(pid1), req, Stdio3::Pipes).expect("exec command");
    let mut child = p.cmd.spawn().expect("spawn exec");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    (exec::exit_code(out.status), out.stdout, out.stderr)
}

/// Polls `f` until it returns true or `secs` pass.
pub fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let t = std::time::Instant::now();
    while t.elapsed().as_secs() < secs {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

pub const TOKEN: &str = "runtime-test-token";

pub type Client = forkr_node_agent::rpc::proto::runtime_client::RuntimeClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        forkr_node_agent::rpc::storage::BearerToken,
    >,
>;

impl Rt {
    /// Serves the Runtime service on a Unix socket in the state directory and connects to it.
    pub async fn grpc(&self, heartbeat: std::time::Duration) -> (Client, PathBuf) {
        let sock = self.state.path().join("runtime.sock");
        let svc = forkr_node_agent::rpc::service(
            self.pool.clone(),
            Some(self.rt.clone()),
            TOKEN,
            heartbeat,
        );
        let path = sock.clone();
        tokio::spawn(async move {
            forkr_node_agent::rpc::serve::serve_runtime_unix(svc, &path, std::future::pending())
                .await
                .unwrap()
        });
        (connect(&sock).await, sock)
    }
}

/// A client of the Runtime service on `sock`, with the test token.
pub async fn connect(sock: &Path) -> Client {
    for _ in 0..100 {
        if let Ok(ch) = tonic::transport::Endpoint::try_from(format!("unix://{}", sock.display()))
            .unwrap()
            .connect()
            .await
        {
            return forkr_node_agent::rpc::proto::runtime_client::RuntimeClient::with_interceptor(
                ch,
                forkr_node_agent::rpc::storage::BearerToken::new(TOKEN).unwrap(),
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("runtime socket did not come up");
}
