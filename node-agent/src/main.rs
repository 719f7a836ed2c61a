//! `forkr-node-agent`: opens the node's btrfs pool and serves it over gRPC on a Unix socket and,
//! optionally, TCP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use forkr_node_agent::Pool;
use forkr_node_agent::exec::NodeBoxes;
use forkr_node_agent::metrics::{self, Metrics};
use forkr_node_agent::pool::loopback::Loopback;
use forkr_node_agent::rpc::serve;
use forkr_node_agent::runtime::net::NetConfig;
use forkr_node_agent::runtime::{ApiEndpoints, LocalRuntime, RuntimeConfig};

#[derive(Debug, Parser)]
#[command(
    name = "forkr-node-agent",
    version,
    about = "Serves the node's btrfs pool over gRPC"
)]
struct Args {
    /// Pool directory; must be on btrfs unless --loopback-gib is given.
    #[arg(long, env = "FORKR_POOL", default_value = "/var/lib/forkr")]
    pool: PathBuf,
    /// When the pool directory is not on btrfs, back it with a loopback image of this many GiB
    /// (kept next to it as <pool>.img).
    #[arg(long, env = "FORKR_LOOPBACK_GIB")]
    loopback_gib: Option<u64>,
    /// Unix socket to serve on.
    #[arg(
        long,
        env = "FORKR_AGENT_SOCKET",
        default_value = "/run/forkr/agent.sock"
    )]
    socket: PathBuf,
    /// TCP address to serve on as well, e.g. 0.0.0.0:7443.
    #[arg(long, env = "FORKR_AGENT_LISTEN")]
    listen: Option<SocketAddr>,
    /// File holding the bearer token every caller must present.
    #[arg(long, env = "FORKR_AGENT_TOKEN_FILE")]
    token_file: PathBuf,
    /// Serve Prometheus metrics at http://<addr>/metrics, e.g. 0.0.0.0:9464.
    #[arg(long, env = "FORKR_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Log as JSON lines (for clusters).
    #[arg(long, env = "FORKR_LOG_JSON")]
    log_json: bool,
    /// Run boxes here with runc (single-node and local mode). Without it (Kubernetes mode) the
    /// Runtime service only enters boxes the kubelet runs.
    #[arg(long, env = "FORKR_RUNTIME_DIR")]
    runtime_dir: Option<std::path::PathBuf>,
    /// The forkr-runner binary; by default the one next to this executable.
    #[arg(long, env = "FORKR_RUNNER_BIN")]
    runner_bin: Option<std::path::PathBuf>,
    /// Bridge for the boxes' network namespaces.
    #[arg(long, default_value = "forkr0")]
    bridge: String,
    /// The boxes' /24.
    #[arg(long, default_value = "10.88.0.0")]
    subnet: std::net::Ipv4Addr,
    /// What boxes are told FORKR_API_URL is.
    #[arg(long, env = "FORKR_API_URL", default_value = "https://forks.localhost")]
    api_url: String,
    /// The node IP boxes see as FORKR_NODE_IP and FORKR_API_IP.
    #[arg(long, env = "FORKR_NODE_IP", default_value = "10.88.0.1")]
    node_ip: String,
    /// Kubernetes mode: containerd's state directory (`state` in its config.toml). A box's
    /// PID 1 is the init of its runner container there, never a process that merely looks
    /// like one.
    #[arg(
        long,
        env = "FORKR_CONTAINERD_STATE",
        default_value = forkr_node_agent::exec::pid1::DEFAULT_CONTAINERD_STATE
    )]
    containerd_state: PathBuf,
    #[command(flatten)]
    grace: forkr_node_agent::exec::grace::GraceArgs,
}

/// The local runtime, when `--runtime-dir` asks for one; it adopts boxes still running.
fn open_runtime(args: &Args, pool: &Arc<Pool>) -> anyhow::Result<Option<Arc<LocalRuntime>>> {
    let Some(dir) = &args.runtime_dir else {
        return Ok(None);
    };
    let runner_bin = match &args.runner_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("the executable has no directory")?
            .join("forkr-runner"),
    };
    let api_host = args
        .api_url
        .split_once("://")
        .map_or(args.api_url.as_str(), |(_, h)| h)
        .to_string();
    let cfg = RuntimeConfig {
        state_dir: dir.clone(),
        runner_bin,
        network: Some(NetConfig {
            bridge: args.bridge.clone(),
            subnet: args.subnet,
            upstream_dns: forkr_node_agent::runtime::net::hosts::host_nameservers(),
            extra_hosts: Vec::new(),
        }),
        api: ApiEndpoints {
            api_url: args.api_url.clone(),
            api_host,
            node_ip: args.node_ip.clone(),
            insecure: false,
        },
    };
    let (rt, report) = LocalRuntime::open(cfg, pool.clone())?;
    for st in report {
        tracing::info!(project = %st.project, name = %st.name, phase = ?st.phase, "found box");
    }
    Ok(Some(Arc::new(rt)))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    args.grace.install();
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    if args.log_json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let token = std::fs::read_to_string(&args.token_file)
        .with_context(|| format!("reading token file {}", args.token_file.display()))?
        .trim()
        .to_string();
    anyhow::ensure!(
        !token.is_empty(),
        "token file {} is empty",
        args.token_file.display()
    );

    let _loopback = match args.loopback_gib {
        Some(gib) => Loopback::ensure_btrfs(&args.pool, gib << 30)?,
        None => None,
    };
    let pool = Arc::new(Pool::open(&args.pool)?);
    let runtime = open_runtime(&args, &pool)?;
    tracing::info!(pool = %args.pool.display(), socket = %args.socket.display(), listen = ?args.listen, "serving");

    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));
    let metrics = Arc::new(Metrics::default());
    if let Some(addr) = args.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        tokio::spawn(metrics::serve(metrics.clone(), listener, shutdown.clone()));
    }
    let node_boxes = Arc::new(NodeBoxes::new(&args.containerd_state));
    let unix = serve::serve_unix_on_node(
        pool.clone(),
        metrics.clone(),
        runtime.clone(),
        node_boxes.clone(),
        &token,
        &args.socket,
        shutdown.clone(),
    );
    match args.listen {
        Some(addr) => {
            let tcp = serve::serve_tcp_on_node(
                pool.clone(),
                metrics.clone(),
                runtime.clone(),
                node_boxes,
                &token,
                addr,
                shutdown.clone(),
            );
            tokio::try_join!(unix, tcp)?;
        }
        None => unix.await?,
    }
    Ok(())
}
