//! `forkr-api`: serve the API, or mint a token.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use forkr_api::backend::kube::KubeBackend;
use forkr_api::backend::local::LocalBackend;
use forkr_api::proxy::Proxy;
use forkr_api::routes;
use forkr_api::state::{AppState, Config};
use forkr_api::store::Store;
use forkr_node_agent::Pool;
use forkr_node_agent::pool::loopback::Loopback;
use forkr_node_agent::runtime::net::NetConfig;
use forkr_node_agent::runtime::{ApiEndpoints, LocalRuntime, RuntimeConfig};

#[derive(Parser)]
#[command(name = "forkr-api", about = "The Forkr API gateway")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Run the embedded local backend (SQLite, the btrfs pool, runc) instead of Kubernetes.
    #[arg(long)]
    local: bool,
    /// Where local mode keeps its database and pool.
    #[arg(
        long,
        global = true,
        env = "FORKR_DATA_DIR",
        default_value = "/var/lib/forkr"
    )]
    data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "FORKR_LISTEN", default_value = "127.0.0.1:7070")]
    listen: SocketAddr,
    /// The deployment domain: boxes are https://{box}.{domain}. Local mode defaults to
    /// localhost; the Kubernetes backend requires it unless --dev.
    #[arg(long, env = "FORKR_DOMAIN")]
    domain: Option<String>,
    /// A development setup: the Kubernetes backend may then default the domain to localhost.
    #[arg(long)]
    dev: bool,
    /// Size of the loopback pool image made when the data dir is not on btrfs.
    #[arg(long, default_value_t = 20 << 30)]
    pool_size: u64,
    /// The forkr-runner binary boxes boot with; by default the one next to this executable.
    #[arg(long, env = "FORKR_RUNNER_BIN")]
    runner_bin: Option<PathBuf>,
    /// Run boxes in the host's network instead of giving each its own on a bridge.
    #[arg(long)]
    no_network: bool,
    /// The bridge boxes attach to.
    #[arg(long, env = "FORKR_BRIDGE", default_value = "forkr0")]
    bridge: String,
    /// The boxes' /24: the bridge takes .1, boxes .2 to .254.
    #[arg(long, env = "FORKR_SUBNET", default_value = "10.88.0.0")]
    subnet: std::net::Ipv4Addr,
    /// Where the reverse proxy for box URLs and published hosts listens ("off" to disable).
    #[arg(long, env = "FORKR_PROXY_LISTEN", default_value = "127.0.0.1:8080")]
    proxy_listen: String,
    /// The default domain of `4kr publish <box> <subdomain>`; FORKR_DOMAIN when unset.
    #[arg(long, env = "FORKR_PUBLISH_DOMAIN")]
    publish_domain: Option<String>,
    /// A PEM certificate chain: the proxy then speaks HTTPS.
    #[arg(long, env = "FORKR_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "FORKR_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The Kubernetes backend's node agents, found as forkr-operator finds them.
    #[command(flatten)]
    agent: forkr_agent_proto::discovery::AgentArgs,
    /// How long an exec and a console outlive their client (local mode).
    #[command(flatten)]
    grace: forkr_node_agent::exec::grace::GraceArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Mint a bearer token and print it once (only its hash is stored); or, with a
    /// subcommand, list or revoke the tokens of this data directory's database.
    Token {
        #[command(subcommand)]
        action: Option<TokenCommand>,
        /// Name to remember the token by [default: cli].
        #[arg(long)]
        name: Option<String>,
        /// Allow every project.
        #[arg(long, conflicts_with = "project")]
        admin: bool,
        /// Allow this project (repeatable).
        #[arg(long)]
        project: Vec<String>,
        /// When the token stops working: a lifetime (30d, 12h, 90m, 3600) or an RFC 3339 time.
        #[arg(long)]
        expires: Option<String>,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// List the tokens: id, name, scope, created, expires, last used (never a secret).
    List,
    /// Revoke a token by its id: from the next request on it is refused.
    Revoke { id: String },
}

/// `--expires`: a lifetime when it reads as one, else an RFC 3339 time.
fn expiry_fields(expires: Option<String>) -> (Option<forkr_api::wire::ExpiresIn>, Option<String>) {
    match expires {
        None => (None, None),
        Some(e) if forkr_api::wire::parse_lifetime(&e).is_ok() => {
            (Some(forkr_api::wire::ExpiresIn::Text(e)), None)
        }
        Some(e) => (None, Some(e)),
    }
}

/// Columns padded to their widest cell, two spaces apart, as 4kr prints tables.
fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == N {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// `forkr-api token ...` on the local database.
fn token_command(
    data: &Path,
    action: Option<TokenCommand>,
    req: forkr_api::wire::CreateToken,
) -> anyhow::Result<String> {
    let store = open_store(data)?;
    match action {
        Some(TokenCommand::List) => {
            let rows: Vec<[String; 6]> = store
                .list_tokens()?
                .into_iter()
                .map(forkr_api::auth::token_view)
                .map(|t| {
                    let scope = if t.admin {
                        "admin".to_owned()
                    } else {
                        t.projects.join(",")
                    };
                    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
                    [
                        t.id,
                        t.name,
                        scope,
                        t.created,
                        or_dash(t.expires),
                        or_dash(t.last_used),
                    ]
                })
                .collect();
            Ok(table(
                ["ID", "NAME", "SCOPE", "CREATED", "EXPIRES", "LAST-USED"],
                &rows,
            ))
        }
        Some(TokenCommand::Revoke { id }) => {
            let t = store.revoke_token(&id)?;
            tracing::info!(target: forkr_api::auth::AUDIT_TARGET, token_id = %t.id, token_name = ?t.name, by = "forkr-api token revoke", "token revoked");
            Ok(format!("{}: revoked\n", t.id))
        }
        None => {
            if !req.admin && req.projects.is_empty() {
                bail!("give --admin or at least one --project");
            }
            let (scope, expires) = forkr_api::auth::token_request(&req, jiff::Timestamp::now())
                .map_err(|e| anyhow::anyhow!(e.message))?;
            let issued = forkr_api::auth::mint(&store, &req.name, &scope, expires)?;
            Ok(format!("{}\n", issued.secret))
        }
    }
}

/// Opens the pool at `<data>/pool`, mounting a loopback btrfs image there first when the
/// directory is not on btrfs.
fn open_pool(data: &Path, size: u64) -> anyhow::Result<Pool> {
    let dir = data.join("pool");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    if let Ok(pool) = Pool::open(&dir) {
        return Ok(pool);
    }
    let mounted = Loopback::mount_image(&data.join("pool.img"), size, &dir)
        .with_context(|| format!("mounting a loopback btrfs pool at {}", dir.display()))?;
    // The pool stays mounted when forkr-api exits: boxes keep running across a restart.
    std::mem::forget(mounted);
    Ok(Pool::open(&dir)?)
}

/// forkr-api in front of a cluster: the Forkr custom resources through KUBECONFIG (or the
/// in-cluster account), tokens in SQLite under --data-dir. No proxy: the cluster's Ingress
/// serves box URLs and published hosts.
async fn serve_kube(cli: Cli) -> anyhow::Result<()> {
    let domain = match (&cli.domain, cli.dev) {
        (Some(d), _) => d.clone(),
        (None, true) => "localhost".to_owned(),
        (None, false) => bail!(
            "FORKR_DOMAIN (--domain) is required with the Kubernetes backend (or pass --dev); use --local for a single machine"
        ),
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kube::Client::try_default()
        .await
        .context("connecting to Kubernetes (KUBECONFIG or the in-cluster account)")?;
    let store = open_store(&cli.data_dir)?;
    let mut backend = KubeBackend::new(client.clone(), store, &domain);
    if cli.agent.agent_token_file.is_some() {
        let agents = forkr_agent_proto::client::GrpcAgents::new(
            cli.agent.discovery()?,
            Some(client),
            &cli.agent.token()?,
        )?;
        backend = backend.with_agents(agents);
    } else {
        tracing::warn!(
            "no --agent-token-file: commands go through Kubernetes exec only; cp, diff and bases need the node agents"
        );
    }
    if let Some(d) = &cli.publish_domain {
        backend = backend.with_publish_domain(d);
    }
    let state = AppState {
        backend: Arc::new(backend),
        config: Arc::new(Config { domain }),
    };
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("listening on {}", cli.listen))?;
    tracing::info!(addr = %cli.listen, backend = "kube", "forkr-api listening");
    axum::serve(
        listener,
        routes::app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

fn is_localhost(domain: &str) -> bool {
    domain == "localhost" || domain.ends_with(".localhost")
}

/// Opens `<data>/forkr.db`, making the data directory 0700 first (and the database 0600).
fn open_store(data: &Path) -> anyhow::Result<Store> {
    forkr_api::store::private_dir(data)
        .with_context(|| format!("making {} a private (0700) directory", data.display()))?;
    Ok(Store::open(&data.join("forkr.db"))?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs on stderr: stdout is for what a command prints (`forkr-api token` prints a secret
    // that scripts capture).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    cli.grace.install();
    if let Some(Command::Token {
        action,
        name,
        admin,
        project,
        expires,
    }) = cli.command
    {
        if action.is_some() && (admin || !project.is_empty() || name.is_some() || expires.is_some())
        {
            bail!(
                "--admin, --project, --name and --expires are for minting a token, not with list or revoke"
            );
        }
        let (expires_in, expires) = expiry_fields(expires);
        let req = forkr_api::wire::CreateToken {
            name: name.unwrap_or_else(|| "cli".to_owned()),
            admin,
            projects: project,
            expires_in,
            expires,
        };
        print!("{}", token_command(&cli.data_dir, action, req)?);
        return Ok(());
    }
    if !cli.local {
        return serve_kube(cli).await;
    }
    let domain = cli.domain.clone().unwrap_or_else(|| "localhost".into());
    let store = open_store(&cli.data_dir)?;
    let pool = Arc::new(open_pool(&cli.data_dir, cli.pool_size)?);
    let runner_bin = match cli.runner_bin {
        Some(p) => p,
        None => std::env::current_exe()?
            .parent()
            .context("the executable has no directory")?
            .join("forkr-runner"),
    };
    let tls = match (&cli.tls_cert, &cli.tls_key) {
        (Some(cert), Some(key)) => Some(
            forkr_api::proxy::tls_config(cert, key)
                .await
                .with_context(|| format!("loading TLS from {}", cert.display()))?,
        ),
        _ => None,
    };
    let api_host = forkr_api::backend::local::api_host(&domain);
    let mut network = (!cli.no_network).then(|| NetConfig {
        bridge: cli.bridge.clone(),
        subnet: cli.subnet,
        ..NetConfig::default_local()
    });
    // Boxes reach the API as forks.<domain>: on their bridge, that name is the gateway, where
    // the proxy listens too. Without a bridge a box has only its loopback and reaches nothing
    // outside; the variables still name the API's address, for a box that gets a route later.
    let api = match &mut network {
        Some(net) => {
            let gateway = net.gateway();
            net.extra_hosts.push((gateway, api_host.clone()));
            let scheme = if tls.is_some() { "https" } else { "http" };
            // Resolvers answer every *.localhost name with loopback themselves (RFC 6761; curl
            // does), so under such a domain boxes get the gateway's address instead.
            let in_box_host = if is_localhost(&domain) {
                gateway.to_string()
            } else {
                api_host.clone()
            };
            ApiEndpoints {
                api_url: format!("{scheme}://{in_box_host}"),
                api_host: in_box_host,
                node_ip: gateway.to_string(),
                insecure: false,
            }
        }
        None => ApiEndpoints {
            api_url: format!("http://{}", cli.listen),
            api_host: cli.listen.to_string(),
            node_ip: "127.0.0.1".into(),
            insecure: false,
        },
    };
    let gateway = network.as_ref().map(NetConfig::gateway);
    let runtime_cfg = RuntimeConfig {
        state_dir: cli.data_dir.join("runtime"),
        runner_bin,
        network,
        api,
    };
    let (runtime, recovered) =
        LocalRuntime::open(runtime_cfg, pool.clone()).context("starting the box runtime")?;
    for st in recovered {
        tracing::info!(project = %st.project, name = %st.name, phase = ?st.phase, "found box");
    }
    let mut backend = LocalBackend::new(store, pool, Arc::new(runtime), &domain)?;
    if let Some(d) = &cli.publish_domain {
        backend = backend.with_publish_domain(d);
    }
    let backend = Arc::new(backend);
    let resumed = backend.start_background()?;
    if resumed > 0 {
        tracing::info!(count = resumed, "carrying on unfinished deletes");
    }
    let state = AppState {
        backend: backend.clone(),
        config: Arc::new(Config {
            domain: domain.clone(),
        }),
    };
    let app = routes::app(state);
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("listening on {}", cli.listen))?;
    tracing::info!(addr = %cli.listen, data = %cli.data_dir.display(), "forkr-api listening");

    let mut proxies = tokio::task::JoinSet::new();
    let mut proxy_addrs: Vec<SocketAddr> = Vec::new();
    if cli.proxy_listen != "off" {
        proxy_addrs.push(
            cli.proxy_listen
                .parse()
                .with_context(|| format!("--proxy-listen {:?}", cli.proxy_listen))?,
        );
    }
    if let Some(gw) = gateway {
        let port = if tls.is_some() { 443 } else { 80 };
        proxy_addrs.push(SocketAddr::from((gw, port)));
    }
    for addr in proxy_addrs {
        let listener = match std::net::TcpListener::bind(addr) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(%addr, error = %e, "the proxy cannot listen here");
                continue;
            }
        };
        let proxy = Proxy::new(backend.clone(), app.clone(), &api_host, tls.is_some()).router();
        tracing::info!(%addr, tls = tls.is_some(), "proxy listening");
        proxies.spawn(forkr_api::proxy::serve_on(listener, proxy, tls.clone()));
    }
    tokio::select! {
        r = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            }) => r?,
        Some(r) = proxies.join_next() => {
            r.context("proxy task")?.context("proxy")?;
        }
    }
    Ok(())
}
