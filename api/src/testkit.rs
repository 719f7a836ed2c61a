//! A real forkr-api for tests: SQLite in a temporary directory, a loopback btrfs pool holding
//! the tiny base as `box-base`, the runc runtime, and a TCP socket. Dropping it stops every box
//! and removes everything, even when the test failed.

use std::path::PathBuf;
use std::sync::Arc;

use forkr_node_agent::Pool;
use forkr_node_agent::pool::import::ImportOptions;
use forkr_node_agent::pool::loopback::Loopback;
use forkr_node_agent::runtime::{ApiEndpoints, LocalRuntime, RuntimeConfig};

use crate::auth::issue_token;
use crate::backend::local::LocalBackend;
use crate::state::{AppState, Config};
use crate::store::{Scope, Store};

/// Where built test artifacts are cached across runs.
const CACHE: &str = "/var/cache/forkr/testbase";

/// A binary of this workspace next to the test executable, built if it is not there yet (cargo
/// builds only the binaries of the package under test).
pub fn workspace_bin(package: &str, bin: &str) -> PathBuf {
    // Test executables live in <target>/<profile>/deps/; binaries in <target>/<profile>/.
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target profile directory");
    let path = profile_dir.join(bin);
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "-p", package, "--bin", bin])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building {bin} failed");
    }
    path
}

/// The forkr-runner binary boxes boot with: FORKR_RUNNER_BIN, else this workspace's.
pub fn runner_bin() -> PathBuf {
    match std::env::var_os("FORKR_RUNNER_BIN") {
        Some(p) => PathBuf::from(p),
        None => workspace_bin("forkr-node-agent", "forkr-runner"),
    }
}

/// The tiny base tarball (busybox, tini, bash), cached.
pub fn minibase() -> PathBuf {
    forkr_node_agent::minibase::tarball(std::path::Path::new(CACHE)).expect("tiny base")
}

/// Options for [`TestServer::start_with`].
#[derive(Default)]
pub struct Options {
    /// Cap on base uploads.
    pub max_upload: Option<u64>,
}

/// A running server; see the module doc.
pub struct TestServer {
    pub url: String,
    /// The reverse proxy for box URLs (`{box}.forkr.test`) and published hosts, plain HTTP.
    pub proxy_url: String,
    /// An admin token.
    pub admin: String,
    /// A token for project `shop` only.
    pub shop: String,
    pub runtime: Arc<LocalRuntime>,
    pub pool: Arc<Pool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    proxy_task: tokio::task::JoinHandle<std::io::Result<()>>,
    _state: tempfile::TempDir,
    _db: tempfile::TempDir,
    // Last: unmounted after every box is gone.
    _pool_fs: Loopback,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(opts: Options) -> TestServer {
        let pool_fs = Loopback::scratch(2 << 30).expect("loopback btrfs (run as root)");
        let pool = Arc::new(Pool::open(pool_fs.path()).expect("open pool"));
        let base = minibase();
        pool.import_base(
            "box-base",
            std::fs::File::open(base).expect("open tiny base"),
            &ImportOptions::default(),
        )
        .expect("import tiny base");
        let state = tempfile::Builder::new()
            .prefix("forkr-api-rt-")
            .tempdir()
            .expect("state dir");
        let cfg = RuntimeConfig {
            state_dir: state.path().to_path_buf(),
            runner_bin: runner_bin(),
            network: None,
            api: ApiEndpoints {
                api_url: "https://forks.forkr.test".into(),
                api_host: "forks.forkr.test".into(),
                node_ip: "127.0.0.1".into(),
                insecure: false,
            },
        };
        let (runtime, _) = LocalRuntime::open(cfg, pool.clone()).expect("runtime");
        let runtime = Arc::new(runtime);
        let db = tempfile::tempdir().expect("db dir");
        let store = Store::open(&db.path().join("forkr.db")).expect("store");
        let admin = issue_token(&store, "admin", &Scope::Admin).expect("token");
        let shop =
            issue_token(&store, "shop", &Scope::Projects(vec!["shop".into()])).expect("token");
        let mut backend = LocalBackend::new(store, pool.clone(), runtime.clone(), "forkr.test")
            .expect("local backend");
        if let Some(cap) = opts.max_upload {
            backend = backend.with_max_upload(cap);
        }
        let backend = Arc::new(backend);
        backend.start_background().expect("background work");
        let app = AppState {
            backend: backend.clone(),
            config: Arc::new(Config {
                domain: "forkr.test".into(),
            }),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let router = crate::routes::app(app);
        let proxy_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let proxy_url = format!(
            "http://{}",
            proxy_listener.local_addr().expect("local addr")
        );
        let proxy = crate::proxy::Proxy::new(backend, router.clone(), "forks.forkr.test", false);
        let proxy_task = tokio::spawn(crate::proxy::serve_on(proxy_listener, proxy.router(), None));
        let task = tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await
        });
        TestServer {
            proxy_task,
            proxy_url,
            url,
            admin,
            shop,
            runtime,
            pool,
            task,
            _state: state,
            _db: db,
            _pool_fs: pool_fs,
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
        self.proxy_task.abort();
        for st in self.runtime.list().unwrap_or_default() {
            let _ = self.runtime.remove(&st.project, &st.name);
        }
    }
}
